#pragma once
// Command-line options, named and spelled as tritonserver's (--flag value or --flag=value).
#include <filesystem>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "repository.h"
#include "restricted_api.h"

namespace llm_server {

// TLS for an endpoint: gRPC's as tritonserver's --grpc-use-ssl, --grpc-use-ssl-mutual,
// --grpc-server-cert, --grpc-server-key and --grpc-root-cert, HTTP's with the same flags spelled
// --http-... (tritonserver has none there); the PEM files' contents, read when the options are
// parsed so that a bad path stops the server before any model loads.
struct TlsSettings {
  bool enabled = false;
  bool mutual = false;  // clients must present a certificate that root_cert signed
  std::string server_cert;
  std::string server_key;
  std::string root_cert;  // mutual: the clients' CA (required); else unused
};

struct ServerOptions {
  std::filesystem::path model_repository;
  std::filesystem::path backend_directory;  // default: <executable dir>/../backends
  int grpc_port = 8001;                     // 0: any free port (printed at startup)
  std::string grpc_address = "127.0.0.1";
  int grpc_max_message_bytes = 64 << 20;           // per received message; larger: RESOURCE_EXHAUSTED
  int grpc_max_pending_response_bytes = 16 << 20;  // per stream, unread by its client
  int grpc_max_concurrent_streams = 1024;          // per connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS)
  bool allow_grpc = true;
  TlsSettings grpc_tls;
  RestrictedApis grpc_restricted{"triton-grpc-protocol-"};  // --grpc-restricted-protocol
  int http_port = 8000;  // 0: any free port (printed at startup)
  std::string http_address = "127.0.0.1";
  bool allow_http = true;
  TlsSettings http_tls;
  int64_t http_max_input_size = 64 << 20;  // request body bytes; larger: 413
  RestrictedApis http_restricted{""};       // --http-restricted-api
  int metrics_port = 8002;
  std::string metrics_address;  // default: http_address
  bool allow_metrics = true;
  int log_verbose = 0;
  ModelControlMode control_mode = ModelControlMode::kNone;
  std::vector<std::string> load_models;
  bool strict_readiness = false;  // tritonserver: true (see README)
  bool auto_complete_config = true;
  bool exit_on_error = false;
  int exit_timeout_secs = 5;
  std::map<std::string, std::map<std::string, std::string>> backend_config;
  bool help = false;
};

class OptionError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Throws OptionError naming the offending option.
ServerOptions parse_options(int argc, const char* const* argv);
std::string usage_text();

}  // namespace llm_server
