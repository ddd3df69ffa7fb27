#pragma once
// tritonserver's endpoint access limits (--grpc-restricted-protocol, --http-restricted-api):
// groups of API categories that answer only requests carrying a header with a given value.
//   --grpc-restricted-protocol=<category>,<category>,...:<key>=<value>
//     gRPC calls need metadata 'triton-grpc-protocol-<key>: <value>', else UNAVAILABLE
//     "This protocol is restricted, expecting header 'triton-grpc-protocol-<key>'"
//   --http-restricted-api=<category>,...:<key>=<value>
//     HTTP requests need header '<key>: <value>', else 403 "This API is restricted, expecting header '<key>'"
// Each flag may be given several times, but a category belongs to one group at most.
#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace llm_server {

enum class ApiCategory {
  kHealth,
  kMetadata,
  kInference,
  kSharedMemory,
  kModelConfig,
  kModelRepository,
  kStatistics,
  kTrace,
  kLogging,
};
inline constexpr size_t kApiCategories = 9;

struct ApiRestriction {
  std::string header;  // the full header name, lower case (HTTP/2 and gRPC metadata keys are)
  std::string value;
};

class RestrictedApis {
 public:
  // `header_prefix` is put before each group's key: "triton-grpc-protocol-" for gRPC, "" for HTTP.
  explicit RestrictedApis(std::string header_prefix) : header_prefix_(std::move(header_prefix)) {}

  // Adds one group from a flag's value; throws OptionError naming `flag` and what is wrong.
  void add_group(std::string_view flag, std::string_view setting);

  // The header a request of this category must carry, or nullopt when the category is open.
  const std::optional<ApiRestriction>& restriction(ApiCategory category) const {
    return restrictions_[static_cast<size_t>(category)];
  }
  bool empty() const;
  // One line per group for the startup log, e.g. "model-repository, statistics: header
  // 'triton-grpc-protocol-admin-key'" (never the value).
  std::string describe() const;

 private:
  std::string header_prefix_;
  std::array<std::optional<ApiRestriction>, kApiCategories> restrictions_;
};

// The message of a refused request, as tritonserver words it ("protocol" for gRPC, "API" for HTTP).
std::string restricted_message(std::string_view noun, const ApiRestriction& restriction);

}  // namespace llm_server
