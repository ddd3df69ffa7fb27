#include "http_server.h"

#include <fcntl.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "api_error.h"
#include "logging.h"
#include "options.h"

namespace llm_server {

namespace http = boost::beast::http;
namespace net = boost::asio;
using boost::system::error_code;

namespace {

// How long a kept-alive connection may sit idle before the server closes it.
constexpr int kIdleTimeoutMs = 120'000;
// How long a client may take over the TLS handshake.
constexpr int kHandshakeTimeoutMs = 10'000;

struct SslCtxFree {
  void operator()(SSL_CTX* context) const { SSL_CTX_free(context); }
};
struct SslFree {
  void operator()(SSL* connection) const { SSL_free(connection); }
};
struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Free {
  void operator()(X509* certificate) const { X509_free(certificate); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using Certificate = std::unique_ptr<X509, X509Free>;

// This thread's queued OpenSSL errors as one line (and the queue emptied).
std::string openssl_errors() {
  std::string text;
  while (const unsigned long code = ERR_get_error()) {
    char buffer[256];
    ERR_error_string_n(code, buffer, sizeof(buffer));
    if (!text.empty()) text += "; ";
    text += buffer;
  }
  return text.empty() ? "OpenSSL gave no detail" : text;
}

std::unique_ptr<BIO, BioFree> memory_bio(const std::string& text) {
  return std::unique_ptr<BIO, BioFree>(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

// Every certificate of a PEM text, in order.
std::vector<Certificate> read_certificates(const std::string& pem) {
  std::vector<Certificate> certificates;
  const auto bio = memory_bio(pem);
  while (X509* certificate = bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr) {
    certificates.emplace_back(certificate);
  }
  ERR_clear_error();  // reading past the last certificate queues an error
  return certificates;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

std::string percent_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  const auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() && hex(text[i + 1]) >= 0 && hex(text[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex(text[i + 1]) * 16 + hex(text[i + 2])));
      i += 2;
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

// Beast's synchronous stream concepts over a connected socket: reads wait at most the idle
// timeout, writes at most the write timeout, so no client can hold a thread forever.
// Over TLS (tls non-null; the socket then non-blocking) the same bounds hold for OpenSSL's reads
// and writes, which may each need the other direction of the socket.
class SocketStream {
 public:
  SocketStream(int fd, SSL* tls, std::chrono::milliseconds write_timeout)
      : fd_(fd), tls_(tls), write_timeout_(write_timeout) {}

  // The server's side of the TLS handshake.
  void handshake(error_code& ec) {
    tls_call([this] { return SSL_accept(tls_); }, kHandshakeTimeoutMs, ec);
  }

  // Tells a TLS client the connection ends (close_notify), best effort; OpenSSL forbids it after
  // a fatal error or before the handshake completed.
  void close_notify() {
    if (tls_ != nullptr && !fatal_ && SSL_is_init_finished(tls_)) SSL_shutdown(tls_);
  }

  template <class MutableBuffers>
  size_t read_some(const MutableBuffers& buffers, error_code& ec) {
    for (auto it = net::buffer_sequence_begin(buffers); it != net::buffer_sequence_end(buffers); ++it) {
      const net::mutable_buffer buffer = *it;
      if (buffer.size() == 0) continue;
      if (tls_ != nullptr) {
        const int size = static_cast<int>(std::min<size_t>(buffer.size(), INT32_MAX));
        return tls_call([&] { return SSL_read(tls_, buffer.data(), size); }, kIdleTimeoutMs, ec);
      }
      pollfd waiting{fd_, POLLIN, 0};
      const int ready = poll(&waiting, 1, kIdleTimeoutMs);
      if (ready == 0) {
        ec = net::error::timed_out;
        return 0;
      }
      const ssize_t got = ready < 0 ? -1 : recv(fd_, buffer.data(), buffer.size(), 0);
      if (got == 0) {
        ec = net::error::eof;
        return 0;
      }
      if (got < 0) {
        ec = error_code(errno, boost::system::system_category());
        return 0;
      }
      ec = {};
      return static_cast<size_t>(got);
    }
    ec = {};
    return 0;
  }
  template <class MutableBuffers>
  size_t read_some(const MutableBuffers& buffers) {
    error_code ec;
    const size_t n = read_some(buffers, ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }

  template <class ConstBuffers>
  size_t write_some(const ConstBuffers& buffers, error_code& ec) {
    for (auto it = net::buffer_sequence_begin(buffers); it != net::buffer_sequence_end(buffers); ++it) {
      const net::const_buffer buffer = *it;
      if (buffer.size() == 0) continue;
      if (tls_ != nullptr) {
        const int size = static_cast<int>(std::min<size_t>(buffer.size(), INT32_MAX));
        return tls_call([&] { return SSL_write(tls_, buffer.data(), size); }, static_cast<int>(write_timeout_.count()), ec);
      }
      pollfd waiting{fd_, POLLOUT, 0};
      const int ready = poll(&waiting, 1, static_cast<int>(write_timeout_.count()));
      if (ready == 0) {
        ec = net::error::timed_out;
        return 0;
      }
      const ssize_t sent = ready < 0 ? -1 : send(fd_, buffer.data(), buffer.size(), MSG_NOSIGNAL);
      if (sent < 0) {
        ec = error_code(errno, boost::system::system_category());
        return 0;
      }
      ec = {};
      return static_cast<size_t>(sent);
    }
    ec = {};
    return 0;
  }
  template <class ConstBuffers>
  size_t write_some(const ConstBuffers& buffers) {
    error_code ec;
    const size_t n = write_some(buffers, ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }

 private:
  // Calls an OpenSSL function until it succeeds, waiting up to timeout_ms each time it needs the
  // socket readable or writable; its positive result, or 0 with ec set.
  template <class Call>
  size_t tls_call(Call call, int timeout_ms, error_code& ec) {
    for (;;) {
      ERR_clear_error();
      errno = 0;  // SSL_ERROR_SYSCALL with errno 0 is an unexpected EOF
      const int result = call();
      if (result > 0) {
        ec = {};
        return static_cast<size_t>(result);
      }
      const int reason = SSL_get_error(tls_, result);
      short wanted = 0;
      if (reason == SSL_ERROR_WANT_READ) {
        wanted = POLLIN;
      } else if (reason == SSL_ERROR_WANT_WRITE) {
        wanted = POLLOUT;
      } else if (reason == SSL_ERROR_SYSCALL && errno != 0) {
        fatal_ = true;
        ec = error_code(errno, boost::system::system_category());
        return 0;
      } else {
        fatal_ = reason != SSL_ERROR_ZERO_RETURN;
        // The peer closed (cleanly or not) or broke the protocol: the connection is over.
        if (reason == SSL_ERROR_SSL) log_verbose(1, "TLS: " + openssl_errors());
        ERR_clear_error();
        ec = net::error::eof;
        return 0;
      }
      pollfd waiting{fd_, wanted, 0};
      const int ready = poll(&waiting, 1, timeout_ms);
      if (ready == 0) {
        ec = net::error::timed_out;
        return 0;
      }
      if (ready < 0 && errno != EINTR) {
        ec = error_code(errno, boost::system::system_category());
        return 0;
      }
    }
  }

  int fd_;
  SSL* tls_;
  std::chrono::milliseconds write_timeout_;
  bool fatal_ = false;  // OpenSSL reported a fatal error on this connection
};

// {"error": "..."}, as tritonserver words its failures; invalid UTF-8 is replaced, not sent.
std::string error_json(std::string_view message) {
  return nlohmann::json{{"error", message}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

class ConnectionExchange final : public HttpExchange {
 public:
  ConnectionExchange(int fd, SocketStream& stream, unsigned version, bool keep_alive)
      : fd_(fd), stream_(stream), version_(version), keep_alive_(keep_alive) {}

  void respond(int status, std::string_view content_type, std::string_view body, const HttpHeaders& headers) override {
    if (state_ != State::kNone) return;
    state_ = State::kDone;
    http::response<http::string_body> response{static_cast<http::status>(status), version_};
    response.set(http::field::server, "llm-server");
    response.set(http::field::content_type, std::string(content_type));
    for (const auto& [name, value] : headers) response.set(name, value);
    response.body() = std::string(body);
    response.keep_alive(keep_alive_);
    response.prepare_payload();
    error_code ec;
    http::write(stream_, response, ec);
    if (ec) broken_ = true;
  }

  bool start_chunked(int status, std::string_view content_type, const HttpHeaders& headers) override {
    if (state_ != State::kNone) return false;
    state_ = State::kChunked;
    http::response<http::empty_body> response{static_cast<http::status>(status), version_};
    response.set(http::field::server, "llm-server");
    response.set(http::field::content_type, std::string(content_type));
    response.set(http::field::cache_control, "no-cache");
    for (const auto& [name, value] : headers) response.set(name, value);
    response.keep_alive(keep_alive_);
    response.chunked(true);
    http::response_serializer<http::empty_body> serializer{response};
    error_code ec;
    http::write_header(stream_, serializer, ec);
    if (ec) broken_ = true;
    return !broken_;
  }

  bool write_chunk(std::string_view data) override {
    if (state_ != State::kChunked || broken_) return false;
    if (data.empty()) return true;  // an empty chunk would end the body
    error_code ec;
    net::write(stream_, http::make_chunk(net::const_buffer(data.data(), data.size())), ec);
    if (ec) broken_ = true;
    return !broken_;
  }

  void end_chunked() override {
    if (state_ != State::kChunked) return;
    state_ = State::kDone;
    if (broken_) return;
    error_code ec;
    net::write(stream_, http::make_chunk_last(), ec);
    if (ec) broken_ = true;
  }

  bool client_gone() override {
    if (broken_) return true;
    pollfd waiting{fd_, static_cast<short>(POLLIN | POLLRDHUP), 0};
    if (poll(&waiting, 1, 0) > 0 && (waiting.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0) broken_ = true;
    return broken_;
  }

  // After the handler: a response nobody made, an unfinished chunked body. False: close.
  bool finish() {
    if (state_ == State::kNone) {
      respond(500, "application/json", error_json("the server produced no response"), {});
    } else if (state_ == State::kChunked) {
      end_chunked();
    }
    return keep_alive_ && !broken_;
  }

 private:
  enum class State { kNone, kChunked, kDone };
  int fd_;
  SocketStream& stream_;
  unsigned version_;
  bool keep_alive_;
  State state_ = State::kNone;
  bool broken_ = false;
};

}  // namespace

const std::string* HttpRequest::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (iequals(key, name)) return &value;
  }
  return nullptr;
}

struct HttpServer::TlsContext {
  std::unique_ptr<SSL_CTX, SslCtxFree> context;

  // Errors name the --http-* flags: only the HTTP endpoint has TLS.
  TlsContext(const std::string& name, const TlsSettings& settings) {
    const std::string flags = "--http";
    const auto fail = [&](const std::string& what) {
      throw ApiError(TRITONSERVER_ERROR_INVALID_ARG, name + " with TLS: " + what + " (" + openssl_errors() + ")");
    };
    context.reset(SSL_CTX_new(TLS_server_method()));
    if (!context) fail("cannot create a TLS context");
    SSL_CTX_set_min_proto_version(context.get(), TLS1_2_VERSION);
    SSL_CTX_set_mode(context.get(), SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    std::vector<Certificate> chain = read_certificates(settings.server_cert);
    const std::string pair = "check that " + flags + "-server-cert and " + flags +
                             "-server-key are a certificate and its private key";
    if (chain.empty() || SSL_CTX_use_certificate(context.get(), chain.front().get()) != 1) fail(pair);
    for (size_t i = 1; i < chain.size(); ++i) {
      if (SSL_CTX_add_extra_chain_cert(context.get(), chain[i].get()) != 1) fail(pair);
      static_cast<void>(chain[i].release());  // the context owns it now
    }
    const auto key_bio = memory_bio(settings.server_key);
    const std::unique_ptr<EVP_PKEY, PkeyFree> key(
        key_bio ? PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr) : nullptr);
    if (!key || SSL_CTX_use_PrivateKey(context.get(), key.get()) != 1 || SSL_CTX_check_private_key(context.get()) != 1) {
      fail(pair);
    }
    if (settings.mutual) {
      const std::vector<Certificate> roots = read_certificates(settings.root_cert);
      if (roots.empty()) fail(flags + "-root-cert holds no certificate");
      for (const Certificate& root : roots) {
        if (X509_STORE_add_cert(SSL_CTX_get_cert_store(context.get()), root.get()) != 1 ||
            SSL_CTX_add_client_CA(context.get(), root.get()) != 1) {
          fail("cannot use " + flags + "-root-cert");
        }
      }
      SSL_CTX_set_verify(context.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    }
  }
};

struct HttpServer::Connection {
  std::mutex mutex;
  int fd = -1;  // -1 once closed (under mutex: stop() must never shut down a reused descriptor)
  std::atomic<bool> finished{false};
  std::thread thread;
};

HttpServer::HttpServer(std::string name, const std::string& address, int port, HttpServerLimits limits,
                       HttpHandler handler, const TlsSettings* tls)
    : name_(std::move(name)), limits_(limits), handler_(std::move(handler)) {
  if (tls != nullptr && tls->enabled) tls_ = std::make_unique<TlsContext>(name_, *tls);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  const std::string host = address.size() > 2 && address.front() == '[' && address.back() == ']'
                               ? address.substr(1, address.size() - 2)
                               : address;
  const std::string endpoint = address + ":" + service;
  if (const int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0) {
    throw ApiError(TRITONSERVER_ERROR_INVALID_ARG,
                   name_ + ": cannot resolve the address '" + address + "': " + gai_strerror(rc));
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> addresses(found, &freeaddrinfo);
  std::string failure = "no address";
  for (const addrinfo* candidate = found; candidate != nullptr; candidate = candidate->ai_next) {
    const int fd = socket(candidate->ai_family, candidate->ai_socktype | SOCK_CLOEXEC, candidate->ai_protocol);
    if (fd < 0) continue;
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, candidate->ai_addr, candidate->ai_addrlen) != 0 || listen(fd, 128) != 0) {
      failure = std::strerror(errno);
      close(fd);
      continue;
    }
    sockaddr_storage bound{};
    socklen_t length = sizeof(bound);
    getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length);
    port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                              : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
    listen_fd_ = fd;
    break;
  }
  if (listen_fd_ < 0) {
    throw ApiError(TRITONSERVER_ERROR_UNAVAILABLE, "failed to listen for " + name_ + " on " + endpoint + ": " + failure);
  }
  wake_fd_ = eventfd(0, EFD_CLOEXEC);
  if (wake_fd_ < 0) {  // without it stop() could not wake the accepting thread
    const std::string reason = std::strerror(errno);
    close(listen_fd_);
    throw ApiError(TRITONSERVER_ERROR_INTERNAL, name_ + ": cannot create an eventfd: " + reason);
  }
  acceptor_ = std::thread([this] { accept_loop(); });
}

HttpServer::~HttpServer() {
  stop();
  if (listen_fd_ >= 0) close(listen_fd_);
  if (wake_fd_ >= 0) close(wake_fd_);
}

void HttpServer::stop() {
  if (stopping_.exchange(true)) return;
  const uint64_t one = 1;
  if (write(wake_fd_, &one, sizeof(one)) < 0) {
    log_error(name_ + ": cannot wake the accepting thread: " + std::strerror(errno));
  }
  if (acceptor_.joinable()) acceptor_.join();
  std::list<std::shared_ptr<Connection>> connections;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    connections.swap(connections_);
  }
  for (const auto& connection : connections) {
    std::lock_guard<std::mutex> lock(connection->mutex);
    if (connection->fd >= 0) shutdown(connection->fd, SHUT_RDWR);
  }
  for (const auto& connection : connections) {
    if (connection->thread.joinable()) connection->thread.join();
  }
}

void HttpServer::reap_finished_locked() {
  for (auto it = connections_.begin(); it != connections_.end();) {
    if ((*it)->finished.load()) {
      if ((*it)->thread.joinable()) (*it)->thread.join();
      it = connections_.erase(it);
    } else {
      ++it;
    }
  }
}

void HttpServer::accept_loop() {
  while (!stopping_.load()) {
    pollfd waiting[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (poll(waiting, 2, -1) < 0) {
      if (errno == EINTR) continue;
      log_error(name_ + ": poll failed: " + std::strerror(errno));
      return;
    }
    if ((waiting[1].revents & POLLIN) != 0 || stopping_.load()) return;
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE) {  // out of descriptors: retry later instead of spinning
        log_error(name_ + ": cannot accept a connection: " + std::strerror(errno));
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      continue;  // otherwise the client went away before it was taken
    }
    std::lock_guard<std::mutex> lock(mutex_);
    reap_finished_locked();
    if (connections_.size() >= limits_.max_connections && tls_) {
      close(fd);  // no plain-text answer on a TLS port; the client sees the connection closed
      continue;
    }
    if (connections_.size() >= limits_.max_connections) {
      const std::string body = error_json(name_ + " connection limit reached (" +
                                          std::to_string(limits_.max_connections) + " open connections)");
      const std::string response = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                                   "Connection: close\r\nContent-Length: " +
                                   std::to_string(body.size()) + "\r\n\r\n" + body;
      if (send(fd, response.data(), response.size(), MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
        // the client is gone already; nothing to tell it
      }
      close(fd);
      continue;
    }
    auto connection = std::make_shared<Connection>();
    connection->fd = fd;
    connections_.push_back(connection);
    connection->thread = std::thread([this, connection] { serve(connection); });
  }
}

void HttpServer::serve(const std::shared_ptr<Connection>& connection) {
  const int fd = connection->fd;
  std::unique_ptr<SSL, SslFree> tls;
  if (tls_) {
    tls.reset(SSL_new(tls_->context.get()));
    if (!tls || fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0 || SSL_set_fd(tls.get(), fd) != 1) {
      log_error(name_ + ": cannot start TLS on a connection: " + openssl_errors());
      tls.reset();
    }
  }
  SocketStream stream(fd, tls.get(), limits_.write_timeout);
  boost::beast::flat_buffer buffer;
  try {
    bool usable = true;
    if (tls_) {
      // A client that fails the handshake (plain HTTP, no or an unknown certificate) only loses
      // its connection.
      error_code handshake;
      if (tls) stream.handshake(handshake);
      usable = tls && !handshake;
    }
    while (usable && !stopping_.load()) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(limits_.max_body_bytes);
      error_code ec;
      http::read_header(stream, buffer, parser, ec);
      if (!ec && parser.get()[http::field::expect] == "100-continue") {
        // curl asks before sending a body over 1 KiB and would otherwise wait a second for this.
        http::response<http::empty_body> proceed{http::status::continue_, parser.get().version()};
        http::write(stream, proceed, ec);
      }
      if (!ec && !parser.is_done()) http::read(stream, buffer, parser, ec);
      if (ec == http::error::end_of_stream || ec == net::error::eof || ec == net::error::timed_out) break;
      if (ec) {
        const bool too_large = ec == http::error::body_limit;
        http::response<http::string_body> response{too_large ? http::status::payload_too_large : http::status::bad_request, 11};
        response.set(http::field::content_type, "application/json");
        response.body() = error_json(too_large ? "the request body is larger than the server's limit of " +
                                                     std::to_string(limits_.max_body_bytes) + " bytes"
                                               : "malformed HTTP request: " + ec.message());
        response.keep_alive(false);
        response.prepare_payload();
        http::write(stream, response, ec);
        // The client may still be sending the body: closing with unread bytes would reset the
        // connection before it reads the answer, so read and drop them for a moment first.
        shutdown(fd, SHUT_WR);
        char scratch[16384];
        const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(2);
        while (std::chrono::steady_clock::now() < give_up) {
          pollfd waiting{fd, POLLIN, 0};
          if (poll(&waiting, 1, 200) <= 0 || recv(fd, scratch, sizeof(scratch), 0) <= 0) break;
        }
        break;
      }
      http::request<http::string_body> message = parser.release();
      HttpRequest request;
      request.method = std::string(message.method_string().data(), message.method_string().size());
      const std::string_view target(message.target().data(), message.target().size());
      const size_t question = target.find('?');
      request.path = percent_decode(target.substr(0, question));
      if (question != std::string_view::npos) request.query = std::string(target.substr(question + 1));
      for (const auto& field : message) request.headers.emplace_back(std::string(field.name_string().data(), field.name_string().size()),
                                                                 std::string(field.value().data(), field.value().size()));
      request.body = std::move(message.body());
      ConnectionExchange exchange(fd, stream, message.version(), message.keep_alive());
      try {
        handler_(request, exchange);
      } catch (const std::exception& e) {
        exchange.respond(500, "application/json", error_json(e.what()), {});
      }
      if (!exchange.finish()) break;
    }
  } catch (const std::exception& e) {
    log_error(name_ + ": connection failed: " + e.what());
  }
  stream.close_notify();
  {
    std::lock_guard<std::mutex> lock(connection->mutex);
    close(connection->fd);
    connection->fd = -1;
  }
  connection->finished.store(true);
}

}  // namespace llm_server
