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
// vector once and uses it for every activation row.
constexpr int64_t kPrefetchBytes = 1024;

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
        V::prefetch(static_cast<const char*>(rows[j]) + i * elem_bytes<T>() + kPrefetchBytes);
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

template <DType T>
void pack_w(const void* w, int64_t k, int64_t m, int64_t m_end, int64_t k0, int64_t kc,
            float* dst) {
  const int64_t kv = kc - kc % kW;
  alignas(64) float tmp[kW];
  for (int c = 0; c < kNR; ++c) {
    if (m + c >= m_end) {
      for (int64_t kk = 0; kk < kc; ++kk) dst[kk * kNR + c] = 0.0f;
      continue;
    }
    const void* row = w_row<T>(w, m + c, k);
    for (int64_t kk = 0; kk < kv; kk += kW) {
      V::store(tmp, load_w<T>(row, k0 + kk));
      for (int l = 0; l < kW; ++l) dst[(kk + l) * kNR + c] = tmp[l];
    }
    for (int64_t kk = kv; kk < kc; ++kk) dst[kk * kNR + c] = scalar_w<T>(row, k0 + kk);
  }
}

void micro_kernel(const float* a, const float* b, int64_t kc, float* c, int64_t ldc, int64_t rows,
                  int64_t cols, bool accumulate) {
  Reg acc[kMR][2];
#pragma GCC unroll 16
  for (int i = 0; i < kMR; ++i) acc[i][0] = acc[i][1] = V::zero();
  for (int64_t kk = 0; kk < kc; ++kk) {
    const Reg b0 = V::load(b + kk * kNR);
    const Reg b1 = V::load(b + kk * kNR + kW);
#pragma GCC unroll 16
    for (int i = 0; i < kMR; ++i) {
      const Reg ai = V::set1(a[kk * kMR + i]);
      acc[i][0] = V::fmadd(ai, b0, acc[i][0]);
      acc[i][1] = V::fmadd(ai, b1, acc[i][1]);
    }
  }
  alignas(64) float tmp[kNR];
  for (int i = 0; i < rows; ++i) {
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
        micro_kernel(apack + (r0 / kMR) * kc * kMR, bpack, kc, out + r0 * ldo + m, ldo,
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

// ---------------------------------------------------------------- attention helpers
template <DType T>
float dot_t(const float* a, const void* b, int64_t n) {
  Reg acc0 = V::zero(), acc1 = V::zero();
  int64_t i = 0;
  for (; i + 2 * kW <= n; i += 2 * kW) {
    acc0 = V::fmadd(V::load(a + i), load_w<T>(b, i), acc0);
    acc1 = V::fmadd(V::load(a + i + kW), load_w<T>(b, i + kW), acc1);
  }
  for (; i + kW <= n; i += kW) acc0 = V::fmadd(V::load(a + i), load_w<T>(b, i), acc0);
  float s = V::hsum(V::add(acc0, acc1));
  for (; i < n; ++i) s += a[i] * scalar_w<T>(b, i);
  return s;
}

float dot(const float* a, const void* b, DType bt, int64_t n) {
  switch (bt) {
    case DType::F32: return dot_t<DType::F32>(a, b, n);
    case DType::BF16: return dot_t<DType::BF16>(a, b, n);
    case DType::F16: return dot_t<DType::F16>(a, b, n);
  }
  return 0.0f;
}

template <DType T>
void axpy_t(float alpha, const void* x, float* y, int64_t n) {
  const Reg a = V::set1(alpha);
  int64_t i = 0;
  for (; i + kW <= n; i += kW) V::store(y + i, V::fmadd(a, load_w<T>(x, i), V::load(y + i)));
  for (; i < n; ++i) y[i] += alpha * scalar_w<T>(x, i);
}

void axpy(float alpha, const void* x, DType xt, float* y, int64_t n) {
  switch (xt) {
    case DType::F32: return axpy_t<DType::F32>(alpha, x, y, n);
    case DType::BF16: return axpy_t<DType::BF16>(alpha, x, y, n);
    case DType::F16: return axpy_t<DType::F16>(alpha, x, y, n);
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
