// POST /v1/chat/completions.
#include <httplib.h>

#include "server/api_error.h"
#include "server/chat_prompt.h"
#include "server/chat_response.h"
#include "server/http_response.h"
#include "server/json_fields.h"
#include "server/openai_format.h"
#include "server/openai_request.h"
#include "server/output_parsing.h"
#include "server/routes.h"

namespace nativelm::server {

namespace {

struct ChatRequest {
  OpenAiRequest common;
  std::vector<int32_t> prompt;
  int32_t top_logprobs = -1;  // -1: no logprobs
  OutputParsing parsing;
};

ChatRequest read_request(const json& body, const nlohmann::ordered_json& ordered_body, const ServerContext& ctx) {
  ChatRequest r;
  r.common = read_openai_request(body, ctx);
  const bool logprobs = get_bool(body, "logprobs").value_or(false);
  const auto top = get_int_in(body, "top_logprobs", 0, 20);
  if (top && !logprobs) bad_param("top_logprobs", "'top_logprobs' needs 'logprobs': true");
  if (logprobs) r.top_logprobs = static_cast<int32_t>(top.value_or(0));
  r.common.input.logprobs = r.top_logprobs;
  check_tool_choice(body);
  ChatPrompt prompt = chat_prompt(body, ordered_body, ctx);
  r.prompt = std::move(prompt.ids);
  r.parsing = output_parsing_for(body, ctx.config.output_parsers, ctx.chat_template->source, prompt.text);
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
    ChoiceParser parser(r.parsing);
    out["choices"].push_back(chat_choice(
        i, c, parser,
        r.top_logprobs >= 0 ? chat_logprobs(*ctx.model.tokenizer, c.tokens, r.top_logprobs) : json(nullptr)));
  }
  out["usage"] = usage_json(gen.usage());
  send_json(res, out);
}

void respond_stream(httplib::Response& res, std::shared_ptr<Generation> gen, const ChatRequest& r,
                    const ServerContext& ctx) {
  const json base = envelope(gen->rid(), "chat.completion.chunk", ctx);
  auto choices = std::make_shared<std::vector<ChatStreamChoice>>();
  for (size_t i = 0; i < gen->size(); ++i) choices->emplace_back(base, i, ChoiceParser(r.parsing));
  auto format = [choices, top = r.top_logprobs, &ctx](size_t i, const RequestUpdate& u) {
    json logprobs = top >= 0 && !u.tokens.empty() ? chat_logprobs(*ctx.model.tokenizer, u.tokens, top) : json(nullptr);
    return (*choices)[i].chunks(u, std::move(logprobs));
  };
  auto trailer = usage_trailer(base, gen.get(), r.common.include_usage);
  stream_sse(res, std::move(gen), format, trailer);
}

}  // namespace

void add_chat_routes(HttpServer& http, ServerContext& ctx) {
  http.post("/v1/chat/completions", [&ctx](const httplib::Request& req, httplib::Response& res) {
    const json body = parse_body(req.body);
    // The template gets the client's key order, which json (a sorted map) loses.
    const auto ordered_body = nlohmann::ordered_json::parse(req.body);
    ChatRequest r = read_request(body, ordered_body, ctx);
    auto gen = std::make_shared<Generation>(ctx, make_id("chatcmpl-"), std::vector<std::vector<int32_t>>{r.prompt}, r.common.input,
                                            r.common.n);
    if (r.common.stream) respond_stream(res, std::move(gen), r, ctx);
    else respond_whole(res, *gen, r, ctx);
  });
}

}  // namespace nativelm::server
