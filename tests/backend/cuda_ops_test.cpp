// Every CUDA kernel against the CPU backend (itself checked against double
// precision references) on seeded random data, for f32, bf16 and f16 models.
// Skipped, saying why, where no usable GPU is present; scripts/test-gpu.sh
// runs them on the GPU machine.
#ifdef NATIVELM_HAVE_CUDA
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <numeric>
#include <random>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu_test_util.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/decode_program.h"
#include "util/error.h"

namespace nativelm {
namespace {

using test::Buffer;

class CudaOps : public testing::TestWithParam<DType> {
 protected:
  void SetUp() override {
    const std::string why = cuda::unavailable_reason();
    if (!why.empty()) GTEST_SKIP() << "no usable GPU: " << why;
    gpu_ = std::make_unique<CudaBackend>(BackendOptions{});
    gpu_->set_model_dtype(GetParam());
  }
  void TearDown() override {
    if (!gpu_) return;
    for (Tensor& t : owned_) gpu_->free(t);
  }
  DType dt() const { return GetParam(); }
  // Random values already rounded to the model dtype.
  Buffer random(std::vector<int64_t> shape, float lo = -1.0f, float hi = 1.0f) {
    Buffer b(dt(), std::move(shape));
    b.fill_random(rng_, lo, hi);
    return b;
  }
  Tensor upload(Buffer& b) {
    Tensor host = b.tensor();
    Tensor t = host.ndim == 1 ? gpu_->alloc(host.dtype, {host.dim(0)}) : gpu_->alloc(host.dtype, {host.dim(0), host.dim(1)});
    gpu_->copy_from_host(host.data, t);
    owned_.push_back(t);
    return t;
  }
  Tensor empty(DType d, int64_t rows, int64_t cols) {
    Tensor t = gpu_->alloc(d, {rows, cols});
    owned_.push_back(t);
    return t;
  }
  std::vector<float> download(const Tensor& t) {
    Buffer b(t.dtype, {t.numel()});
    gpu_->copy_to_host(t, b.tensor().data);
    return b.values();
  }
  // Largest difference relative to the reference's largest magnitude.
  static float rel_error(const std::vector<float>& got, const std::vector<float>& want) {
    EXPECT_EQ(got.size(), want.size());
    float scale = 1e-6f, worst = 0.0f;
    for (float w : want) scale = std::max(scale, std::fabs(w));
    for (size_t i = 0; i < std::min(got.size(), want.size()); ++i)
      worst = std::max(worst, std::fabs(got[i] - want[i]));
    return worst / scale;
  }
  // A decode batch (one new token per sequence) over shuffled pages of
  // page_size slots: sequence i has kv_lens[i] positions, the last one new.
  struct DecodeBatch {
    AttentionBatch batch;
    std::vector<std::vector<int32_t>> tables;  // batch.seqs point into these
    std::vector<int32_t> positions;
  };
  struct DecodeCase {
    int64_t hidden, heads, kv_heads, hd, inter;
    std::vector<int32_t> kv_lens;
    bool bias = false;  // biases on the four projections
  };
  // Three layers of a decode step's ops inside a step (one decode program:
  // the persistent kernel, or for one row with `cluster` the cluster
  // kernel) and the same ops outside a step (kernel by kernel): residual
  // stream and the K/V written to the pools must agree to rounding.
  void check_decode_program(const DecodeCase& c, bool cluster) {
    const int64_t n = static_cast<int64_t>(c.kv_lens.size()), H = c.hidden, layers = 3;
    const QkvLayout layout{c.heads, c.kv_heads, c.hd};
    const int64_t kw = c.kv_heads * c.hd, qw = c.heads * c.hd;
    const int32_t ps = 16;
    int32_t pages = 0;
    for (int32_t len : c.kv_lens) pages += (len + ps - 1) / ps;
    const auto decode = decode_batch(c.kv_lens, ps, pages);
    const AttentionBatch& batch = decode->batch;
    const std::vector<int32_t>& positions = decode->positions;
    const std::vector<int32_t> tokens(n, 0);
    std::vector<float> inv_freq(c.hd / 2);
    for (int64_t j = 0; j < c.hd / 2; ++j) inv_freq[j] = std::pow(10000.0f, -2.0f * j / c.hd);
    struct Layer {
      Tensor in_norm, qkv, q_norm, k_norm, o, post_norm, gate_up, down;
      Tensor qkv_b, o_b, gate_up_b, down_b;
    };
    std::vector<Layer> ls;
    for (int64_t l = 0; l < layers; ++l) {
      const auto w = [&](int64_t rows, int64_t k) {
        Buffer b = random({rows, k}, -1.0f / std::sqrt(float(k)), 1.0f / std::sqrt(float(k)));
        return upload(b);
      };
      const auto norm = [&](int64_t d) {
        Buffer b = random({d}, 0.5f, 1.5f);
        return upload(b);
      };
      const auto bias = [&](int64_t d) {
        Buffer b = random({d}, -0.5f, 0.5f);
        return c.bias ? upload(b) : Tensor{};
      };
      ls.push_back({norm(H), w(layout.width(), H), norm(c.hd), norm(c.hd), w(H, qw), norm(H), w(2 * c.inter, H),
                    w(H, c.inter), bias(layout.width()), bias(H), bias(2 * c.inter), bias(H)});
    }
    Buffer res0 = random({n, H}), kpool = random({int64_t{pages} * ps, kw}), vpool = random({int64_t{pages} * ps, kw});
    const float scale = 1.0f / std::sqrt(static_cast<float>(c.hd));
    std::vector<float> res[2], kps[2], vps[2];
    // fused == 2: a first fused run, whose scratch growth may split the program.
    for (int fused : {2, 0, 1}) {
      std::vector<Tensor> kg, vg;
      for (int64_t l = 0; l < layers; ++l) {
        kg.push_back(upload(kpool));
        vg.push_back(upload(vpool));
      }
      Tensor r = upload(res0), hidden = empty(dt(), n, H), qkv = empty(dt(), n, layout.width());
      Tensor q = empty(dt(), n, qw), attn = empty(dt(), n, qw), proj = empty(dt(), n, H);
      Tensor gu = empty(dt(), n, 2 * c.inter), act = empty(dt(), n, c.inter);
      const int64_t launched = gpu_->decode_programs(), on_clusters = gpu_->decode_cluster_programs();
      if (fused) gpu_->begin_step({tokens, positions, {}, &batch, {}});
      for (int64_t l = 0; l < layers; ++l) {
        const Layer& L = ls[l];
        const auto b = [&](const Tensor& t) { return c.bias ? &t : nullptr; };
        gpu_->norm_linear(r, L.in_norm, 1e-6f, L.qkv, b(L.qkv_b), hidden, qkv);
        gpu_->prepare_attention(qkv, layout, &L.q_norm, &L.k_norm, 1e-6f, positions, inv_freq, batch, scale, kg[l],
                                vg[l], q, attn);
        gpu_->linear_add(attn, L.o, b(L.o_b), r, proj);
        gpu_->norm_linear_swiglu(r, L.post_norm, 1e-6f, L.gate_up, b(L.gate_up_b), hidden, gu, act);
        gpu_->linear_add(act, L.down, b(L.down_b), r, proj);
      }
      if (fused) gpu_->end_step();
      if (fused == 2) continue;
      EXPECT_EQ(gpu_->decode_programs() - launched, fused) << "programs launched";
      if (cluster) {
        EXPECT_EQ(gpu_->decode_cluster_programs() - on_clusters, fused) << "programs on the cluster kernel";
      }
      res[fused] = download(r);
      for (int64_t l = 0; l < layers; ++l) {
        auto k = download(kg[l]), v = download(vg[l]);
        kps[fused].insert(kps[fused].end(), k.begin(), k.end());
        vps[fused].insert(vps[fused].end(), v.begin(), v.end());
      }
    }
    const std::string what = std::string(cluster ? "cluster kernel, " : "") + std::to_string(n) + " rows, " +
                             std::to_string(c.heads) + "/" + std::to_string(c.kv_heads) + " heads of " +
                             std::to_string(c.hd);
    EXPECT_LE(rel_error(res[1], res[0]), 4 * tol()) << what;
    EXPECT_LE(rel_error(kps[1], kps[0]), 2 * tol()) << what;
    EXPECT_LE(rel_error(vps[1], vps[0]), 2 * tol()) << what;
  }

  std::unique_ptr<DecodeBatch> decode_batch(const std::vector<int32_t>& kv_lens, int32_t page_size, int32_t pages) {
    auto d = std::make_unique<DecodeBatch>();
    std::vector<int32_t> perm(pages);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng_);
    d->batch.page_size = page_size;
    int32_t page = 0;
    for (int32_t len : kv_lens) {
      std::vector<int32_t> t;
      for (int32_t p = 0; p < (len + page_size - 1) / page_size; ++p) t.push_back(perm[page++]);
      d->positions.push_back(len - 1);
      d->batch.slots.push_back(t[(len - 1) / page_size] * page_size + (len - 1) % page_size);
      d->tables.push_back(std::move(t));
    }
    for (size_t i = 0; i < kv_lens.size(); ++i)
      d->batch.seqs.push_back({static_cast<int32_t>(i), 1, kv_lens[i], d->tables[i].data()});
    return d;
  }
  // One rounding to the dtype (plus f32 order effects) at most.
  float tol() const { return dt() == DType::F32 ? 1e-5f : dt() == DType::F16 ? 2e-3f : 1.6e-2f; }

  std::unique_ptr<CudaBackend> gpu_;
  CpuBackend cpu_;
  std::vector<Tensor> owned_;
  std::mt19937 rng_{1234};
};

TEST_P(CudaOps, EmbeddingAndGatherAreExact) {
  Buffer table = random({50, 72});
  const std::vector<int32_t> ids = {3, 49, 0, 3, 17};
  Tensor out = empty(dt(), 5, 72);
  gpu_->embedding(upload(table), ids, out);
  const auto got = download(out), all = table.values();
  for (size_t i = 0; i < ids.size(); ++i)
    for (int j = 0; j < 72; ++j) ASSERT_EQ(got[i * 72 + j], all[ids[i] * 72 + j]);
  Tensor picked = empty(dt(), 2, 72);
  const std::vector<int32_t> rows = {4, 1};
  gpu_->gather_rows(out, rows, picked);
  const auto g = download(picked);
  for (int j = 0; j < 72; ++j) {
    ASSERT_EQ(g[j], got[4 * 72 + j]);
    ASSERT_EQ(g[72 + j], got[72 + j]);
  }
}

TEST_P(CudaOps, RmsNormAndResidualAdd) {
  for (int64_t d : {64, 1024, 1000}) {
    Buffer x = random({7, d}), r = random({7, d}), w = random({d}, 0.5f, 1.5f);
    auto xv = x.values(), rv = r.values(), wv = w.values();
    Tensor xg = upload(x), rg = upload(r), wg = upload(w), out = empty(dt(), 7, d);
    std::vector<float> want(xv.size());
    Tensor wc = w.tensor();
    Tensor xc = test::view(xv, 7, d), oc = test::view(want, 7, d);
    cpu_.rms_norm(xc, wc, 1e-6f, oc);
    gpu_->rms_norm(xg, wg, 1e-6f, out);
    EXPECT_LE(rel_error(download(out), want), tol()) << "rms_norm d=" << d;
    Tensor rc = test::view(rv, 7, d);
    cpu_.add_rms_norm(rc, xc, wc, 1e-6f, oc);
    gpu_->add_rms_norm(rg, xg, wg, 1e-6f, out);
    EXPECT_LE(rel_error(download(rg), rv), tol()) << "residual d=" << d;
    EXPECT_LE(rel_error(download(out), want), 2 * tol()) << "add_rms_norm d=" << d;
  }
}

// All paths: the GEMVs (up to kGemvMaxRows rows: for 16-bit weights the
// prefetching kernel where its shared memory holds a block's rows, the
// streaming kernel with vector or scalar loads otherwise) and
// cuBLASLt; outputs in the model dtype and in f32 (logits).
TEST_P(CudaOps, LinearMatchesCpu) {
  struct Shape { int64_t n, m, k; bool bias; };
  for (Shape s : {Shape{1, 96, 64, false}, Shape{3, 200, 100, true}, Shape{8, 256, 512, false},
                  Shape{9, 160, 256, true}, Shape{64, 384, 1024, false}, Shape{130, 70, 48, true},
                  // 16-bit: Qwen3-0.6B's qkv and (eight input rows) down projections
                  // on the prefetching kernel; too many rows, and rows too long, for
                  // its shared memory (the streaming kernel).
                  Shape{1, 4096, 1024, true}, Shape{5, 1000, 3072, false}, Shape{1, 20000, 1024, true},
                  Shape{2, 300, 16384, false}}) {
    Buffer x = random({s.n, s.k}), w = random({s.m, s.k}), b = random({s.m});
    auto xv = x.values();
    Tensor xg = upload(x), wg = upload(w), bg = upload(b);
    Tensor wc = w.tensor(), bc = b.tensor(), xc = test::view(xv, s.n, s.k);
    std::vector<float> want(static_cast<size_t>(s.n * s.m));
    Tensor oc = test::view(want, s.n, s.m);
    cpu_.linear(xc, wc, s.bias ? &bc : nullptr, oc);
    for (DType out_dt : {dt(), DType::F32}) {
      Tensor out = empty(out_dt, s.n, s.m);
      gpu_->linear(xg, wg, s.bias ? &bg : nullptr, out);
      const float t = out_dt == DType::F32 ? std::max(tol() / 4, 1e-5f) : tol();
      EXPECT_LE(rel_error(download(out), want), t) << s.n << "x" << s.m << "x" << s.k << " out " << dtype_name(out_dt);
    }
  }
  Tensor x = empty(dt(), 2, 8), w = empty(dt(), 4, 9), out = empty(dt(), 2, 4);
  EXPECT_THROW(gpu_->linear(x, w, nullptr, out), Error);
}

TEST_P(CudaOps, QkvPrepareNormRopeAndCacheWrite) {
  struct Case { int64_t heads, kv_heads, hd; bool norm; };
  for (Case c : {Case{4, 2, 64, true}, Case{4, 2, 64, false}, Case{2, 1, 8, true}, Case{16, 8, 128, true}}) {
    const QkvLayout layout{c.heads, c.kv_heads, c.hd};
    const int64_t n = 5, slots = 32, kw = c.kv_heads * c.hd;
    Buffer qkv = random({n, layout.width()}, -2.0f, 2.0f);
    Buffer qn = random({c.hd}, 0.5f, 1.5f), kn = random({c.hd}, 0.5f, 1.5f);
    const std::vector<int32_t> positions = {0, 1, 17, 999, 4095};
    const std::vector<int32_t> slot_ids = {3, 30, 0, 12, 7};
    std::vector<float> inv_freq(c.hd / 2);
    for (int64_t j = 0; j < c.hd / 2; ++j) inv_freq[j] = std::pow(10000.0f, -2.0f * j / c.hd);
    // CPU: f32 qkv and f32 pools.
    auto qkv_v = qkv.values();
    std::vector<float> q_want(n * c.heads * c.hd), kp(slots * kw), vp(slots * kw);
    Tensor qkv_c = test::view(qkv_v, n, layout.width()), qo_c = test::view(q_want, n, c.heads * c.hd);
    Tensor kp_c = test::view(kp, slots, kw), vp_c = test::view(vp, slots, kw);
    Tensor qn_c = qn.tensor(), kn_c = kn.tensor();
    cpu_.qkv_prepare(qkv_c, layout, c.norm ? &qn_c : nullptr, c.norm ? &kn_c : nullptr, 1e-6f, positions, inv_freq,
                     slot_ids, kp_c, vp_c, qo_c);
    Tensor qkv_g = upload(qkv), qn_g = upload(qn), kn_g = upload(kn);
    Tensor qo_g = empty(dt(), n, c.heads * c.hd), kp_g = empty(dt(), slots, kw), vp_g = empty(dt(), slots, kw);
    gpu_->qkv_prepare(qkv_g, layout, c.norm ? &qn_g : nullptr, c.norm ? &kn_g : nullptr, 1e-6f, positions, inv_freq,
                      slot_ids, kp_g, vp_g, qo_g);
    // Rounding happens after the norm and after the rotation here: twice.
    EXPECT_LE(rel_error(download(qo_g), q_want), 3 * tol()) << "q hd=" << c.hd;
    EXPECT_LE(rel_error(download(kp_g), kp), 3 * tol()) << "k pool hd=" << c.hd;
    EXPECT_LE(rel_error(download(vp_g), vp), tol()) << "v pool hd=" << c.hd;
  }
}

// A decode row with a long history (split over several chunks), a chunk of
// prefill rows on top of cached positions, and a first token, in one batch
// with pages scattered over the pool.
TEST_P(CudaOps, PagedAttentionMixedBatch) {
  struct Case { int64_t heads, kv_heads, hd; };
  for (Case c : {Case{4, 2, 64}, Case{8, 1, 128}, Case{6, 2, 8}, Case{32, 8, 128}, Case{16, 16, 256}, Case{2, 2, 128}}) {
    const int32_t ps = 16, pages = 96;
    const int64_t kw = c.kv_heads * c.hd, qw = c.heads * c.hd;
    Buffer kpool = random({pages * ps, kw}), vpool = random({pages * ps, kw});
    std::vector<int32_t> perm(pages);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng_);
    AttentionBatch batch;
    batch.page_size = ps;
    const std::vector<std::pair<int32_t, int32_t>> shape = {{1, 700}, {37, 50}, {1, 1}, {3, 129}, {150, 300}};
    int32_t row = 0, page = 0;
    std::vector<std::vector<int32_t>> tables;
    for (auto [q_len, kv_len] : shape) {
      std::vector<int32_t> t;
      for (int32_t p = 0; p < (kv_len + ps - 1) / ps; ++p) t.push_back(perm[page++]);
      tables.push_back(t);
      for (int32_t i = 0; i < q_len; ++i) {
        const int32_t pos = kv_len - q_len + i;
        batch.slots.push_back(t[pos / ps] * ps + pos % ps);
      }
      row += q_len;
    }
    row = 0;
    for (size_t s = 0; s < shape.size(); ++s) {
      batch.seqs.push_back({row, shape[s].first, shape[s].second, tables[s].data()});
      row += shape[s].first;
    }
    const int64_t n = row;
    Buffer q = random({n, qw}, -2.0f, 2.0f);
    auto qv = q.values();
    std::vector<float> want(n * qw);
    Tensor qc = test::view(qv, n, qw), oc = test::view(want, n, qw);
    const float scale = 1.0f / std::sqrt(static_cast<float>(c.hd));
    cpu_.attention(qc, kpool.tensor(), vpool.tensor(), batch, c.hd, scale, oc);
    Tensor qg = upload(q), kg = upload(kpool), vg = upload(vpool), og = empty(dt(), n, qw);
    gpu_->attention(qg, kg, vg, batch, c.hd, scale, og);
    EXPECT_LE(rel_error(download(og), want), 2 * tol()) << c.heads << "/" << c.kv_heads << " heads, hd " << c.hd;
  }
}

// A decode step (each sequence adds one token): prepare_attention, which the
// lanes kernel serves alone for 16-bit K/V of head size 64/128 and few heads
// per kv head, must give exactly what qkv_prepare + attention give on the GPU
// (output and pools) and match the CPU. The other shapes take the pair.
TEST_P(CudaOps, PrepareAttentionOnDecodeRows) {
  struct Case { int64_t heads, kv_heads, hd; bool norm; };
  for (Case c : {Case{16, 8, 128, true}, Case{4, 2, 64, false}, Case{8, 2, 64, true}, Case{2, 2, 128, true},
                 Case{8, 1, 128, true}}) {
    const QkvLayout layout{c.heads, c.kv_heads, c.hd};
    const int32_t ps = 16, pages = 80;
    const int64_t kw = c.kv_heads * c.hd, qw = c.heads * c.hd;
    const std::vector<int32_t> kv_lens = {700, 1, 129, 50, 16};
    const int64_t n = static_cast<int64_t>(kv_lens.size());
    const auto decode = decode_batch(kv_lens, ps, pages);
    const AttentionBatch& batch = decode->batch;
    const std::vector<int32_t>& positions = decode->positions;
    std::vector<float> inv_freq(c.hd / 2);
    for (int64_t j = 0; j < c.hd / 2; ++j) inv_freq[j] = std::pow(10000.0f, -2.0f * j / c.hd);
    Buffer qkv = random({n, layout.width()}, -2.0f, 2.0f), kpool = random({pages * ps, kw}),
           vpool = random({pages * ps, kw});
    Buffer qn = random({c.hd}, 0.5f, 1.5f), kn = random({c.hd}, 0.5f, 1.5f);
    const float scale = 1.0f / std::sqrt(static_cast<float>(c.hd));
    auto qkv_v = qkv.values(), kp = kpool.values(), vp = vpool.values();
    std::vector<float> q_c(n * qw), want(n * qw);
    Tensor qkv_c = test::view(qkv_v, n, layout.width()), kp_c = test::view(kp, pages * ps, kw);
    Tensor vp_c = test::view(vp, pages * ps, kw), qc = test::view(q_c, n, qw), oc = test::view(want, n, qw);
    Tensor qn_c = qn.tensor(), kn_c = kn.tensor();
    cpu_.prepare_attention(qkv_c, layout, c.norm ? &qn_c : nullptr, c.norm ? &kn_c : nullptr, 1e-6f, positions,
                           inv_freq, batch, scale, kp_c, vp_c, qc, oc);
    Tensor qkv_g = upload(qkv), qn_g = upload(qn), kn_g = upload(kn);
    std::vector<float> out[2], kps[2], vps[2];
    for (int fused = 0; fused < 2; ++fused) {
      Tensor kg = upload(kpool), vg = upload(vpool), qg = empty(dt(), n, qw), og = empty(dt(), n, qw);
      const Tensor *qn_p = c.norm ? &qn_g : nullptr, *kn_p = c.norm ? &kn_g : nullptr;
      if (fused) {
        gpu_->prepare_attention(qkv_g, layout, qn_p, kn_p, 1e-6f, positions, inv_freq, batch, scale, kg, vg, qg, og);
      } else {
        gpu_->qkv_prepare(qkv_g, layout, qn_p, kn_p, 1e-6f, positions, inv_freq, batch.slots, kg, vg, qg);
        gpu_->attention(qg, kg, vg, batch, c.hd, scale, og);
      }
      out[fused] = download(og);
      kps[fused] = download(kg);
      vps[fused] = download(vg);
    }
    const std::string what = std::to_string(c.heads) + "/" + std::to_string(c.kv_heads) + " heads, hd " +
                             std::to_string(c.hd);
    const auto differing = [](const std::vector<float>& a, const std::vector<float>& b) {
      int64_t d = 0;
      for (size_t i = 0; i < a.size(); ++i) d += a[i] != b[i];
      return d;
    };
    EXPECT_EQ(differing(out[1], out[0]), 0) << what;
    EXPECT_EQ(differing(kps[1], kps[0]), 0) << what;
    EXPECT_EQ(differing(vps[1], vps[0]), 0) << what;
    EXPECT_LE(rel_error(out[0], want), 4 * tol()) << what << " (pair)";
    EXPECT_LE(rel_error(vps[0], vp), tol()) << what << " (pair)";
    EXPECT_LE(rel_error(out[1], want), 4 * tol()) << what;
    EXPECT_LE(rel_error(kps[1], kp), 3 * tol()) << what;
    EXPECT_LE(rel_error(vps[1], vp), tol()) << what;
  }
}

// A decode step's layer ops inside a step run as one decode program (the
// persistent kernel); the same ops outside a step run kernel by kernel.
TEST_P(CudaOps, DecodeProgramMatchesOpByOp) {
  if (dt() == DType::F32) GTEST_SKIP() << "the decode program serves 16-bit models only";
  gpu_->set_decode_program_rows(1);  // by default steps of 2+ rows take it (where it is faster)
  gpu_->set_decode_flags(false);     // with grid barriers (flagged: below)
  for (const DecodeCase& c :
       {DecodeCase{1024, 16, 8, 128, 3072, {300}}, DecodeCase{1024, 16, 8, 128, 3072, {2000, 1, 65}},
        DecodeCase{64, 4, 2, 16, 96, {7, 40, 1, 16, 33, 5, 2, 90}}, DecodeCase{512, 8, 1, 64, 256, {129, 1100}}})
    check_decode_program(c, false);
  gpu_->set_decode_flags(true);
}

// The same with flagged programs (activations as flagged words, no grid
// barriers between ops): Qwen3-0.6B's layer at one row (short, long), at
// 3 and 8 rows, a wider layer with biases, and one kv head for eight query
// heads (at 1,100 positions ~69 chunks: a merge of several rounds, two
// passes over the heads' elements); a layer too small for the flagged
// staging (hidden 64) falls back to the barriers.
TEST_P(CudaOps, DecodeProgramFlaggedMatchesOpByOp) {
  if (dt() == DType::F32) GTEST_SKIP() << "the decode program serves 16-bit models only";
  gpu_->set_decode_program_rows(1);
  gpu_->set_decode_flags(true);
  const int64_t flagged = gpu_->decode_flagged_programs();
  int servable = 0;
  for (const DecodeCase& c : {DecodeCase{1024, 16, 8, 128, 3072, {60}}, DecodeCase{1024, 16, 8, 128, 3072, {2000}},
                              DecodeCase{1024, 16, 8, 128, 3072, {2000, 1, 65}},
                              DecodeCase{1024, 16, 8, 128, 3072, {7, 40, 1, 16, 33, 5, 2, 90}},
                              DecodeCase{2048, 16, 8, 128, 6144, {300}, true}, DecodeCase{512, 8, 1, 64, 256, {1100}},
                              DecodeCase{512, 8, 1, 64, 256, {129, 1100}}, DecodeCase{64, 4, 2, 16, 96, {7, 40}}}) {
    check_decode_program(c, false);
    servable += c.hidden >= 256;
  }
  // Each case's two checked runs, and the first (growing) run where it got that far.
  EXPECT_GE(gpu_->decode_flagged_programs() - flagged, 2 * servable) << "flagged launches";
}

// One row on the cluster kernel: Qwen3-0.6B's layer shape at short and
// long sequences, a tiny model (a few rows per block), one kv head for
// eight query heads, and a wider model with biases (parts of two loads).
TEST_P(CudaOps, DecodeClusterMatchesOpByOp) {
  if (dt() == DType::F32) GTEST_SKIP() << "the decode program serves 16-bit models only";
  if (cuda::decode_cluster_shape(static_cast<cuda::Ty>(dt()), 8, 132, 132).size == 0)
    GTEST_SKIP() << "no thread-block clusters of 8 or more on this GPU";
  gpu_->set_decode_cluster(true);
  for (const DecodeCase& c : {DecodeCase{1024, 16, 8, 128, 3072, {60}}, DecodeCase{1024, 16, 8, 128, 3072, {1}},
                              DecodeCase{1024, 16, 8, 128, 3072, {2000}}, DecodeCase{64, 4, 2, 16, 192, {7}},
                              DecodeCase{512, 8, 1, 64, 256, {1100}}, DecodeCase{2048, 16, 8, 128, 6144, {300}, true}})
    check_decode_program(c, true);
}

TEST_P(CudaOps, AttentionRejectsPagesOutsideThePool) {
  Tensor q = empty(dt(), 1, 64), kp = empty(dt(), 32, 64), vp = empty(dt(), 32, 64), out = empty(dt(), 1, 64);
  int32_t page = 5;  // pool has 2 pages of 16
  AttentionBatch batch;
  batch.page_size = 16;
  batch.slots = {80};
  batch.seqs.push_back({0, 1, 1, &page});
  EXPECT_THROW(gpu_->attention(q, kp, vp, batch, 64, 0.125f, out), Error);
}

TEST_P(CudaOps, SiluMul) {
  Buffer gu = random({6, 2 * 300}, -4.0f, 4.0f);
  auto gv = gu.values();
  std::vector<float> want(6 * 300);
  Tensor gc = test::view(gv, 6, 600), oc = test::view(want, 6, 300);
  cpu_.silu_mul(gc, oc);
  Tensor out = empty(dt(), 6, 300);
  gpu_->silu_mul(upload(gu), out);
  EXPECT_LE(rel_error(download(out), want), 2 * tol());
}

// The transformer block's fused seams (norm + projection, norm + gate/up +
// SwiGLU, projection + residual add), in one pass for few rows and in two
// steps (cuBLASLt) for many, against the CPU running the pairs op by op.
TEST_P(CudaOps, FusedSeamsMatchTheirPairs) {
  for (int64_t n : {1, 3, 6, 12})
    for (int64_t k : {256, 100, 1024}) {
      const int64_t d = k == 1024 ? 3072 : 96;  // 1024: Qwen3-0.6B's MLP
      Buffer x = random({n, k}), nw = random({k}, 0.5f, 1.5f), w = random({2 * d, k}), b = random({2 * d});
      Buffer wo = random({k, d}), res = random({n, k}), act = random({n, d});
      auto xv = x.values(), rv = res.values(), av = act.values();
      std::vector<float> normed(n * k), gu(n * 2 * d), want_lin(n * 2 * d), want_act(n * d), proj(n * k);
      Tensor xc = test::view(xv, n, k), nc = test::view(normed, n, k), gc = test::view(gu, n, 2 * d);
      Tensor lc = test::view(want_lin, n, 2 * d), ac = test::view(want_act, n, d);
      Tensor wc = w.tensor(), bc = b.tensor(), nwc = nw.tensor(), woc = wo.tensor();
      cpu_.rms_norm(xc, nwc, 1e-6f, nc);
      cpu_.linear(nc, wc, &bc, lc);
      cpu_.linear(nc, wc, &bc, gc);
      cpu_.silu_mul(gc, ac);
      Tensor avc = test::view(av, n, d), pc = test::view(proj, n, k), rc = test::view(rv, n, k);
      cpu_.linear(avc, woc, nullptr, pc);
      cpu_.add(rc, pc);

      Tensor xg = upload(x), nwg = upload(nw), wg = upload(w), bg = upload(b), wog = upload(wo);
      Tensor rg = upload(res), actg = upload(act);
      Tensor normed_g = empty(dt(), n, k), gu_g = empty(dt(), n, 2 * d), lin = empty(dt(), n, 2 * d);
      Tensor out = empty(dt(), n, d), proj_g = empty(dt(), n, k);
      gpu_->norm_linear(xg, nwg, 1e-6f, wg, &bg, normed_g, lin);
      EXPECT_LE(rel_error(download(lin), want_lin), 3 * tol()) << "norm_linear " << n << "x" << k;
      gpu_->norm_linear_swiglu(xg, nwg, 1e-6f, wg, &bg, normed_g, gu_g, out);
      EXPECT_LE(rel_error(download(out), want_act), 4 * tol()) << "norm_linear_swiglu " << n << "x" << k;
      gpu_->linear_add(actg, wog, nullptr, rg, proj_g);
      EXPECT_LE(rel_error(download(rg), rv), 3 * tol()) << "linear_add " << n << "x" << d;
    }
}

TEST_P(CudaOps, ArgmaxTakesTheFirstOfEqualMaxima) {
  const int64_t vocab = 5000;
  Buffer logits(DType::F32, {4, vocab});
  logits.fill_random(rng_, -5.0f, 5.0f);
  logits.set(0 * vocab + 4999, 9.0f);
  logits.set(1 * vocab + 10, 9.0f);
  logits.set(1 * vocab + 4000, 9.0f);
  for (int64_t j = 0; j < vocab; ++j) logits.set(2 * vocab + j, -INFINITY);
  logits.set(3 * vocab + 0, 7.0f);
  Tensor lg = upload(logits);
  std::vector<int32_t> got(4);
  gpu_->argmax(lg, got);
  EXPECT_EQ(got, (std::vector<int32_t>{4999, 10, 0, 0}));
}

TEST_P(CudaOps, OversizedAllocationSaysHowMuch) {
  try {
    gpu_->alloc(DType::F32, {int64_t{1} << 40});
    FAIL() << "a 4 TB allocation succeeded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("out of GPU memory"), std::string::npos) << e.what();
  }
}

// Sampling on the device draws from the same cut distribution as the
// backend-independent reference (Backend::sample on the host): with the
// uniforms on an even grid, each token's share of the draws matches.
TEST(CudaSampling, DrawsFollowTheCutDistribution) {
  const std::string why = cuda::unavailable_reason();
  if (!why.empty()) GTEST_SKIP() << "no usable GPU: " << why;
  CudaBackend gpu{BackendOptions{}};
  CpuBackend cpu;
  const int64_t vocab = 50, rows = 4000;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::vector<float> row(vocab);
  for (float& v : row) v = normal(rng);
  std::vector<float> logits;
  for (int64_t r = 0; r < rows; ++r) logits.insert(logits.end(), row.begin(), row.end());
  Tensor host(logits.data(), DType::F32, {rows, vocab});
  Tensor dev = gpu.alloc(DType::F32, {rows, vocab});
  gpu.copy_from_host(logits.data(), dev);
  const std::vector<TokenPick> configs = {{1.0f, 0, 1.0f, 0.0f, 0, {}},   {0.7f, 10, 1.0f, 0.0f, 0, {}},
                                          {1.0f, 0, 0.8f, 0.0f, 0, {}},   {1.3f, 0, 1.0f, 0.1f, 0, {}},
                                          {0.8f, 20, 0.9f, 0.05f, 0, {}}, {0.0f, 0, 1.0f, 0.0f, 0, {}}};
  for (const TokenPick& c : configs) {
    std::vector<TokenPick> picks(rows, c);
    for (int64_t r = 0; r < rows; ++r) picks[r].uniform = (static_cast<float>(r) + 0.5f) / rows;
    std::vector<int32_t> got(rows), want(rows);
    gpu.sample(dev, picks, got);
    cpu.sample(host, picks, want);
    std::vector<int> got_count(vocab), want_count(vocab);
    for (int64_t r = 0; r < rows; ++r) {
      ++got_count[got[r]];
      ++want_count[want[r]];
    }
    for (int64_t t = 0; t < vocab; ++t) {
      EXPECT_NEAR(got_count[t], want_count[t], 3) << "token " << t << ", temperature " << c.temperature << ", top_k "
                                                 << c.top_k << ", top_p " << c.top_p << ", min_p " << c.min_p;
      if (want_count[t] == 0) {
        EXPECT_EQ(got_count[t], 0) << "token " << t << " is cut but was drawn";
      }
    }
  }
  gpu.free(dev);
}

// At a real vocabulary size (the kernels cut a row into slices, take cut
// rows' candidates from a histogram, and fall back to bisecting flat rows),
// each row's pick equals the host's for the same uniform, or lies between
// the host's picks for uniforms a hair either side (a draw walks the
// survivors in vocabulary order, so it moves monotonically with the uniform;
// the device's float sums differ from the host's doubles near a token's
// edge). Rows of one batch mix distributions and parameters.
TEST(CudaSampling, FullVocabularyPicksMatchTheHost) {
  const std::string why = cuda::unavailable_reason();
  if (!why.empty()) GTEST_SKIP() << "no usable GPU: " << why;
  CudaBackend gpu{BackendOptions{}};
  const int64_t vocab = 151936, rows = 240;
  std::mt19937 rng(21);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<std::vector<float>> dists(3, std::vector<float>(vocab));
  for (float& v : dists[0]) v = normal(rng);  // peaked: a few clear favourites
  for (int i = 0; i < 30; ++i) dists[0][(i * 7919) % vocab] += 6.0f + 0.15f * static_cast<float>(i);
  for (float& v : dists[1]) v = 0.5f * normal(rng);  // flat: the cut keeps thousands
  for (int64_t j = 0; j < vocab; ++j)                // mostly masked
    dists[2][j] = j % 10 == 3 ? 2.0f * normal(rng) : -std::numeric_limits<float>::infinity();
  const std::vector<TokenPick> configs = {
      {0.6f, 20, 0.95f, 0.0f, 0, {}}, {0.6f, 0, 0.9f, 0.0f, 0, {}},  {1.0f, 0, 1.0f, 0.0f, 0, {}},
      {0.8f, 0, 1.0f, 0.05f, 0, {}},  {0.7f, 50, 1.0f, 0.0f, 0, {}}, {1.0f, 5000, 1.0f, 0.0f, 0, {}},
      {0.0f, 0, 1.0f, 0.0f, 0, {}},   {1.2f, 0, 0.5f, 0.02f, 0, {}}, {0.9f, 500, 0.8f, 0.0f, 0, {}}};
  std::vector<float> logits;
  std::vector<TokenPick> picks(rows);
  for (int64_t r = 0; r < rows; ++r) {
    logits.insert(logits.end(), dists[r % 3].begin(), dists[r % 3].end());
    picks[r] = configs[(r / 3) % configs.size()];
    picks[r].uniform = (static_cast<float>(r / 24) + 0.5f) / 10.0f * 0.98f + 0.01f * static_cast<float>(r % 2);
  }
  Tensor dev = gpu.alloc(DType::F32, {rows, vocab});
  gpu.copy_from_host(logits.data(), dev);
  std::vector<int32_t> got(rows), again(rows);
  gpu.sample(dev, picks, got);
  gpu.sample(dev, picks, again);
  EXPECT_EQ(got, again) << "the same uniforms drew differently";
  int near = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const std::span<const float> row(logits.data() + r * vocab, static_cast<size_t>(vocab));
    const int32_t want = pick_token(row, picks[r]);
    if (got[r] == want) continue;
    TokenPick lo = picks[r], hi = picks[r];
    lo.uniform = std::max(0.0f, lo.uniform - 1e-5f);
    hi.uniform = std::min(0.99999f, hi.uniform + 1e-5f);
    const bool edge = pick_token(row, lo) <= got[r] && got[r] <= pick_token(row, hi);
    EXPECT_TRUE(edge) << "row " << r << " (distribution " << r % 3 << ", config " << (r / 3) % configs.size()
                      << "): got " << got[r] << ", the host picks " << want;
    near += edge;
  }
  EXPECT_LE(near, rows / 40) << "too many picks at a token's edge";
  gpu.free(dev);
}

// Logit edits (bias, masks, penalties) are applied on the device before the
// pick, to the same bits as apply_logit_edits on the host; a greedy pick
// then takes the edited argmax, also over two outstanding picks whose edit
// buffers grow in between.
TEST(CudaSampling, LogitEditsMatchTheHost) {
  const std::string why = cuda::unavailable_reason();
  if (!why.empty()) GTEST_SKIP() << "no usable GPU: " << why;
  CudaBackend gpu{BackendOptions{}};
  const int64_t vocab = 3000, rows = 5;
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 4.0f);
  std::vector<float> logits(rows * vocab);
  for (float& v : logits) v = normal(rng);
  std::vector<TokenPick> picks(rows);
  std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(vocab) - 1);
  for (int64_t r = 0; r < rows; ++r) {
    std::map<int32_t, LogitEdit> edits;  // one per token, as callers make them
    for (int i = 0; i < 40 * static_cast<int>(r); ++i) {
      LogitEdit& e = edits[token(rng)];
      e.bias = i % 5 == 0 ? 0.7f * static_cast<float>(i % 3) : 0.0f;
      e.mask = i % 17 == 3;
      e.repetition = i % 2 ? 1.3f : 0.7f;
      e.subtract = i % 3 ? 0.4f * static_cast<float>(i % 4) + 0.25f : 0.0f;
    }
    if (r == 2) edits[static_cast<int32_t>(vocab) + 5].bias = 100.0f;  // outside the row: skipped
    for (auto& [t, e] : edits) {
      e.token = t;
      picks[r].edits.push_back(e);
    }
  }
  std::vector<float> want = logits;
  for (int64_t r = 0; r < rows; ++r)
    apply_logit_edits(std::span<float>(want.data() + r * vocab, static_cast<size_t>(vocab)), picks[r].edits);
  for (int round = 0; round < 2; ++round) {
    Tensor a = gpu.alloc(DType::F32, {rows, vocab}), b = gpu.alloc(DType::F32, {rows, vocab});
    gpu.copy_from_host(logits.data(), a);
    gpu.copy_from_host(logits.data(), b);
    // Two picks outstanding; the second has more edits, so the buffers grow.
    std::vector<TokenPick> first(picks.begin(), picks.begin() + 2), second = picks;
    first.resize(rows);
    gpu.start_pick(a, first);
    gpu.start_pick(b, second);
    std::vector<int32_t> got_a, got_b;
    gpu.collect_picks(got_a);
    gpu.collect_picks(got_b);
    std::vector<float> edited(rows * vocab);
    gpu.copy_to_host(b, edited.data());
    for (int64_t i = 0; i < rows * vocab; ++i)
      ASSERT_EQ(edited[i], want[i]) << "row " << i / vocab << ", token " << i % vocab;
    for (int64_t r = 0; r < rows; ++r) {
      const std::span<const float> row(want.data() + r * vocab, static_cast<size_t>(vocab));
      EXPECT_EQ(got_b[r], pick_token(row, picks[r])) << "row " << r;
      const float* a_row = (r < 2 ? want.data() : logits.data()) + r * vocab;  // the first pick edits rows 0-1
      EXPECT_EQ(got_a[r], pick_token(std::span<const float>(a_row, static_cast<size_t>(vocab)), TokenPick{})) << r;
    }
    gpu.free(a);
    gpu.free(b);
  }
}

// Log-probabilities reported with a pick are those of the raw row (before
// any edit, so a bias that makes a token the pick does not change its
// logprob), as token_logprobs on the host: at a real vocabulary size, at a
// vocabulary of one slice, and for a row of ties (the fallback).
TEST(CudaSampling, LogprobsMatchTheHost) {
  const std::string why = cuda::unavailable_reason();
  if (!why.empty()) GTEST_SKIP() << "no usable GPU: " << why;
  CudaBackend gpu{BackendOptions{}};
  for (const int64_t vocab : {int64_t{151936}, int64_t{50}}) {
    const int64_t rows = 9;
    std::mt19937 rng(5);
    std::normal_distribution<float> normal(0.0f, 3.0f);
    std::vector<float> logits(rows * vocab);
    for (float& v : logits) v = normal(rng);
    std::fill(logits.begin() + 8 * vocab, logits.end(), 0.5f);  // all ties
    std::vector<TokenPick> picks(rows);
    const int32_t asks[] = {0, 1, 5, 20, -1, 3, 20, 2, 5};
    for (int64_t r = 0; r < rows; ++r) {
      picks[r].logprobs = asks[r];
      if (r % 2) picks[r] = TokenPick{0.8f, 20, 0.9f, 0.0f, 0.3f, {}, asks[r]};
    }
    // Row 5's pick is pushed onto token 7 by a bias; rows 6 and 7 are penalised.
    picks[5].edits = {LogitEdit{3, 0.0f, 1.5f, 0.2f, false}, LogitEdit{7, 100.0f, 1.0f, 0.0f, false}};
    picks[6].edits = {LogitEdit{1, 0.0f, 1.3f, 0.4f, false}, LogitEdit{2, 0.0f, 1.0f, 0.0f, true}};
    picks[7].edits = {LogitEdit{0, 1.0f, 1.0f, 0.5f, false}};
    Tensor dev = gpu.alloc(DType::F32, {rows, vocab});
    gpu.copy_from_host(logits.data(), dev);
    std::vector<int32_t> got;
    std::vector<PickLogprobs> lp;
    gpu.start_pick(dev, picks);
    gpu.collect_picks(got, &lp);
    ASSERT_EQ(lp.size(), static_cast<size_t>(rows));
    EXPECT_EQ(got[5], 7);
    for (int64_t r = 0; r < rows; ++r) {
      if (asks[r] < 0) {
        EXPECT_TRUE(lp[r].top.empty());
        continue;
      }
      const std::span<const float> raw(logits.data() + r * vocab, static_cast<size_t>(vocab));
      const PickLogprobs want = token_logprobs(raw, got[r], asks[r]);
      const std::string where = "vocab " + std::to_string(vocab) + ", row " + std::to_string(r);
      EXPECT_NEAR(lp[r].chosen, want.chosen, 1e-4) << where;
      ASSERT_EQ(lp[r].top.size(), want.top.size()) << where;
      for (size_t k = 0; k < want.top.size(); ++k) {
        EXPECT_EQ(lp[r].top[k].first, want.top[k].first) << where << ", rank " << k;
        EXPECT_NEAR(lp[r].top[k].second, want.top[k].second, 1e-4) << where << ", rank " << k;
      }
    }
    gpu.free(dev);
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, CudaOps, testing::Values(DType::F32, DType::BF16, DType::F16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

}  // namespace
}  // namespace nativelm
#endif  // NATIVELM_HAVE_CUDA
