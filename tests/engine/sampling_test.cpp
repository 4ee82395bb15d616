#include "engine/sampling.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>

#include "util/error.h"

namespace nativelm {
namespace {

std::vector<float> logits_of(std::vector<float> probs) {
  for (auto& p : probs) p = std::log(p);
  return probs;
}

TEST(Sampling, GreedyTakesFirstMaximum) {
  SamplingParams p;
  p.temperature = 0;
  Sampler s(p);
  std::vector<float> l = {0.1f, 3.0f, 3.0f, -1.0f};
  EXPECT_EQ(s.sample(l, {}, {}), 1);
}

TEST(Sampling, SameSeedSameTokens) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.seed = 1234;
  Sampler a(p), b(p);
  for (int i = 0; i < 50; ++i) {
    auto la = logits_of({0.2f, 0.3f, 0.1f, 0.4f});
    auto lb = la;
    EXPECT_EQ(a.sample(la, {}, {}), b.sample(lb, {}, {}));
  }
}

TEST(Sampling, FrequenciesFollowProbabilities) {
  SamplingParams p;
  p.seed = 7;
  Sampler s(p);
  std::map<int, int> counts;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    auto l = logits_of({0.5f, 0.3f, 0.2f});
    ++counts[s.sample(l, {}, {})];
  }
  EXPECT_NEAR(counts[0] / double(n), 0.5, 0.02);
  EXPECT_NEAR(counts[1] / double(n), 0.3, 0.02);
  EXPECT_NEAR(counts[2] / double(n), 0.2, 0.02);
}

TEST(Sampling, TopKTopPMinPNarrowTheChoice) {
  auto draw = [](SamplingParams p) {
    p.seed = 99;
    Sampler s(p);
    std::set<int> seen;
    for (int i = 0; i < 2000; ++i) {
      auto l = logits_of({0.4f, 0.3f, 0.2f, 0.1f});
      seen.insert(s.sample(l, {}, {}));
    }
    return seen;
  };
  SamplingParams k;
  k.top_k = 2;
  EXPECT_EQ(draw(k), (std::set<int>{0, 1}));
  SamplingParams tp;
  tp.top_p = 0.65f;  // 0.4 + 0.3 reaches it
  EXPECT_EQ(draw(tp), (std::set<int>{0, 1}));
  SamplingParams mp;
  mp.min_p = 0.45f;  // keeps p >= 0.18
  EXPECT_EQ(draw(mp), (std::set<int>{0, 1, 2}));
  SamplingParams all;
  EXPECT_EQ(draw(all), (std::set<int>{0, 1, 2, 3}));
}

TEST(Sampling, RepetitionPenaltyAsTransformers) {
  SamplingParams p;
  p.temperature = 0;
  p.repetition_penalty = 2.0f;
  Sampler s(p);
  std::vector<float> l = {4.0f, 3.0f, -1.0f};
  std::vector<int32_t> prompt = {0, 2};
  EXPECT_EQ(s.sample(l, prompt, {}), 1);
  EXPECT_FLOAT_EQ(l[0], 2.0f);   // positive logits are divided
  EXPECT_FLOAT_EQ(l[2], -2.0f);  // negative ones multiplied
}

TEST(Sampling, FrequencyAndPresencePenaltiesCountOutputOnly) {
  SamplingParams p;
  p.temperature = 0;
  p.frequency_penalty = 0.5f;
  p.presence_penalty = 0.25f;
  Sampler s(p);
  std::vector<float> l = {5.0f, 4.0f, 0.0f};
  std::vector<int32_t> prompt = {1, 1, 1};
  std::vector<int32_t> output = {0, 0};
  EXPECT_EQ(s.sample(l, prompt, output), 1);
  EXPECT_FLOAT_EQ(l[0], 5.0f - 2 * 0.5f - 0.25f);
  EXPECT_FLOAT_EQ(l[1], 4.0f);
}

TEST(Sampling, ValidationNamesTheParameter) {
  SamplingParams p;
  p.top_p = 0;
  EXPECT_THROW(p.validate(), Error);
  p = {};
  p.temperature = -1;
  EXPECT_THROW(p.validate(), Error);
  p = {};
  p.min_new_tokens = 10;
  p.max_new_tokens = 5;
  EXPECT_THROW(p.validate(), Error);
  p = {};
  EXPECT_NO_THROW(p.validate());
}

TEST(Sampling, GenerationConfigDefaults) {
  GenerationDefaults d;
  d.do_sample = false;
  d.temperature = 0.7f;
  EXPECT_TRUE(d.base_params().greedy());
  d.do_sample = true;
  d.top_k = 20;
  auto p = d.base_params();
  EXPECT_FLOAT_EQ(p.temperature, 0.7f);
  EXPECT_EQ(p.top_k, 20);
}

}  // namespace
}  // namespace nativelm
