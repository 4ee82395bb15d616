#include "server/http_server.h"

#include <sys/socket.h>

#include <httplib.h>

#include <chrono>
#include <optional>

#include "server/http_response.h"
#include "util/log.h"

namespace nativelm::server {

namespace {

using Clock = std::chrono::steady_clock;
// Set when routing starts on this worker thread, read by the access log that
// runs on the same thread once the response is written.
thread_local std::optional<Clock::time_point> t_request_start;

std::string default_error_message(const httplib::Request& req, int status, size_t max_bytes) {
  switch (status) {
    case 404: return "No route for " + req.method + " " + req.path;
    case 413: return "The request body is larger than the server's limit of " + std::to_string(max_bytes) + " bytes";
    case 400: return "Malformed HTTP request";
    default: return "HTTP error " + std::to_string(status);
  }
}

bool authorized(const httplib::Request& req, const std::string& api_key) {
  const std::string header = req.get_header_value("Authorization");
  const std::string expected = "Bearer " + api_key;
  if (header.size() != expected.size()) return false;
  unsigned char diff = 0;  // constant time: do not leak how much of the key matched
  for (size_t i = 0; i < header.size(); ++i) diff |= static_cast<unsigned char>(header[i] ^ expected[i]);
  return diff == 0;
}

}  // namespace

HttpServer::HttpServer(ServerContext& ctx) : ctx_(ctx), server_(std::make_unique<httplib::Server>()) {
  const size_t threads = ctx_.config.http_threads > 0 ? static_cast<size_t>(ctx_.config.http_threads) : 128;
  server_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server_->set_payload_max_length(ctx_.config.max_request_bytes);
  server_->set_keep_alive_max_count(1000);
  server_->set_tcp_nodelay(true);  // streamed tokens are small writes
  // Remember the listening socket (see bind()); otherwise httplib's defaults.
  server_->set_socket_options([this](socket_t sock) {
    httplib::default_socket_options(sock);
    listen_fd_ = sock;
  });
  install_hooks();
}

HttpServer::~HttpServer() = default;

void HttpServer::install_hooks() {
  server_->set_pre_routing_handler([](const httplib::Request&, httplib::Response&) {
    t_request_start = Clock::now();
    return httplib::Server::HandlerResponse::Unhandled;
  });
  // Runs for every status >= 400; fills in the body of errors no handler wrote
  // (unknown route, oversized body, malformed HTTP).
  server_->set_error_handler(httplib::Server::HandlerWithResponse(
      [this](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty() || res.content_provider_) return httplib::Server::HandlerResponse::Unhandled;
    send_json(res, error_body(res.status, default_error_message(req, res.status, ctx_.config.max_request_bytes)),
              res.status);
    return httplib::Server::HandlerResponse::Handled;
  }));
  server_->set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string message = "internal error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      message = e.what();
    } catch (...) {
    }
    log::error("internal error: {}", message);
    send_json(res, error_body(500, message), 500);
  });
  if (!ctx_.config.cors_origin.empty()) {
    server_->set_post_routing_handler([this](const httplib::Request&, httplib::Response& res) {
      res.set_header("Access-Control-Allow-Origin", ctx_.config.cors_origin);
      res.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
      res.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type");
    });
    server_->Options(".*", [](const httplib::Request&, httplib::Response& res) { res.status = 204; });
  }
  server_->set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    if (res.status >= 400) ctx_.metrics.http_error();
    const double ms =
        t_request_start ? std::chrono::duration<double, std::milli>(Clock::now() - *t_request_start).count() : 0.0;
    t_request_start.reset();
    log::info("{}:{} \"{} {}\" {} {:.1f} ms", req.remote_addr, req.remote_port, req.method, req.path, res.status, ms);
    if (ctx_.config.log_requests && !req.body.empty())
      log::info("request body: {}", req.body.substr(0, 4096));
  });
}

Handler HttpServer::guarded(Handler handler, bool open) const {
  return [this, handler = std::move(handler), open](const httplib::Request& req, httplib::Response& res) {
    try {
      if (!open && !ctx_.config.api_key.empty() && !authorized(req, ctx_.config.api_key))
        throw ApiError(401, "Invalid or missing API key: send 'Authorization: Bearer <key>'");
      handler(req, res);
    } catch (const ApiError& e) {
      send_error(res, e);
    } catch (const Error& e) {
      send_error(res, ApiError(400, e.what()));
    }
  };
}

void HttpServer::get(const std::string& pattern, Handler handler, bool open) {
  server_->Get(pattern, guarded(std::move(handler), open));
}

void HttpServer::post(const std::string& pattern, Handler handler, bool open) {
  server_->Post(pattern, guarded(std::move(handler), open));
}

int HttpServer::bind() {
  const auto& c = ctx_.config;
  const int port = c.port == 0 ? server_->bind_to_any_port(c.host) : (server_->bind_to_port(c.host, c.port) ? c.port : -1);
  if (port <= 0) fail("cannot listen on {}:{} (address in use or not available)", c.host, c.port);
  // Debian's libcpp-httplib listens with a backlog of 5: a burst of clients
  // connecting at once (bench_serving at rate inf) overflowed the accept
  // queue and some saw their connections fail. Listening again on the bound
  // socket only raises the backlog.
  if (listen_fd_ >= 0 && ::listen(listen_fd_, kListenBacklog) != 0)
    log::warn("could not raise the listen backlog to {}", kListenBacklog);
  return port;
}

void HttpServer::run() { server_->listen_after_bind(); }

void HttpServer::stop() { server_->stop(); }

}  // namespace nativelm::server
