#include "checkpoint/safetensors.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "common/error.h"

namespace llm {

using nlohmann::json;

size_t TensorView::numel() const {
  size_t n = 1;
  for (size_t d : shape) n *= d;
  return n;
}

namespace {

std::string shape_to_string(const std::vector<size_t>& shape) {
  std::ostringstream out;
  out << '[';
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << ']';
  return out.str();
}

// Largest header we accept; real headers are kilobytes. Guards against a corrupt length field.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

}  // namespace

std::string TensorView::shape_string() const { return shape_to_string(shape); }

SafetensorsFile::SafetensorsFile(const std::filesystem::path& path) : file_(path) {
  const auto bytes = file_.bytes();
  const std::string where = path.string();
  if (bytes.size() < 8) {
    throw_error(where, ": truncated safetensors file (", bytes.size(),
                " bytes; it must start with an 8-byte header length)");
  }
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);  // little-endian on x86-64
  if (header_len > bytes.size() - 8) {
    throw_error(where, ": header length ", header_len, " is beyond the end of the file (", bytes.size(),
                " bytes): the file is truncated or not safetensors");
  }
  if (header_len > kMaxHeaderBytes) throw_error(where, ": header length ", header_len, " is implausibly large");
  const auto header_text = std::string_view(reinterpret_cast<const char*>(bytes.data() + 8), header_len);
  json header;
  try {
    header = json::parse(header_text);
  } catch (const json::exception& e) {
    throw_error(where, ": header is not valid JSON (", e.what(), ")");
  }
  if (!header.is_object()) throw_error(where, ": header is not a JSON object");

  const auto data = bytes.subspan(8 + header_len);
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (entry.is_object()) {
        for (const auto& [key, value] : entry.items()) {
          if (value.is_string()) metadata_[key] = value.get<std::string>();
        }
      }
      continue;
    }
    const std::string tensor_where = where + ": tensor " + name;
    if (!entry.is_object()) throw_error(tensor_where, ": header entry is not an object");
    if (!entry.contains("dtype") || !entry["dtype"].is_string())
      throw_error(tensor_where, ": missing \"dtype\"");
    const std::string dtype_name = entry["dtype"].get<std::string>();
    const auto dtype = dtype_from_safetensors(dtype_name);
    if (!dtype) {
      throw_error(tensor_where, ": unsupported dtype \"", dtype_name,
                  "\" (supported: F32, F16, BF16, I8, I32, I64, U8)");
    }
    if (!entry.contains("shape") || !entry["shape"].is_array()) throw_error(tensor_where, ": missing \"shape\"");
    TensorView view;
    view.name = name;
    view.dtype = *dtype;
    for (const auto& dim : entry["shape"]) {
      if (!dim.is_number_unsigned()) throw_error(tensor_where, ": shape must be non-negative integers");
      view.shape.push_back(dim.get<size_t>());
    }
    const auto& offsets = entry.contains("data_offsets") ? entry["data_offsets"] : json();
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
        !offsets[1].is_number_unsigned()) {
      throw_error(tensor_where, ": \"data_offsets\" must be [begin, end]");
    }
    const uint64_t begin = offsets[0].get<uint64_t>();
    const uint64_t end = offsets[1].get<uint64_t>();
    if (begin > end) throw_error(tensor_where, ": data_offsets begin ", begin, " > end ", end);
    if (end > data.size()) {
      throw_error(tensor_where, ": data ends at byte ", end, " but the file holds only ", data.size(),
                  " data bytes (the file is truncated)");
    }
    // numel * size, with overflow caught by dividing back.
    const uint64_t elem = dtype_size(*dtype);
    uint64_t numel = 1;
    for (size_t d : view.shape) {
      if (d != 0 && numel > UINT64_MAX / d) throw_error(tensor_where, ": shape overflows");
      numel *= d;
    }
    if (numel > UINT64_MAX / elem) throw_error(tensor_where, ": shape overflows");
    if (end - begin != numel * elem) {
      throw_error(tensor_where, ": ", end - begin, " data bytes do not match dtype ", dtype_name, " and shape ",
                  view.shape_string(), " (", numel * elem, " bytes expected)");
    }
    view.bytes = data.subspan(begin, end - begin);
    tensors_.emplace(name, std::move(view));
  }
  // Two tensors sharing bytes would alias each other (a writer's bug, or a crafted file).
  std::vector<const TensorView*> by_offset;
  for (const auto& [name, view] : tensors_) {
    if (!view.bytes.empty()) by_offset.push_back(&view);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const TensorView* a, const TensorView* b) { return a->bytes.data() < b->bytes.data(); });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const TensorView& before = *by_offset[i - 1];
    const TensorView& after = *by_offset[i];
    if (before.bytes.data() + before.bytes.size() > after.bytes.data()) {
      throw_error(where, ": tensors ", before.name, " and ", after.name,
                  " overlap (their data_offsets share bytes); the file is corrupt");
    }
  }
}

const TensorView* SafetensorsFile::find(const std::string& name) const {
  const auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

const TensorView& SafetensorsFile::get(const std::string& name) const {
  const TensorView* view = find(name);
  if (view == nullptr) throw_error("tensor ", name, " is missing from ", path().string());
  return *view;
}

const TensorView& SafetensorsFile::get(const std::string& name, const std::vector<size_t>& expected_shape) const {
  const TensorView& view = get(name);
  if (view.shape != expected_shape) {
    throw_error(path().string(), ": tensor ", name, " has shape ", view.shape_string(), ", expected ",
                shape_to_string(expected_shape), " from config.json");
  }
  return view;
}

void SafetensorsWriter::add(std::string name, DType dtype, std::vector<size_t> shape, Fill fill) {
  entries_.push_back(Entry{std::move(name), dtype, std::move(shape), std::move(fill)});
}

void SafetensorsWriter::add_copy(std::string name, DType dtype, std::vector<size_t> shape,
                                 std::span<const uint8_t> bytes) {
  add(std::move(name), dtype, std::move(shape), [bytes](std::span<uint8_t> out) {
    if (out.size() != bytes.size()) throw Error("internal: tensor byte count does not match its shape");
    std::memcpy(out.data(), bytes.data(), bytes.size());
  });
}

void SafetensorsWriter::write(const std::filesystem::path& path) const {
  json header = json::object();
  if (!metadata_.empty()) header["__metadata__"] = metadata_;
  std::vector<size_t> sizes;
  uint64_t offset = 0;
  for (const auto& entry : entries_) {
    size_t numel = 1;
    for (size_t d : entry.shape) numel *= d;
    const size_t size = numel * dtype_size(entry.dtype);
    header[entry.name] = {{"dtype", std::string(safetensors_name(entry.dtype))},
                          {"shape", entry.shape},
                          {"data_offsets", {offset, offset + size}}};
    sizes.push_back(size);
    offset += size;
  }
  std::string header_text = header.dump();
  header_text.append((8 - header_text.size() % 8) % 8, ' ');  // keep tensor data 8-byte aligned

  const auto temp = std::filesystem::path(path.string() + ".partial");
  std::ofstream out(temp, std::ios::binary | std::ios::trunc);
  if (!out) throw_error("cannot create ", temp.string());
  const uint64_t header_len = header_text.size();
  out.write(reinterpret_cast<const char*>(&header_len), 8);
  out.write(header_text.data(), static_cast<std::streamsize>(header_text.size()));
  std::vector<uint8_t> buffer;
  for (size_t i = 0; i < entries_.size(); ++i) {
    buffer.assign(sizes[i], 0);
    entries_[i].fill(buffer);
    out.write(reinterpret_cast<const char*>(buffer.data()), static_cast<std::streamsize>(buffer.size()));
    if (!out) throw_error("write failed for ", temp.string(), " (disk full?)");
  }
  out.close();
  if (!out) throw_error("write failed for ", temp.string(), " (disk full?)");
  std::filesystem::rename(temp, path);
}

}  // namespace llm
