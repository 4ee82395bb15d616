#pragma once
// The CPU backend: f32 activations, f32/f16/bf16 weights read in place from
// the memory-mapped checkpoint, kernels chosen at run time for the best ISA
// the processor has (AVX-512 with BF16, AVX2+FMA, or portable scalar code),
// spread over all cores by the global ThreadPool.
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/isa.h"

namespace nativelm {
namespace cpu {
struct Kernels;
}

class CpuBackend final : public Backend {
 public:
  // The best level the processor has, or NATIVELM_CPU_ISA.
  CpuBackend();
  // A given level (tests compare the levels); throws Error if unsupported.
  explicit CpuBackend(cpu::Isa isa);
  ~CpuBackend() override;

  std::string name() const override;
  DType activation_dtype() const override { return DType::F32; }

  Tensor upload_weight(const Tensor& host) override { return host; }
  Tensor alloc(DType dtype, std::initializer_list<int64_t> shape) override;
  void free(Tensor& t) override;
  void copy_to_host(const Tensor& src, void* dst) override;
  void copy_from_host(const void* src, Tensor& dst) override;

  void embedding(const Tensor& table, std::span<const int32_t> ids, Tensor& out) override;
  void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) override;
  void add_rms_norm(Tensor& residual, const Tensor& x, const Tensor& weight, float eps,
                    Tensor& out) override;
  void linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out) override;
  void qkv_prepare(const Tensor& qkv, const QkvLayout& layout, const Tensor* q_norm,
                   const Tensor* k_norm, float eps, std::span<const int32_t> positions,
                   std::span<const float> inv_freq, std::span<const int32_t> slots, Tensor& k_pool,
                   Tensor& v_pool, Tensor& q_out) override;
  void attention(const Tensor& q, const Tensor& k_pool, const Tensor& v_pool,
                 const AttentionBatch& batch, int64_t head_dim, float scale, Tensor& out) override;
  void silu_mul(const Tensor& gate_up, Tensor& out) override;
  void add(Tensor& residual, const Tensor& x) override;
  void gather_rows(const Tensor& x, std::span<const int32_t> rows, Tensor& out) override;

  // The building blocks of the fused ops above, also tested on their own.
  // RMSNorm over each head_dim slice of x[n, heads * head_dim], in place.
  void head_rms_norm(Tensor& x, int64_t head_dim, const Tensor& weight, float eps);
  // Rotary embedding in place on x[n, heads * head_dim] (see qkv_prepare).
  void rope(Tensor& x, int64_t head_dim, std::span<const int32_t> positions,
            std::span<const float> inv_freq);
  // Writes k, v [n, kv_dim] (f32) into the pools at slots.
  void write_kv(const Tensor& k, const Tensor& v, std::span<const int32_t> slots, Tensor& k_pool,
                Tensor& v_pool);
  // write_kv, then attention.
  void attention(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& k_pool, Tensor& v_pool,
                 const AttentionBatch& batch, int64_t head_dim, float scale, Tensor& out);
  // out = silu(gate) * up, all [n, d]; out may alias gate.
  void silu_mul(const Tensor& gate, const Tensor& up, Tensor& out);

  cpu::Isa isa() const;

 private:
  const cpu::Kernels* kernels_;
  std::vector<float> scratch_;  // qkv_prepare's k and v rows
};

}  // namespace nativelm
