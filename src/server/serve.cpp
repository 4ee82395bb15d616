#include "server/serve.h"

#include <signal.h>

#include <atomic>
#include <cstring>
#include <thread>

#include "server/http_server.h"
#include "server/routes.h"
#include "util/log.h"

namespace nativelm::server {

namespace {

sigset_t shutdown_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

}  // namespace

void block_shutdown_signals() {
  const sigset_t set = shutdown_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

void serve(ServerContext& ctx) {
  HttpServer http(ctx);
  add_completion_routes(http, ctx);
  add_chat_routes(http, ctx);
  add_native_routes(http, ctx);
  add_info_routes(http, ctx);
  const int port = http.bind();
  log::info("The server is fired up and ready to roll! Listening on http://{}:{}", ctx.config.host, port);

  // Signals are taken synchronously by this thread (they are blocked
  // everywhere else), so the shutdown work needs no async-signal-safety.
  std::atomic<bool> finished{false};
  std::thread watcher([&] {
    const sigset_t set = shutdown_signals();
    const timespec poll{0, 200'000'000};
    while (!finished) {
      const int sig = sigtimedwait(&set, nullptr, &poll);
      if (sig <= 0) continue;
      log::info("received {}: aborting in-flight requests and shutting down", strsignal(sig));
      ctx.shutting_down = true;
      ctx.scheduler.shutdown();
      http.stop();
      return;
    }
  });
  http.run();
  finished = true;
  watcher.join();
  ctx.shutting_down = true;
  ctx.scheduler.shutdown();
  log::info("server stopped");
}

}  // namespace nativelm::server
