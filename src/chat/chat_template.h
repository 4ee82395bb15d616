#pragma once
// Chat templates: a model's Jinja template turned into the prompt string that
// transformers' apply_chat_template would produce, byte for byte.
#include <nlohmann/json.hpp>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "chat/jinja_interpreter.h"

namespace nativelm::chat {

class ChatTemplate {
 public:
  // Parses once; throws nativelm::Error "chat template syntax error at line N: ...".
  explicit ChatTemplate(std::string source);

  // Renders with `context` (a JSON object) as the template's variables. Throws
  // nativelm::Error carrying the template's own message when it calls
  // raise_exception, or jinja2's message when it misuses a value.
  std::string render(const nlohmann::ordered_json& context,
                     const jinja::RenderOptions& options = {}) const;

  const std::string& source() const { return source_; }

 private:
  std::string source_;
  std::shared_ptr<const jinja::Body> body_;
};

// What a model folder says about chat formatting.
struct ModelChatTemplate {
  std::string source;
  std::optional<std::string> bos_token, eos_token;
  // Every special token transformers passes to the template (bos_token,
  // eos_token, unk_token, pad_token, ...), name -> text.
  nlohmann::ordered_json special_tokens = nlohmann::ordered_json::object();
};

// Reads chat_template.jinja, tokenizer_config.json's `chat_template` (a string, or
// a list of named templates of which "default" is used) or chat_template.json.
// Throws nativelm::Error when the model has no chat template.
ModelChatTemplate load_model_chat_template(const std::filesystem::path& model_dir);

// transformers' apply_chat_template(messages, tools=..., add_generation_prompt=...,
// **extra_kwargs) as a string. `tools` may be null.
std::string apply_chat_template(const ModelChatTemplate& tmpl, const nlohmann::ordered_json& messages,
                                const nlohmann::ordered_json& tools, bool add_generation_prompt,
                                const nlohmann::ordered_json& extra_kwargs,
                                const jinja::RenderOptions& options = {});

// The context apply_chat_template renders with (exposed for tests and tools).
nlohmann::ordered_json chat_template_context(const ModelChatTemplate& tmpl,
                                             const nlohmann::ordered_json& messages,
                                             const nlohmann::ordered_json& tools,
                                             bool add_generation_prompt,
                                             const nlohmann::ordered_json& extra_kwargs);

}  // namespace nativelm::chat
