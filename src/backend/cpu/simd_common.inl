// Shared by the simd_*.inl kernel files, which each kernels_<isa>.cpp
// includes inside an anonymous namespace after defining its vector traits V,
// so every level gets its own internal copy compiled with its own flags.
// V provides: Reg and kWidth (floats per register); kGemmRows; zero, set1,
// load, store, add, sub, mul, div, fmadd(a, b, c) = a * b + c, max; hsum,
// hmax, hsum4; load_bf16 / load_f16 (kWidth 16-bit values to f32) and their
// scalar forms bf16_scalar / f16_scalar; exp; prefetch; and for transposing
// by gathers row_offsets, load_offsets, gather32 with as_float, bf16_low /
// bf16_high and f16_low / f16_high to split the gathered 32-bit words.
//
// Deliberately no standard-library includes (see kernels.h).

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

// round_up(v, to): v rounded up to a multiple of to.
inline int64_t round_up(int64_t v, int64_t to) { return (v + to - 1) / to * to; }
