#pragma once
// Matrix products through cuBLASLt: out[n, m] = x[n, k] @ w[m, k]^T, with an
// algorithm picked by cuBLASLt's heuristic once per shape and kept.
#include <cstdint>
#include <map>
#include <memory>
#include <tuple>

#include <cuda_runtime_api.h>

#include "backend/cuda/kernels.h"

namespace nativelm::cuda {

class Gemm {
 public:
  explicit Gemm(cudaStream_t stream);
  ~Gemm();
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;

  // f32 accumulation; f32 models stay in true f32 (no TF32). With
  // accumulate, out += the product (one rounding of the sum).
  void run(Ty t, const void* x, const void* w, int n, int m, int k, void* out, Ty out_t, bool accumulate = false);

 private:
  struct Plan;
  using Key = std::tuple<Ty, Ty, int, int, int>;
  const Plan& plan(Ty t, Ty out_t, int n, int m, int k);

  cudaStream_t stream_;
  void* handle_ = nullptr;  // cublasLtHandle_t
  void* workspace_ = nullptr;
  std::map<Key, std::unique_ptr<Plan>> plans_;
};

}  // namespace nativelm::cuda
