#pragma once
// The CPU backend: f32 activations, f32/f16/bf16 weights read in place from
// the memory-mapped checkpoint, kernels chosen at run time for the best ISA
// the processor has (AVX-512 with BF16, AVX2+FMA, or portable scalar code),
// spread over all cores by the global ThreadPool.
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
  void head_rms_norm(Tensor& x, int64_t head_dim, const Tensor& weight, float eps) override;
  void linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out) override;
  void rope(Tensor& x, int64_t head_dim, std::span<const int32_t> positions,
            std::span<const float> inv_freq) override;
  void attention(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& k_pool, Tensor& v_pool,
                 const AttentionBatch& batch, int64_t head_dim, float scale, Tensor& out) override;
  void silu_mul(const Tensor& gate, const Tensor& up, Tensor& out) override;
  void gather_rows(const Tensor& x, std::span<const int32_t> rows, Tensor& out) override;

  cpu::Isa isa() const;

 private:
  const cpu::Kernels* kernels_;
};

}  // namespace nativelm
