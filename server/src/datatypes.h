#pragma once
// Tensor datatypes in their three spellings: the C API enum (TRITONSERVER_DataType), the model
// config enum (inference::DataType, TYPE_*) and the KServe protocol strings ("FP32", "BYTES", ...).
// The two enums share their numeric values (TYPE_STRING == TRITONSERVER_TYPE_BYTES == 13).
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "model_config.pb.h"
#include "triton/core/tritonserver.h"

namespace llm_server {

// KServe protocol name ("FP32", "BYTES", ...); "<invalid>" for anything else.
const char* datatype_name(TRITONSERVER_DataType type) noexcept;
// Inverse of datatype_name; TRITONSERVER_TYPE_INVALID for unknown names.
TRITONSERVER_DataType datatype_from_name(std::string_view name) noexcept;
// Bytes per element; 0 for BYTES (variable size) and INVALID.
uint32_t datatype_byte_size(TRITONSERVER_DataType type) noexcept;

TRITONSERVER_DataType from_config_datatype(inference::DataType type) noexcept;
inference::DataType to_config_datatype(TRITONSERVER_DataType type) noexcept;
// Protocol name of a config datatype: TYPE_STRING -> "BYTES".
const char* config_datatype_name(inference::DataType type) noexcept;

// Triton's rendering of a shape: "[1,3,-1]".
std::string dims_to_string(std::span<const int64_t> dims);
// Product of the dimensions, or -1 when any of them is a wildcard (-1) or the product overflows.
int64_t element_count(std::span<const int64_t> dims) noexcept;

}  // namespace llm_server
