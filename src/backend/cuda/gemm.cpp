#include "backend/cuda/gemm.h"

#include <cublasLt.h>

#include "backend/cuda/cuda_check.h"
#include "util/error.h"

namespace nativelm::cuda {

namespace {

constexpr size_t kWorkspaceBytes = 32u << 20;

cudaDataType_t data_type(Ty t) {
  switch (t) {
    case Ty::F32: return CUDA_R_32F;
    case Ty::F16: return CUDA_R_16F;
    case Ty::BF16: return CUDA_R_16BF;
  }
  return CUDA_R_32F;
}

void check_blas(cublasStatus_t st, const char* what) {
  if (st != CUBLAS_STATUS_SUCCESS) fail("cuBLASLt {} failed: {}", what, cublasLtGetStatusString(st));
}

cublasLtHandle_t lt(void* h) { return static_cast<cublasLtHandle_t>(h); }

}  // namespace

struct Gemm::Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  ~Plan() {
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (desc) cublasLtMatmulDescDestroy(desc);
  }
};

Gemm::Gemm(cudaStream_t stream) : stream_(stream) {
  cublasLtHandle_t h = nullptr;
  check_blas(cublasLtCreate(&h), "create");
  handle_ = h;
  check_cuda(cudaMalloc(&workspace_, kWorkspaceBytes), "cuBLASLt workspace");
}

Gemm::~Gemm() {
  plans_.clear();
  if (workspace_) cudaFree(workspace_);
  if (handle_) cublasLtDestroy(lt(handle_));
}

// Column-major view of the row-major operands: out^T [m, n] = w [k, m]^T x^T [k, n].
const Gemm::Plan& Gemm::plan(Ty t, Ty out_t, int n, int m, int k) {
  auto& slot = plans_[Key{t, out_t, n, m, k}];
  if (slot) return *slot;
  auto p = std::make_unique<Plan>();
  check_blas(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), "desc");
  const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  check_blas(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)), "transa");
  check_blas(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)), "transb");
  check_blas(cublasLtMatrixLayoutCreate(&p->a, data_type(t), k, m, k), "layout a");
  check_blas(cublasLtMatrixLayoutCreate(&p->b, data_type(t), k, n, k), "layout b");
  check_blas(cublasLtMatrixLayoutCreate(&p->c, data_type(out_t), m, n, m), "layout c");
  cublasLtMatmulPreference_t pref = nullptr;
  check_blas(cublasLtMatmulPreferenceCreate(&pref), "preference");
  const size_t ws = kWorkspaceBytes;
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(lt(handle_), p->desc, p->a, p->b, p->c, p->c,
                                                           pref, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  check_blas(st, "heuristic");
  if (found == 0) fail("cuBLASLt has no algorithm for a {}x{}x{} product", n, m, k);
  p->algo = result.algo;
  slot = std::move(p);
  return *slot;
}

void Gemm::run(Ty t, const void* x, const void* w, int n, int m, int k, void* out, Ty out_t, bool accumulate) {
  const Plan& p = plan(t, out_t, n, m, k);
  const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  check_blas(cublasLtMatmul(lt(handle_), p.desc, &alpha, w, p.a, x, p.b, &beta, out, p.c, out, p.c,
                            &p.algo, workspace_, kWorkspaceBytes, stream_),
             "matmul");
}

}  // namespace nativelm::cuda
