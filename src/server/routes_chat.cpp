// POST /v1/chat/completions.
#include <httplib.h>

#include "server/api_error.h"
#include "server/chat_prompt.h"
#include "server/http_response.h"
#include "server/json_fields.h"
#include "server/openai_format.h"
#include "server/openai_request.h"
#include "server/routes.h"

namespace nativelm::server {

namespace {

struct ChatRequest {
  OpenAiRequest common;
  std::vector<int32_t> prompt;
  int32_t top_logprobs = -1;  // -1: no logprobs
};

ChatRequest read_request(const json& body, const ServerContext& ctx) {
  ChatRequest r;
  r.common = read_openai_request(body, ctx);
  const bool logprobs = get_bool(body, "logprobs").value_or(false);
  const auto top = get_int_in(body, "top_logprobs", 0, 20);
  if (top && !logprobs) bad_param("top_logprobs", "'top_logprobs' needs 'logprobs': true");
  if (logprobs) r.top_logprobs = static_cast<int32_t>(top.value_or(0));
  r.common.input.logprobs = r.top_logprobs;
  r.prompt = chat_prompt_ids(body, ctx);
  // OpenAI's default for chat: as much as the context leaves.
  resolve_max_tokens(r.common, {r.prompt}, -1, ctx);
  return r;
}

json envelope(const std::string& id, const char* object, const ServerContext& ctx) {
  return {{"id", id},
          {"object", object},
          {"created", unix_time()},
          {"model", ctx.config.served_model_name},
          {"system_fingerprint", kSystemFingerprint}};
}

void respond_whole(httplib::Response& res, Generation& gen, const ChatRequest& r, const ServerContext& ctx) {
  const auto results = gen.collect();
  json out = envelope(gen.rid(), "chat.completion", ctx);
  out["choices"] = json::array();
  for (size_t i = 0; i < results.size(); ++i) {
    const auto& c = results[i];
    if (!c.error.empty()) throw ApiError(500, c.error);
    json choice = {{"index", i},
                   {"message", {{"role", "assistant"}, {"content", c.text}}},
                   {"logprobs", r.top_logprobs >= 0 ? chat_logprobs(*ctx.model.tokenizer, c.tokens, r.top_logprobs)
                                                    : json(nullptr)}};
    add_finish_fields(choice, c.finish_reason, c.matched_stop, c.matched_stop_token);
    out["choices"].push_back(std::move(choice));
  }
  out["usage"] = usage_json(gen.usage());
  send_json(res, out);
}

std::vector<json> stream_chunks(const json& base, size_t i, const RequestUpdate& u, bool first, int32_t top,
                                const Tokenizer& tok) {
  std::vector<json> out;
  auto chunk = [&](json delta, json logprobs) {
    json c = base;
    c["choices"] = json::array({{{"index", i}, {"delta", std::move(delta)}, {"logprobs", std::move(logprobs)},
                                 {"finish_reason", nullptr}}});
    return c;
  };
  if (!u.error.empty()) return {error_body(500, u.error)};
  if (first) out.push_back(chunk({{"role", "assistant"}, {"content", ""}}, nullptr));
  if (!u.text.empty() || !u.tokens.empty())
    out.push_back(chunk({{"content", u.text}}, top >= 0 ? chat_logprobs(tok, u.tokens, top) : json(nullptr)));
  if (u.finished) {
    json last = chunk(json::object(), nullptr);
    add_finish_fields(last["choices"][0], u.finish_reason, u.matched_stop, u.matched_stop_token);
    out.push_back(std::move(last));
  }
  return out;
}

void respond_stream(httplib::Response& res, std::shared_ptr<Generation> gen, const ChatRequest& r,
                    const ServerContext& ctx) {
  const json base = envelope(gen->rid(), "chat.completion.chunk", ctx);
  auto started = std::make_shared<std::vector<bool>>(gen->size(), false);
  auto format = [base, started, top = r.top_logprobs, &ctx](size_t i, const RequestUpdate& u) {
    const bool first = !(*started)[i];
    (*started)[i] = true;
    return stream_chunks(base, i, u, first, top, *ctx.model.tokenizer);
  };
  auto trailer = [base, gen_ptr = gen.get(), include = r.common.include_usage]() {
    if (!include) return std::vector<json>{};
    json chunk = base;
    chunk["choices"] = json::array();
    chunk["usage"] = usage_json(gen_ptr->usage());
    return std::vector<json>{chunk};
  };
  stream_sse(res, std::move(gen), format, trailer);
}

}  // namespace

void add_chat_routes(HttpServer& http, ServerContext& ctx) {
  http.post("/v1/chat/completions", [&ctx](const httplib::Request& req, httplib::Response& res) {
    const json body = parse_body(req.body);
    ChatRequest r = read_request(body, ctx);
    auto gen = std::make_shared<Generation>(ctx, make_id("chatcmpl-"), std::vector<std::vector<int32_t>>{r.prompt}, r.common.input,
                                            r.common.n);
    if (r.common.stream) respond_stream(res, std::move(gen), r, ctx);
    else respond_whole(res, *gen, r, ctx);
  });
}

}  // namespace nativelm::server
