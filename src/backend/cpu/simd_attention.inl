// attention(): packed kernels for prefill, direct ones for decode. Needs
// simd_linear.inl (micro_kernel) and simd_activation.inl (exp_sum).

// ---------------------------------------------------------------- attention
// Attention runs as two small GEMMs on the GEMM micro-kernel: scores = q K^T
// against K packed as [block of kNR positions][head_dim][kNR], then out = P V
// against V converted to f32 rows [position][head_dim].
constexpr int kDirectQueries = 2;  // attend_direct_t handles chunks of 1 or 2

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
      for (int c = 0; c < kW; ++c) out[d * kNR + c] = scalar_w<T>(src.k + offsets[c], d);
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
    case DType::F32:
      return pack_kv_t<DType::F32>(src, p0, p1, kt, vf);
    case DType::BF16:
      return pack_kv_t<DType::BF16>(src, p0, p1, kt, vf);
    case DType::F16:
      return pack_kv_t<DType::F16>(src, p0, p1, kt, vf);
  }
}

// Softmax of scores[0, visible) in place, zeros after it up to lds.
void softmax_row(float* s, int64_t visible, int64_t lds, float scale) {
  const int64_t vv = visible - visible % kW;
  const Reg sc = V::set1(scale);
  Reg mx = V::set1(-3.0e38f);
  for (int64_t p = 0; p < vv; p += kW) {
    const Reg x = V::mul(V::load(s + p), sc);
    V::store(s + p, x);
    mx = V::max(mx, x);
  }
  float max = V::hmax(mx);
  for (int64_t p = vv; p < visible; ++p) {
    s[p] *= scale;
    max = s[p] > max ? s[p] : max;
  }
  const float inv = 1.0f / exp_sum(s, visible, max);
  const Reg vinv = V::set1(inv);
  for (int64_t p = 0; p < vv; p += kW) V::store(s + p, V::mul(V::load(s + p), vinv));
  for (int64_t p = vv; p < visible; ++p) s[p] *= inv;
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
// kDirectCols vectors of the output, which stay in registers. Rows sit at
// scattered slots, so they are prefetched a few positions ahead.
constexpr int kDirectCols = 128 / kW;  // head_dim 128 in one pass
constexpr int64_t kDirectPrefetch = 8;

inline void prefetch_row(const char* row, int64_t bytes) {
  for (int64_t b = 0; b < bytes; b += 64) V::prefetch(row + b);
}

// Dots of NQ queries with P consecutive positions' K rows.
template <DType T, int NQ, int P>
inline void direct_dots(const AttnSource& src, const AttnQueries& qs, int64_t i0, int64_t p,
                        float* scores, int64_t lds) {
  const int64_t hd = src.head_dim, hv = hd - hd % kW;
  const void* krow[P];
  for (int j = 0; j < P; ++j) krow[j] = src.k + src.slots[p + j] * src.row_bytes;
  Reg acc[NQ][P];
  for (int i = 0; i < NQ; ++i)
    for (int j = 0; j < P; ++j) acc[i][j] = V::zero();
  for (int64_t d = 0; d < hv; d += kW) {
    Reg qv[NQ];
    for (int i = 0; i < NQ; ++i) qv[i] = V::load(qs.q[i0 + i] + d);
#pragma GCC unroll 4
    for (int j = 0; j < P; ++j) {
      const Reg kv = load_w<T>(krow[j], d);
      for (int i = 0; i < NQ; ++i) acc[i][j] = V::fmadd(qv[i], kv, acc[i][j]);
    }
  }
  for (int i = 0; i < NQ; ++i) {
    float sums[4];
    if constexpr (P == 4) {
      V::hsum4(acc[i][0], acc[i][1], acc[i][2], acc[i][3], sums);
    } else {
      sums[0] = V::hsum(acc[i][0]);
    }
    for (int j = 0; j < P; ++j) {
      for (int64_t d = hv; d < hd; ++d) sums[j] += qs.q[i0 + i][d] * scalar_w<T>(krow[j], d);
      scores[i * lds + p + j] = sums[j];
    }
  }
}

template <DType T, int NQ>
void direct_scores(const AttnSource& src, const AttnQueries& qs, int64_t i0, int64_t npos,
                   float* scores, int64_t lds) {
  const int64_t row = src.head_dim * elem_bytes<T>();
  int64_t p = 0;
  for (; p + 4 <= npos; p += 4) {
    for (int64_t j = p + kDirectPrefetch; j < p + kDirectPrefetch + 4 && j < npos; ++j)
      prefetch_row(src.k + src.slots[j] * src.row_bytes, row);
    direct_dots<T, NQ, 4>(src, qs, i0, p, scores, lds);
  }
  for (; p < npos; ++p) direct_dots<T, NQ, 1>(src, qs, i0, p, scores, lds);
}

// out[i, d0 + ...] = sum_p probs[i, p] v[p, d0 + ...] for COLS vectors of
// columns, all NQ queries in one pass over the V rows.
template <DType T, int NQ, int COLS>
void direct_values_cols(const AttnSource& src, const float* probs, int64_t lds, int64_t npos,
                        int64_t d0, float* otile) {
  Reg acc[NQ][COLS];
  for (int i = 0; i < NQ; ++i)
    for (int j = 0; j < COLS; ++j) acc[i][j] = V::zero();
  for (int64_t p = 0; p < npos; ++p) {
    if (p + kDirectPrefetch < npos) {
      prefetch_row(src.v + src.slots[p + kDirectPrefetch] * src.row_bytes + d0 * elem_bytes<T>(),
                   COLS * kW * elem_bytes<T>());
    }
    const void* vrow = src.v + src.slots[p] * src.row_bytes;
    Reg pr[NQ];
    for (int i = 0; i < NQ; ++i) pr[i] = V::set1(probs[i * lds + p]);
#pragma GCC unroll 8
    for (int j = 0; j < COLS; ++j) {
      const Reg v = load_w<T>(vrow, d0 + j * kW);
      for (int i = 0; i < NQ; ++i) acc[i][j] = V::fmadd(pr[i], v, acc[i][j]);
    }
  }
  for (int i = 0; i < NQ; ++i)
    for (int j = 0; j < COLS; ++j) V::store(otile + i * src.head_dim + d0 + j * kW, acc[i][j]);
}

template <DType T, int NQ>
void direct_values(const AttnSource& src, const float* probs, int64_t lds, int64_t npos,
                   float* otile) {
  const int64_t hd = src.head_dim;
  int64_t d0 = 0;
  for (; d0 + kDirectCols * kW <= hd; d0 += kDirectCols * kW)
    direct_values_cols<T, NQ, kDirectCols>(src, probs, lds, npos, d0, otile);
  for (; d0 + kW <= hd; d0 += kW) direct_values_cols<T, NQ, 1>(src, probs, lds, npos, d0, otile);
  for (int64_t d = d0; d < hd; ++d) {
    for (int i = 0; i < NQ; ++i) {
      float sum = 0.0f;
      for (int64_t p = 0; p < npos; ++p)
        sum += probs[i * lds + p] * scalar_w<T>(src.v + src.slots[p] * src.row_bytes, d);
      otile[i * hd + d] = sum;
    }
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
    float* scores = scratch;                       // [nq][lds]
    float* otile = scores + kDirectQueries * lds;  // [nq][hd]
    if (nq == kDirectQueries) {
      direct_scores<T, kDirectQueries>(src, qs, i0, npos, scores, lds);
    } else {
      direct_scores<T, 1>(src, qs, i0, npos, scores, lds);
    }
    // Zeros past each query's visible length let the queries share one pass.
    for (int64_t i = 0; i < nq; ++i)
      softmax_row(scores + i * lds, qs.visible[i0 + i], lds, qs.scale);
    if (nq == kDirectQueries) {
      direct_values<T, kDirectQueries>(src, scores, lds, npos, otile);
    } else {
      direct_values<T, 1>(src, scores, lds, npos, otile);
    }
    // Written last: out may alias q.
    for (int64_t i = 0; i < nq; ++i)
      for (int64_t d = 0; d < hd; ++d) qs.out[i0 + i][d] = otile[i * hd + d];
  }
}

void attend_direct(const AttnSource& src, const AttnQueries& qs, float* scratch) {
  switch (src.dtype) {
    case DType::F32:
      return attend_direct_t<DType::F32>(src, qs, scratch);
    case DType::BF16:
      return attend_direct_t<DType::BF16>(src, qs, scratch);
    case DType::F16:
      return attend_direct_t<DType::F16>(src, qs, scratch);
  }
}
