#include "datatypes.h"

#include <array>
#include <utility>

namespace llm_server {
namespace {

constexpr std::array<std::pair<TRITONSERVER_DataType, const char*>, 14> kNames{{
    {TRITONSERVER_TYPE_BOOL, "BOOL"},
    {TRITONSERVER_TYPE_UINT8, "UINT8"},
    {TRITONSERVER_TYPE_UINT16, "UINT16"},
    {TRITONSERVER_TYPE_UINT32, "UINT32"},
    {TRITONSERVER_TYPE_UINT64, "UINT64"},
    {TRITONSERVER_TYPE_INT8, "INT8"},
    {TRITONSERVER_TYPE_INT16, "INT16"},
    {TRITONSERVER_TYPE_INT32, "INT32"},
    {TRITONSERVER_TYPE_INT64, "INT64"},
    {TRITONSERVER_TYPE_FP16, "FP16"},
    {TRITONSERVER_TYPE_FP32, "FP32"},
    {TRITONSERVER_TYPE_FP64, "FP64"},
    {TRITONSERVER_TYPE_BYTES, "BYTES"},
    {TRITONSERVER_TYPE_BF16, "BF16"},
}};

}  // namespace

const char* datatype_name(TRITONSERVER_DataType type) noexcept {
  for (const auto& [value, name] : kNames) {
    if (value == type) {
      return name;
    }
  }
  return "<invalid>";
}

TRITONSERVER_DataType datatype_from_name(std::string_view name) noexcept {
  for (const auto& [value, spelled] : kNames) {
    if (name == spelled) {
      return value;
    }
  }
  return TRITONSERVER_TYPE_INVALID;
}

uint32_t datatype_byte_size(TRITONSERVER_DataType type) noexcept {
  switch (type) {
    case TRITONSERVER_TYPE_BOOL:
    case TRITONSERVER_TYPE_UINT8:
    case TRITONSERVER_TYPE_INT8: return 1;
    case TRITONSERVER_TYPE_UINT16:
    case TRITONSERVER_TYPE_INT16:
    case TRITONSERVER_TYPE_FP16:
    case TRITONSERVER_TYPE_BF16: return 2;
    case TRITONSERVER_TYPE_UINT32:
    case TRITONSERVER_TYPE_INT32:
    case TRITONSERVER_TYPE_FP32: return 4;
    case TRITONSERVER_TYPE_UINT64:
    case TRITONSERVER_TYPE_INT64:
    case TRITONSERVER_TYPE_FP64: return 8;
    case TRITONSERVER_TYPE_BYTES:
    case TRITONSERVER_TYPE_INVALID: return 0;
  }
  return 0;
}

TRITONSERVER_DataType from_config_datatype(inference::DataType type) noexcept {
  const int value = static_cast<int>(type);
  if (value < TRITONSERVER_TYPE_INVALID || value > TRITONSERVER_TYPE_BF16) {
    return TRITONSERVER_TYPE_INVALID;
  }
  return static_cast<TRITONSERVER_DataType>(value);
}

inference::DataType to_config_datatype(TRITONSERVER_DataType type) noexcept {
  const int value = static_cast<int>(type);
  return inference::DataType_IsValid(value) ? static_cast<inference::DataType>(value)
                                            : inference::TYPE_INVALID;
}

const char* config_datatype_name(inference::DataType type) noexcept {
  return datatype_name(from_config_datatype(type));
}

std::string dims_to_string(std::span<const int64_t> dims) {
  std::string text = "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i > 0) {
      text += ",";
    }
    text += std::to_string(dims[i]);
  }
  return text + "]";
}

int64_t element_count(std::span<const int64_t> dims) noexcept {
  int64_t count = 1;
  for (int64_t d : dims) {
    if (d < 0 || (d != 0 && count > INT64_MAX / d)) {
      return -1;
    }
    count *= d;
  }
  return count;
}

}  // namespace llm_server
