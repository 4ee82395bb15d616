// The CUDA backend end to end: the tests/data checkpoints against
// transformers and against the CPU backend, stories260K's reference output,
// recorded (CUDA graph) decode steps against eager ones, and continuous
// batching. Skipped, saying why, without a usable GPU.
#ifdef NATIVELM_HAVE_CUDA
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "backend/cuda/cuda_backend.h"
#include "engine/generator.h"
#include "engine/kv_pool.h"
#include "engine/loaded_model.h"
#include "engine/model_runner.h"
#include "engine/scheduler.h"
#include "io/json_file.h"
#include "engine/reference_dirs.h"

namespace nativelm {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

#define SKIP_WITHOUT_GPU()                                                  \
  do {                                                                      \
    const std::string why = cuda::unavailable_reason();                     \
    if (!why.empty()) GTEST_SKIP() << "no usable GPU: " << why;             \
  } while (0)

using test::reference_dirs;

struct Checkpoint {
  ModelConfig config;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<io::WeightStore> weights;
  std::unique_ptr<Transformer> model;
  std::unique_ptr<KvPool> pool;
  std::unique_ptr<ModelRunner> runner;

  Checkpoint(const fs::path& dir, const std::string& device, BackendOptions options = {}) {
    config = load_model_config(dir);
    backend = make_backend(device, options);
    weights = std::make_unique<io::WeightStore>(dir);
    model = std::make_unique<Transformer>(config, *weights, *backend);
    KvPoolShape shape{config.num_layers, config.kv_dim(), model->kv_dtype(), 4, 128};
    pool = std::make_unique<KvPool>(*backend, shape);
    runner = std::make_unique<ModelRunner>(*model, *pool);
  }
  // Greedy continuation of each prompt, all in one batch, picked on the device.
  std::vector<std::vector<int32_t>> greedy(std::vector<std::vector<int32_t>> prompts, int steps) {
    std::vector<SeqKv> seqs(prompts.size());
    std::vector<SeqKv*> ptrs;
    for (auto& s : seqs) ptrs.push_back(&s);
    std::vector<std::vector<int32_t>> out(prompts.size());
    std::vector<int32_t> next;
    for (int i = 0; i < steps; ++i) {
      runner->step_greedy(ptrs, prompts, next);
      for (size_t s = 0; s < prompts.size(); ++s) {
        out[s].push_back(next[s]);
        prompts[s] = {next[s]};
      }
    }
    for (auto& s : seqs) runner->release(s);
    return out;
  }
  // Greedy as above from host logits, also giving each pick's lead over the
  // runner-up relative to the logit scale.
  std::vector<std::vector<std::pair<int32_t, float>>> greedy_with_margins(std::vector<std::vector<int32_t>> prompts,
                                                                          int steps) {
    std::vector<SeqKv> seqs(prompts.size());
    std::vector<SeqKv*> ptrs;
    for (auto& s : seqs) ptrs.push_back(&s);
    std::vector<std::vector<std::pair<int32_t, float>>> out(prompts.size());
    std::vector<float> logits;
    const int64_t vocab = config.vocab_size;
    for (int i = 0; i < steps; ++i) {
      runner->step(ptrs, prompts, logits);
      for (size_t s = 0; s < prompts.size(); ++s) {
        std::vector<float> row(logits.begin() + s * vocab, logits.begin() + (s + 1) * vocab);
        const int32_t best = static_cast<int32_t>(std::max_element(row.begin(), row.end()) - row.begin());
        float scale = 1.0f;
        for (float v : row) scale = std::max(scale, std::fabs(v));
        const float top = row[best];
        row[best] = -INFINITY;
        out[s].emplace_back(best, (top - *std::max_element(row.begin(), row.end())) / scale);
        prompts[s] = {best};
      }
    }
    for (auto& s : seqs) runner->release(s);
    return out;
  }
};

// Relative logit tolerance per model dtype: the GPU computes in that dtype
// (transformers' references upcast to f32).
float logit_tolerance(DType d) { return d == DType::F32 ? 2e-4f : d == DType::F16 ? 1e-2f : 4e-2f; }

class CudaReferenceModels : public ::testing::TestWithParam<fs::path> {};

TEST_P(CudaReferenceModels, LogitsNearTransformersAndGreedyTokensEqualCpu) {
  SKIP_WITHOUT_GPU();
  const fs::path dir = GetParam();
  Checkpoint gpu(dir, "cuda"), cpu(dir, "cpu");
  const json ref = io::read_json_file(dir / "reference.json");
  const json& cases = ref.contains("prompts") ? ref["prompts"] : ref;
  std::vector<std::vector<int32_t>> prompts;
  for (const auto& c : cases) {
    const auto prompt = c["prompt_ids"].get<std::vector<int32_t>>();
    prompts.push_back(prompt);
    const auto expected = c["last_logits"].get<std::vector<float>>();
    SeqKv seq;
    SeqKv* seqs[] = {&seq};
    std::vector<std::vector<int32_t>> tokens = {prompt};
    std::vector<float> logits;
    gpu.runner->step(seqs, tokens, logits);
    gpu.runner->release(seq);
    ASSERT_EQ(logits.size(), expected.size());
    float scale = 1.0f, worst = 0.0f;
    for (float v : expected) scale = std::max(scale, std::fabs(v));
    for (size_t i = 0; i < logits.size(); ++i) worst = std::max(worst, std::fabs(logits[i] - expected[i]));
    EXPECT_LE(worst, logit_tolerance(gpu.config.dtype) * scale)
        << dir.filename() << " prompt of " << prompt.size() << " tokens (" << dtype_name(gpu.config.dtype) << ")";
    if (gpu.config.dtype == DType::F32) {
      EXPECT_EQ(gpu.greedy({prompt}, static_cast<int>(c["greedy_ids"].size()))[0],
                c["greedy_ids"].get<std::vector<int32_t>>());
    }
  }
  // Greedy tokens equal the CPU's; in half precision a pick may differ only
  // where the CPU's own top two logits are closer than the tolerance (after
  // that the two continuations have different contexts).
  const int steps = static_cast<int>(cases[0]["greedy_ids"].size());
  const auto got = gpu.greedy(prompts, steps);
  const auto want = cpu.greedy_with_margins(prompts, steps);
  for (size_t s = 0; s < prompts.size(); ++s)
    for (int i = 0; i < steps; ++i) {
      if (got[s][i] == want[s][i].first) continue;
      EXPECT_NE(gpu.config.dtype, DType::F32) << dir.filename() << " prompt " << s << " step " << i;
      EXPECT_LT(want[s][i].second, logit_tolerance(gpu.config.dtype))
          << dir.filename() << " prompt " << s << " step " << i << ": CUDA picked " << got[s][i] << ", CPU "
          << want[s][i].first << " by a clear margin";
      break;
    }
  EXPECT_EQ(gpu.pool->free_pages(), gpu.pool->total_pages() - 1);  // all but the graph padding page
}

// Replaying recorded decode steps gives what running them eagerly gives.
TEST_P(CudaReferenceModels, GraphReplayMatchesEagerDecode) {
  SKIP_WITHOUT_GPU();
  const fs::path dir = GetParam();
  Checkpoint graphs(dir, "cuda"), eager(dir, "cuda", BackendOptions{.cuda_graphs = false});
  const json ref = io::read_json_file(dir / "reference.json");
  const json& cases = ref.contains("prompts") ? ref["prompts"] : ref;
  std::vector<std::vector<int32_t>> prompts;
  for (const auto& c : cases) prompts.push_back(c["prompt_ids"].get<std::vector<int32_t>>());
  EXPECT_EQ(graphs.greedy(prompts, 12), eager.greedy(prompts, 12)) << dir.filename();
  EXPECT_GT(static_cast<CudaBackend&>(*graphs.backend).recordings(), 0);
  EXPECT_EQ(static_cast<CudaBackend&>(*eager.backend).recordings(), 0);
}

INSTANTIATE_TEST_SUITE_P(TestData, CudaReferenceModels, ::testing::ValuesIn(reference_dirs()),
                         [](const auto& info) { return info.param.filename().string(); });

const fs::path kStories = fs::path(NATIVELM_SHARED_DIR) / "models" / "stories260K";

TEST(CudaStories260K, GreedyTokensAndTextMatchTransformers) {
  SKIP_WITHOUT_GPU();
  auto m = LoadedModel::load(kStories.string(), {.device = "cuda", .threads = 0, .backend = {}});
  const json ref = io::read_json_file(kStories / "reference.json");
  KvPoolShape shape{m->config.num_layers, m->config.kv_dim(), m->model->kv_dtype(), 16, 64};
  KvPool pool(*m->backend, shape);
  ModelRunner runner(*m->model, pool);
  for (const auto& c : ref) {
    const auto prompt = m->tokenizer->encode(c["prompt"].get<std::string>(), true);
    SamplingParams p;
    p.temperature = 0;
    const auto expected = c["greedy_ids"].get<std::vector<int32_t>>();
    p.max_new_tokens = static_cast<int32_t>(expected.size());
    auto out = generate(*m, runner, prompt, p);
    EXPECT_EQ(out.tokens, expected);
    EXPECT_EQ(out.text, c["greedy_text"].get<std::string>());
  }
}

// Launched steps whose tokens come from the previous step's pick on the
// device give the same tokens as steps that wait for each pick.
TEST(CudaModelRunner, FedStepsMatchWaitedSteps) {
  SKIP_WITHOUT_GPU();
  auto m = LoadedModel::load(kStories.string(), {.device = "cuda", .threads = 0, .backend = {}});
  const std::vector<std::string> prompts = {"Once upon a time", "The dog", "Mom said"};
  KvPoolShape shape{m->config.num_layers, m->config.kv_dim(), m->model->kv_dtype(), 16, 64};
  constexpr int kSteps = 20;
  const auto decode = [&](bool fed) {
    KvPool pool(*m->backend, shape);
    ModelRunner runner(*m->model, pool);
    std::vector<SeqKv> kv(prompts.size());
    std::vector<SeqKv*> seqs;
    std::vector<std::vector<int32_t>> tokens;
    for (size_t i = 0; i < prompts.size(); ++i) {
      seqs.push_back(&kv[i]);
      tokens.push_back(m->tokenizer->encode(prompts[i], true));
    }
    std::vector<std::vector<int32_t>> out(prompts.size());
    std::vector<int32_t> next;
    const std::vector<int32_t> rows = {0, 1, 2};
    if (!fed) {
      for (int s = 0; s < kSteps; ++s) {
        runner.step_greedy(seqs, tokens, next);
        for (size_t i = 0; i < prompts.size(); ++i) {
          out[i].push_back(next[i]);
          tokens[i] = {next[i]};
        }
      }
    } else {
      runner.launch(seqs, tokens, {}, {});
      for (size_t i = 0; i < prompts.size(); ++i) tokens[i] = {0};
      for (int s = 1; s <= kSteps; ++s) {
        if (s < kSteps) runner.launch(seqs, tokens, {}, rows);
        runner.collect(next);
        for (size_t i = 0; i < prompts.size(); ++i) out[i].push_back(next[i]);
      }
    }
    for (auto& k : kv) runner.release(k);
    return out;
  };
  const auto waited = decode(false);
  const auto fed = decode(true);
  for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(fed[i], waited[i]) << prompts[i];
}

// Continuous batching on the GPU: chunked prefill beside decodes, requests
// joining and leaving, greedy, sampled and penalised requests (all picked
// on the device, penalties as logit edits) mixed; each gets exactly what it gets alone, with the overlap
// scheduler off and on.
class CudaScheduler : public ::testing::TestWithParam<SchedulerOptions::Overlap> {};

TEST_P(CudaScheduler, ConcurrentRequestsMatchSingleRuns) {
  SKIP_WITHOUT_GPU();
  auto m = LoadedModel::load(kStories.string(), {.device = "cuda", .threads = 0, .backend = {}});
  const std::vector<std::string> prompts = {"Once upon a time", "Lily and Tom went to the park. They", "The dog",
                                            "One day, a little bird", "Sam had a red ball and", "Mom said"};
  std::vector<SamplingParams> params(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    params[i].temperature = 0;
    params[i].max_new_tokens = 24 + 8 * static_cast<int32_t>(i % 3);
    if (i == 1 || i == 4) {  // picked on the device
      params[i].temperature = 0.7f;
      params[i].top_p = 0.9f;
      params[i].seed = 7 + i;
    }
    if (i == 3) {  // penalised: its picks carry logit edits (fed picks add the pending token on the device)
      params[i].temperature = 0.9f;
      params[i].seed = 11;
      params[i].frequency_penalty = 0.4f;
      params[i].presence_penalty = 0.3f;
      params[i].repetition_penalty = 1.2f;
      params[i].min_new_tokens = 6;
    }
    if (i == 0) params[i].repetition_penalty = 1.3f;  // greedy, penalised
  }
  std::vector<std::vector<int32_t>> wanted;
  {
    KvPoolShape shape{m->config.num_layers, m->config.kv_dim(), m->model->kv_dtype(), 16, 64};
    KvPool pool(*m->backend, shape);
    ModelRunner runner(*m->model, pool);
    for (size_t i = 0; i < prompts.size(); ++i)
      wanted.push_back(generate(*m, runner, m->tokenizer->encode(prompts[i], true), params[i]).tokens);
  }
  SchedulerOptions o;
  o.chunked_prefill_size = 5;
  o.max_total_tokens = 4096;
  o.overlap = GetParam();
  Scheduler s(*m, o);
  std::vector<std::shared_ptr<RequestStream>> streams;
  // The last request (greedy) also asks for logprobs, reported with the
  // device's pick; the CPU scheduler's host path gives the reference.
  constexpr size_t kWithLogprobs = 5;
  auto input = [&](const LoadedModel& model, size_t i) {
    RequestInput in;
    in.prompt = model.tokenizer->encode(prompts[i], true);
    in.params = params[i];
    if (i == kWithLogprobs) in.logprobs = 3;
    return in;
  };
  for (size_t i = 0; i < prompts.size(); ++i) streams.push_back(s.submit(input(*m, i)));
  std::vector<TokenOutput> with_logprobs;
  for (size_t i = 0; i < prompts.size(); ++i) {
    std::vector<int32_t> got;
    RequestUpdate u;
    while (streams[i]->wait(u))
      for (const auto& t : u.tokens) {
        got.push_back(t.id);
        if (i == kWithLogprobs) with_logprobs.push_back(t);
      }
    EXPECT_EQ(got, wanted[i]) << prompts[i];
  }
  {
    auto cpu = LoadedModel::load(kStories.string(), {});
    Scheduler host(*cpu, o);
    auto stream = host.submit(input(*cpu, kWithLogprobs));
    std::vector<TokenOutput> want;
    RequestUpdate u;
    while (stream->wait(u)) want.insert(want.end(), u.tokens.begin(), u.tokens.end());
    ASSERT_EQ(with_logprobs.size(), want.size());
    for (size_t t = 0; t < want.size(); ++t) {
      EXPECT_EQ(with_logprobs[t].id, want[t].id) << "token " << t;
      EXPECT_NEAR(with_logprobs[t].logprob, want[t].logprob, 1e-3) << "token " << t;
      ASSERT_EQ(with_logprobs[t].top.size(), 3u) << "token " << t;
      for (size_t k = 0; k < 3; ++k) {
        EXPECT_EQ(with_logprobs[t].top[k].first, want[t].top[k].first) << "token " << t << ", rank " << k;
        EXPECT_NEAR(with_logprobs[t].top[k].second, want[t].top[k].second, 1e-3) << "token " << t << ", rank " << k;
      }
    }
  }
  const auto st = s.stats();
  EXPECT_EQ(st.kv_pages_free, st.kv_pages_total);
  // kAuto overlaps on CUDA.
  EXPECT_EQ(st.overlapped_steps > 0, GetParam() == SchedulerOptions::Overlap::kAuto);
}

// A penalised request's steps overlap too (its pending token is added to
// the pick's edits on the device) and give the tokens of a run without.
TEST(CudaSchedulerFedPicks, PenalisedRequestOverlaps) {
  SKIP_WITHOUT_GPU();
  auto m = LoadedModel::load(kStories.string(), {.device = "cuda", .threads = 0, .backend = {}});
  SamplingParams params;
  params.temperature = 0.8f;
  params.seed = 3;
  params.repetition_penalty = 1.3f;
  params.frequency_penalty = 0.5f;
  params.presence_penalty = 0.2f;
  params.min_new_tokens = 4;
  params.max_new_tokens = 40;
  const auto prompt = m->tokenizer->encode("Once upon a time, there was a", true);
  std::vector<int32_t> wanted;
  {
    KvPoolShape shape{m->config.num_layers, m->config.kv_dim(), m->model->kv_dtype(), 16, 16};
    KvPool pool(*m->backend, shape);
    ModelRunner runner(*m->model, pool);
    wanted = generate(*m, runner, prompt, params).tokens;
  }
  SchedulerOptions o;
  o.max_total_tokens = 1024;
  o.overlap = SchedulerOptions::Overlap::kAuto;
  Scheduler s(*m, o);
  RequestInput in;
  in.prompt = prompt;
  in.params = params;
  auto stream = s.submit(in);
  std::vector<int32_t> got;
  RequestUpdate u;
  while (stream->wait(u))
    for (const auto& t : u.tokens) got.push_back(t.id);
  EXPECT_EQ(got, wanted);
  ASSERT_GE(got.size(), 4u);
  EXPECT_GE(s.stats().overlapped_steps, static_cast<int64_t>(got.size()) / 2);
}

INSTANTIATE_TEST_SUITE_P(Overlap, CudaScheduler,
                         ::testing::Values(SchedulerOptions::Overlap::kOff, SchedulerOptions::Overlap::kAuto),
                         [](const auto& info) {
                           return info.param == SchedulerOptions::Overlap::kAuto ? "Auto" : "Off";
                         });

}  // namespace
}  // namespace nativelm
#endif  // NATIVELM_HAVE_CUDA
