// linear() at every ISA level against a double-precision reference, for
// every weight dtype and shapes that hit every tail of the GEMV and GEMM.
#include <cmath>
#include <tuple>

#include "cpu_test_util.h"
#include "util/error.h"

namespace nativelm::test {
namespace {

// out = x @ w^T + bias in double, with the bound on f32 rounding error:
// each output may differ by about n_terms * eps * sum |x_i w_i|.
struct Reference {
  std::vector<double> out;
  std::vector<double> bound;
};

Reference reference_linear(const std::vector<float>& x, const std::vector<float>& w,
                           const std::vector<float>* bias, int64_t n, int64_t k, int64_t m) {
  Reference r{std::vector<double>(n * m), std::vector<double>(n * m)};
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < m; ++j) {
      double s = bias ? (*bias)[j] : 0.0, a = bias ? std::fabs((*bias)[j]) : 0.0;
      for (int64_t t = 0; t < k; ++t) {
        s += static_cast<double>(x[i * k + t]) * w[j * k + t];
        a += std::fabs(static_cast<double>(x[i * k + t]) * w[j * k + t]);
      }
      r.out[i * m + j] = s;
      // Blocked f32 sums have error well under sqrt(k) * 4 eps * |terms|.
      r.bound[i * m + j] = 4e-7 * (std::sqrt(static_cast<double>(k)) + 4) * a + 1e-30;
    }
  }
  return r;
}

using Param = IsaDtype;

class LinearTest : public testing::TestWithParam<Param> {};

void check_linear(cpu::Isa isa, DType wt, int64_t n, int64_t k, int64_t m, bool with_bias,
                  DType bias_type) {
  std::mt19937 rng(static_cast<uint32_t>(n * 1000003 + k * 101 + m));
  std::vector<float> x = random_floats(rng, n * k);
  Buffer w(wt, {m, k});
  w.fill_random(rng);
  Buffer bias(bias_type, {m});
  bias.fill_random(rng);
  std::vector<float> out(n * m, -7.0f);
  CpuBackend be(isa);
  Tensor xt = view(x, n, k), ot = view(out, n, m), bt = bias.tensor();
  be.linear(xt, w.tensor(), with_bias ? &bt : nullptr, ot);
  const std::vector<float> bv = bias.values();
  const Reference ref = reference_linear(x, w.values(), with_bias ? &bv : nullptr, n, k, m);
  for (int64_t i = 0; i < n * m; ++i) {
    ASSERT_NEAR(out[i], ref.out[i], ref.bound[i])
        << "n=" << n << " k=" << k << " m=" << m << " at row " << i / m << " col " << i % m;
  }
}

TEST_P(LinearTest, MatchesReferenceOnOddShapes) {
  const auto [isa, wt] = GetParam();
  for (int64_t n : {1, 2, 3, 4, 5, 13, 17}) {
    for (int64_t k : {1, 15, 33, 100}) {
      for (int64_t m : {1, 7, 33, 70}) check_linear(isa, wt, n, k, m, false, DType::F32);
    }
  }
}

TEST_P(LinearTest, SpansSeveralKBlocksPanelsAndThreads) {
  const auto [isa, wt] = GetParam();
  for (int64_t n : {1, 3, 25}) check_linear(isa, wt, n, 600, 301, false, DType::F32);
  check_linear(isa, wt, 40, 1024, 96, false, DType::F32);
  check_linear(isa, wt, 1100, 40, 33, false, DType::F32);  // more rows than one GEMM chunk
}

TEST_P(LinearTest, AddsBiasOfAnyDtype) {
  const auto [isa, wt] = GetParam();
  for (DType bt : {DType::F32, DType::BF16, DType::F16}) {
    check_linear(isa, wt, 2, 64, 50, true, bt);
    check_linear(isa, wt, 9, 64, 50, true, bt);
  }
}

TEST_P(LinearTest, AgreesWithScalarLevel) {
  const auto [isa, wt] = GetParam();
  const int64_t n = 20, k = 300, m = 77;
  std::mt19937 rng(5);
  std::vector<float> x = random_floats(rng, n * k);
  Buffer w(wt, {m, k});
  w.fill_random(rng);
  std::vector<float> a(n * m), b(n * m);
  Tensor at = view(a, n, m), bt = view(b, n, m);
  CpuBackend(isa).linear(view(x, n, k), w.tensor(), nullptr, at);
  CpuBackend(cpu::Isa::Scalar).linear(view(x, n, k), w.tensor(), nullptr, bt);
  for (int64_t i = 0; i < n * m; ++i) ASSERT_NEAR(a[i], b[i], 2e-5f) << i;
}

TEST_P(LinearTest, RejectsMismatchedShapes) {
  const auto [isa, wt] = GetParam();
  CpuBackend be(isa);
  std::vector<float> x(12), out(12);
  Buffer w(wt, {4, 5});
  Tensor ot = view(out, 3, 4);
  EXPECT_THROW(be.linear(view(x, 3, 4), w.tensor(), nullptr, ot), Error);
  Buffer w2(wt, {4, 4});
  Tensor bad_out = view(out, 4, 3);
  EXPECT_THROW(be.linear(view(x, 3, 4), w2.tensor(), nullptr, bad_out), Error);
  Tensor aliased = view(x, 3, 4);
  EXPECT_THROW(be.linear(view(x, 3, 4), w2.tensor(), nullptr, aliased), Error);
}

INSTANTIATE_TEST_SUITE_P(AllLevels, LinearTest, all_isa_dtypes(), isa_dtype_name);

}  // namespace
}  // namespace nativelm::test
