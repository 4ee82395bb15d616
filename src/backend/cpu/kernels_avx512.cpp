// AVX-512 (F/BW/VL/DQ + FMA/F16C) kernels. The GEMM converts bf16 weights to
// f32 and uses f32 FMA rather than vdpbf16ps: on the Sapphire Rapids machines
// we measured, vdpbf16ps issues at half the rate of vfmadd231ps, so f32 FMA is
// both faster and exact in the products.
#include <immintrin.h>

#include "backend/cpu/kernels.h"

namespace nativelm::cpu {
namespace {

struct V {
  using Reg = __m512;
  static constexpr int kWidth = 16;
  static constexpr int kGemmRows = 12;  // 12 x 2 accumulators + 2 weight vectors

  static Reg zero() { return _mm512_setzero_ps(); }
  static Reg set1(float v) { return _mm512_set1_ps(v); }
  static Reg load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, Reg v) { _mm512_storeu_ps(p, v); }
  static Reg load_bf16(const uint16_t* p) {
    const __m512i wide =
        _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
  }
  static Reg load_f16(const uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static Reg fmadd(Reg a, Reg b, Reg c) { return _mm512_fmadd_ps(a, b, c); }
  static Reg add(Reg a, Reg b) { return _mm512_add_ps(a, b); }
  static Reg sub(Reg a, Reg b) { return _mm512_sub_ps(a, b); }
  static Reg mul(Reg a, Reg b) { return _mm512_mul_ps(a, b); }
  static Reg div(Reg a, Reg b) { return _mm512_div_ps(a, b); }
  static float hsum(Reg v) { return _mm512_reduce_add_ps(v); }
  static Reg max(Reg a, Reg b) { return _mm512_max_ps(a, b); }
  static float hmax(Reg v) { return _mm512_reduce_max_ps(v); }
  // out[0..3] = hsum(a), hsum(b), hsum(c), hsum(d), sharing the shuffles.
  static void hsum4(Reg a, Reg b, Reg c, Reg d, float* out) {
    const Reg ab = add(_mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xee));
    const Reg cd = add(_mm512_shuffle_f32x4(c, d, 0x44), _mm512_shuffle_f32x4(c, d, 0xee));
    // Each 128-bit lane now holds four partial sums of one of a, b, c, d.
    Reg x = add(_mm512_shuffle_f32x4(ab, cd, 0x88), _mm512_shuffle_f32x4(ab, cd, 0xdd));
    x = add(x, _mm512_permute_ps(x, 0x4e));
    x = add(x, _mm512_permute_ps(x, 0xb1));
    const __m512i lane_heads = _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 8, 4, 0);
    _mm_storeu_ps(out, _mm512_castps512_ps128(_mm512_permutexvar_ps(lane_heads, x)));
  }
  static void prefetch(const void* p) { _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0); }
  static float bf16_scalar(uint16_t h) {
    return _mm_cvtss_f32(_mm_castsi128_ps(_mm_cvtsi32_si128(static_cast<int>(h) << 16)));
  }
  static float f16_scalar(uint16_t h) { return _cvtsh_ss(h); }

  // Gathering one 32-bit word from each of kWidth rows `stride` bytes apart.
  static __m512i row_offsets(int32_t stride) {
    return _mm512_mullo_epi32(
        _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
        _mm512_set1_epi32(stride));
  }
  static __m512i gather32(const void* base, __m512i offsets) {
    return _mm512_i32gather_epi32(offsets, base, 1);
  }
  static __m512i load_offsets(const int32_t* offsets) { return _mm512_load_si512(offsets); }
  static Reg as_float(__m512i v) { return _mm512_castsi512_ps(v); }
  static Reg bf16_low(__m512i v) { return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)); }
  static Reg bf16_high(__m512i v) {
    return _mm512_castsi512_ps(
        _mm512_and_si512(v, _mm512_set1_epi32(static_cast<int>(0xffff0000u))));
  }
  static Reg f16_low(__m512i v) { return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(v)); }
  static Reg f16_high(__m512i v) {
    return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(v, 16)));
  }

  // exp with a Cephes-style polynomial (about 1 ulp); scalef handles the
  // 2^n scaling including overflow to inf and underflow to 0.
  static Reg exp(Reg x) {
    x = _mm512_max_ps(_mm512_min_ps(x, set1(88.7f)), set1(-104.0f));
    const Reg n = _mm512_roundscale_ps(mul(x, set1(1.44269504088896341f)),
                                       _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    Reg r = _mm512_fnmadd_ps(n, set1(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, set1(-2.12194440e-4f), r);
    Reg p = set1(1.9875691500e-4f);
    p = fmadd(p, r, set1(1.3981999507e-3f));
    p = fmadd(p, r, set1(8.3334519073e-3f));
    p = fmadd(p, r, set1(4.1665795894e-2f));
    p = fmadd(p, r, set1(1.6666665459e-1f));
    p = fmadd(p, r, set1(5.0000001201e-1f));
    p = fmadd(p, mul(r, r), add(r, set1(1.0f)));
    return _mm512_scalef_ps(p, n);
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

#define NATIVELM_KERNEL_TABLE kAvx512Kernels
#define NATIVELM_KERNEL_ISA Avx512
#include "backend/cpu/simd_kernel_table.inl"

}  // namespace nativelm::cpu
