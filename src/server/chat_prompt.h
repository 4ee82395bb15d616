#pragma once
// Turns a chat request's messages (and tools) into prompt token ids through
// the model's chat template, as transformers' apply_chat_template does.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "server/server_context.h"

namespace nativelm::server {

struct ChatPrompt {
  std::string text;  // the rendered template
  std::vector<int32_t> ids;
};

// Validates `messages` (a non-empty list of objects with a string `role`;
// content a string, null, or a list of text parts, which are joined) and
// renders them with `tools` (unless tool_choice is "none") and
// chat_template_kwargs. An assistant message's tool call arguments given as a
// JSON string (as OpenAI clients send them) reach the template as an object,
// and its null content as "" (as SGLang does), since templates index into both.
// `ordered_body` is the same body parsed keeping its key order: what reaches
// the template comes from it, since transformers keeps the client's order
// (e.g. in `tools | tojson`). 400 for a model without a chat template.
ChatPrompt chat_prompt(const nlohmann::json& body, const nlohmann::ordered_json& ordered_body,
                       const ServerContext& ctx);

// The chat template of `--chat-template FILE` (or the model's own when
// `file` is empty), with the special tokens from the model's tokenizer_config.json.
// nullopt when neither exists.
std::optional<chat::ModelChatTemplate> load_chat_template(const std::filesystem::path& model_dir,
                                                          const std::string& file);

}  // namespace nativelm::server
