// `nativelm chat-template`: prints what a model's chat template makes of a
// conversation, exactly the prompt the engine would tokenize.
#include <fmt/format.h>

#include <fstream>
#include <sstream>

#include "chat/chat_template.h"
#include "cli/commands.h"
#include "io/model_path.h"
#include "util/error.h"

namespace nativelm::cli {
namespace {

using json = nlohmann::ordered_json;

json read_json_file(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read {} file {}", what, path);
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return json::parse(ss.str());
  } catch (const json::exception& e) {
    fail("{} file {} is not valid JSON: {}", what, path, e.what());
  }
}

struct Options {
  std::string model_path, messages_file, tools_file, kwargs = "{}";
  bool add_generation_prompt = false;
};

void run(const Options& o) {
  auto tmpl = chat::load_model_chat_template(io::resolve_model_path(o.model_path));
  json messages = read_json_file(o.messages_file, "messages");
  // Accept an OpenAI request body too: {"messages": [...], "tools": [...]}.
  json tools = o.tools_file.empty() ? json() : read_json_file(o.tools_file, "tools");
  if (messages.is_object() && messages.contains("messages")) {
    if (tools.is_null() && messages.contains("tools")) tools = messages["tools"];
    messages = json(messages["messages"]);
  }
  json kwargs;
  try {
    kwargs = json::parse(o.kwargs);
  } catch (const json::exception& e) {
    fail("--chat-template-kwargs is not valid JSON: {}", e.what());
  }
  fmt::print("{}", chat::apply_chat_template(tmpl, messages, tools, o.add_generation_prompt, kwargs));
}

}  // namespace

void register_chat_template(CLI::App& app) {
  auto opts = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("chat-template", "Print a conversation as the model's chat template renders it");
  cmd->add_option("--model-path", opts->model_path, "Model folder or Hugging Face repo id")->required();
  cmd->add_option("--messages", opts->messages_file, "JSON file: a list of messages (or a request body)")->required();
  cmd->add_option("--tools", opts->tools_file, "JSON file: a list of tool definitions");
  cmd->add_flag("--add-generation-prompt", opts->add_generation_prompt, "End with the assistant turn's header");
  cmd->add_option("--chat-template-kwargs", opts->kwargs, "Extra template variables as a JSON object, e.g. '{\"enable_thinking\": false}'");
  cmd->callback([opts] { run(*opts); });
}

}  // namespace nativelm::cli
