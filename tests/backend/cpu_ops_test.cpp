// Norms, rope, silu_mul, embedding and gather_rows at every ISA level,
// against double-precision references written out from their definitions.
#include <cmath>

#include "cpu_test_util.h"
#include "util/error.h"

namespace nativelm::test {
namespace {

class OpsTest : public testing::TestWithParam<cpu::Isa> {
 protected:
  CpuBackend be{GetParam()};
  std::mt19937 rng{42};
};

std::vector<double> reference_norm(const std::vector<float>& x, const std::vector<float>& w,
                                   int64_t d, float eps) {
  std::vector<double> out(x.size());
  for (size_t r = 0; r < x.size() / d; ++r) {
    double ss = 0;
    for (int64_t j = 0; j < d; ++j) ss += static_cast<double>(x[r * d + j]) * x[r * d + j];
    const double inv = 1.0 / std::sqrt(ss / d + eps);
    for (int64_t j = 0; j < d; ++j) out[r * d + j] = x[r * d + j] * inv * w[j];
  }
  return out;
}

void expect_close(const std::vector<float>& got, const std::vector<double>& want, double rel,
                  double abs) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], abs + rel * std::fabs(want[i])) << "at " << i;
}

TEST_P(OpsTest, RmsNormAnyWeightDtypeInPlace) {
  for (DType wt : {DType::F32, DType::BF16, DType::F16}) {
    const int64_t n = 3, d = 37;
    std::vector<float> x = random_floats(rng, n * d, -3, 3);
    Buffer w(wt, {d});
    w.fill_random(rng, 0.5f, 1.5f);
    const std::vector<double> want = reference_norm(x, w.values(), d, 1e-6f);
    Tensor xt = view(x, n, d);
    be.rms_norm(xt, w.tensor(), 1e-6f, xt);  // out aliases x
    expect_close(x, want, 2e-6, 1e-7);
  }
}

TEST_P(OpsTest, AddRmsNormUpdatesResidualAndAllowsOutAliasingX) {
  const int64_t n = 5, d = 64;
  std::vector<float> res = random_floats(rng, n * d, -2, 2), x = random_floats(rng, n * d);
  Buffer w(DType::BF16, {d});
  w.fill_random(rng);
  std::vector<float> sum(n * d);
  for (size_t i = 0; i < sum.size(); ++i) sum[i] = res[i] + x[i];
  const std::vector<double> want = reference_norm(sum, w.values(), d, 1e-5f);
  Tensor rt = view(res, n, d), xt = view(x, n, d);
  be.add_rms_norm(rt, xt, w.tensor(), 1e-5f, xt);
  EXPECT_EQ(res, sum);
  expect_close(x, want, 2e-6, 1e-7);
  EXPECT_THROW(be.add_rms_norm(rt, xt, w.tensor(), 1e-5f, rt), Error);
}

TEST_P(OpsTest, HeadRmsNormNormalisesEachHead) {
  const int64_t n = 3, hd = 16, heads = 4;
  std::vector<float> x = random_floats(rng, n * heads * hd, -4, 4);
  Buffer w(DType::F32, {hd});
  w.fill_random(rng);
  const std::vector<double> want = reference_norm(x, w.values(), hd, 1e-6f);
  Tensor xt = view(x, n, heads * hd);
  be.head_rms_norm(xt, hd, w.tensor(), 1e-6f);
  expect_close(x, want, 2e-6, 1e-7);
  EXPECT_THROW(be.head_rms_norm(xt, 24, w.tensor(), 1e-6f), Error);
}

TEST_P(OpsTest, RopeRotatesHalfSplitPairs) {
  const int64_t n = 4, hd = 8, heads = 3, half = hd / 2;
  std::vector<float> x = random_floats(rng, n * heads * hd);
  const std::vector<float> orig = x;
  const std::vector<int32_t> pos = {0, 1, 17, 4000};
  std::vector<float> inv_freq(half);
  for (int64_t j = 0; j < half; ++j) inv_freq[j] = 1.0f / std::pow(10000.0f, 2.0f * j / hd);
  Tensor xt = view(x, n, heads * hd);
  be.rope(xt, hd, pos, inv_freq);
  std::vector<double> want(x.size());
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t j = 0; j < half; ++j) {
        const int64_t a = i * heads * hd + h * hd + j, b = a + half;
        const double angle = static_cast<float>(pos[i]) * inv_freq[j];
        want[a] = orig[a] * std::cos(angle) - orig[b] * std::sin(angle);
        want[b] = orig[b] * std::cos(angle) + orig[a] * std::sin(angle);
      }
    }
  }
  // Large angles lose a few ulps in f32 cos/sin, as they do in torch.
  expect_close(x, want, 0, 2e-6);
  for (int64_t j = 0; j < heads * hd; ++j) EXPECT_EQ(x[j], orig[j]) << "position 0 is identity";
  EXPECT_THROW(be.rope(xt, hd, std::span<const int32_t>(pos).first(2), inv_freq), Error);
}

TEST_P(OpsTest, SiluMulMatchesDefinitionIncludingExtremes) {
  const int64_t n = 2, d = 45;
  std::vector<float> gate = random_floats(rng, n * d, -12, 12), up = random_floats(rng, n * d);
  gate[0] = -100.0f;
  gate[1] = 100.0f;
  gate[2] = 0.0f;
  std::vector<double> want(gate.size());
  for (size_t i = 0; i < gate.size(); ++i)
    want[i] = gate[i] / (1.0 + std::exp(-static_cast<double>(gate[i]))) * up[i];
  Tensor gt = view(gate, n, d), ut = view(up, n, d);
  be.silu_mul(gt, ut, gt);  // out aliases gate
  expect_close(gate, want, 4e-6, 1e-30);
}

TEST_P(OpsTest, EmbeddingConvertsRowsExactly) {
  for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
    Buffer table(dt, {10, 19});
    table.fill_random(rng);
    const std::vector<int32_t> ids = {3, 0, 9, 3};
    std::vector<float> out(ids.size() * 19);
    Tensor ot = view(out, 4, 19);
    be.embedding(table.tensor(), ids, ot);
    for (size_t i = 0; i < ids.size(); ++i)
      for (int64_t j = 0; j < 19; ++j) ASSERT_EQ(out[i * 19 + j], table.get(ids[i] * 19 + j));
    const std::vector<int32_t> bad = {10};
    Tensor one = view(out, 1, 19);
    EXPECT_THROW(be.embedding(table.tensor(), bad, one), Error);
  }
}

TEST_P(OpsTest, GatherRowsPicksRows) {
  std::vector<float> x = random_floats(rng, 6 * 5);
  const std::vector<int32_t> rows = {5, 1};
  std::vector<float> out(2 * 5);
  Tensor ot = view(out, 2, 5);
  be.gather_rows(view(x, 6, 5), rows, ot);
  for (int64_t j = 0; j < 5; ++j) {
    EXPECT_EQ(out[j], x[25 + j]);
    EXPECT_EQ(out[5 + j], x[5 + j]);
  }
  const std::vector<int32_t> bad = {-1, 0};
  EXPECT_THROW(be.gather_rows(view(x, 6, 5), bad, ot), Error);
}

INSTANTIATE_TEST_SUITE_P(AllLevels, OpsTest, testing::ValuesIn(runnable_isas()), isa_param_name);

}  // namespace
}  // namespace nativelm::test

namespace nativelm::test {
namespace {

// The reference token pick (Backend::sample on the host): with uniforms on
// an even grid, each token's share of the draws is its probability after
// the temperature and the top-k / top-p / min-p cuts, computed here directly.
TEST(TokenPick, DrawsFollowTheCutDistribution) {
  const std::vector<float> logits = {2.0f, 1.0f, 0.5f, 0.0f, -1.0f, 3.0f};
  struct Case { TokenPick pick; std::vector<double> probs; };
  auto softmax = [&](float t, std::vector<int> keep) {
    std::vector<double> p(logits.size(), 0.0);
    double sum = 0;
    for (int i : keep) sum += p[i] = std::exp(static_cast<double>(logits[i]) / t);
    for (double& v : p) v /= sum;
    return p;
  };
  const std::vector<Case> cases = {
      {{1.0f, 0, 1.0f, 0.0f, 0, {}}, softmax(1.0f, {0, 1, 2, 3, 4, 5})},
      {{0.5f, 2, 1.0f, 0.0f, 0, {}}, softmax(0.5f, {5, 0})},
      // Probabilities at T=1: 3.0 -> 0.61, 2.0 -> 0.22, 1.0 -> 0.08: top_p 0.8 keeps the first two.
      {{1.0f, 0, 0.8f, 0.0f, 0, {}}, softmax(1.0f, {5, 0})},
      // min_p 0.2 keeps tokens with at least 0.2 * e^3 mass: logits >= 3 + ln 0.2 = 1.39.
      {{1.0f, 0, 1.0f, 0.2f, 0, {}}, softmax(1.0f, {5, 0})},
  };
  const int64_t rows = 2000, vocab = static_cast<int64_t>(logits.size());
  std::vector<float> all;
  for (int64_t r = 0; r < rows; ++r) all.insert(all.end(), logits.begin(), logits.end());
  Tensor t(all.data(), DType::F32, {rows, vocab});
  CpuBackend cpu;
  for (const Case& c : cases) {
    std::vector<TokenPick> picks(rows, c.pick);
    for (int64_t r = 0; r < rows; ++r) picks[r].uniform = (static_cast<float>(r) + 0.5f) / rows;
    std::vector<int32_t> got(rows);
    cpu.sample(t, picks, got);
    std::vector<double> share(vocab, 0.0);
    for (int32_t g : got) share[g] += 1.0 / rows;
    for (int64_t i = 0; i < vocab; ++i)
      EXPECT_NEAR(share[i], c.probs[i], 2.0 / rows) << "token " << i << ", top_k " << c.pick.top_k << ", top_p "
                                                    << c.pick.top_p << ", min_p " << c.pick.min_p;
  }
  std::vector<int32_t> greedy(1);
  const TokenPick argmax_pick[] = {TokenPick{}};
  cpu.sample(t.rows(0, 1), argmax_pick, greedy);
  EXPECT_EQ(greedy[0], 5);
}

}  // namespace
}  // namespace nativelm::test
