// Finding a model's chat template and special tokens on disk, with the same
// precedence transformers uses.
#include <fstream>
#include <sstream>

#include "chat/chat_template.h"
#include "util/error.h"

namespace nativelm::chat {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) fail("cannot read {}", p.string());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

json read_json(const fs::path& p) {
  try {
    return json::parse(read_text(p));
  } catch (const json::exception& e) {
    fail("{} is not valid JSON: {}", p.string(), e.what());
  }
}

// tokenizer_config.json's chat_template: a string or [{"name", "template"}...].
std::string pick_template(const json& value, const fs::path& where) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_array()) {
    std::string names;
    for (const auto& t : value) {
      if (!t.is_object() || !t.contains("name") || !t.contains("template") || !t["template"].is_string())
        fail("{}: chat_template list entries need 'name' and 'template'", where.string());
      if (t["name"] == "default") return t["template"].get<std::string>();
      names += (names.empty() ? "" : ", ") + t["name"].dump();
    }
    fail("{} has several chat templates ({}) and none is named \"default\"", where.string(), names);
  }
  fail("{}: chat_template must be a string or a list of named templates", where.string());
}

// A special token is written as "text" or as {"content": "text", ...}.
std::optional<std::string> token_text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string())
    return v["content"].get<std::string>();
  return std::nullopt;
}

void read_special_tokens(const json& config, ModelChatTemplate& out) {
  for (const char* name : {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token",
                           "cls_token", "mask_token"}) {
    if (!config.contains(name)) continue;
    if (auto text = token_text(config[name])) out.special_tokens[name] = *text;
  }
  if (config.contains("additional_special_tokens") && config["additional_special_tokens"].is_array()) {
    json extra = json::array();
    for (const auto& t : config["additional_special_tokens"])
      if (auto text = token_text(t)) extra.push_back(*text);
    out.special_tokens["additional_special_tokens"] = extra;
  }
  if (out.special_tokens.contains("bos_token")) out.bos_token = out.special_tokens["bos_token"].get<std::string>();
  if (out.special_tokens.contains("eos_token")) out.eos_token = out.special_tokens["eos_token"].get<std::string>();
}

}  // namespace

ModelChatTemplate load_model_chat_template(const fs::path& model_dir) {
  if (!fs::is_directory(model_dir)) fail("model folder {} does not exist", model_dir.string());
  ModelChatTemplate out;
  fs::path config_path = model_dir / "tokenizer_config.json";
  json config = fs::exists(config_path) ? read_json(config_path) : json::object();
  if (!config.is_object()) fail("{} must hold a JSON object", config_path.string());
  read_special_tokens(config, out);
  if (fs::exists(model_dir / "chat_template.jinja")) {
    out.source = read_text(model_dir / "chat_template.jinja");
  } else if (config.contains("chat_template") && !config["chat_template"].is_null()) {
    out.source = pick_template(config["chat_template"], config_path);
  } else if (fs::exists(model_dir / "chat_template.json")) {
    json j = read_json(model_dir / "chat_template.json");
    if (!j.is_object() || !j.contains("chat_template"))
      fail("{} has no \"chat_template\" entry", (model_dir / "chat_template.json").string());
    out.source = pick_template(j["chat_template"], model_dir / "chat_template.json");
  } else {
    fail("model {} has no chat template (looked for chat_template.jinja, tokenizer_config.json's "
         "\"chat_template\" and chat_template.json); pass a template explicitly",
         model_dir.string());
  }
  return out;
}

}  // namespace nativelm::chat
