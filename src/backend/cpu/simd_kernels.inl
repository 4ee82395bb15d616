// The SIMD kernels, written once over a vector-traits struct V and included by
// each kernels_<isa>.cpp inside an anonymous namespace, so every level gets
// its own internal copy compiled with its own flags. V provides: Reg, kWidth
// (floats per register), kGemmRows, zero, set1, load, store, load_bf16,
// load_f16, fmadd(a, b, c) = a * b + c, add, div, hsum, exp, prefetch, and the
// scalar conversions bf16_scalar / f16_scalar.
//
// Deliberately no standard-library includes here (see kernels.h).

using Reg = V::Reg;
constexpr int kW = V::kWidth;

template <DType T>
constexpr int64_t elem_bytes() {
  return T == DType::F32 ? 4 : 2;
}

template <DType T>
inline Reg load_w(const void* row, int64_t i) {
  if constexpr (T == DType::F32) return V::load(static_cast<const float*>(row) + i);
  if constexpr (T == DType::BF16) return V::load_bf16(static_cast<const uint16_t*>(row) + i);
  if constexpr (T == DType::F16) return V::load_f16(static_cast<const uint16_t*>(row) + i);
}

template <DType T>
inline float scalar_w(const void* row, int64_t i) {
  if constexpr (T == DType::F32) return static_cast<const float*>(row)[i];
  if constexpr (T == DType::BF16) return V::bf16_scalar(static_cast<const uint16_t*>(row)[i]);
  if constexpr (T == DType::F16) return V::f16_scalar(static_cast<const uint16_t*>(row)[i]);
}

template <DType T>
inline const void* w_row(const void* w, int64_t row, int64_t k) {
  return static_cast<const char*>(w) + row * k * elem_bytes<T>();
}

inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// ---------------------------------------------------------------- GEMV
// Decode is bound by how fast the weights stream in, so the loop reads NW
// weight rows side by side (several memory streams in flight), converts each
// vector once and uses it for every activation row. Each line is prefetched
// one block ahead (the same column NW rows down): prefetching further along
// the same row mostly hits lines the neighbouring rows already brought in.

template <DType T, int R, int NW>
inline void gemv_block(const float* x, const void* w, int64_t k, int64_t m, float* out,
                       int64_t ldo) {
  const void* rows[NW];
  for (int j = 0; j < NW; ++j) rows[j] = w_row<T>(w, m + j, k);
  Reg acc[R][NW];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < NW; ++j) acc[r][j] = V::zero();
  const int64_t kv = k - k % kW;
  for (int64_t i = 0; i < kv; i += kW) {
    if ((i * elem_bytes<T>()) % 64 == 0) {
      for (int j = 0; j < NW; ++j)
        V::prefetch(static_cast<const char*>(rows[j]) + (i + NW * k) * elem_bytes<T>());
    }
#pragma GCC unroll 8
    for (int j = 0; j < NW; ++j) {
      const Reg wv = load_w<T>(rows[j], i);
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) acc[r][j] = V::fmadd(V::load(x + r * k + i), wv, acc[r][j]);
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int j = 0; j < NW; ++j) {
      float s = V::hsum(acc[r][j]);
      for (int64_t i = kv; i < k; ++i) s += x[r * k + i] * scalar_w<T>(rows[j], i);
      out[r * ldo + m + j] = s;
    }
  }
}

template <DType T, int R>
void gemv_rows(const float* x, const void* w, int64_t k, int64_t m0, int64_t m1, float* out,
               int64_t ldo) {
  constexpr int kNW = R == 1 ? 4 : 2;
  int64_t m = m0;
  for (; m + kNW <= m1; m += kNW) gemv_block<T, R, kNW>(x, w, k, m, out, ldo);
  for (; m < m1; ++m) gemv_block<T, R, 1>(x, w, k, m, out, ldo);
}

template <DType T>
void gemv_t(const float* x, int64_t rows, const void* w, int64_t k, int64_t m0, int64_t m1,
            float* out, int64_t ldo) {
  switch (rows) {
    case 1: return gemv_rows<T, 1>(x, w, k, m0, m1, out, ldo);
    case 2: return gemv_rows<T, 2>(x, w, k, m0, m1, out, ldo);
    case 3: return gemv_rows<T, 3>(x, w, k, m0, m1, out, ldo);
    default: break;
  }
  for (int64_t r = 0; r < rows; r += 4) {
    const int64_t n = min64(4, rows - r);
    if (n == 4) {
      gemv_rows<T, 4>(x + r * k, w, k, m0, m1, out + r * ldo, ldo);
    } else {
      gemv_t<T>(x + r * k, n, w, k, m0, m1, out + r * ldo, ldo);
    }
  }
}

void gemv(const float* x, int64_t rows, const void* w, DType wt, int64_t k, int64_t m0,
          int64_t m1, float* out, int64_t ldo) {
  switch (wt) {
    case DType::F32: return gemv_t<DType::F32>(x, rows, w, k, m0, m1, out, ldo);
    case DType::BF16: return gemv_t<DType::BF16>(x, rows, w, k, m0, m1, out, ldo);
    case DType::F16: return gemv_t<DType::F16>(x, rows, w, k, m0, m1, out, ldo);
  }
}

// ---------------------------------------------------------------- GEMM
// Prefill: out[n, m] = x[n, :] . w[m, :], f32 math whatever the weight dtype.
// For each block of kKC along k, x is packed once ([kMR rows interleaved] per
// block of rows) and each panel of kNR weight rows is converted to f32 and
// transposed into a [kc, kNR] buffer that stays in L1 while every row block
// of x streams past it. The micro-kernel keeps a kMR x kNR tile of out in
// registers: one vector load per kW columns, one broadcast per row.
constexpr int kMR = V::kGemmRows;
constexpr int kNR = 2 * kW;
constexpr int64_t kKC = 256;

int64_t round_up(int64_t v, int64_t to) { return (v + to - 1) / to * to; }

int64_t gemm_scratch_floats(int64_t n) { return round_up(n, kMR) * kKC + kKC * kNR; }

void pack_x(const float* x, int64_t n, int64_t k, int64_t k0, int64_t kc, float* dst) {
  for (int64_t r0 = 0; r0 < n; r0 += kMR) {
    float* block = dst + (r0 / kMR) * kc * kMR;
    for (int i = 0; i < kMR; ++i) {
      const bool valid = r0 + i < n;
      const float* src = x + (r0 + i) * k + k0;
      for (int64_t kk = 0; kk < kc; ++kk) block[kk * kMR + i] = valid ? src[kk] : 0.0f;
    }
  }
}

// Transposes weight rows [m, m + kNR) x [k0, k0 + kc) into dst[kk * kNR + c]
// as f32, zero-filling rows at or past m_end. Full panels gather one 32-bit
// word from each of kW rows at a time: for 16-bit weights that word holds two
// neighbouring k, i.e. two rows of the packed panel.
template <DType T>
void pack_w_scalar(const void* w, int64_t k, int64_t m, int64_t m_end, int64_t k0, int64_t kc,
                   float* dst) {
  for (int c = 0; c < kNR; ++c) {
    const void* row = w_row<T>(w, m + c, k);
    for (int64_t kk = 0; kk < kc; ++kk)
      dst[kk * kNR + c] = m + c < m_end ? scalar_w<T>(row, k0 + kk) : 0.0f;
  }
}

template <DType T>
void pack_w(const void* w, int64_t k, int64_t m, int64_t m_end, int64_t k0, int64_t kc,
            float* dst) {
  if (m + kNR > m_end) return pack_w_scalar<T>(w, k, m, m_end, k0, kc, dst);
  constexpr int64_t step = T == DType::F32 ? 1 : 2;
  const int64_t kv = kc - kc % step;
  for (int half = 0; half < kNR / kW; ++half) {
    const char* base = static_cast<const char*>(w_row<T>(w, m + half * kW, k)) + k0 * elem_bytes<T>();
    const auto index = V::row_offsets(static_cast<int32_t>(k * elem_bytes<T>()));
    float* out = dst + half * kW;
    for (int64_t kk = 0; kk < kv; kk += step) {
      const auto words = V::gather32(base + kk * elem_bytes<T>(), index);
      if constexpr (T == DType::F32) {
        V::store(out + kk * kNR, V::as_float(words));
      } else if constexpr (T == DType::BF16) {
        V::store(out + kk * kNR, V::bf16_low(words));
        V::store(out + (kk + 1) * kNR, V::bf16_high(words));
      } else {
        V::store(out + kk * kNR, V::f16_low(words));
        V::store(out + (kk + 1) * kNR, V::f16_high(words));
      }
    }
    for (int64_t kk = kv; kk < kc; ++kk) {
      for (int c = 0; c < kW; ++c)
        out[kk * kNR + c] = scalar_w<T>(w_row<T>(w, m + half * kW + c, k), k0 + kk);
    }
  }
}

// out tile [rows, cols] (+)= a^T b, where a is [kc][kMR] (rows used) and b is
// [kc][kNR]; R rows at compile time so that short tails waste no FMAs.
template <int R>
void micro_tile(const float* a, const float* b, int64_t ldb, int64_t kc, float* c, int64_t ldc,
                int64_t cols, bool accumulate) {
  Reg acc[R][2];
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) acc[i][0] = acc[i][1] = V::zero();
  for (int64_t kk = 0; kk < kc; ++kk) {
    const Reg b0 = V::load(b + kk * ldb);
    const Reg b1 = V::load(b + kk * ldb + kW);
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
      const Reg ai = V::set1(a[kk * kMR + i]);
      acc[i][0] = V::fmadd(ai, b0, acc[i][0]);
      acc[i][1] = V::fmadd(ai, b1, acc[i][1]);
    }
  }
  alignas(64) float tmp[kNR];
  for (int i = 0; i < R; ++i) {
    float* row = c + i * ldc;
    if (cols == kNR) {
      if (accumulate) {
        acc[i][0] = V::add(acc[i][0], V::load(row));
        acc[i][1] = V::add(acc[i][1], V::load(row + kW));
      }
      V::store(row, acc[i][0]);
      V::store(row + kW, acc[i][1]);
      continue;
    }
    V::store(tmp, acc[i][0]);
    V::store(tmp + kW, acc[i][1]);
    for (int64_t j = 0; j < cols; ++j) row[j] = accumulate ? row[j] + tmp[j] : tmp[j];
  }
}

template <int R>
void micro_kernel_upto(const float* a, const float* b, int64_t ldb, int64_t kc, float* c,
                       int64_t ldc, int64_t rows, int64_t cols, bool accumulate) {
  if constexpr (R > 1) {
    if (rows < R) return micro_kernel_upto<R - 1>(a, b, ldb, kc, c, ldc, rows, cols, accumulate);
  }
  micro_tile<R>(a, b, ldb, kc, c, ldc, cols, accumulate);
}

// b rows are ldb floats apart and are read kNR floats wide even when cols
// is smaller, so b needs kNR - cols readable floats past its last row.
void micro_kernel(const float* a, const float* b, int64_t ldb, int64_t kc, float* c, int64_t ldc,
                  int64_t rows, int64_t cols, bool accumulate) {
  micro_kernel_upto<kMR>(a, b, ldb, kc, c, ldc, rows, cols, accumulate);
}

template <DType T>
void gemm_t(const float* x, int64_t n, const void* w, int64_t k, int64_t m0, int64_t m1,
            float* out, int64_t ldo, float* scratch) {
  float* apack = scratch;
  float* bpack = scratch + round_up(n, kMR) * kKC;
  for (int64_t k0 = 0; k0 < k; k0 += kKC) {
    const int64_t kc = min64(kKC, k - k0);
    pack_x(x, n, k, k0, kc, apack);
    for (int64_t m = m0; m < m1; m += kNR) {
      pack_w<T>(w, k, m, m1, k0, kc, bpack);
      const int64_t cols = min64(kNR, m1 - m);
      for (int64_t r0 = 0; r0 < n; r0 += kMR) {
        micro_kernel(apack + (r0 / kMR) * kc * kMR, bpack, kNR, kc, out + r0 * ldo + m, ldo,
                     min64(kMR, n - r0), cols, k0 > 0);
      }
    }
  }
}

void gemm(const float* x, int64_t n, const void* w, DType wt, int64_t k, int64_t m0, int64_t m1,
          float* out, int64_t ldo, float* scratch) {
  switch (wt) {
    case DType::F32: return gemm_t<DType::F32>(x, n, w, k, m0, m1, out, ldo, scratch);
    case DType::BF16: return gemm_t<DType::BF16>(x, n, w, k, m0, m1, out, ldo, scratch);
    case DType::F16: return gemm_t<DType::F16>(x, n, w, k, m0, m1, out, ldo, scratch);
  }
}

float exp_sum(float* s, int64_t n, float max) {
  const Reg m = V::set1(max);
  Reg acc = V::zero();
  int64_t i = 0;
  for (; i + kW <= n; i += kW) {
    const Reg e = V::exp(V::sub(V::load(s + i), m));
    V::store(s + i, e);
    acc = V::add(acc, e);
  }
  float sum = V::hsum(acc);
  alignas(64) float tmp[kW];
  for (; i < n; ++i) {
    V::store(tmp, V::exp(V::set1(s[i] - max)));
    s[i] = tmp[0];
    sum += tmp[0];
  }
  return sum;
}

// ---------------------------------------------------------------- attention
// Attention runs as two small GEMMs on the GEMM micro-kernel: scores = q K^T
// against K packed as [block of kNR positions][head_dim][kNR], then out = P V
// against V converted to f32 rows [position][head_dim].
constexpr int kDirectQueries = 2;  // see attend_direct

int64_t attn_scratch_floats(int64_t kv_len, int64_t head_dim) {
  const int64_t lds = round_up(kv_len, kNR);
  const int64_t direct = kDirectQueries * (round_up(kv_len, kW) + head_dim);
  const int64_t packed = head_dim * kMR + 2 * kMR * lds + kMR * head_dim;
  return packed > direct ? packed : direct;
}

// K of positions [p0, p0 + kNR), all cached, transposed by gathering one
// 32-bit word per position (two neighbouring dims for 16-bit pools).
template <DType T>
void gather_k_block(const AttnSource& src, int64_t p0, float* kt) {
  constexpr int64_t step = T == DType::F32 ? 1 : 2;
  const int64_t hd = src.head_dim, dv = hd - hd % step;
  for (int half = 0; half < kNR / kW; ++half) {
    alignas(64) int32_t offsets[kW];
    for (int c = 0; c < kW; ++c)
      offsets[c] = static_cast<int32_t>(src.slots[p0 + half * kW + c] * src.row_bytes);
    const auto index = V::load_offsets(offsets);
    float* out = kt + (p0 / kNR) * hd * kNR + half * kW;
    for (int64_t d = 0; d < dv; d += step) {
      const auto words = V::gather32(src.k + d * elem_bytes<T>(), index);
      if constexpr (T == DType::F32) {
        V::store(out + d * kNR, V::as_float(words));
      } else if constexpr (T == DType::BF16) {
        V::store(out + d * kNR, V::bf16_low(words));
        V::store(out + (d + 1) * kNR, V::bf16_high(words));
      } else {
        V::store(out + d * kNR, V::f16_low(words));
        V::store(out + (d + 1) * kNR, V::f16_high(words));
      }
    }
    for (int64_t d = dv; d < hd; ++d) {
      for (int c = 0; c < kW; ++c)
        out[d * kNR + c] = scalar_w<T>(src.k + offsets[c], d);
    }
  }
}

template <DType T>
void pack_row(const AttnSource& src, int64_t p, float* kt, float* vf) {
  const int64_t hd = src.head_dim;
  float* kdst = kt + (p / kNR) * hd * kNR + p % kNR;
  float* vdst = vf + p * hd;
  if (p >= src.kv_len) {  // padding: zeros, never garbage that could be NaN
    for (int64_t d = 0; d < hd; ++d) kdst[d * kNR] = vdst[d] = 0.0f;
    return;
  }
  const void* krow = src.k + src.slots[p] * src.row_bytes;
  const void* vrow = src.v + src.slots[p] * src.row_bytes;
  alignas(64) float tmp[kW];
  int64_t d = 0;
  for (; d + kW <= hd; d += kW) {
    V::store(tmp, load_w<T>(krow, d));
    for (int l = 0; l < kW; ++l) kdst[(d + l) * kNR] = tmp[l];
    V::store(vdst + d, load_w<T>(vrow, d));
  }
  for (; d < hd; ++d) {
    kdst[d * kNR] = scalar_w<T>(krow, d);
    vdst[d] = scalar_w<T>(vrow, d);
  }
}

template <DType T>
void pack_v_rows(const AttnSource& src, int64_t p0, int64_t p1, float* vf) {
  const int64_t hd = src.head_dim;
  for (int64_t p = p0; p < p1; ++p) {
    const void* vrow = src.v + src.slots[p] * src.row_bytes;
    int64_t d = 0;
    for (; d + kW <= hd; d += kW) V::store(vf + p * hd + d, load_w<T>(vrow, d));
    for (; d < hd; ++d) vf[p * hd + d] = scalar_w<T>(vrow, d);
  }
}

template <DType T>
void pack_kv_t(const AttnSource& src, int64_t p0, int64_t p1, float* kt, float* vf) {
  // Gathers take 32-bit offsets from the pool start.
  int64_t max_slot = 0;
  for (int64_t p = p0; p < p1 && p < src.kv_len; ++p)
    max_slot = src.slots[p] > max_slot ? src.slots[p] : max_slot;
  const bool can_gather = (max_slot + 1) * src.row_bytes < (int64_t{1} << 31);
  const int64_t full_end = min64(p1, src.kv_len);
  for (int64_t p = p0; p < p1;) {
    if (can_gather && p % kNR == 0 && p + kNR <= full_end) {
      gather_k_block<T>(src, p, kt);
      pack_v_rows<T>(src, p, p + kNR, vf);
      p += kNR;
    } else {
      pack_row<T>(src, p, kt, vf);
      ++p;
    }
  }
}

void pack_kv(const AttnSource& src, int64_t p0, int64_t p1, float* kt, float* vf) {
  switch (src.dtype) {
    case DType::F32: return pack_kv_t<DType::F32>(src, p0, p1, kt, vf);
    case DType::BF16: return pack_kv_t<DType::BF16>(src, p0, p1, kt, vf);
    case DType::F16: return pack_kv_t<DType::F16>(src, p0, p1, kt, vf);
  }
}

// Softmax of scores[0, visible) in place, zeros after it up to lds.
void softmax_row(float* s, int64_t visible, int64_t lds, float scale) {
  float max = -3.0e38f;
  for (int64_t p = 0; p < visible; ++p) {
    s[p] *= scale;
    max = s[p] > max ? s[p] : max;
  }
  const float inv = 1.0f / exp_sum(s, visible, max);
  for (int64_t p = 0; p < visible; ++p) s[p] *= inv;
  for (int64_t p = visible; p < lds; ++p) s[p] = 0.0f;
}

void attend_chunk(const AttnQueries& qs, int64_t i0, int64_t nq, const float* kt, const float* vf,
                  int64_t hd, float* scratch) {
  int64_t npos = 0;
  for (int64_t i = i0; i < i0 + nq; ++i) npos = qs.visible[i] > npos ? qs.visible[i] : npos;
  const int64_t lds = round_up(npos, kNR);
  float* qpack = scratch;             // [hd][kMR]
  float* scores = qpack + hd * kMR;   // [kMR][lds]
  float* ppack = scores + kMR * lds;  // [lds][kMR]
  float* otile = ppack + lds * kMR;   // [kMR][hd]
  for (int64_t i = 0; i < nq; ++i)
    for (int64_t d = 0; d < hd; ++d) qpack[d * kMR + i] = qs.q[i0 + i][d];
  for (int64_t p0 = 0; p0 < lds; p0 += kNR)
    micro_kernel(qpack, kt + (p0 / kNR) * hd * kNR, kNR, hd, scores + p0, lds, nq, kNR, false);
  for (int64_t i = 0; i < nq; ++i) {
    float* row = scores + i * lds;
    softmax_row(row, qs.visible[i0 + i], lds, qs.scale);
    for (int64_t p = 0; p < lds; ++p) ppack[p * kMR + i] = row[p];
  }
  for (int64_t d0 = 0; d0 < hd; d0 += kNR)
    micro_kernel(ppack, vf + d0, hd, lds, otile + d0, hd, nq, min64(kNR, hd - d0), false);
  // Written last: out may alias q.
  for (int64_t i = 0; i < nq; ++i)
    for (int64_t d = 0; d < hd; ++d) qs.out[i0 + i][d] = otile[i * hd + d];
}

void attend(const AttnQueries& qs, const float* kt, const float* vf, int64_t hd, float* scratch) {
  for (int64_t i0 = 0; i0 < qs.n; i0 += kMR) {
    const int64_t nq = min64(kMR, qs.n - i0);
    attend_chunk(qs, i0, nq, kt, vf, hd, scratch);
  }
}

// Decode: few queries, so no packing. Each K row is converted once and dotted
// with every query of the kv head; each V row is converted once per block of
// kDirectCols vectors of the output, which stay in registers.
constexpr int kDirectCols = 4;

template <DType T>
void direct_scores(const AttnSource& src, const AttnQueries& qs, int64_t i0, int64_t nq,
                   int64_t npos, float* scores, int64_t lds) {
  const int64_t hd = src.head_dim, hv = hd - hd % kW;
  for (int64_t p = 0; p < npos; ++p) {
    const void* krow = src.k + src.slots[p] * src.row_bytes;
    Reg acc[kDirectQueries];
    for (int i = 0; i < kDirectQueries; ++i) acc[i] = V::zero();
    for (int64_t d = 0; d < hv; d += kW) {
      const Reg kv = load_w<T>(krow, d);
#pragma GCC unroll 4
      for (int i = 0; i < kDirectQueries; ++i)
        if (i < nq) acc[i] = V::fmadd(V::load(qs.q[i0 + i] + d), kv, acc[i]);
    }
    for (int64_t i = 0; i < nq; ++i) {
      float sum = V::hsum(acc[i]);
      for (int64_t d = hv; d < hd; ++d) sum += qs.q[i0 + i][d] * scalar_w<T>(krow, d);
      scores[i * lds + p] = sum;
    }
  }
}

template <DType T>
void direct_values(const AttnSource& src, const float* probs, int64_t npos, int64_t hd,
                   float* dst) {
  int64_t d0 = 0;
  for (; d0 + kDirectCols * kW <= hd; d0 += kDirectCols * kW) {
    Reg acc[kDirectCols];
    for (int j = 0; j < kDirectCols; ++j) acc[j] = V::zero();
    for (int64_t p = 0; p < npos; ++p) {
      const void* vrow = src.v + src.slots[p] * src.row_bytes;
      const Reg pr = V::set1(probs[p]);
#pragma GCC unroll 4
      for (int j = 0; j < kDirectCols; ++j)
        acc[j] = V::fmadd(pr, load_w<T>(vrow, d0 + j * kW), acc[j]);
    }
    for (int j = 0; j < kDirectCols; ++j) V::store(dst + d0 + j * kW, acc[j]);
  }
  for (int64_t d = d0; d < hd; ++d) {
    float sum = 0.0f;
    for (int64_t p = 0; p < npos; ++p)
      sum += probs[p] * scalar_w<T>(src.v + src.slots[p] * src.row_bytes, d);
    dst[d] = sum;
  }
}

template <DType T>
void attend_direct_t(const AttnSource& src, const AttnQueries& qs, float* scratch) {
  const int64_t hd = src.head_dim;
  for (int64_t i0 = 0; i0 < qs.n; i0 += kDirectQueries) {
    const int64_t nq = min64(kDirectQueries, qs.n - i0);
    int64_t npos = 0;
    for (int64_t i = i0; i < i0 + nq; ++i) npos = qs.visible[i] > npos ? qs.visible[i] : npos;
    const int64_t lds = round_up(npos, kW);
    float* scores = scratch;                            // [nq][lds]
    float* otile = scores + kDirectQueries * lds;       // [nq][hd]
    direct_scores<T>(src, qs, i0, nq, npos, scores, lds);
    for (int64_t i = 0; i < nq; ++i) {
      float* row = scores + i * lds;
      softmax_row(row, qs.visible[i0 + i], lds, qs.scale);
      direct_values<T>(src, row, qs.visible[i0 + i], hd, otile + i * hd);
    }
    // Written last: out may alias q.
    for (int64_t i = 0; i < nq; ++i)
      for (int64_t d = 0; d < hd; ++d) qs.out[i0 + i][d] = otile[i * hd + d];
  }
}

void attend_direct(const AttnSource& src, const AttnQueries& qs, float* scratch) {
  switch (src.dtype) {
    case DType::F32: return attend_direct_t<DType::F32>(src, qs, scratch);
    case DType::BF16: return attend_direct_t<DType::BF16>(src, qs, scratch);
    case DType::F16: return attend_direct_t<DType::F16>(src, qs, scratch);
  }
}

// ---------------------------------------------------------------- activation
float silu_scalar(float g) {
  alignas(64) float tmp[kW];
  V::store(tmp, V::exp(V::set1(-g)));
  return g / (1.0f + tmp[0]);
}

void silu_mul(const float* gate, const float* up, float* out, int64_t n) {
  const Reg one = V::set1(1.0f);
  int64_t i = 0;
  for (; i + kW <= n; i += kW) {
    const Reg g = V::load(gate + i);
    const Reg e = V::exp(V::sub(V::zero(), g));
    V::store(out + i, V::mul(V::div(g, V::add(one, e)), V::load(up + i)));
  }
  for (; i < n; ++i) out[i] = silu_scalar(gate[i]) * up[i];
}
