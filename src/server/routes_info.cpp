// Health checks, model listing, server and model info, Prometheus metrics.
#include <httplib.h>

#include "server/api_error.h"
#include "server/http_response.h"
#include "server/openai_format.h"
#include "server/routes.h"

namespace nativelm::server {

namespace {

json model_card(const ServerContext& ctx, int64_t created) {
  return {{"id", ctx.config.served_model_name}, {"object", "model"},        {"created", created},
          {"owned_by", "nativelm"},             {"root", ctx.model.name},   {"max_model_len", ctx.context_length()}};
}

json stats_json(const SchedulerStats& s) {
  return {{"running", s.running},
          {"waiting", s.waiting},
          {"kv_pages_total", s.kv_pages_total},
          {"kv_pages_free", s.kv_pages_free},
          {"kv_pages_cached", s.kv_pages_cached},
          {"cached_tokens_total", s.cached_tokens},
          {"max_total_num_tokens", s.max_total_tokens},
          {"requests_finished", s.requests_finished},
          {"prompt_tokens", s.prompt_tokens},
          {"generated_tokens", s.generated_tokens}};
}

// A one-token greedy generation through the whole engine.
void health_generate(httplib::Response& res, ServerContext& ctx) {
  RequestInput input;
  input.params = ctx.model.defaults.base_params();
  input.params.temperature = 0;
  input.params.max_new_tokens = 1;
  input.params.ignore_eos = true;
  Generation gen(ctx, make_id("health-"), {ctx.model.tokenizer->encode("Hello", true)}, input, 1);
  const auto results = gen.collect();
  if (!results[0].error.empty() || results[0].finish_reason == "abort")
    throw ApiError(503, "the engine could not generate: " +
                            (results[0].error.empty() ? std::string("request aborted") : results[0].error));
  res.set_content("", "text/plain");
}

}  // namespace

void add_info_routes(HttpServer& http, ServerContext& ctx) {
  const int64_t started = unix_time();
  http.get("/health", [](const httplib::Request&, httplib::Response& res) { res.set_content("", "text/plain"); },
           /*open=*/true);
  http.get("/health_generate", [&ctx](const httplib::Request&, httplib::Response& res) { health_generate(res, ctx); },
           /*open=*/true);
  http.get("/v1/models", [&ctx, started](const httplib::Request&, httplib::Response& res) {
    send_json(res, {{"object", "list"}, {"data", json::array({model_card(ctx, started)})}});
  });
  http.get("/v1/models/(.+)", [&ctx, started](const httplib::Request& req, httplib::Response& res) {
    const std::string id = req.matches[1];
    if (id != ctx.config.served_model_name)
      throw ApiError(404, "The model '" + id + "' does not exist; this server serves '" +
                              ctx.config.served_model_name + "'", "model");
    send_json(res, model_card(ctx, started));
  });
  http.get("/get_model_info", [&ctx](const httplib::Request&, httplib::Response& res) {
    send_json(res, {{"model_path", ctx.model.name},
                    {"tokenizer_path", ctx.model.dir.string()},
                    {"is_generation", true},
                    {"model_type", ctx.model.config.model_type},
                    {"architectures", json::array({ctx.model.config.architecture})},
                    {"context_length", ctx.context_length()},
                    {"vocab_size", ctx.vocab_size()},
                    {"has_chat_template", ctx.chat_template.has_value()}});
  });
  http.get("/get_server_info", [&ctx](const httplib::Request&, httplib::Response& res) {
    json info = ctx.server_args;
    info["version"] = "0.1.0";
    info["internal_states"] = json::array({stats_json(ctx.scheduler.stats())});
    send_json(res, info);
  });
  http.get("/metrics", [&ctx](const httplib::Request&, httplib::Response& res) {
    res.set_content(ctx.metrics.render(ctx.scheduler.stats()), "text/plain; version=0.0.4");
  }, /*open=*/true);
}

}  // namespace nativelm::server
