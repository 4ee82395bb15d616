#include "server/chat_prompt.h"

#include <fmt/format.h>

#include <fstream>
#include <sstream>

#include "io/json_file.h"
#include "server/api_error.h"
#include "server/json_fields.h"
#include "util/log.h"

namespace nativelm::server {

namespace {

// OpenAI allows content as a list of parts; templates written for plain
// strings need the text parts joined.
json flatten_content(const json& content, size_t index) {
  if (!content.is_array()) return content;
  std::string text;
  for (const auto& part : content) {
    if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") || !part["text"].is_string())
      bad_param(fmt::format("messages[{}].content", index),
                "only text content parts ({\"type\": \"text\", \"text\": ...}) are supported");
    text += part["text"].get<std::string>();
  }
  return text;
}

// Templates write tool call arguments themselves (`arguments | tojson`) and
// test the content with string operators, while OpenAI clients send the
// arguments as a JSON string and null content beside the calls.
void prepare_tool_calls(nlohmann::ordered_json& message, const std::string& where) {
  auto calls = message.find("tool_calls");
  if (calls == message.end() || calls->is_null()) return;
  if (!calls->is_array())
    bad_param(where + ".tool_calls", fmt::format("{}.tool_calls must be a list of tool call objects", where));
  if (!message.contains("content") || message["content"].is_null()) message["content"] = "";
  for (auto& call : *calls) {
    if (!call.is_object())
      bad_param(where + ".tool_calls", fmt::format("each of {}.tool_calls must be an object", where));
    auto fn = call.find("function");
    if (fn == call.end() || !fn->is_object()) continue;
    auto args = fn->find("arguments");
    if (args == fn->end() || !args->is_string()) continue;
    auto parsed = nlohmann::ordered_json::parse(args->get<std::string>(), nullptr, /*allow_exceptions=*/false);
    if (parsed.is_object()) *args = std::move(parsed);  // anything else reaches the template as sent
  }
}

// Validated on `body`; what reaches the template comes from `ordered`, the
// same body with its key order kept.
nlohmann::ordered_json checked_messages(const json& body, const nlohmann::ordered_json& ordered) {
  auto it = body.find("messages");
  if (it == body.end() || it->is_null()) bad_param("messages", "'messages' is required");
  if (!it->is_array() || it->empty())
    bad_param("messages", "'messages' must be a non-empty list of {\"role\", \"content\"} objects");
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (size_t i = 0; i < it->size(); ++i) {
    const json& m = (*it)[i];
    const std::string where = fmt::format("messages[{}]", i);
    if (!m.is_object()) bad_param(where, fmt::format("{} must be an object, got {}", where, json_type_name(m)));
    if (!m.contains("role") || !m["role"].is_string()) bad_param(where + ".role", where + " needs a string 'role'");
    nlohmann::ordered_json message = ordered["messages"][i];
    if (m.contains("content")) {
      const json& c = m["content"];
      if (!c.is_string() && !c.is_null() && !c.is_array())
        bad_param(where + ".content", fmt::format("{}.content must be a string, a list of parts or null, got {}",
                                                  where, json_type_name(c)));
      message["content"] = nlohmann::ordered_json(flatten_content(c, i));
    }
    prepare_tool_calls(message, where);
    out.push_back(std::move(message));
  }
  return out;
}

nlohmann::ordered_json tools_for_template(const json& body, const nlohmann::ordered_json& ordered) {
  auto it = body.find("tools");
  if (it == body.end() || it->is_null()) return nullptr;
  if (!it->is_array()) bad_param("tools", "'tools' must be a list of tool objects");
  for (const auto& t : *it)
    if (!t.is_object()) bad_param("tools", "each tool must be an object");
  auto choice = body.find("tool_choice");
  if (choice != body.end() && choice->is_string() && *choice == "none") return nullptr;
  return ordered["tools"];
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read chat template file '{}'", path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// bos_token / eos_token / ... from tokenizer_config.json (a string or an
// AddedToken object with "content").
void read_special_tokens(const std::filesystem::path& model_dir, chat::ModelChatTemplate& t) {
  const auto path = model_dir / "tokenizer_config.json";
  if (!std::filesystem::exists(path)) return;
  const auto config = io::read_json_file(path);
  for (const char* key : {"bos_token", "eos_token", "unk_token", "pad_token"}) {
    auto it = config.find(key);
    if (it == config.end()) continue;
    std::optional<std::string> text;
    if (it->is_string()) text = it->get<std::string>();
    else if (it->is_object() && it->contains("content") && (*it)["content"].is_string())
      text = (*it)["content"].get<std::string>();
    if (!text) continue;
    t.special_tokens[key] = *text;
    if (std::string(key) == "bos_token") t.bos_token = text;
    if (std::string(key) == "eos_token") t.eos_token = text;
  }
}

}  // namespace

ChatPrompt chat_prompt(const json& body, const nlohmann::ordered_json& ordered_body, const ServerContext& ctx) {
  const auto messages = checked_messages(body, ordered_body);
  const auto tools = tools_for_template(body, ordered_body);
  if (!ctx.chat_template)
    throw ApiError(400, "This model has no chat template, so it cannot serve chat completions; start the server "
                        "with --chat-template FILE or use /v1/completions");
  nlohmann::ordered_json kwargs = nlohmann::ordered_json::object();
  if (get_object(body, "chat_template_kwargs")) kwargs = ordered_body["chat_template_kwargs"];
  std::string prompt;
  try {
    prompt = chat::apply_chat_template(*ctx.chat_template, messages, tools, /*add_generation_prompt=*/true, kwargs);
  } catch (const Error& e) {
    bad_param("messages", fmt::format("the chat template rejected the messages: {}", e.what()));
  }
  // transformers tokenizes a rendered chat without adding special tokens: the
  // template already wrote them.
  auto ids = ctx.model.tokenizer->encode(prompt, /*add_special_tokens=*/false);
  if (ids.empty()) bad_param("messages", "the chat template produced an empty prompt");
  return {std::move(prompt), std::move(ids)};
}

std::optional<chat::ModelChatTemplate> load_chat_template(const std::filesystem::path& model_dir,
                                                          const std::string& file) {
  if (file.empty()) {
    try {
      return chat::load_model_chat_template(model_dir);
    } catch (const Error& e) {
      log::warn("chat completions are disabled: {}", e.what());
      return std::nullopt;  // no template: chat requests get a 400
    }
  }
  chat::ModelChatTemplate t;
  read_special_tokens(model_dir, t);
  t.source = read_text_file(file);
  chat::ChatTemplate check(t.source);  // a syntax error should stop the server at start
  return t;
}

}  // namespace nativelm::server
