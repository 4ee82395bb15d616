// plan_flagged (backend/cuda/decode_flags.cpp): which op each input of a
// flagged decode program comes from, where each op's flagged output goes,
// which ops also write their buffer, where a grid barrier stays, and which
// programs it turns down. Host code: runs without a GPU.
#ifdef NATIVELM_HAVE_CUDA
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "backend/cuda/decode_program.h"

namespace nativelm::cuda {
namespace {

constexpr int kHidden = 1024, kHeads = 16, kKvHeads = 8, kHd = 128, kInter = 3072, kBlocks = 132;
constexpr int kWidth = (kHeads + 2 * kKvHeads) * kHd;

// Qwen3-0.6B's layer ops over buffers in one arena (bf16 values).
struct Layers {
  std::vector<char> arena = std::vector<char>(size_t{64} << 20);
  char* res = arena.data();
  char* qkv = res + (1 << 20);
  char* attn = qkv + (1 << 20);
  char* act = attn + (1 << 20);
  std::unique_ptr<DecodeProgram> p = std::make_unique<DecodeProgram>();

  Layers(int layers, int rows) {
    p->rows = rows;
    p->heads = kHeads;
    p->kv_heads = kKvHeads;
    p->head_dim = kHd;
    p->splits = kBlocks / (rows * kKvHeads);
    for (int l = 0; l < layers; ++l) {
      add(kOpGemvNorm, kWidth, kHidden, res, qkv);
      add(kOpAttention, 0, 0, qkv, attn);
      add(kOpGemvAdd, kHidden, kHeads * kHd, attn, res);
      add(kOpGemvNormSwiglu, kInter, kHidden, res, act);
      add(kOpGemvAdd, kHidden, kInter, act, res);
    }
  }
  void add(int kind, int m, int k, void* x, void* out) {
    p->ops[p->num_ops++] = DecodeOp{kind, m, k, 1e-6f, x, nullptr, nullptr, nullptr, out, nullptr, nullptr, {}};
  }
};

TEST(PlanFlagged, LinksEachInputToTheOpThatWroteIt) {
  Layers ls(2, 1);
  DecodeProgram& p = *ls.p;
  const size_t words = plan_flagged(p, kBlocks, 2);
  ASSERT_GT(words, 0u);
  const int src[] = {-1, 0, 1, 2, 3, 4, 5, 6, 7, 8};
  const int old_src[] = {-1, -1, -1, -1, 2, -1, -1, 4, -1, 7};
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(p.ops[i].link.src, src[i]) << "op " << i;
    if (p.ops[i].kind == kOpGemvAdd) {
      EXPECT_EQ(p.ops[i].link.old_src, old_src[i]) << "op " << i;
    }
  }
  // The last writer of each buffer writes it too; the residual's, after a
  // barrier (ops 0 and 2 read it as it was before the launch).
  const int bits[] = {0, 0, 0, 0, 0, kWritePlain, kWritePlain, 0, kWritePlain, kWritePlain | kBarrierBefore};
  for (int i = 0; i < 10; ++i) EXPECT_EQ(p.ops[i].link.bits, bits[i]) << "op " << i;
  // Regions one after another: qkv, attention (then its chunks' states), o, gate/up, down.
  size_t at = 0;
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(p.ops[i].link.region, at) << "op " << i;
    at += flagged_words(p, p.ops[i]);
  }
  EXPECT_EQ(words, at);
  EXPECT_EQ(flagged_words(p, p.ops[0]), size_t{kWidth / 2});
  EXPECT_EQ(flagged_words(p, p.ops[1]), static_cast<size_t>(kHeads * kHd / 2 + kHeads * p.splits * (kHd + 2)));
}

// The LM head after the layers: it reads the residual the last down
// projection wrote (polled), writes f32 logits for work after the program,
// and takes no flagged words.
TEST(PlanFlagged, LinksTheHeadAndGivesItNoWords) {
  Layers ls(1, 8);
  std::vector<float> logits(8 * 4096);
  ls.p->ops[ls.p->num_ops++] = DecodeOp{kOpGemvNormHead, 4096,    kHidden,       1e-6f,   ls.res,  nullptr,
                                        nullptr,         nullptr, logits.data(), nullptr, nullptr, {}};
  const size_t words = plan_flagged(*ls.p, kBlocks, 2);
  ASSERT_GT(words, 0u);
  const DecodeOp& head = ls.p->ops[5];
  EXPECT_EQ(head.link.src, 4);
  EXPECT_EQ(flagged_words(*ls.p, head), 0u);
  EXPECT_EQ(words, head.link.region);  // nothing after its region start
  EXPECT_EQ(head.link.bits & kWritePlain, kWritePlain);
}

TEST(PlanFlagged, ServesEightRows) {
  Layers ls(1, 8);
  EXPECT_GT(plan_flagged(*ls.p, kBlocks, 2), 0u);
  EXPECT_EQ(flagged_words(*ls.p, ls.p->ops[3]), size_t{8 * kInter / 2});
}

TEST(PlanFlagged, TurnsDownWhatItCannotServe) {
  {
    Layers ls(1, 1);  // attention reads from inside the qkv output, not all of it
    ls.p->ops[1].x = ls.qkv + 256;
    EXPECT_EQ(plan_flagged(*ls.p, kBlocks, 2), 0u);
  }
  {
    Layers ls(1, 1);  // an odd output width
    ls.p->ops[3].m = kInter - 1;
    EXPECT_EQ(plan_flagged(*ls.p, kBlocks, 2), 0u);
  }
  {
    Layers ls(1, 1);  // a normalised input the flagged staging does not take (k % 256)
    ls.p->ops[0].k = 1000;
    EXPECT_EQ(plan_flagged(*ls.p, kBlocks, 2), 0u);
  }
  {
    Layers ls(1, 1);  // an op reading its own output
    ls.p->ops[3].out = ls.res;
    EXPECT_EQ(plan_flagged(*ls.p, kBlocks, 2), 0u);
  }
  {
    Layers ls(1, 8);  // too many residual values per block: 8 rows of 256 on each of 4 blocks
    EXPECT_EQ(plan_flagged(*ls.p, 4, 2), 0u);
  }
}

}  // namespace
}  // namespace nativelm::cuda
#endif
