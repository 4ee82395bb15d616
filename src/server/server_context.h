#pragma once
// What every route handler shares: the model, the scheduler, the chat
// template, the server's settings, metrics and the requests in flight.
#include <nlohmann/json.hpp>

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>

#include "chat/chat_template.h"
#include "engine/loaded_model.h"
#include "engine/scheduler.h"
#include "server/metrics.h"
#include "server/output_parsing.h"
#include "server/request_registry.h"

namespace nativelm::server {

struct ServerConfig {
  std::string host = "127.0.0.1";
  int port = 30000;
  std::string api_key;      // empty: no authentication
  std::string cors_origin;  // empty: no CORS headers
  size_t max_request_bytes = 16u << 20;
  std::string served_model_name;  // the `model` reported to clients
  bool log_requests = false;      // also log each request body
  int http_threads = 0;           // 0: enough for every running and waiting request
  OutputParserSettings output_parsers;  // reasoning and tool calls in chat replies
};

struct ServerContext {
  ServerContext(LoadedModel& m, Scheduler& s, std::optional<chat::ModelChatTemplate> tmpl, ServerConfig c,
                nlohmann::json args)
      : model(m), scheduler(s), chat_template(std::move(tmpl)), config(std::move(c)), server_args(std::move(args)) {}

  LoadedModel& model;
  Scheduler& scheduler;
  std::optional<chat::ModelChatTemplate> chat_template;  // none: chat requests get a 400
  ServerConfig config;
  nlohmann::json server_args = nlohmann::json::object();  // the flags, for /get_server_info
  Metrics metrics;
  RequestRegistry registry;
  std::atomic<bool> shutting_down{false};

  int64_t context_length() const { return model.config.max_position_embeddings; }
  int64_t vocab_size() const { return model.config.vocab_size; }
};

}  // namespace nativelm::server
