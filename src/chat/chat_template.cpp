#include "chat/chat_template.h"

#include <list>
#include <mutex>

#include "chat/jinja_parser.h"
#include "util/error.h"

namespace nativelm::chat {

ChatTemplate::ChatTemplate(std::string source)
    : source_(std::move(source)),
      body_(std::make_shared<const jinja::Body>(jinja::parse(source_))) {}

std::string ChatTemplate::render(const nlohmann::ordered_json& context,
                                 const jinja::RenderOptions& options) const {
  if (!context.is_object()) fail("chat template context must be a JSON object");
  jinja::Value globals = jinja::Value::from_json(context);
  jinja::Interpreter interpreter(globals, options);
  try {
    return interpreter.render(*body_);
  } catch (const jinja::TemplateRaised& raised) {
    fail("chat template rejected the conversation: {}", raised.message);
  }
}

nlohmann::ordered_json chat_template_context(const ModelChatTemplate& tmpl,
                                             const nlohmann::ordered_json& messages,
                                             const nlohmann::ordered_json& tools,
                                             bool add_generation_prompt,
                                             const nlohmann::ordered_json& extra_kwargs) {
  if (!messages.is_array()) fail("messages must be a JSON array");
  if (!tools.is_null() && !tools.is_array()) fail("tools must be a JSON array");
  if (!extra_kwargs.is_null() && !extra_kwargs.is_object())
    fail("chat_template_kwargs must be a JSON object");
  // Same order as transformers: messages, tools, documents, add_generation_prompt,
  // then the special tokens and the caller's kwargs (which may override them).
  nlohmann::ordered_json ctx = nlohmann::ordered_json::object();
  ctx["messages"] = messages;
  ctx["tools"] = tools;
  ctx["documents"] = nullptr;
  ctx["add_generation_prompt"] = add_generation_prompt;
  for (const auto& [k, v] : tmpl.special_tokens.items()) ctx[k] = v;
  if (extra_kwargs.is_object())
    for (const auto& [k, v] : extra_kwargs.items()) ctx[k] = v;
  return ctx;
}

namespace {

// Parsing costs more than rendering, and a server applies the same few templates
// to every request, so the most recently used parsed templates are kept.
std::shared_ptr<const ChatTemplate> parsed(const std::string& source) {
  static std::mutex mutex;
  static std::list<std::shared_ptr<const ChatTemplate>> recent;
  {
    std::lock_guard lock(mutex);
    for (auto it = recent.begin(); it != recent.end(); ++it) {
      if ((*it)->source() == source) {
        recent.splice(recent.begin(), recent, it);
        return recent.front();
      }
    }
  }
  auto t = std::make_shared<const ChatTemplate>(source);  // parse outside the lock
  std::lock_guard lock(mutex);
  recent.push_front(t);
  if (recent.size() > 8) recent.pop_back();
  return t;
}

}  // namespace

std::string apply_chat_template(const ModelChatTemplate& tmpl, const nlohmann::ordered_json& messages,
                                const nlohmann::ordered_json& tools, bool add_generation_prompt,
                                const nlohmann::ordered_json& extra_kwargs,
                                const jinja::RenderOptions& options) {
  return parsed(tmpl.source)->render(chat_template_context(tmpl, messages, tools, add_generation_prompt, extra_kwargs),
                  options);
}

}  // namespace nativelm::chat
