// Continuous batching on the real stories260K model: whatever the batch looks
// like (joins, chunked prefill, retraction), each request gets exactly the
// tokens it gets alone, with overlap scheduling off and on (on the CPU the
// overlapped form takes the same paths, only without the gain).
#include "engine/scheduler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <random>

#include "engine/continuation.h"
#include "engine/generator.h"
#include "util/error.h"

namespace nativelm {
namespace {

const std::string kStories = (std::filesystem::path(NATIVELM_SHARED_DIR) / "models" / "stories260K").string();

struct Collected {
  std::vector<int32_t> tokens;
  std::string text, finish_reason;
  std::optional<std::string> matched_stop;
  int64_t cached_tokens = 0;
};

Collected collect(RequestStream& s) {
  Collected c;
  RequestUpdate u;
  while (s.wait(u)) {
    for (const auto& t : u.tokens) c.tokens.push_back(t.id);
    c.text += u.text;
    if (u.finished) {
      c.finish_reason = u.finish_reason;
      c.matched_stop = u.matched_stop;
      c.cached_tokens = u.cached_tokens;
    }
  }
  return c;
}

class SchedulerTest : public ::testing::TestWithParam<SchedulerOptions::Overlap> {
 protected:
  static SchedulerOptions opts() {
    SchedulerOptions o;
    o.overlap = GetParam();
    return o;
  }
  static void SetUpTestSuite() { model_ = LoadedModel::load(kStories, {}).release(); }
  static void TearDownTestSuite() { delete model_; }

  // Greedy output of one prompt, alone, through the plain generator.
  GenerationOutput alone(const std::string& prompt, int32_t max_new) {
    SamplingParams p;
    p.temperature = 0;
    p.max_new_tokens = max_new;
    return alone(prompt, p);
  }
  GenerationOutput alone(const std::string& prompt, const SamplingParams& p) {
    KvPoolShape shape{model_->config.num_layers, model_->config.kv_dim(), model_->model->kv_dtype(), 16, 64};
    KvPool pool(*model_->backend, shape);
    ModelRunner runner(*model_->model, pool);
    return generate(*model_, runner, model_->tokenizer->encode(prompt, true), p);
  }
  RequestInput greedy(const std::string& prompt, int32_t max_new) {
    RequestInput in;
    in.prompt = model_->tokenizer->encode(prompt, true);
    in.params.temperature = 0;
    in.params.max_new_tokens = max_new;
    return in;
  }
  static LoadedModel* model_;
};
LoadedModel* SchedulerTest::model_ = nullptr;

const std::vector<std::string> kPrompts = {
    "Once upon a time", "Lily and Tom went to the park. They", "The dog", "One day, a little bird",
    "Sam had a red ball and", "Mom said", "The sun was hot and the children", "A big fish"};

void expect_all_match_alone(SchedulerTest* t, Scheduler& s, int32_t max_new,
                            const std::function<GenerationOutput(const std::string&)>& alone,
                            const std::function<RequestInput(const std::string&)>& make) {
  // The references run first: the model is not shared between threads.
  std::vector<GenerationOutput> wanted;
  for (const auto& p : kPrompts) wanted.push_back(alone(p));
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (const auto& p : kPrompts) streams.push_back(s.submit(make(p)));
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    auto got = collect(*streams[i]);
    const auto& want = wanted[i];
    EXPECT_EQ(got.tokens, want.tokens) << kPrompts[i];
    EXPECT_EQ(got.text, want.text) << kPrompts[i];
    EXPECT_EQ(got.finish_reason, want.finish_reason) << kPrompts[i];
  }
}

TEST_P(SchedulerTest, ConcurrentRequestsMatchSingleRuns) {
  SchedulerOptions o = opts();
  o.chunked_prefill_size = 5;  // prompts prefill over several steps, beside decodes
  Scheduler s(*model_, o);
  expect_all_match_alone(this, s, 40, [&](const std::string& p) { return alone(p, 40); },
                         [&](const std::string& p) { return greedy(p, 40); });
  auto st = s.stats();
  EXPECT_EQ(st.kv_pages_free, st.kv_pages_total);
  EXPECT_EQ(st.requests_finished, static_cast<int64_t>(kPrompts.size()));
  // On: most steps were queued while the one before was still unseen.
  if (GetParam() == SchedulerOptions::Overlap::kOn) {
    EXPECT_GT(st.overlapped_steps, 30);
  } else {
    EXPECT_EQ(st.overlapped_steps, 0);
  }
}

TEST_P(SchedulerTest, SmallPoolRetractsAndStillMatches) {
  SchedulerOptions o = opts();
  o.page_size = 4;
  o.max_total_tokens = 96;  // far less than 8 requests need at once
  Scheduler s(*model_, o);
  expect_all_match_alone(this, s, 40, [&](const std::string& p) { return alone(p, 40); },
                         [&](const std::string& p) { return greedy(p, 40); });
  auto st = s.stats();
  EXPECT_GT(st.retractions, 0);
  EXPECT_EQ(st.kv_pages_free, st.kv_pages_total);
}

TEST_P(SchedulerTest, PrefixCacheSharesPagesAndKeepsOutputs) {
  const std::string shared = "Lily and Tom went to the park. They saw a big dog and a little cat. The dog was";
  const std::vector<std::string> prompts = {shared + " happy", shared + " sad and the cat", shared + " happy"};
  std::vector<GenerationOutput> wanted;
  for (const auto& p : prompts) wanted.push_back(alone(p, 24));
  SchedulerOptions o = opts();
  o.page_size = 4;
  Scheduler s(*model_, o);
  std::vector<Collected> got;
  for (const auto& p : prompts) got.push_back(collect(*s.submit(greedy(p, 24))));  // one after another
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(got[i].tokens, wanted[i].tokens) << prompts[i];
    EXPECT_EQ(got[i].text, wanted[i].text) << prompts[i];
  }
  const int64_t prompt_len = static_cast<int64_t>(model_->tokenizer->encode(prompts[2], true).size());
  EXPECT_EQ(got[0].cached_tokens, 0);
  EXPECT_GE(got[1].cached_tokens, 16);               // the shared prefix, in whole pages
  EXPECT_EQ(got[2].cached_tokens, (prompt_len - 1) / 4 * 4);  // all but the last token's page
  auto st = s.stats();
  EXPECT_GT(st.kv_pages_cached, 0);
  EXPECT_EQ(st.kv_pages_free, st.kv_pages_total);  // cached but unused pages are reusable
  s.flush_cache();
  collect(*s.submit(greedy("The dog", 2)));  // a step after the flush
  EXPECT_EQ(s.stats().kv_pages_cached, 0);
}

TEST_P(SchedulerTest, PrefixCacheCanBeDisabled) {
  SchedulerOptions o = opts();
  o.prefix_cache = false;
  Scheduler s(*model_, o);
  auto first = collect(*s.submit(greedy("Once upon a time there was a little girl named Lily. She", 8)));
  auto again = collect(*s.submit(greedy("Once upon a time there was a little girl named Lily. She", 8)));
  EXPECT_EQ(again.tokens, first.tokens);
  EXPECT_EQ(again.cached_tokens, 0);
  EXPECT_EQ(s.stats().kv_pages_cached, 0);
}

TEST_P(SchedulerTest, StopStringAndAbort) {
  Scheduler s(*model_, opts());
  auto in = greedy("Once upon a time", 48);
  in.params.stop = {"Lily"};
  auto c = collect(*s.submit(in));
  EXPECT_EQ(c.text, ", there was a little girl named ");
  EXPECT_EQ(c.finish_reason, "stop");
  EXPECT_EQ(c.matched_stop, "Lily");

  auto stream = s.submit(greedy("Once upon a time", 400));
  stream->cancel();
  auto aborted = collect(*stream);
  EXPECT_EQ(aborted.finish_reason, "abort");
  EXPECT_LT(aborted.tokens.size(), 400u);
}

TEST_P(SchedulerTest, RejectsRequestsThatCannotFit) {
  Scheduler s(*model_, opts());
  auto in = greedy("Once upon a time", 600);
  try {
    s.submit(in);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("exceed the model's context length of 512"));
  }
  in.prompt = {1, 99999};
  in.params.max_new_tokens = 4;
  EXPECT_THROW(s.submit(in), Error);
}

TEST_P(SchedulerTest, ShutdownAbortsRunningRequests) {
  auto s = std::make_unique<Scheduler>(*model_, opts());
  auto stream = s->submit(greedy("Once upon a time", 500 - 5));
  s->shutdown();
  auto c = collect(*stream);
  EXPECT_EQ(c.finish_reason, "abort");
}

TEST_P(SchedulerTest, GreedyAndHostSampledRequestsMix) {
  // Penalised requests depend on the tokens so far: while one runs, the
  // scheduler leaves overlap and comes back to it when it ends.
  std::vector<SamplingParams> params(kPrompts.size());
  for (size_t i = 0; i < params.size(); ++i) {
    params[i].temperature = 0;
    params[i].max_new_tokens = 12 + 6 * static_cast<int32_t>(i % 4);
    if (i % 3 == 1) {
      params[i].temperature = 0.8f;
      params[i].seed = 100 + i;
      params[i].presence_penalty = 0.5f;
      params[i].max_new_tokens = 6;  // the others go on overlapped once these end
    }
  }
  std::vector<GenerationOutput> wanted;
  for (size_t i = 0; i < kPrompts.size(); ++i) wanted.push_back(alone(kPrompts[i], params[i]));
  SchedulerOptions o = opts();
  o.chunked_prefill_size = 7;
  Scheduler s(*model_, o);
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    RequestInput in;
    in.prompt = model_->tokenizer->encode(kPrompts[i], true);
    in.params = params[i];
    streams.push_back(s.submit(in));
  }
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    auto got = collect(*streams[i]);
    EXPECT_EQ(got.tokens, wanted[i].tokens) << kPrompts[i];
    EXPECT_EQ(got.finish_reason, wanted[i].finish_reason) << kPrompts[i];
  }
  auto st = s.stats();
  EXPECT_EQ(st.kv_pages_free, st.kv_pages_total);
  EXPECT_EQ(st.overlapped_steps > 0, GetParam() == SchedulerOptions::Overlap::kOn);
}

INSTANTIATE_TEST_SUITE_P(Overlap, SchedulerTest,
                         ::testing::Values(SchedulerOptions::Overlap::kOff, SchedulerOptions::Overlap::kOn),
                         [](const auto& info) {
                           return info.param == SchedulerOptions::Overlap::kOn ? "On" : "Off";
                         });

// A pick made where the logits are carries bias, early-stop masks and
// penalties as logit edits: applied to a row they must give the same bits,
// and with the same seed the same token, as the host path (Scheduler::
// handle_logits: bias, mask, then the sampler's penalties and draw).
TEST(PickEdits, EqualTheHostPath) {
  const auto m = LoadedModel::load(kStories, {});
  const int32_t vocab = static_cast<int32_t>(m->config.vocab_size);
  const std::vector<int32_t> prompt = m->tokenizer->encode("Once upon a time there was a cat. The cat", true);
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  for (int variant = 0; variant < 4; ++variant) {
    SamplingParams p;
    p.temperature = variant % 2 == 0 ? 0.0f : 0.9f;
    p.seed = 5 + variant;
    p.repetition_penalty = variant < 2 ? 1.3f : 0.8f;
    p.frequency_penalty = variant == 3 ? 0.0f : 0.4f;
    p.presence_penalty = variant == 1 ? 0.0f : -0.3f;
    p.min_new_tokens = 6;
    p.max_new_tokens = 20;
    const std::map<int32_t, float> bias = {{prompt[1], 2.5f}, {7, -1.0f}, {vocab - 1, 4.0f}, {vocab + 3, 9.0f}};
    Continuation host(p, *m->tokenizer, prompt, m->eos_token_ids(), true);
    Continuation device(p, *m->tokenizer, prompt, m->eos_token_ids(), true);
    for (int step = 0; step < 10; ++step) {
      std::vector<float> a(static_cast<size_t>(vocab));
      for (float& v : a) v = normal(rng);
      std::vector<float> b = a;
      for (auto [token, add] : bias)
        if (token < vocab) a[token] += add;
      host.mask_early_stop(a);
      const int32_t want = host.sample(a);
      const TokenPick pick = device.next_pick(bias);
      apply_logit_edits(b, pick.edits);
      const int32_t got = pick_token(b, pick);
      ASSERT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0)
          << "variant " << variant << ", step " << step;
      ASSERT_EQ(got, want) << "variant " << variant << ", step " << step;
      // A token the model may not stop on yet keeps generation going in both.
      const int32_t next = step < 6 ? 40 + step % 3 : want;
      if (host.accept(next).finished || device.accept(next).finished) break;
    }
  }
}

}  // namespace
}  // namespace nativelm
