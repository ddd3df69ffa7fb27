#include "options.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>

namespace llm_server {
namespace {

int parse_int(const std::string& flag, const std::string& value, int min, int max) {
  try {
    size_t used = 0;
    const long long parsed = std::stoll(value, &used);
    if (used == value.size() && parsed >= min && parsed <= max) {
      return static_cast<int>(parsed);
    }
  } catch (const std::exception&) {
  }
  throw OptionError("invalid value '" + value + "' for " + flag + ": expected an integer in [" +
                    std::to_string(min) + ", " + std::to_string(max) + "]");
}

bool parse_bool(const std::string& flag, std::string value) {
  std::transform(value.begin(), value.end(), value.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (value == "true" || value == "on" || value == "1") {
    return true;
  }
  if (value == "false" || value == "off" || value == "0") {
    return false;
  }
  throw OptionError("invalid value '" + value + "' for " + flag + ": expected true or false");
}

std::filesystem::path default_backend_directory() {
  std::error_code error;
  const std::filesystem::path executable = std::filesystem::read_symlink("/proc/self/exe", error);
  if (error) {
    return "backends";
  }
  return (executable.parent_path() / ".." / "backends").lexically_normal();
}

}  // namespace

std::string usage_text() {
  return R"(Usage: llm-server --model-repository DIR [options]

A Triton-compatible development server: loads a Triton model repository, runs Triton backends
(libtriton_<name>.so) through Triton's backend C API and serves the KServe v2 protocol over gRPC
(inference.GRPCInferenceService) and HTTP/REST (with Triton's generate extension), and
Prometheus metrics.

Options:
  --model-repository DIR       Triton model repository (<model>/config.pbtxt, <model>/<version>/).
  --backend-directory DIR      Where backends live, as <DIR>/<name>/libtriton_<name>.so
                               (default: <directory of llm-server>/../backends). A model's version
                               directory and model directory are searched first.
  --backend-config NAME,KEY=VALUE
                               A setting for backend NAME (TRITONBACKEND_BackendConfig "cmdline").
  --grpc-port PORT             gRPC port (default 8001; 0 picks a free port).
  --grpc-address ADDRESS       Address to listen on (default 127.0.0.1).
  --grpc-max-message-bytes N   Largest request message accepted (default 67108864, 64 MiB);
                               larger ones get RESOURCE_EXHAUSTED. Up to 2147483647.
  --grpc-max-concurrent-streams N
                               Calls one connection may have open at once (default 1024).
  --grpc-max-pending-response-bytes N
                               Responses of one stream (gRPC, or HTTP Server-Sent Events)
                               waiting for its client to read them
                               (default 16777216, 16 MiB); beyond it the stream is cancelled
                               with RESOURCE_EXHAUSTED.
  --allow-grpc BOOL            Serve gRPC (default true).
  --grpc-use-ssl BOOL          Serve gRPC over TLS (default false); needs --grpc-server-cert and
                               --grpc-server-key.
  --grpc-use-ssl-mutual BOOL   Mutual TLS: clients must present a certificate signed by
                               --grpc-root-cert (default false; implies --grpc-use-ssl).
  --grpc-server-cert FILE      The server's certificate chain (PEM).
  --grpc-server-key FILE       Its private key (PEM).
  --grpc-root-cert FILE        The CA certificates that sign clients' certificates (PEM).
  --grpc-restricted-protocol CATEGORY,...:KEY=VALUE
                               Calls of these categories need gRPC metadata
                               'triton-grpc-protocol-KEY: VALUE', else UNAVAILABLE. Categories:
                               health, metadata, inference, shared-memory, model-config,
                               model-repository, statistics, trace, logging. Repeatable, one
                               group per category.
  --http-port PORT             HTTP/REST port (default 8000; 0 picks a free port).
  --http-address ADDRESS       Address the HTTP endpoint listens on (default 127.0.0.1).
  --allow-http BOOL            Serve HTTP/REST (default true).
  --http-max-input-size N      Largest HTTP request body (default 67108864, 64 MiB); larger: 413.
  --http-use-ssl BOOL          Serve HTTP/REST over TLS (HTTPS; default false); needs
                               --http-server-cert and --http-server-key. (tritonserver has no
                               such flags; these mirror its --grpc-* ones.) Metrics stay plain.
  --http-use-ssl-mutual BOOL   Mutual TLS: clients must present a certificate signed by
                               --http-root-cert (default false; implies --http-use-ssl).
  --http-server-cert FILE      The server's certificate chain (PEM).
  --http-server-key FILE       Its private key (PEM).
  --http-root-cert FILE        The CA certificates that sign clients' certificates (PEM).
  --http-restricted-api CATEGORY,...:KEY=VALUE
                               HTTP requests of these categories need header 'KEY: VALUE', else
                               403 (categories as above). Repeatable. /metrics is not restricted.
  --metrics-port PORT          Prometheus metrics port, GET /metrics (default 8002; 0: a free port).
  --metrics-address ADDRESS    Address the metrics endpoint listens on (default: the HTTP address).
  --allow-metrics BOOL         Serve metrics (default true). Backends' metric families then
                               register without error but are not exported.
  --model-control-mode MODE    none (default: load every model at startup) or explicit (load the
                               --load-model names; RepositoryModelLoad/Unload are allowed).
  --load-model NAME            In explicit mode, a model to load at startup ("*" = all). Repeatable.
  --strict-readiness BOOL      ServerReady only when every model is ready (default false:
                               ready once startup is done, failed models notwithstanding).
  --disable-auto-complete-config
                               Tell backends not to auto-complete model configurations.
  --exit-on-error BOOL         Exit at startup if a model fails to load (default false).
  --exit-timeout-secs N        On SIGINT/SIGTERM: time in-flight calls get to finish before they
                               are cancelled, and time cancelled requests get to end (default 5).
                               A signal before serving (models loading) or a second one exits at once.
  --log-verbose N              Verbose logging level (default 0).
  --help                       Show this help.

Once the models are loaded, prints "llm-server: serving HTTP on ADDRESS:PORT" and "... serving
metrics on ADDRESS:PORT" for the endpoints allowed, then "llm-server: serving gRPC on ADDRESS:PORT"
last (with --allow-grpc false: "llm-server: serving gRPC on none").
)";
}

namespace {

struct TlsFiles {
  std::string server_cert;
  std::string server_key;
  std::string root_cert;
};

// A PEM file's contents; the flag and path in every error, so a typo is found at once.
std::string read_pem(const std::string& flag, const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw OptionError(flag + ": cannot read '" + path + "': " + std::strerror(errno));
  std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  if (text.find("-----BEGIN ") == std::string::npos) {
    throw OptionError(flag + ": '" + path + "' is not PEM (no -----BEGIN line)");
  }
  return text;
}

// `endpoint` names the flags: "grpc" or "http".
void read_tls(const std::string& endpoint, const TlsFiles& files, TlsSettings& tls) {
  const std::string flags = "--" + endpoint;
  const std::string shown = endpoint == "grpc" ? "gRPC" : "HTTP";
  if (tls.mutual) tls.enabled = true;  // as tritonserver: mutual TLS takes precedence
  if (!tls.enabled) {
    if (!files.server_cert.empty() || !files.server_key.empty() || !files.root_cert.empty()) {
      throw OptionError(flags + "-server-cert, " + flags + "-server-key and " + flags + "-root-cert need " + flags +
                        "-use-ssl true (or " + flags + "-use-ssl-mutual true); without it " + shown +
                        " would be served in plain text");
    }
    return;
  }
  if (files.server_cert.empty() || files.server_key.empty()) {
    throw OptionError(flags + "-use-ssl needs " + flags + "-server-cert FILE and " + flags + "-server-key FILE (PEM)");
  }
  if (tls.mutual && files.root_cert.empty()) {
    throw OptionError(flags + "-use-ssl-mutual needs " + flags +
                      "-root-cert FILE: the CA that signs the clients' certificates");
  }
  tls.server_cert = read_pem(flags + "-server-cert", files.server_cert);
  tls.server_key = read_pem(flags + "-server-key", files.server_key);
  if (!files.root_cert.empty()) tls.root_cert = read_pem(flags + "-root-cert", files.root_cert);
}

}  // namespace

ServerOptions parse_options(int argc, const char* const* argv) {
  ServerOptions options;
  TlsFiles grpc_tls_files;
  TlsFiles http_tls_files;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    std::optional<std::string> inline_value;
    if (flag.rfind("--", 0) == 0) {
      if (const size_t equals = flag.find('='); equals != std::string::npos) {
        inline_value = flag.substr(equals + 1);
        flag = flag.substr(0, equals);
      }
    } else {
      throw OptionError("unexpected argument '" + flag + "'");
    }
    auto value = [&]() -> std::string {
      if (inline_value) {
        return *inline_value;
      }
      if (i + 1 >= argc) {
        throw OptionError("missing value for " + flag);
      }
      return argv[++i];
    };
    if (flag == "--help" || flag == "-h") {
      options.help = true;
    } else if (flag == "--model-repository" || flag == "--model-store") {
      if (!options.model_repository.empty()) {
        throw OptionError("only one --model-repository is supported");
      }
      options.model_repository = value();
    } else if (flag == "--backend-directory") {
      options.backend_directory = value();
    } else if (flag == "--backend-config") {
      const std::string setting = value();
      const size_t comma = setting.find(',');
      const size_t equals = setting.find('=', comma == std::string::npos ? 0 : comma);
      if (comma == std::string::npos || equals == std::string::npos || comma == 0) {
        throw OptionError("invalid value '" + setting +
                          "' for --backend-config: expected <backend>,<setting>=<value>");
      }
      options.backend_config[setting.substr(0, comma)][setting.substr(comma + 1, equals - comma - 1)] =
          setting.substr(equals + 1);
    } else if (flag == "--grpc-port") {
      options.grpc_port = parse_int(flag, value(), 0, 65535);
    } else if (flag == "--grpc-address") {
      options.grpc_address = value();
    } else if (flag == "--log-verbose") {
      options.log_verbose = parse_int(flag, value(), 0, INT_MAX);
    } else if (flag == "--model-control-mode") {
      std::string mode = value();
      std::transform(mode.begin(), mode.end(), mode.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      if (mode == "none") {
        options.control_mode = ModelControlMode::kNone;
      } else if (mode == "explicit") {
        options.control_mode = ModelControlMode::kExplicit;
      } else {
        throw OptionError("unsupported --model-control-mode '" + mode +
                          "': expected none or explicit");
      }
    } else if (flag == "--load-model") {
      options.load_models.push_back(value());
    } else if (flag == "--strict-readiness") {
      options.strict_readiness = parse_bool(flag, value());
    } else if (flag == "--disable-auto-complete-config") {
      options.auto_complete_config = false;
    } else if (flag == "--exit-on-error") {
      options.exit_on_error = parse_bool(flag, value());
    } else if (flag == "--grpc-max-message-bytes") {
      options.grpc_max_message_bytes = parse_int(flag, value(), 1024, INT32_MAX);
    } else if (flag == "--grpc-max-pending-response-bytes") {
      options.grpc_max_pending_response_bytes = parse_int(flag, value(), 1024, INT32_MAX);
    } else if (flag == "--grpc-max-concurrent-streams") {
      options.grpc_max_concurrent_streams = parse_int(flag, value(), 1, INT32_MAX);
    } else if (flag == "--http-port") {
      options.http_port = parse_int(flag, value(), 0, 65535);
    } else if (flag == "--http-address") {
      options.http_address = value();
    } else if (flag == "--http-max-input-size") {
      options.http_max_input_size = parse_int(flag, value(), 1024, INT32_MAX);
    } else if (flag == "--allow-http") {
      options.allow_http = parse_bool(flag, value());
    } else if (flag == "--metrics-port") {
      options.metrics_port = parse_int(flag, value(), 0, 65535);
    } else if (flag == "--metrics-address") {
      options.metrics_address = value();
    } else if (flag == "--allow-metrics") {
      options.allow_metrics = parse_bool(flag, value());
    } else if (flag == "--allow-grpc") {
      options.allow_grpc = parse_bool(flag, value());
    } else if (flag == "--grpc-use-ssl") {
      options.grpc_tls.enabled = parse_bool(flag, value());
    } else if (flag == "--grpc-use-ssl-mutual") {
      options.grpc_tls.mutual = parse_bool(flag, value());
    } else if (flag == "--grpc-server-cert") {
      grpc_tls_files.server_cert = value();
    } else if (flag == "--grpc-server-key") {
      grpc_tls_files.server_key = value();
    } else if (flag == "--grpc-root-cert") {
      grpc_tls_files.root_cert = value();
    } else if (flag == "--http-use-ssl") {
      options.http_tls.enabled = parse_bool(flag, value());
    } else if (flag == "--http-use-ssl-mutual") {
      options.http_tls.mutual = parse_bool(flag, value());
    } else if (flag == "--http-server-cert") {
      http_tls_files.server_cert = value();
    } else if (flag == "--http-server-key") {
      http_tls_files.server_key = value();
    } else if (flag == "--http-root-cert") {
      http_tls_files.root_cert = value();
    } else if (flag == "--grpc-restricted-protocol") {
      options.grpc_restricted.add_group(flag, value());
    } else if (flag == "--http-restricted-api") {
      options.http_restricted.add_group(flag, value());
    } else if (flag == "--exit-timeout-secs") {
      options.exit_timeout_secs = parse_int(flag, value(), 0, 3600);
    } else {
      throw OptionError("unrecognized option '" + flag + "'");
    }
  }
  if (options.help) {
    return options;
  }
  if (options.model_repository.empty()) {
    throw OptionError("--model-repository is required");
  }
  if (!options.load_models.empty() && options.control_mode != ModelControlMode::kExplicit) {
    throw OptionError("--load-model requires --model-control-mode explicit");
  }
  if (options.backend_directory.empty()) {
    options.backend_directory = default_backend_directory();
  }
  if (options.metrics_address.empty()) {
    options.metrics_address = options.http_address;
  }
  if (!options.allow_grpc && !options.allow_http) {
    throw OptionError("--allow-grpc false and --allow-http false leave no way to reach the models");
  }
  read_tls("grpc", grpc_tls_files, options.grpc_tls);
  read_tls("http", http_tls_files, options.http_tls);
  return options;
}

}  // namespace llm_server
