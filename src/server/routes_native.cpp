// SGLang's native API: /generate, /tokenize, /detokenize, /abort_request,
// /flush_cache, in SGLang's request and response shapes.
#include <httplib.h>

#include <chrono>

#include "server/api_error.h"
#include "server/http_response.h"
#include "server/json_fields.h"
#include "server/openai_format.h"
#include "server/openai_request.h"
#include "server/routes.h"
#include "server/sampling_fields.h"

namespace nativelm::server {

namespace {

struct NativeRequest {
  OpenAiRequest common;
  std::vector<std::vector<int32_t>> prompts;
  bool batch = false;  // text / input_ids given as a list: answer with a list
  std::string rid;
};

std::vector<std::vector<int32_t>> native_prompts(const json& body, const ServerContext& ctx, bool& batch) {
  const bool has_text = body.contains("text") && !body["text"].is_null();
  const bool has_ids = body.contains("input_ids") && !body["input_ids"].is_null();
  if (has_text == has_ids) bad_param("text", "give exactly one of 'text' and 'input_ids'");
  std::vector<std::vector<int32_t>> out;
  if (has_text) {
    const auto texts = get_strings(body, "text");
    batch = body["text"].is_array();
    for (const auto& t : texts) out.push_back(ctx.model.tokenizer->encode(t, true));
  } else {
    const json& ids = body["input_ids"];
    if (!ids.is_array() || ids.empty()) bad_param("input_ids", "'input_ids' must be a non-empty list");
    batch = ids[0].is_array();
    if (batch)
      for (const auto& one : ids) out.push_back(checked_ids(one, "input_ids", ctx.vocab_size()));
    else
      out.push_back(checked_ids(ids, "input_ids", ctx.vocab_size()));
  }
  if (out.empty()) bad_param("text", "no prompt given");
  for (const auto& p : out)
    if (p.empty()) bad_param("text", "the prompt tokenizes to no tokens");
  return out;
}

NativeRequest read_generate(const json& body, const ServerContext& ctx) {
  NativeRequest r;
  r.prompts = native_prompts(body, ctx, r.batch);
  static const json kEmpty = json::object();
  const json* sp = get_object(body, "sampling_params");
  const json& fields = sp ? *sp : kEmpty;
  r.common.input.params = ctx.model.defaults.base_params();
  read_common_sampling(fields, ctx.vocab_size(), r.common.input.params);
  r.common.max_tokens = get_int_in(fields, "max_new_tokens", 0, INT32_MAX);
  if (auto v = get_int_in(fields, "min_new_tokens", 0, INT32_MAX))
    r.common.input.params.min_new_tokens = static_cast<int32_t>(*v);
  r.common.input.skip_special_tokens = get_bool(fields, "skip_special_tokens").value_or(true);
  r.common.n = static_cast<int>(get_int_in(fields, "n", 1, 128).value_or(1));
  if (get_bool(body, "return_logprob").value_or(false))
    r.common.input.logprobs = static_cast<int32_t>(get_int_in(body, "top_logprobs_num", 0, 20).value_or(0));
  r.common.stream = get_bool(body, "stream").value_or(false);
  r.rid = get_string(body, "rid").value_or(make_id(""));
  resolve_max_tokens(r.common, r.prompts, /*SGLang's default*/ 128, ctx);
  return r;
}

json finish_reason_json(const RequestUpdate& u, int32_t max_new_tokens) {
  if (!u.finished) return nullptr;
  json f = {{"type", u.finish_reason}};
  if (u.finish_reason == "length") f["length"] = max_new_tokens;
  if (u.matched_stop) f["matched"] = *u.matched_stop;
  else if (u.matched_stop_token) f["matched"] = *u.matched_stop_token;
  if (!u.error.empty()) f["message"] = u.error;
  return f;
}

// The cumulative state of one choice, as SGLang reports it.
struct NativeChoice {
  std::string text;
  json output_ids = json::array();
  json logprobs = json::array();
  json finish_reason = nullptr;
  int64_t prompt_tokens = 0, completion_tokens = 0, cached_tokens = 0;

  void add(const RequestUpdate& u, int32_t max_new_tokens, bool with_logprobs) {
    text += u.text;
    for (const auto& t : u.tokens) {
      output_ids.push_back(t.id);
      if (with_logprobs) logprobs.push_back({t.logprob, t.id});
    }
    prompt_tokens = std::max(prompt_tokens, u.prompt_tokens);
    completion_tokens = static_cast<int64_t>(output_ids.size());
    cached_tokens = std::max(cached_tokens, u.cached_tokens);
    if (u.finished) finish_reason = finish_reason_json(u, max_new_tokens);
  }
  json to_json(const std::string& rid, size_t index, double seconds, bool with_logprobs) const {
    json meta = {{"id", rid},
                 {"finish_reason", finish_reason},
                 {"prompt_tokens", prompt_tokens},
                 {"completion_tokens", completion_tokens},
                 {"cached_tokens", cached_tokens},
                 {"e2e_latency", seconds}};
    if (with_logprobs) meta["output_token_logprobs"] = logprobs;
    return {{"text", text}, {"output_ids", output_ids}, {"meta_info", meta}, {"index", index}};
  }
};

void generate(const httplib::Request& req, httplib::Response& res, ServerContext& ctx) {
  const auto start = std::chrono::steady_clock::now();
  NativeRequest r = read_generate(parse_body(req.body), ctx);
  auto gen = std::make_shared<Generation>(ctx, r.rid, r.prompts, r.common.input, r.common.n);
  auto choices = std::make_shared<std::vector<NativeChoice>>(gen->size());
  const int32_t max_new = r.common.input.params.max_new_tokens;
  const bool with_logprobs = r.common.input.logprobs >= 0;
  auto elapsed = [start] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  if (r.common.stream) {
    auto format = [choices, max_new, with_logprobs, elapsed, rid = r.rid](size_t i, const RequestUpdate& u) {
      if (u.text.empty() && u.tokens.empty() && !u.finished) return std::vector<json>{};
      (*choices)[i].add(u, max_new, with_logprobs);
      return std::vector<json>{(*choices)[i].to_json(rid, i, elapsed(), with_logprobs)};
    };
    stream_sse(res, std::move(gen), format, [] { return std::vector<json>{}; });
    return;
  }
  size_t i = 0;
  RequestUpdate u;
  while (gen->next(i, u)) (*choices)[i].add(u, max_new, with_logprobs);
  json out = json::array();
  for (size_t k = 0; k < choices->size(); ++k) out.push_back((*choices)[k].to_json(r.rid, k, elapsed(), with_logprobs));
  send_json(res, (r.batch || out.size() > 1) ? out : out[0]);
}

void tokenize(const httplib::Request& req, httplib::Response& res, const ServerContext& ctx) {
  const json body = parse_body(req.body);
  const bool add_special = get_bool(body, "add_special_tokens").value_or(true);
  if (!body.contains("prompt") || body["prompt"].is_null()) bad_param("prompt", "'prompt' is required");
  const auto prompts = get_strings(body, "prompt");
  json tokens = json::array(), counts = json::array();
  for (const auto& p : prompts) {
    auto ids = ctx.model.tokenizer->encode(p, add_special);
    counts.push_back(ids.size());
    tokens.push_back(std::move(ids));
  }
  const bool batch = body["prompt"].is_array();
  send_json(res, {{"tokens", batch ? tokens : tokens[0]},
                  {"count", batch ? counts : counts[0]},
                  {"max_model_len", ctx.context_length()}});
}

void detokenize(const httplib::Request& req, httplib::Response& res, const ServerContext& ctx) {
  const json body = parse_body(req.body);
  const bool skip = get_bool(body, "skip_special_tokens").value_or(true);
  auto it = body.find("tokens");
  if (it == body.end() || !it->is_array()) bad_param("tokens", "'tokens' must be a list of token ids");
  auto decode = [&](const json& ids) {
    if (ids.empty()) return std::string();
    return ctx.model.tokenizer->decode(checked_ids(ids, "tokens", ctx.vocab_size()), skip);
  };
  if (!it->empty() && (*it)[0].is_array()) {
    json texts = json::array();
    for (const auto& ids : *it) texts.push_back(decode(ids));
    send_json(res, {{"text", texts}});
  } else {
    send_json(res, {{"text", decode(*it)}});
  }
}

void abort_request(const httplib::Request& req, httplib::Response& res, ServerContext& ctx) {
  const json body = parse_body(req.body);
  if (get_bool(body, "abort_all").value_or(false)) {
    send_json(res, {{"aborted", ctx.registry.abort_all()}});
    return;
  }
  const auto rid = get_string(body, "rid");
  if (!rid) bad_param("rid", "'rid' (the request id) or 'abort_all': true is required");
  if (!ctx.registry.abort(*rid)) throw ApiError(404, "no request with id '" + *rid + "' is running", "rid");
  send_json(res, {{"aborted", 1}});
}

}  // namespace

void add_native_routes(HttpServer& http, ServerContext& ctx) {
  http.post("/generate", [&ctx](const httplib::Request& q, httplib::Response& s) { generate(q, s, ctx); });
  http.post("/tokenize", [&ctx](const httplib::Request& q, httplib::Response& s) { tokenize(q, s, ctx); });
  http.post("/detokenize", [&ctx](const httplib::Request& q, httplib::Response& s) { detokenize(q, s, ctx); });
  http.post("/abort_request", [&ctx](const httplib::Request& q, httplib::Response& s) { abort_request(q, s, ctx); });
  // Drops the cached prompt prefixes that no running request is using.
  auto flush = [&ctx](const httplib::Request&, httplib::Response& s) {
    ctx.scheduler.flush_cache();
    s.set_content("Cache flushed.\n", "text/plain");
  };
  http.post("/flush_cache", flush);
  http.get("/flush_cache", flush);
}

}  // namespace nativelm::server
