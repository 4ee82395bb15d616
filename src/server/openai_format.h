#pragma once
// Pieces shared by OpenAI-style responses: ids, usage, logprobs, finish
// fields and SSE framing.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/request.h"
#include "server/generation.h"
#include "tokenizer/tokenizer.h"

namespace nativelm::server {

using nlohmann::json;

inline constexpr const char* kSystemFingerprint = "nativelm-0.1.0";

// prefix + 32 random hex digits, e.g. "chatcmpl-3f2a...".
std::string make_id(const std::string& prefix);
int64_t unix_time();

// JSON text; invalid UTF-8 (never expected) is replaced rather than thrown on.
std::string dump(const json& value);
// One server-sent event: "data: <json>\n\n".
std::string sse_event(const json& value);
inline constexpr const char* kSseDone = "data: [DONE]\n\n";

json usage_json(const Usage& usage);

// "finish_reason" and "matched_stop" (the stop string or token id; null otherwise).
void add_finish_fields(json& choice, const std::string& finish_reason, const std::optional<std::string>& matched_stop,
                       const std::optional<int32_t>& matched_stop_token);

// /v1/completions logprobs: tokens, token_logprobs, top_logprobs, text_offset
// (offsets counted from `text_offset`).
json completion_logprobs(const Tokenizer& tokenizer, const std::vector<TokenOutput>& tokens, int32_t top,
                         int64_t text_offset);
// /v1/chat/completions logprobs: {"content": [{token, logprob, bytes, top_logprobs}]}.
json chat_logprobs(const Tokenizer& tokenizer, const std::vector<TokenOutput>& tokens, int32_t top);

}  // namespace nativelm::server
