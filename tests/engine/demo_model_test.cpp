// The bundled demo model (models/demo-shakespeare, trained by
// tools/train_demo_model.py) against what transformers recorded for it.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/generator.h"
#include "engine/kv_pool.h"
#include "engine/perplexity.h"
#include "io/json_file.h"

namespace nativelm {
namespace {

namespace fs = std::filesystem;

const fs::path kDemo = fs::path(NATIVELM_SOURCE_DIR) / "models" / "demo-shakespeare";

TEST(DemoModel, GreedySamplesEqualTransformers) {
  auto m = LoadedModel::load(kDemo.string(), {});
  const auto ref = io::read_json_file(kDemo / "reference.json");
  KvPoolShape shape{m->config.num_layers, m->config.kv_dim(), m->model->kv_dtype(), 16, 0};
  shape.num_pages = static_cast<int32_t>(m->config.max_position_embeddings / shape.page_size);
  KvPool pool(*m->backend, shape);
  ModelRunner runner(*m->model, pool);
  ASSERT_EQ(ref["samples"].size(), 3u);
  for (const auto& s : ref["samples"]) {
    const auto prompt = m->tokenizer->encode(s["prompt"].get<std::string>(), true);
    EXPECT_EQ(prompt, s["prompt_ids"].get<std::vector<int32_t>>());
    const auto expected = s["generated_ids"].get<std::vector<int32_t>>();
    SamplingParams p;
    p.temperature = 0;
    p.max_new_tokens = static_cast<int32_t>(expected.size());
    p.ignore_eos = true;
    auto out = generate(*m, runner, prompt, p);
    EXPECT_EQ(out.tokens, expected) << s["prompt"];
    EXPECT_EQ(out.text, s["generated_text"].get<std::string>()) << s["prompt"];
  }
}

TEST(DemoModel, HeldOutPerplexityAgreesWithTransformers) {
  auto m = LoadedModel::load(kDemo.string(), {});
  const auto ref = io::read_json_file(kDemo / "reference.json");
  const auto& held = ref["heldout"];
  std::ifstream in(fs::path(NATIVELM_SHARED_DIR) / "corpora" / "tinyshakespeare.txt", std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();  // plain ASCII: character offsets are byte offsets
  const auto begin = held["char_span"][0].get<size_t>(), end = held["char_span"][1].get<size_t>();
  ASSERT_EQ(text.size(), ref["corpus"]["chars"].get<size_t>());
  const auto ids = m->tokenizer->encode(text.substr(begin, end - begin), false);
  const auto r = perplexity(*m, ids, held["window_tokens"].get<int32_t>());
  EXPECT_EQ(r.predicted_tokens, held["predicted_tokens"].get<int64_t>());
  EXPECT_EQ(r.windows, held["windows"].get<int64_t>());
  const double want = held["ppl"].get<double>();
  // Three significant digits: both round to the same value at 3 digits' precision.
  const double digit = std::pow(10.0, std::floor(std::log10(want)) - 2);
  EXPECT_EQ(std::round(r.perplexity() / digit), std::round(want / digit))
      << "nativelm " << r.perplexity() << " vs transformers " << want;
  EXPECT_NEAR(r.perplexity(), want, want * 1e-3);
}

}  // namespace
}  // namespace nativelm
