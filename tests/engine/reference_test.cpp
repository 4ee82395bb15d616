// nativelm against transformers: the tiny random checkpoints in tests/data
// (every architecture and dtype, made by tools/make_reference_models.py) and
// the real stories260K model in ../shared.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>

#include "backend/backend.h"
#include "engine/generator.h"
#include "engine/kv_pool.h"
#include "engine/loaded_model.h"
#include "engine/model_runner.h"
#include "io/json_file.h"
#include "engine/reference_dirs.h"

namespace nativelm {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

using test::reference_dirs;

struct Checkpoint {
  ModelConfig config;
  std::unique_ptr<Backend> backend = make_backend("cpu");
  std::unique_ptr<io::WeightStore> weights;
  std::unique_ptr<Transformer> model;
  std::unique_ptr<KvPool> pool;
  std::unique_ptr<ModelRunner> runner;

  // page_size is small so that prompts span several pages.
  explicit Checkpoint(const fs::path& dir, std::optional<DType> kv_dtype = {}, int32_t page_size = 4) {
    config = load_model_config(dir);
    weights = std::make_unique<io::WeightStore>(dir);
    model = std::make_unique<Transformer>(config, *weights, *backend);
    KvPoolShape shape{config.num_layers, config.kv_dim(), kv_dtype.value_or(model->kv_dtype()), page_size, 64};
    pool = std::make_unique<KvPool>(*backend, shape);
    runner = std::make_unique<ModelRunner>(*model, *pool);
  }
};

class ReferenceModels : public ::testing::TestWithParam<fs::path> {};

// Logits within 1e-4 relative to the logit scale (f32 math and an f32 KV
// cache on both sides; only the order of float additions differs), greedy
// tokens exactly. The references upcast half-precision weights to f32.
TEST_P(ReferenceModels, LogitsAndGreedyTokensMatchTransformers) {
  const fs::path dir = GetParam();
  Checkpoint ck(dir, DType::F32);
  const json ref = io::read_json_file(dir / "reference.json");
  const json& cases = ref.contains("prompts") ? ref["prompts"] : ref;
  ASSERT_FALSE(cases.empty());
  for (const auto& c : cases) {
    const auto prompt = c["prompt_ids"].get<std::vector<int32_t>>();
    const auto expected_logits = c["last_logits"].get<std::vector<float>>();
    const auto expected_ids = c["greedy_ids"].get<std::vector<int32_t>>();
    SeqKv seq;
    SeqKv* seqs[] = {&seq};
    std::vector<std::vector<int32_t>> tokens = {prompt};
    std::vector<float> logits;
    ck.runner->step(seqs, tokens, logits);
    ASSERT_EQ(logits.size(), expected_logits.size());
    float scale = 1.0f, worst = 0.0f;
    for (float v : expected_logits) scale = std::max(scale, std::fabs(v));
    for (size_t i = 0; i < logits.size(); ++i) worst = std::max(worst, std::fabs(logits[i] - expected_logits[i]));
    EXPECT_LE(worst, 1e-4f * scale) << dir.filename() << " prompt of " << prompt.size() << " tokens";
    std::vector<int32_t> got;
    for (size_t i = 0; i < expected_ids.size(); ++i) {
      got.push_back(argmax(logits));
      if (i + 1 < expected_ids.size()) {
        tokens[0] = {got.back()};
        ck.runner->step(seqs, tokens, logits);
      }
    }
    EXPECT_EQ(got, expected_ids) << dir.filename() << " prompt of " << prompt.size() << " tokens";
    ck.runner->release(seq);
  }
  EXPECT_EQ(ck.pool->free_pages(), ck.pool->total_pages());
}

// Several prompts in one batch give what each gives alone, with the KV cache
// in its default dtype (bf16 for bf16 checkpoints).
TEST_P(ReferenceModels, BatchedPrefillAndDecodeMatchSingle) {
  const fs::path dir = GetParam();
  Checkpoint ck(dir);
  const json ref = io::read_json_file(dir / "reference.json");
  const json& cases = ref.contains("prompts") ? ref["prompts"] : ref;
  std::vector<SeqKv> seqs(cases.size());
  std::vector<SeqKv*> ptrs;
  std::vector<std::vector<int32_t>> tokens;
  for (size_t i = 0; i < cases.size(); ++i) {
    ptrs.push_back(&seqs[i]);
    tokens.push_back(cases[i]["prompt_ids"].get<std::vector<int32_t>>());
  }
  const int64_t vocab = ck.config.vocab_size;
  std::vector<float> logits;
  std::vector<std::vector<int32_t>> got(cases.size());
  for (int step = 0; step < 16; ++step) {
    ck.runner->step(ptrs, tokens, logits);
    for (size_t i = 0; i < cases.size(); ++i) {
      got[i].push_back(argmax(std::span(logits).subspan(i * vocab, vocab)));
      tokens[i] = {got[i].back()};
    }
  }
  for (size_t i = 0; i < cases.size(); ++i)
    EXPECT_EQ(got[i], cases[i]["greedy_ids"].get<std::vector<int32_t>>()) << dir.filename() << " case " << i;
  for (auto& s : seqs) ck.runner->release(s);
}

INSTANTIATE_TEST_SUITE_P(TestData, ReferenceModels, ::testing::ValuesIn(reference_dirs()),
                         [](const auto& info) { return info.param.filename().string(); });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(ReferenceModels);

TEST(ReferenceModels, TestDataIsPresent) {
  // The parameterised suite above would silently run nothing without data.
  EXPECT_GE(reference_dirs().size(), 5u);
}

const fs::path kStories = fs::path(NATIVELM_SHARED_DIR) / "models" / "stories260K";

TEST(Stories260K, GreedyTokensTextAndLogprobsMatchTransformers) {
  auto m = LoadedModel::load(kStories.string(), {});
  const json ref = io::read_json_file(kStories / "reference.json");
  ASSERT_FALSE(ref.empty());
  KvPoolShape shape{m->config.num_layers, m->config.kv_dim(), m->model->kv_dtype(), 16, 64};
  KvPool pool(*m->backend, shape);
  ModelRunner runner(*m->model, pool);
  for (const auto& c : ref) {
    const auto prompt = m->tokenizer->encode(c["prompt"].get<std::string>(), true);
    ASSERT_EQ(prompt, c["prompt_ids"].get<std::vector<int32_t>>());
    // Log-probabilities of the first generated token.
    SeqKv seq;
    SeqKv* seqs[] = {&seq};
    std::vector<std::vector<int32_t>> tokens = {prompt};
    std::vector<float> logits;
    runner.step(seqs, tokens, logits);
    runner.release(seq);
    const float top = *std::max_element(logits.begin(), logits.end());
    double sum = 0;
    for (float v : logits) sum += std::exp(static_cast<double>(v - top));
    const auto ids = c["next_top5_ids"].get<std::vector<int32_t>>();
    const auto lps = c["next_top5_logprobs"].get<std::vector<double>>();
    for (size_t i = 0; i < ids.size(); ++i)
      EXPECT_NEAR(logits[ids[i]] - top - std::log(sum), lps[i], 1e-4);

    SamplingParams p;
    p.temperature = 0;
    const auto expected = c["greedy_ids"].get<std::vector<int32_t>>();
    p.max_new_tokens = static_cast<int32_t>(expected.size());
    std::string streamed;
    auto out = generate(*m, runner, prompt, p, [&](std::string_view t) { streamed += t; });
    EXPECT_EQ(out.tokens, expected);
    EXPECT_EQ(out.text, c["greedy_text"].get<std::string>());
    EXPECT_EQ(streamed, out.text);
  }
  EXPECT_EQ(pool.free_pages(), pool.total_pages());
}

TEST(Stories260K, StopStringEndsGenerationEarly) {
  auto m = LoadedModel::load(kStories.string(), {});
  KvPoolShape shape{m->config.num_layers, m->config.kv_dim(), m->model->kv_dtype(), 16, 64};
  KvPool pool(*m->backend, shape);
  ModelRunner runner(*m->model, pool);
  SamplingParams p;
  p.temperature = 0;
  p.max_new_tokens = 48;
  p.stop = {"Lily"};
  const auto prompt = m->tokenizer->encode("Once upon a time", true);
  auto out = generate(*m, runner, prompt, p);
  EXPECT_EQ(out.text, ", there was a little girl named ");
  EXPECT_EQ(out.finish_reason, "stop");
  EXPECT_EQ(out.matched_stop, "Lily");
}

TEST(Stories260K, SeededSamplingIsReproducible) {
  auto m = LoadedModel::load(kStories.string(), {});
  KvPoolShape shape{m->config.num_layers, m->config.kv_dim(), m->model->kv_dtype(), 16, 64};
  KvPool pool(*m->backend, shape);
  ModelRunner runner(*m->model, pool);
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_p = 0.9f;
  p.seed = 5;
  p.max_new_tokens = 32;
  const auto prompt = m->tokenizer->encode("Lily", true);
  auto a = generate(*m, runner, prompt, p);
  auto b = generate(*m, runner, prompt, p);
  EXPECT_EQ(a.tokens, b.tokens);
  p.seed = 6;
  auto c = generate(*m, runner, prompt, p);
  EXPECT_NE(a.tokens, c.tokens);
}

}  // namespace
}  // namespace nativelm
