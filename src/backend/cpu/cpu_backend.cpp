// CpuBackend: construction, memory, and the table lookups (embedding,
// gather_rows). The other ops live in cpu_linear.cpp, cpu_norm.cpp,
// cpu_elementwise.cpp and cpu_attention.cpp.
#include "backend/cpu/cpu_backend.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "backend/cpu/checks.h"
#include "backend/cpu/kernels.h"
#include "util/thread_pool.h"

namespace nativelm {

using namespace cpu;

namespace {
size_t mapped_bytes(const Tensor& t) { return std::max<size_t>(static_cast<size_t>(t.bytes()), 1); }
}  // namespace

CpuBackend::CpuBackend() : CpuBackend(active_isa()) {}
CpuBackend::CpuBackend(Isa isa) : kernels_(&kernels_for(isa)) {}
CpuBackend::~CpuBackend() = default;

std::string CpuBackend::name() const { return fmt::format("cpu ({})", isa_name(isa())); }

Isa CpuBackend::isa() const { return kernels_->isa; }

Tensor CpuBackend::alloc(DType dtype, std::initializer_list<int64_t> shape) {
  Tensor t(nullptr, dtype, shape);
  for (int64_t d : shape) {
    if (d < 0) fail("alloc: negative dimension {}", d);
  }
  // Anonymous pages arrive zeroed and are only backed by memory once touched,
  // so a large KV pool costs nothing until requests fill it; page alignment
  // also keeps SIMD rows inside cache lines.
  void* p = ::mmap(nullptr, mapped_bytes(t), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) fail("alloc: out of memory allocating {} bytes", t.bytes());
  t.data = p;
  return t;
}

void CpuBackend::free(Tensor& t) {
  if (t.data) ::munmap(t.data, mapped_bytes(t));
  t = Tensor();
}

void CpuBackend::copy_to_host(const Tensor& src, void* dst) {
  std::memcpy(dst, src.data, static_cast<size_t>(src.bytes()));
}

void CpuBackend::copy_from_host(const void* src, Tensor& dst) {
  std::memcpy(dst.data, src, static_cast<size_t>(dst.bytes()));
}

namespace {

// Copies `rows` rows picked by index from a [table_rows, d] table of any dtype
// into f32 out, in parallel.
void gather_to_f32(const Tensor& table, std::span<const int32_t> ids, Tensor& out, const char* op) {
  check_present(table, op, "table");
  if (table.ndim != 2) fail("{}: the table must be 2-D, got {}-D", op, table.ndim);
  const int64_t d = table.dim(1);
  const int64_t n = static_cast<int64_t>(ids.size());
  check_shape(out, n, d, op, "out");
  for (int32_t id : ids) {
    if (id < 0 || id >= table.dim(0)) fail("{}: index {} is outside [0, {})", op, id, table.dim(0));
  }
  if (out.data == table.data && n > 0) fail("{}: out may not alias the table", op);
  ThreadPool::global().parallel_for(n, 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      float* dst = out.as<float>() + i * d;
      const Tensor row = table.rows(ids[i], 1);
      if (table.dtype == DType::F32) {
        std::memcpy(dst, row.data, static_cast<size_t>(d) * 4);
        continue;
      }
      for (int64_t j = 0; j < d; ++j) dst[j] = load_as_f32(row, j);
    }
  });
}

}  // namespace

void CpuBackend::embedding(const Tensor& table, std::span<const int32_t> ids, Tensor& out) {
  gather_to_f32(table, ids, out, "embedding");
}

void CpuBackend::gather_rows(const Tensor& x, std::span<const int32_t> rows, Tensor& out) {
  check_matrix(x, "gather_rows", "x");
  gather_to_f32(x, rows, out, "gather_rows");
}

}  // namespace nativelm
