#pragma once
// The safetensors format: an 8-byte little-endian header length, a JSON header mapping tensor
// names to {dtype, shape, data_offsets}, then the raw little-endian tensor bytes.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "common/dtype.h"
#include "common/mapped_file.h"

namespace llm {

struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<size_t> shape;
  std::span<const uint8_t> bytes;  // points into the mapped file

  size_t numel() const;
  std::string shape_string() const;  // "[4096, 11008]"
};

// A memory-mapped safetensors file, validated on open: every bad-input case (truncation,
// header beyond the file, unknown dtype, offsets out of range or inconsistent with the shape)
// is an Error naming the file and the tensor.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::filesystem::path& path);

  const TensorView* find(const std::string& name) const;
  // Throws Error "tensor NAME is missing from FILE".
  const TensorView& get(const std::string& name) const;
  // Like get(), and also checks the shape; throws naming tensor, file, expected and actual shapes.
  const TensorView& get(const std::string& name, const std::vector<size_t>& expected_shape) const;
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::filesystem::path& path() const { return file_.path(); }
  void release_resident_pages() const noexcept { file_.release_resident_pages(); }

 private:
  MappedFile file_;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

// Writes a safetensors file tensor by tensor, so outputs far larger than memory (a 7B
// checkpoint) never sit in one buffer: each tensor's bytes are produced by a callback at write
// time.
class SafetensorsWriter {
 public:
  using Fill = std::function<void(std::span<uint8_t> out)>;

  void add(std::string name, DType dtype, std::vector<size_t> shape, Fill fill);
  void add_copy(std::string name, DType dtype, std::vector<size_t> shape, std::span<const uint8_t> bytes);
  void set_metadata(std::string key, std::string value) { metadata_[std::move(key)] = std::move(value); }
  // Writes to a temporary name and renames, so an interrupted write never leaves a valid-looking file.
  void write(const std::filesystem::path& path) const;

 private:
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<size_t> shape;
    Fill fill;
  };
  std::vector<Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace llm
