// linear(): the GEMV (decode) and GEMM (prefill) kernels. See simd_common.inl.

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
    case 1:
      return gemv_rows<T, 1>(x, w, k, m0, m1, out, ldo);
    case 2:
      return gemv_rows<T, 2>(x, w, k, m0, m1, out, ldo);
    case 3:
      return gemv_rows<T, 3>(x, w, k, m0, m1, out, ldo);
    default:
      break;
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

void gemv(const float* x, int64_t rows, const void* w, DType wt, int64_t k, int64_t m0, int64_t m1,
          float* out, int64_t ldo) {
  switch (wt) {
    case DType::F32:
      return gemv_t<DType::F32>(x, rows, w, k, m0, m1, out, ldo);
    case DType::BF16:
      return gemv_t<DType::BF16>(x, rows, w, k, m0, m1, out, ldo);
    case DType::F16:
      return gemv_t<DType::F16>(x, rows, w, k, m0, m1, out, ldo);
  }
}

// ---------------------------------------------------------------- GEMM
// Prefill: out[n, m] = x[n, :] . w[m, :], f32 math whatever the weight dtype.
// x is packed once per call, shared by the threads (per k block, rows
// interleaved in groups of kMR).
// Then for each panel of kNR weight rows and each k block of kKC, the panel
// is converted to f32 and transposed into a [kc, kNR] buffer that stays in
// L1 while every row group of x streams past it; the [n, kNR] strip of out it
// accumulates into stays in L2 across the k blocks. The micro-kernel keeps a
// kMR x kNR tile of out in registers: one vector load per kW columns, one
// broadcast per row.
constexpr int kMR = V::kGemmRows;
constexpr int kNR = 2 * kW;
constexpr int64_t kKC = 256;

int64_t gemm_packed_floats(int64_t n, int64_t k) { return round_up(n, kMR) * k; }

// Row groups [g0, g1) of x, kMR rows each (zeros past row n). Block (k0, g)
// of the packed x starts at n_pad * k0 + g * kc * kMR.
void gemm_pack_x(const float* x, int64_t n, int64_t k, int64_t g0, int64_t g1, float* dst) {
  const int64_t n_pad = round_up(n, kMR);
  for (int64_t k0 = 0; k0 < k; k0 += kKC) {
    const int64_t kc = min64(kKC, k - k0);
    for (int64_t g = g0; g < g1; ++g) {
      float* block = dst + n_pad * k0 + g * kc * kMR;
      for (int i = 0; i < kMR; ++i) {
        const int64_t r = g * kMR + i;
        const float* src = x + r * k + k0;
        for (int64_t kk = 0; kk < kc; ++kk) block[kk * kMR + i] = r < n ? src[kk] : 0.0f;
      }
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
    const char* base =
        static_cast<const char*>(w_row<T>(w, m + half * kW, k)) + k0 * elem_bytes<T>();
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

// The tile results go to cbuf, a contiguous [n][kNR] strip, and are copied to
// out once per panel: out's rows are ldo apart, and for the usual power-of-two
// widths that stride maps every row of the strip to the same few cache sets,
// so accumulating there across k blocks kept missing L1 and L2.
template <DType T>
void gemm_t(const float* xpack, int64_t n, const void* w, int64_t k, int64_t m0, int64_t m1,
            float* out, int64_t ldo, float* scratch) {
  const int64_t n_pad = round_up(n, kMR);
  float* bpack = scratch;
  float* cbuf = scratch + kKC * kNR;
  for (int64_t m = m0; m < m1; m += kNR) {
    const int64_t cols = min64(kNR, m1 - m);
    for (int64_t k0 = 0; k0 < k; k0 += kKC) {
      const int64_t kc = min64(kKC, k - k0);
      pack_w<T>(w, k, m, m1, k0, kc, bpack);
      for (int64_t r0 = 0; r0 < n; r0 += kMR) {
        micro_kernel(xpack + n_pad * k0 + (r0 / kMR) * kc * kMR, bpack, kNR, kc, cbuf + r0 * kNR,
                     kNR, min64(kMR, n - r0), kNR, k0 > 0);
      }
    }
    for (int64_t r = 0; r < n; ++r) {
      const float* src = cbuf + r * kNR;
      float* dst = out + r * ldo + m;
      if (cols == kNR) {
        V::store(dst, V::load(src));
        V::store(dst + kW, V::load(src + kW));
      } else {
        for (int64_t j = 0; j < cols; ++j) dst[j] = src[j];
      }
    }
  }
}

int64_t gemm_scratch_floats(int64_t n) { return kKC * kNR + round_up(n, kMR) * kNR; }

void gemm(const float* xpack, int64_t n, const void* w, DType wt, int64_t k, int64_t m0, int64_t m1,
          float* out, int64_t ldo, float* scratch) {
  switch (wt) {
    case DType::F32:
      return gemm_t<DType::F32>(xpack, n, w, k, m0, m1, out, ldo, scratch);
    case DType::BF16:
      return gemm_t<DType::BF16>(xpack, n, w, k, m0, m1, out, ldo, scratch);
    case DType::F16:
      return gemm_t<DType::F16>(xpack, n, w, k, m0, m1, out, ldo, scratch);
  }
}
