#pragma once
// The hot loops of the CPU backend, one table per instruction-set level.
// kernels_<isa>.cpp files are compiled with their own -m flags, so they use
// only raw pointers and their own helpers: an inline or template function
// shared with other files could be emitted with those flags and picked by the
// linker for code that runs on older processors.
#include <cstdint>

#include "backend/cpu/isa.h"
#include "util/dtype.h"

namespace nativelm::cpu {

// linear() uses the GEMV kernel up to this many rows, the GEMM above.
constexpr int64_t kGemvMaxRows = 4;

// The cached K/V of one kv head of one sequence, straight from the pools.
struct AttnSource {
  const char* k;  // pool data plus the head's column offset, in bytes
  const char* v;
  DType dtype;
  int64_t row_bytes;     // bytes from one pool slot to the next
  const int32_t* slots;  // pool slot of each position
  int64_t kv_len;
  int64_t head_dim;
};

// Query vectors that share one kv head.
struct AttnQueries {
  int64_t n;
  const float* const* q;   // n vectors of head_dim floats
  float* const* out;       // n vectors of head_dim floats; out[i] may alias q[i]
  const int64_t* visible;  // query i sees positions [0, visible[i])
  float scale;
};

struct Kernels {
  Isa isa;
  // out[r * ldo + m] = dot(x[r * k, ...], w[m * k, ...]) for r < rows
  // (rows <= kGemvMaxRows) and m in [m0, m1). w is [*, k] in dtype wt.
  void (*gemv)(const float* x, int64_t rows, const void* w, DType wt, int64_t k, int64_t m0,
               int64_t m1, float* out, int64_t ldo);
  // The same product for any number of rows, in two steps. gemm_pack_x
  // rearranges row groups [g0, g1) (gemm_rows rows each) of x into xpack,
  // gemm_packed_floats(n, k) floats in all; gemm then computes columns
  // [m0, m1) of out from xpack (m0 a multiple of gemm_panel), using
  // gemm_scratch_floats(n) floats of per-thread scratch.
  void (*gemm_pack_x)(const float* x, int64_t n, int64_t k, int64_t g0, int64_t g1, float* xpack);
  void (*gemm)(const float* xpack, int64_t n, const void* w, DType wt, int64_t k, int64_t m0,
               int64_t m1, float* out, int64_t ldo, float* scratch);
  int64_t gemm_rows;
  int64_t gemm_panel;
  int64_t (*gemm_packed_floats)(int64_t n, int64_t k);
  int64_t (*gemm_scratch_floats)(int64_t n);
  // Converts positions [p0, p1) of src (p0 a multiple of attn_block) to f32:
  // K into kt as [p / attn_block][head_dim][attn_block], V into vf as
  // [p][head_dim]. Positions past kv_len become zeros. vf needs attn_block
  // spare floats at its end.
  void (*pack_kv)(const AttnSource& src, int64_t p0, int64_t p1, float* kt, float* vf);
  // out = softmax(q . k * scale) v for each query over its visible positions,
  // reading kt / vf packed for at least max(visible) rounded up to attn_block.
  // scratch holds attn_scratch_floats(max visible, head_dim).
  void (*attend)(const AttnQueries& qs, const float* kt, const float* vf, int64_t head_dim,
                 float* scratch);
  // The same for a few queries, reading the pools directly (decode).
  void (*attend_direct)(const AttnSource& src, const AttnQueries& qs, float* scratch);
  int64_t attn_block;
  int64_t attn_rows;  // queries attended together; a multiple keeps all lanes busy
  int64_t (*attn_scratch_floats)(int64_t kv_len, int64_t head_dim);
  // out[i] = silu(gate[i]) * up[i]; out may alias gate or up.
  void (*silu_mul)(const float* gate, const float* up, float* out, int64_t n);
};

const Kernels& kernels_for(Isa isa);

}  // namespace nativelm::cpu
