#pragma once
// Running the server until SIGINT or SIGTERM.
#include "server/server_context.h"

namespace nativelm::server {

// Blocks SIGINT and SIGTERM in the calling thread and every thread started
// after it, so that only serve()'s watcher receives them. Call it before
// loading the model (which starts worker threads).
void block_shutdown_signals();

// Registers every route, listens, and serves until a shutdown signal: then
// stops accepting, aborts in-flight requests (their clients get
// finish_reason "abort"), and returns once every connection is closed.
void serve(ServerContext& ctx);

}  // namespace nativelm::server
