#pragma once
// The HTTP layer over cpp-httplib: a thread pool sized for every request in
// flight, keep-alive, a request size limit, Bearer authentication, CORS,
// OpenAI-shaped errors for everything that fails, and one access-log line per
// request.
#include <functional>
#include <memory>
#include <string>

#include "server/server_context.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace nativelm::server {

using Handler = std::function<void(const httplib::Request&, httplib::Response&)>;

class HttpServer {
 public:
  explicit HttpServer(ServerContext& ctx);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Handlers may throw ApiError (its status) or nativelm::Error (400).
  // `open` routes need no API key (health checks, metrics).
  void get(const std::string& pattern, Handler handler, bool open = false);
  void post(const std::string& pattern, Handler handler, bool open = false);

  // Binds host:port (port 0: any free port); returns the port. Throws Error.
  int bind();
  // Serves until stop(); returns once in-flight connections are done.
  void run();
  void stop();

 private:
  Handler guarded(Handler handler, bool open) const;
  void install_hooks();

  static constexpr int kListenBacklog = 1024;
  ServerContext& ctx_;
  std::unique_ptr<httplib::Server> server_;
  int listen_fd_ = -1;  // the bound socket (httplib's socket_t is an int here)
};

}  // namespace nativelm::server
