// AVX2 + FMA + F16C kernels (8 floats per register).
#include <immintrin.h>

#include "backend/cpu/kernels.h"

namespace nativelm::cpu {
namespace {

struct V {
  using Reg = __m256;
  static constexpr int kWidth = 8;
  static constexpr int kGemmRows = 6;  // 6 x 2 accumulators of 16 registers

  static Reg zero() { return _mm256_setzero_ps(); }
  static Reg set1(float v) { return _mm256_set1_ps(v); }
  static Reg load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, Reg v) { _mm256_storeu_ps(p, v); }
  static Reg load_bf16(const uint16_t* p) {
    const __m256i wide =
        _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
  }
  static Reg load_f16(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static Reg fmadd(Reg a, Reg b, Reg c) { return _mm256_fmadd_ps(a, b, c); }
  static Reg add(Reg a, Reg b) { return _mm256_add_ps(a, b); }
  static Reg sub(Reg a, Reg b) { return _mm256_sub_ps(a, b); }
  static Reg mul(Reg a, Reg b) { return _mm256_mul_ps(a, b); }
  static Reg div(Reg a, Reg b) { return _mm256_div_ps(a, b); }
  static float hsum(Reg v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static Reg max(Reg a, Reg b) { return _mm256_max_ps(a, b); }
  static float hmax(Reg v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
  }
  // out[0..3] = hsum(a), hsum(b), hsum(c), hsum(d), sharing the shuffles.
  static void hsum4(Reg a, Reg b, Reg c, Reg d, float* out) {
    const Reg x = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1)));
  }
  static void prefetch(const void* p) { _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0); }
  static float bf16_scalar(uint16_t h) {
    return _mm_cvtss_f32(_mm_castsi128_ps(_mm_cvtsi32_si128(static_cast<int>(h) << 16)));
  }
  static float f16_scalar(uint16_t h) { return _cvtsh_ss(h); }

  // Gathering one 32-bit word from each of kWidth rows `stride` bytes apart.
  static __m256i row_offsets(int32_t stride) {
    return _mm256_mullo_epi32(_mm256_set_epi32(7, 6, 5, 4, 3, 2, 1, 0), _mm256_set1_epi32(stride));
  }
  static __m256i gather32(const void* base, __m256i offsets) {
    return _mm256_i32gather_epi32(static_cast<const int*>(base), offsets, 1);
  }
  static __m256i load_offsets(const int32_t* offsets) {
    return _mm256_load_si256(reinterpret_cast<const __m256i*>(offsets));
  }
  static Reg as_float(__m256i v) { return _mm256_castsi256_ps(v); }
  static Reg bf16_low(__m256i v) { return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)); }
  static Reg bf16_high(__m256i v) {
    return _mm256_castsi256_ps(
        _mm256_and_si256(v, _mm256_set1_epi32(static_cast<int>(0xffff0000u))));
  }
  static __m128i low_halves(__m256i v) {  // the low 16 bits of each 32-bit lane
    const __m256i packed =
        _mm256_packus_epi32(_mm256_and_si256(v, _mm256_set1_epi32(0xffff)), _mm256_setzero_si256());
    return _mm256_castsi256_si128(_mm256_permute4x64_epi64(packed, 0x08));
  }
  static Reg f16_low(__m256i v) { return _mm256_cvtph_ps(low_halves(v)); }
  static Reg f16_high(__m256i v) { return _mm256_cvtph_ps(low_halves(_mm256_srli_epi32(v, 16))); }

  // exp with a Cephes-style polynomial (about 1 ulp). The input is clamped so
  // that 2^n stays a normal float: exp saturates near 1.6e38 and 1.6e-38,
  // which is far beyond where silu stops changing.
  static Reg exp(Reg x) {
    x = _mm256_max_ps(_mm256_min_ps(x, set1(88.0f)), set1(-87.0f));
    const Reg n = _mm256_round_ps(mul(x, set1(1.44269504088896341f)),
                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    Reg r = _mm256_fnmadd_ps(n, set1(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, set1(-2.12194440e-4f), r);
    Reg p = set1(1.9875691500e-4f);
    p = fmadd(p, r, set1(1.3981999507e-3f));
    p = fmadd(p, r, set1(8.3334519073e-3f));
    p = fmadd(p, r, set1(4.1665795894e-2f));
    p = fmadd(p, r, set1(1.6666665459e-1f));
    p = fmadd(p, r, set1(5.0000001201e-1f));
    p = fmadd(p, mul(r, r), add(r, set1(1.0f)));
    const __m256i bits =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return mul(p, _mm256_castsi256_ps(bits));
  }
};

// In this order: each file uses the ones before it.
#include "backend/cpu/simd_common.inl"
//
#include "backend/cpu/simd_linear.inl"
//
#include "backend/cpu/simd_activation.inl"
//
#include "backend/cpu/simd_attention.inl"

}  // namespace

#define NATIVELM_KERNEL_TABLE kAvx2Kernels
#define NATIVELM_KERNEL_ISA Avx2
#include "backend/cpu/simd_kernel_table.inl"

}  // namespace nativelm::cpu
