#include "chat/tool_call_parser.h"

#include <random>

#include "chat/jinja_value.h"
#include "chat/py_json.h"
#include "util/error.h"

namespace nativelm::chat {
namespace {

constexpr std::string_view kOpen = "<tool_call>";
constexpr std::string_view kClose = "</tool_call>";
constexpr std::string_view kPythonTag = "<|python_tag|>";

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

std::string random_id() {
  static constexpr char kChars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string id = "call_";
  for (int i = 0; i < 24; ++i) id += kChars[rng() % (sizeof(kChars) - 1)];
  return id;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// Arguments as the JSON text OpenAI clients expect; objects are written the way
// Python's json.dumps writes them, strings are taken as already-encoded JSON.
std::string arguments_text(const nlohmann::ordered_json& args) {
  if (args.is_string()) return args.get<std::string>();
  return py::json_dumps(jinja::Value::from_json(args), py::DumpsOptions{});
}

}  // namespace

ToolCallFormat detect_tool_call_format(std::string_view source) {
  if (source.find(kOpen) != std::string_view::npos) return ToolCallFormat::Hermes;
  if (source.find("<|python_tag|>") != std::string_view::npos ||
      (source.find("<|start_header_id|>") != std::string_view::npos &&
       source.find("\"parameters\"") != std::string_view::npos))
    return ToolCallFormat::Llama3Json;
  return ToolCallFormat::None;
}

ToolCallParser::ToolCallParser(ToolCallFormat format, std::function<std::string()> make_id)
    : format_(format), make_id_(make_id ? std::move(make_id) : random_id), state_(State::Start) {}

void ToolCallParser::emit_text(std::string_view text, OutputDelta& out) {
  size_t body = text.size();
  while (body > 0 && is_space(text[body - 1])) --body;
  if (body > 0) {
    out.content += pending_space_;
    out.content.append(text.substr(0, body));
    pending_space_.clear();
  }
  pending_space_.append(text.substr(body));
}

bool ToolCallParser::parse_call(std::string_view json_text, OutputDelta& out) {
  auto j = nlohmann::ordered_json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("name") || !j["name"].is_string()) return false;
  const char* key = j.contains("arguments") ? "arguments" : "parameters";
  nlohmann::ordered_json args = j.contains(key) ? j[key] : nlohmann::ordered_json::object();
  out.tool_calls.push_back({make_id_(), j["name"].get<std::string>(), arguments_text(args)});
  return true;
}

bool ToolCallParser::step(OutputDelta& out) {
  switch (state_) {
    case State::Start: {
      if (format_ != ToolCallFormat::Llama3Json) {
        state_ = State::Text;
        return true;
      }
      std::string_view rest = trim(buf_);
      if (rest.empty()) return false;
      if (rest.starts_with("{") || rest.starts_with(kPythonTag)) {
        state_ = State::HoldAll;
        return false;
      }
      if (kPythonTag.starts_with(rest)) return false;
      state_ = State::Text;
      return true;
    }
    case State::Text: {
      if (format_ != ToolCallFormat::Hermes) {
        emit_text(buf_, out);
        buf_.clear();
        return false;
      }
      size_t at = buf_.find(kOpen);
      if (at == std::string::npos) {
        size_t hold = partial_tag_suffix(buf_, kOpen);
        emit_text(std::string_view(buf_).substr(0, buf_.size() - hold), out);
        buf_.erase(0, buf_.size() - hold);
        return false;
      }
      emit_text(std::string_view(buf_).substr(0, at), out);
      buf_.erase(0, at + kOpen.size());
      state_ = State::InCall;
      return true;
    }
    case State::InCall: {
      size_t at = buf_.find(kClose);
      if (at == std::string::npos) return false;
      std::string body = buf_.substr(0, at);
      buf_.erase(0, at + kClose.size());
      state_ = State::Text;
      if (parse_call(body, out)) {
        saw_call_ = true;
        pending_space_.clear();  // layout between calls is not content
      } else {
        emit_text(std::string(kOpen) + body + std::string(kClose), out);
      }
      return true;
    }
    case State::HoldAll: return false;
  }
  return false;
}

OutputDelta ToolCallParser::feed(std::string_view chunk) {
  OutputDelta out;
  buf_.append(chunk);
  while (step(out)) {
  }
  return out;
}

bool ToolCallParser::parse_llama(std::string_view text, OutputDelta& out) {
  text = trim(text);
  if (text.starts_with(kPythonTag)) text = trim(text.substr(kPythonTag.size()));
  OutputDelta calls;
  if (parse_call(text, calls)) {
    out.append(std::move(calls));
    return true;
  }
  // Several calls joined by ';' (Llama 3.2 writes them so).
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(';', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view part = trim(text.substr(start, end - start));
    if (!part.empty() && !parse_call(part, calls)) return false;
    start = end + 1;
  }
  if (calls.tool_calls.empty()) return false;
  out.append(std::move(calls));
  return true;
}

OutputDelta ToolCallParser::finish() {
  OutputDelta out;
  switch (state_) {
    case State::HoldAll:
      if (parse_llama(buf_, out)) saw_call_ = true;
      else out.content = buf_;
      break;
    case State::InCall:  // cut off before </tool_call>: show what the model wrote
      emit_text(std::string(kOpen) + buf_, out);
      break;
    default:
      emit_text(buf_, out);
  }
  buf_.clear();
  if (!saw_call_) out.content += pending_space_;
  pending_space_.clear();
  return out;
}

}  // namespace nativelm::chat
