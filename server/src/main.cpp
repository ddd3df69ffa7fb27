// llm-server: a Triton-compatible development server (see server/README.md).
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include "api_error.h"
#include "backend.h"
#include "grpc_service.h"
#include "http_service.h"
#include "logging.h"
#include "metrics.h"
#include "options.h"
#include "repository.h"

namespace {

using namespace llm_server;

sigset_t shutdown_signals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  return signals;
}

// While it lives, a SIGINT/SIGTERM ends the process at once (logging `reason`): during startup,
// when a model's load may take long or hang, and once shutdown has begun (a second signal).
class ExitOnSignal {
 public:
  explicit ExitOnSignal(std::string reason)
      : reason_(std::move(reason)), thread_([this] {
          const sigset_t signals = shutdown_signals();
          const timespec tick{0, 100 * 1000 * 1000};
          while (!stop_.load()) {
            const int signal_number = sigtimedwait(&signals, nullptr, &tick);
            if (signal_number > 0 && stop_.load()) {
              kill(getpid(), signal_number);  // came as this watcher ended: pending again for the main thread
              break;
            }
            if (signal_number > 0) {
              log_error(std::string(strsignal(signal_number)) + " " + reason_ + ": exiting immediately");
              std::_Exit(1);
            }
          }
        }) {}
  ~ExitOnSignal() {
    stop_.store(true);
    thread_.join();
  }

 private:
  std::string reason_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

int run(const ServerOptions& options) {
  // Until the server serves, nothing is lost by exiting at once; a model's load can take minutes.
  auto starting = std::make_unique<ExitOnSignal>("while starting (loading models)");
  std::map<std::string, std::string> cmdline{
      {"auto-complete-config", options.auto_complete_config ? "true" : "false"},
      {"backend-directory", options.backend_directory.string()},
      {"min-compute-capability", "0.000000"},
      {"default-max-batch-size", "4"},
  };
  BackendManager backends(std::move(cmdline), options.backend_config);

  RepositoryOptions repository_options;
  repository_options.repository = options.model_repository;
  repository_options.backend_directory = options.backend_directory;
  repository_options.control_mode = options.control_mode;
  repository_options.auto_complete_config = options.auto_complete_config;
  repository_options.strict_readiness = options.strict_readiness;
  ModelRepository repository(repository_options, backends);

  ServerIdentity identity{"llm-server", LLM_SERVER_VERSION,
                          {"model_repository", "model_configuration", "statistics", "parameters"}};
  InferenceService service(repository, identity, static_cast<size_t>(options.grpc_max_pending_response_bytes),
                           options.grpc_restricted);
  const auto timeout = std::chrono::seconds(options.exit_timeout_secs);

  log_info("backend directory: " + options.backend_directory.string());
  repository.load_startup_models(options.load_models);
  if (options.exit_on_error) {
    for (const ModelIndexEntry& entry : repository.index(false)) {
      if (entry.state == "UNAVAILABLE") {
        log_error("exiting: model '" + entry.name + "' failed to load (--exit-on-error)");
        repository.unload_all(std::chrono::steady_clock::now() + timeout);
        return 1;
      }
    }
  }

  HttpService http_service(service, options.http_restricted);
  if (!options.grpc_restricted.empty()) log_info("restricted gRPC protocols: " + options.grpc_restricted.describe());
  if (!options.http_restricted.empty()) log_info("restricted HTTP APIs: " + options.http_restricted.describe());
  std::unique_ptr<HttpServer> http_server;
  std::unique_ptr<HttpServer> metrics_server;
  std::unique_ptr<GrpcServer> server;
  try {
    if (options.allow_http) {
      HttpServerLimits limits;
      limits.max_body_bytes = static_cast<size_t>(options.http_max_input_size);
      http_server = std::make_unique<HttpServer>(
          "HTTP", options.http_address, options.http_port, limits,
          [&http_service](const HttpRequest& request, HttpExchange& exchange) { http_service.handle(request, exchange); },
          &options.http_tls);
    }
    if (options.allow_metrics) {
      metrics_server = std::make_unique<HttpServer>(
          "metrics", options.metrics_address, options.metrics_port, HttpServerLimits{},
          [&repository](const HttpRequest& request, HttpExchange& exchange) {
            if (request.path != "/metrics") return exchange.respond(404, "application/json", R"({"error":"Not Found"})");
            if (request.method != "GET") {
              return exchange.respond(405, "application/json", R"({"error":"Method Not Allowed"})");
            }
            exchange.respond(200, "text/plain; version=0.0.4; charset=utf-8", render_metrics(repository));
          });
    }
    if (options.allow_grpc) {
      server = std::make_unique<GrpcServer>(service, options.grpc_address, options.grpc_port,
                                            options.grpc_max_message_bytes, options.grpc_max_concurrent_streams,
                                            options.grpc_tls);
    }
  } catch (const std::exception& e) {
    log_error(e.what());
    repository.unload_all(std::chrono::steady_clock::now() + timeout);
    return 1;
  }
  starting.reset();  // from here the main thread takes the signal and shuts down in order
  if (http_server) std::printf("llm-server: serving HTTP on %s:%d\n", options.http_address.c_str(), http_server->port());
  if (metrics_server) {
    std::printf("llm-server: serving metrics on %s:%d\n", options.metrics_address.c_str(), metrics_server->port());
  }
  if (http_server && options.http_tls.enabled) {
    std::printf("llm-server: HTTP uses TLS%s\n", options.http_tls.mutual ? ", clients need a certificate --http-root-cert signed" : "");
  }
  if (server && options.grpc_tls.enabled) {
    std::printf("llm-server: gRPC uses TLS%s\n", options.grpc_tls.mutual ? ", clients need a certificate --grpc-root-cert signed" : "");
  }
  // Last: launchers wait for this line.
  if (server) {
    std::printf("llm-server: serving gRPC on %s:%d\n", options.grpc_address.c_str(), server->port());
  } else {
    std::printf("llm-server: serving gRPC on none\n");
  }
  std::fflush(stdout);

  const sigset_t signals = shutdown_signals();
  int signal_number = 0;
  sigwait(&signals, &signal_number);
  log_info(std::string("received ") + strsignal(signal_number) + ", shutting down");
  ExitOnSignal second_signal("during shutdown (a second signal)");

  service.begin_shutdown();
  if (!service.wait_for_calls(std::chrono::steady_clock::now() + timeout)) {
    log_info("cancelling the calls still running after " +
             std::to_string(options.exit_timeout_secs) + " s");
  }
  if (http_server) http_server->stop();
  if (server) server->shutdown();
  server.reset();
  http_server.reset();
  metrics_server.reset();
  if (!repository.unload_all(std::chrono::steady_clock::now() + timeout)) {
    log_error("requests still in flight after " + std::to_string(options.exit_timeout_secs) +
              " s: exiting without finalizing their models");
    std::_Exit(1);
  }
  log_info("shutdown complete");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Before any thread exists: every thread inherits the blocked signals, and the main thread
  // takes them synchronously with sigwait.
  const sigset_t signals = shutdown_signals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  ServerOptions options;
  try {
    options = parse_options(argc, argv);
  } catch (const OptionError& e) {
    std::fprintf(stderr, "llm-server: error: %s\nTry 'llm-server --help'.\n", e.what());
    return 2;
  }
  if (options.help) {
    std::fputs(usage_text().c_str(), stdout);
    return 0;
  }
  Logger::instance().set_verbose_level(options.log_verbose);
  try {
    return run(options);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "llm-server: error: %s\n", e.what());
    return 1;
  }
}
