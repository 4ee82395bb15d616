#pragma once
// The request fields /v1/completions and /v1/chat/completions share, and the
// prompts of /v1/completions in their four shapes.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/request.h"
#include "server/server_context.h"

namespace nativelm::server {

struct OpenAiRequest {
  RequestInput input;  // everything but the prompt
  int n = 1;
  bool stream = false;
  bool include_usage = false;
  std::optional<int64_t> max_tokens;  // as given; resolved by resolve_max_tokens
};

// n, stream, stream_options, max_tokens / max_completion_tokens, the sampling
// fields (defaults from generation_config.json), logit_bias, skip_special_tokens.
OpenAiRequest read_openai_request(const nlohmann::json& body, const ServerContext& ctx);

// Sets max_new_tokens: the request's value, else `default_max` (or, when
// that is negative, what is left of the context after the longest prompt), and
// checks each prompt + max_new_tokens fits the context (400 with the numbers).
void resolve_max_tokens(OpenAiRequest& request, const std::vector<std::vector<int32_t>>& prompts,
                        int64_t default_max, const ServerContext& ctx);

struct Prompts {
  std::vector<std::vector<int32_t>> ids;
  std::vector<std::string> texts;  // for echo
};

// `prompt` as a string, a list of strings, a list of token ids or a list of
// token-id lists. Strings are tokenized with the model's special tokens (BOS).
Prompts read_prompts(const nlohmann::json& body, const ServerContext& ctx);

// Checks token ids against the vocabulary; `param` names the field in errors.
std::vector<int32_t> checked_ids(const nlohmann::json& ids, const std::string& param, int64_t vocab_size);

}  // namespace nativelm::server
