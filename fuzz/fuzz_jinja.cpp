// libFuzzer target: any bytes as a chat template, rendered against a small
// conversation. Errors are fine; crashes, hangs, leaks and UB are findings.
#include <cstddef>
#include <cstdint>
#include <string>

#include "chat/chat_template.h"
#include "util/error.h"

namespace {

const nlohmann::ordered_json& context() {
  static const auto ctx = nlohmann::ordered_json::parse(R"({
    "messages": [
      {"role": "system", "content": "Be brief."},
      {"role": "user", "content": "Weather in Paris? ü 🙂"},
      {"role": "assistant", "content": "", "reasoning_content": "look it up",
       "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
      {"role": "tool", "content": "{\"temp\": 21}"},
      {"role": "assistant", "content": "<think>\nok\n</think>\n\n21 degrees."}
    ],
    "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
    "add_generation_prompt": true, "bos_token": "<s>", "eos_token": "</s>", "enable_thinking": false
  })");
  return ctx;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  nativelm::chat::jinja::RenderOptions options;
  options.limits.max_output_bytes = 1 << 20;
  options.limits.max_steps = 200000;
  options.limits.max_call_depth = 32;
  try {
    nativelm::chat::ChatTemplate tmpl(std::string(reinterpret_cast<const char*>(data), size));
    tmpl.render(context(), options);
  } catch (const nativelm::Error&) {
  }
  return 0;
}
