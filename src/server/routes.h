#pragma once
// Route groups, each registered on the HTTP server by its own file.
#include "server/http_server.h"
#include "server/server_context.h"

namespace nativelm::server {

void add_completion_routes(HttpServer& http, ServerContext& ctx);  // /v1/completions
void add_chat_routes(HttpServer& http, ServerContext& ctx);        // /v1/chat/completions
void add_native_routes(HttpServer& http, ServerContext& ctx);      // SGLang: /generate, /tokenize, ...
void add_info_routes(HttpServer& http, ServerContext& ctx);        // health, models, info, metrics

}  // namespace nativelm::server
