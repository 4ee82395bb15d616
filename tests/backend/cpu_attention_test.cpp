// Paged causal GQA attention at every ISA level against a dense reference:
// several sequences of different lengths in one batch (fresh prefill, chunked
// prefill on top of a cache, decode rows), pages handed out in shuffled order.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "cpu_test_util.h"
#include "util/error.h"

namespace nativelm::test {
namespace {

struct SeqSpec {
  int32_t q_len, kv_len;
};

struct Case {
  int64_t kv_heads, group, head_dim;
  DType kv_dtype;
  int32_t page_size = 4;
  std::vector<SeqSpec> seqs = {{1, 20}, {7, 7}, {5, 13}, {1, 1}, {3, 40}};
};

// Everything one attention call needs, with the dense history kept aside.
struct Scenario {
  int64_t n = 0, width = 0, qwidth = 0;
  AttentionBatch batch;
  std::vector<std::vector<int32_t>> pages;
  std::vector<std::vector<float>> dense_k, dense_v;  // per sequence [kv_len, width]
  std::vector<float> q, k, v;
  Buffer k_pool, v_pool;
  Scenario(const Case& c, std::mt19937& rng, int64_t pool_pages)
      : k_pool(c.kv_dtype, {pool_pages * c.page_size, c.kv_heads * c.head_dim}),
        v_pool(c.kv_dtype, {pool_pages * c.page_size, c.kv_heads * c.head_dim}) {}
};

Scenario make_setup(const Case& c, std::mt19937& rng) {
  int64_t total_pages = 0;
  for (const SeqSpec& s : c.seqs) total_pages += (s.kv_len + c.page_size - 1) / c.page_size;
  Scenario st(c, rng, total_pages + 3);
  st.width = c.kv_heads * c.head_dim;
  st.batch.page_size = c.page_size;
  st.qwidth = st.width * c.group;
  std::vector<int32_t> order(total_pages + 3);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng);
  st.k_pool.fill_random(rng, 50, 60);  // unused slots hold junk that must not leak in
  st.v_pool.fill_random(rng, 50, 60);
  size_t next_page = 0;
  for (const SeqSpec& s : c.seqs) {
    std::vector<int32_t> pages;
    for (int32_t p = 0; p < s.kv_len; p += c.page_size) pages.push_back(order[next_page++]);
    st.pages.push_back(pages);
    st.dense_k.emplace_back(s.kv_len * st.width);
    st.dense_v.emplace_back(s.kv_len * st.width);
    st.n += s.q_len;
  }
  st.q = random_floats(rng, st.n * st.qwidth, -2, 2);
  st.k = random_floats(rng, st.n * st.width, -2, 2);
  st.v = random_floats(rng, st.n * st.width);
  int32_t row = 0;
  for (size_t i = 0; i < c.seqs.size(); ++i) {
    const SeqSpec& s = c.seqs[i];
    st.batch.seqs.push_back({row, s.q_len, s.kv_len, st.pages[i].data()});
    for (int32_t p = 0; p < s.kv_len; ++p) {
      const int32_t slot = st.pages[i][p / c.page_size] * c.page_size + p % c.page_size;
      const bool is_new = p >= s.kv_len - s.q_len;
      const int32_t src_row = row + p - (s.kv_len - s.q_len);
      if (is_new) st.batch.slots.push_back(slot);
      std::uniform_real_distribution<float> dist(-2, 2);
      for (int64_t j = 0; j < st.width; ++j) {
        // The pool holds values rounded to its dtype; the reference reads those.
        st.k_pool.set(slot * st.width + j, is_new ? st.k[src_row * st.width + j] : dist(rng));
        st.v_pool.set(slot * st.width + j, is_new ? st.v[src_row * st.width + j] : dist(rng) / 2);
        st.dense_k[i][p * st.width + j] = st.k_pool.get(slot * st.width + j);
        st.dense_v[i][p * st.width + j] = st.v_pool.get(slot * st.width + j);
      }
      if (is_new) {  // the op itself must write these
        for (int64_t j = 0; j < st.width; ++j) {
          st.k_pool.set(slot * st.width + j, 99.0f);
          st.v_pool.set(slot * st.width + j, 99.0f);
        }
      }
    }
    row += s.q_len;
  }
  return st;
}

std::vector<double> reference_attention(const Case& c, const Scenario& st, float scale) {
  std::vector<double> out(st.n * st.qwidth);
  const int64_t hd = c.head_dim;
  for (size_t i = 0; i < c.seqs.size(); ++i) {
    const AttentionSeq& s = st.batch.seqs[i];
    for (int32_t t = 0; t < s.q_len; ++t) {
      const int64_t row = s.q_begin + t, visible = s.kv_len - s.q_len + t + 1;
      for (int64_t h = 0; h < c.kv_heads * c.group; ++h) {
        const int64_t kvh = h / c.group;
        std::vector<double> w(visible);
        double max = -1e300, sum = 0;
        for (int64_t p = 0; p < visible; ++p) {
          double d = 0;
          for (int64_t j = 0; j < hd; ++j)
            d += st.q[row * st.qwidth + h * hd + j] *
                 static_cast<double>(st.dense_k[i][p * st.width + kvh * hd + j]);
          w[p] = d * scale;
          max = std::max(max, w[p]);
        }
        for (double& x : w) sum += (x = std::exp(x - max));
        for (int64_t j = 0; j < hd; ++j) {
          double acc = 0;
          for (int64_t p = 0; p < visible; ++p)
            acc += w[p] / sum * st.dense_v[i][p * st.width + kvh * hd + j];
          out[row * st.qwidth + h * hd + j] = acc;
        }
      }
    }
  }
  return out;
}

using Param = IsaDtype;
class AttentionTest : public testing::TestWithParam<Param> {};

void run_case(cpu::Isa isa, const Case& c, bool out_aliases_q) {
  std::mt19937 rng(static_cast<uint32_t>(c.group * 31 + c.head_dim));
  Scenario st = make_setup(c, rng);
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  const std::vector<double> want = reference_attention(c, st, scale);
  std::vector<float> out(st.n * st.qwidth, -5.0f);
  std::vector<float>& dst = out_aliases_q ? st.q : out;
  Tensor kp = st.k_pool.tensor(), vp = st.v_pool.tensor(), ot = view(dst, st.n, st.qwidth);
  CpuBackend(isa).attention(view(st.q, st.n, st.qwidth), view(st.k, st.n, st.width),
                            view(st.v, st.n, st.width), kp, vp, st.batch, c.head_dim, scale, ot);
  for (size_t i = 0; i < want.size(); ++i)
    ASSERT_NEAR(dst[i], want[i], 2e-5) << "group " << c.group << " element " << i;
  // The new rows landed in their slots (rounded to the pool dtype).
  for (int64_t r = 0; r < st.n; ++r) {
    for (int64_t j = 0; j < st.width; ++j) {
      Buffer one(c.kv_dtype, {1});
      one.set(0, st.k[r * st.width + j]);
      ASSERT_EQ(st.k_pool.get(st.batch.slots[r] * st.width + j), one.get(0));
    }
  }
}

TEST_P(AttentionTest, MatchesDenseReferenceForGqaRatios) {
  const auto [isa, kv_dtype] = GetParam();
  for (int64_t group : {1, 2, 4, 8}) run_case(isa, Case{2, group, 32, kv_dtype}, false);
}

TEST_P(AttentionTest, HandlesOddHeadDimAndLongPrefill) {
  const auto [isa, kv_dtype] = GetParam();
  Case c{1, 2, 20, kv_dtype};
  c.seqs = {{37, 37}, {1, 9}, {19, 50}};
  c.page_size = 8;
  run_case(isa, c, false);
}

TEST_P(AttentionTest, OutMayAliasQ) {
  const auto [isa, kv_dtype] = GetParam();
  run_case(isa, Case{2, 2, 16, kv_dtype}, true);
}

TEST_P(AttentionTest, RejectsBadBatches) {
  const auto [isa, kv_dtype] = GetParam();
  Case c{1, 1, 8, kv_dtype};
  c.seqs = {{2, 5}};
  std::mt19937 rng(1);
  Scenario st = make_setup(c, rng);
  std::vector<float> out(st.n * st.qwidth);
  Tensor kp = st.k_pool.tensor(), vp = st.v_pool.tensor(), ot = view(out, st.n, st.qwidth);
  auto call = [&] {
    CpuBackend(isa).attention(view(st.q, st.n, st.qwidth), view(st.k, st.n, st.width),
                              view(st.v, st.n, st.width), kp, vp, st.batch, 8, 1.0f, ot);
  };
  st.batch.slots[0] = 1 << 20;
  EXPECT_THROW(call(), Error);
  st.batch.slots[0] = 0;
  st.batch.seqs[0].kv_len = 1;
  EXPECT_THROW(call(), Error);
  st.batch.seqs[0].kv_len = 5;
  st.pages[0][1] = 1000;
  EXPECT_THROW(call(), Error);
}

INSTANTIATE_TEST_SUITE_P(AllLevels, AttentionTest, all_isa_dtypes(), isa_dtype_name);

}  // namespace
}  // namespace nativelm::test
