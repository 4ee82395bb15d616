#pragma once
// Turns a chat request's messages (and tools) into prompt token ids through
// the model's chat template, as transformers' apply_chat_template does.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <vector>

#include "server/server_context.h"

namespace nativelm::server {

// Validates `messages` (a non-empty list of objects with a string `role`;
// content a string, null, or a list of text parts, which are joined) and
// renders them with `tools` (unless tool_choice is "none") and
// chat_template_kwargs. 400 for a model without a chat template.
std::vector<int32_t> chat_prompt_ids(const nlohmann::json& body, const ServerContext& ctx);

// The chat template of `--chat-template FILE` (or the model's own when
// `file` is empty), with the special tokens from the model's tokenizer_config.json.
// nullopt when neither exists.
std::optional<chat::ModelChatTemplate> load_chat_template(const std::filesystem::path& model_dir,
                                                          const std::string& file);

}  // namespace nativelm::server
