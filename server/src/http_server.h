#pragma once
// A small HTTP/1.1 server on Boost.Beast (parsing and serialization are Beast's): one thread per
// connection, bounded in number, for the KServe REST endpoint and the metrics endpoint; optionally
// over TLS (OpenSSL), with or without client certificates.
//
// Why threads and blocking reads: a handler waits for the model's result on its connection's
// thread and meanwhile watches the socket, so a client that goes away is noticed at once
// (HttpExchange::client_gone) and its request cancelled — the guarantee the gRPC endpoint gives.
// Writes are bounded in time (a client that stops reading cannot hold a thread forever).
#include <atomic>
#include <chrono>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace llm_server {

struct TlsSettings;

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // the target without its query, percent-decoded
  std::string query;   // after '?', as sent
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  // The value of a header (case-insensitive name), or nullptr.
  const std::string* header(std::string_view name) const;
};

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

// One request's answer channel, used on the connection's thread by the handler.
class HttpExchange {
 public:
  virtual ~HttpExchange() = default;
  // A whole response. Only one response per request; later calls are ignored.
  virtual void respond(int status, std::string_view content_type, std::string_view body,
                       const HttpHeaders& headers = {}) = 0;
  // A response sent in pieces (chunked transfer encoding), e.g. Server-Sent Events. Each call
  // returns false once the client cannot be written to any more (gone or not reading).
  virtual bool start_chunked(int status, std::string_view content_type, const HttpHeaders& headers = {}) = 0;
  virtual bool write_chunk(std::string_view data) = 0;
  virtual void end_chunked() = 0;
  // True when the client has closed its side of the connection or the connection broke.
  virtual bool client_gone() = 0;
};

using HttpHandler = std::function<void(const HttpRequest&, HttpExchange&)>;

struct HttpServerLimits {
  size_t max_body_bytes = 64 << 20;   // larger request bodies: 413
  size_t max_connections = 1024;      // more at once: 503 and close
  std::chrono::milliseconds write_timeout{30'000};  // a client not reading for this long is dropped
};

class HttpServer {
 public:
  // Listens on address:port (port 0: a free port), over TLS when `tls` is given and enabled.
  // Throws ApiError when it cannot bind or the TLS settings do not work (key not the
  // certificate's, ...). `name` is for log lines ("HTTP", "metrics").
  HttpServer(std::string name, const std::string& address, int port, HttpServerLimits limits, HttpHandler handler,
             const TlsSettings* tls = nullptr);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const noexcept { return port_; }
  // Stops accepting, shuts every connection down (their handlers see client_gone) and joins the
  // threads. Idempotent.
  void stop();

 private:
  struct Connection;
  struct TlsContext;
  void accept_loop();
  void serve(const std::shared_ptr<Connection>& connection);
  void reap_finished_locked();

  std::string name_;
  HttpServerLimits limits_;
  HttpHandler handler_;
  std::unique_ptr<TlsContext> tls_;  // null: plain HTTP
  int listen_fd_ = -1;
  int wake_fd_ = -1;  // an eventfd: stop() wakes the accepting thread through it
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  std::mutex mutex_;
  std::list<std::shared_ptr<Connection>> connections_;
};

}  // namespace llm_server
