// POST /v1/completions (OpenAI's legacy completions API).
#include <httplib.h>

#include "server/api_error.h"
#include "server/http_response.h"
#include "server/json_fields.h"
#include "server/openai_format.h"
#include "server/openai_request.h"
#include "server/routes.h"

namespace nativelm::server {

namespace {

struct CompletionRequest {
  OpenAiRequest common;
  Prompts prompts;
  int32_t logprobs = -1;
  bool echo = false;
};

CompletionRequest read_request(const json& body, const ServerContext& ctx) {
  CompletionRequest r;
  r.common = read_openai_request(body, ctx);
  r.prompts = read_prompts(body, ctx);
  if (auto v = get_int_in(body, "logprobs", 0, 20)) r.logprobs = static_cast<int32_t>(*v);
  r.echo = get_bool(body, "echo").value_or(false);
  if (r.echo && r.logprobs >= 0)
    bad_param("echo", "echo together with logprobs needs prompt logprobs, which this server does not compute");
  r.common.input.logprobs = r.logprobs;
  resolve_max_tokens(r.common, r.prompts.ids, /*OpenAI's default*/ 16, ctx);
  return r;
}

json envelope(const std::string& id, int64_t created, const ServerContext& ctx) {
  return {{"id", id},
          {"object", "text_completion"},
          {"created", created},
          {"model", ctx.config.served_model_name},
          {"system_fingerprint", kSystemFingerprint}};
}

json choice_json(size_t index, const std::string& text, const json& logprobs) {
  return {{"index", index}, {"text", text}, {"logprobs", logprobs}, {"finish_reason", nullptr}};
}

void respond_whole(httplib::Response& res, Generation& gen, const CompletionRequest& r, const ServerContext& ctx) {
  const auto results = gen.collect();
  json out = envelope(gen.rid(), unix_time(), ctx);
  out["choices"] = json::array();
  for (size_t i = 0; i < results.size(); ++i) {
    const auto& c = results[i];
    if (!c.error.empty()) throw ApiError(500, c.error);
    const std::string prefix = r.echo ? r.prompts.texts[i / r.common.n] : "";
    const json logprobs =
        r.logprobs >= 0 ? completion_logprobs(*ctx.model.tokenizer, c.tokens, r.logprobs, 0) : json(nullptr);
    json choice = choice_json(i, prefix + c.text, logprobs);
    add_finish_fields(choice, c.finish_reason, c.matched_stop, c.matched_stop_token);
    out["choices"].push_back(std::move(choice));
  }
  out["usage"] = usage_json(gen.usage());
  send_json(res, out);
}

void respond_stream(httplib::Response& res, std::shared_ptr<Generation> gen, CompletionRequest r,
                    const ServerContext& ctx) {
  const json base = envelope(gen->rid(), unix_time(), ctx);
  auto started = std::make_shared<std::vector<bool>>(gen->size(), false);
  auto offsets = std::make_shared<std::vector<int64_t>>(gen->size(), 0);
  auto format = [&ctx, base, started, offsets, r](size_t i, const RequestUpdate& u) {
    std::string text = u.text;
    if (!(*started)[i] && r.echo) text = r.prompts.texts[i / r.common.n] + text;
    (*started)[i] = true;
    if (text.empty() && u.tokens.empty() && !u.finished) return std::vector<json>{};
    if (!u.error.empty()) return std::vector<json>{error_body(500, u.error)};
    json logprobs = nullptr;
    if (r.logprobs >= 0) logprobs = completion_logprobs(*ctx.model.tokenizer, u.tokens, r.logprobs, (*offsets)[i]);
    (*offsets)[i] += static_cast<int64_t>(text.size());
    json chunk = base;
    json choice = choice_json(i, text, logprobs);
    if (u.finished) add_finish_fields(choice, u.finish_reason, u.matched_stop, u.matched_stop_token);
    chunk["choices"] = json::array({choice});
    return std::vector<json>{chunk};
  };
  auto trailer = usage_trailer(base, gen.get(), r.common.include_usage);
  stream_sse(res, std::move(gen), format, trailer);
}

}  // namespace

void add_completion_routes(HttpServer& http, ServerContext& ctx) {
  http.post("/v1/completions", [&ctx](const httplib::Request& req, httplib::Response& res) {
    const json body = parse_body(req.body);
    CompletionRequest r = read_request(body, ctx);
    auto gen = std::make_shared<Generation>(ctx, make_id("cmpl-"), r.prompts.ids, r.common.input, r.common.n);
    if (r.common.stream) respond_stream(res, std::move(gen), std::move(r), ctx);
    else respond_whole(res, *gen, r, ctx);
  });
}

}  // namespace nativelm::server
