// CudaBackend's decode fusion: the layer ops of a small decode step are
// collected into a DecodeProgram and run by the persistent decode kernel
// (decode_kernel.cu) in one launch, for the batch sizes where that is faster
// (see init_decode_fusion; NATIVELM_DECODE_KERNEL=0 / =all for side-by-side
// measurements).
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <vector>

#include <cuda_runtime.h>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/decode_program.h"

namespace nativelm {

using cuda::check_cuda;

void CudaBackend::init_decode_fusion() {
  program_ = std::make_unique<cuda::DecodeProgram>();
  int cooperative = 0, major = 0;
  cudaDeviceGetAttribute(&cooperative, cudaDevAttrCooperativeLaunch, device_);
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device_);
  // The kernel streams with the bulk-copy engine of sm_90 (Hopper) and newer.
  fuse_decode_ = major >= 9 && cooperative != 0;
  // Measured on an H100 (docs/benchmarks.md, Qwen3-0.6B, decode tok/s against
  // kernel by kernel, 2026-11-23): the program wins from 2 rows (+2% at 2 rows
  // with 60 positions, +8% with 232; +17% at 3, +15% at 4, +84% at 8) while
  // the longest sequence is short for the rows it has (2 rows: even at 432
  // positions, -8% at 832; 3 rows: -4% at 632; 4 rows: -3% at 800; 8 rows:
  // +9% at 2080, -5% at 3032, -12% at 4032): its attention gives each (row,
  // kv head) a fixed share of the blocks, so few rows with long sequences
  // leave it waiting on a few blocks' K/V. At 1 row it loses (-3%) with a
  // grid barrier between ops: each op pays its L2 round trips and a barrier
  // in turn, more than the kernel boundaries it saves; with flagged
  // exchange (the default, where the model's shapes allow) it wins on
  // Qwen3-0.6B's layers since the kernel's 8 compute warps (+22% at 60
  // positions, +11% at 256, +10% at 512, +5% at 1,024, +3-5% at 1,500,
  // -4% at 2,048: one row takes it up to 1,536 positions); one-row steps of
  // wider layers stay kernel by kernel (fuse_gemv: unmeasured there, and
  // Qwen3-8B runs at 83% of its roofline that way). NATIVELM_DECODE_KERNEL=0
  // turns it off, =all uses it for every decode step it can serve.
  if (const char* v = std::getenv("NATIVELM_DECODE_FLAGS")) decode_flags_ = std::strcmp(v, "0") != 0;
  decode_min_rows_ = decode_flags_ ? 1 : 2;
  decode_context_per_row_ = 192;
  decode_context_one_row_ = 1536;
  if (const char* v = std::getenv("NATIVELM_DECODE_KERNEL")) {
    if (std::strcmp(v, "0") == 0) fuse_decode_ = false;
    if (std::strcmp(v, "all") == 0) set_decode_program_rows(1);
  }
  if (const char* v = std::getenv("NATIVELM_DECODE_CLUSTER"); v && std::strcmp(v, "1") == 0) set_decode_cluster(true);
  if (const char* v = std::getenv("NATIVELM_DECODE_FLAG_MERGE")) flag_merge_ = std::strcmp(v, "0") != 0;
  if (const char* v = std::getenv("NATIVELM_DECODE_POLL_NS"))
    poll_ns_ = static_cast<uint32_t>(std::clamp(std::atol(v), 0L, 100000L));
  // At most this many clusters (comparisons: the kv heads' clusters alone).
  if (const char* v = std::getenv("NATIVELM_DECODE_CLUSTERS"); v && std::atoi(v) > 0) cluster_limit_ = std::atoi(v);
  if (const char* v = std::getenv("NATIVELM_DECODE_BALANCE")) cluster_balance_ = std::strcmp(v, "1") == 0;
  if (const char* v = std::getenv("NATIVELM_DECODE_LOAD_BYTES"); v && std::atoi(v) >= 1024)
    cluster_load_bytes_ = std::min(std::atoi(v), cuda::kDecodeGroupBytes);
  if (const char* v = std::getenv("NATIVELM_DECODE_TRACE"); v && *v) {
    trace_path_ = v;
    trace_ = static_cast<unsigned long long*>(
        device_alloc(size_t(cuda::kMaxDecodeOps) * sm_count_ * cuda::kTraceStamps * 8, "decode kernel trace"));
  }
  if (const char* v = std::getenv("NATIVELM_DECODE_HOLD")) decode_hold_ = cluster_hold_ = std::strcmp(v, "0") != 0;
  if (const char* v = std::getenv("NATIVELM_DECODE_INFLIGHT"); v && std::atol(v) > 0)
    decode_inflight_ = cluster_inflight_ = static_cast<uint32_t>(std::min(std::atol(v), 1L << 30));
  if (const char* v = std::getenv("NATIVELM_DECODE_KV_BOX")) kv_box_ = std::strcmp(v, "0") != 0;
  kv_maps_ = std::make_unique<cuda::KvMaps>();
  if (const char* v = std::getenv("NATIVELM_DECODE_MIN_CHUNK"); v && std::atol(v) > 0)
    decode_min_chunk_ = static_cast<int32_t>(std::min(std::atol(v), 1L << 20));
  if (const char* v = std::getenv("NATIVELM_DECODE_ONE_CHUNK"))
    decode_one_chunk_ = static_cast<int32_t>(std::clamp(std::atol(v), 0L, 1L << 20));
  constexpr size_t kBarrierBytes = cuda::kBarrierWords * sizeof(uint32_t);
  decode_barrier_ = static_cast<uint32_t*>(device_alloc(kBarrierBytes, "decode kernel barrier"));
  check_cuda(cudaMemset(decode_barrier_, 0, kBarrierBytes), "decode kernel barrier");
}

void CudaBackend::set_decode_program_rows(int min_rows) {
  decode_min_rows_ = std::max(1, min_rows);
  decode_rows_set_ = true;
  decode_context_per_row_ = std::numeric_limits<int32_t>::max() / cuda::kMaxDecodeRows;
  decode_context_one_row_ = std::numeric_limits<int32_t>::max();
}

void CudaBackend::set_decode_cluster(bool on) { decode_cluster_ = on; }

bool CudaBackend::fusable_decode(const StepInputs& in) const {
  const AttentionBatch* a = in.attention;
  // One row goes to the cluster kernel (any length: its attention spreads
  // each kv head's positions over a cluster) when that is on.
  const bool cluster = decode_cluster_ && in.tokens.size() == 1;
  if (a == nullptr || (!cluster && in.tokens.size() < static_cast<size_t>(decode_min_rows_)) ||
      in.tokens.size() > cuda::kMaxDecodeRows)
    return false;
  const int64_t max_context = in.tokens.size() == 1
                                  ? int64_t{decode_context_one_row_}
                                  : int64_t{decode_context_per_row_} * static_cast<int64_t>(in.tokens.size());
  for (const AttentionSeq& s : a->seqs)
    if (s.q_len != 1 || (!cluster && s.kv_len > max_context)) return false;
  return a->seqs.size() == in.tokens.size();
}

bool CudaBackend::fuse_gemv(int kind, const Tensor& x, const Tensor* norm, float eps, const Tensor& w,
                            const Tensor* bias, int64_t m, Tensor& out) {
  const int rows = static_cast<int>(x.dim(0)), k = static_cast<int>(x.dim(1));
  // The LM head writes f32 logits; the cluster kernel takes whole layers only.
  const bool head = kind == cuda::kOpGemvNormHead;
  const bool out_ok = head ? out.dtype == DType::F32 && !decode_cluster_ : out.dtype == act_;
  const bool fits = decode_step_ && x.dtype == act_ && out_ok &&
                    cuda::decode_gemv_fits(ty(x.dtype), rows, static_cast<int>(m), k, kind == cuda::kOpGemvNormSwiglu,
                                           x.data, w.data, norm ? norm->data : nullptr);
  auto& p = *program_;
  if (fits && !head && rows == 1 && !decode_rows_set_ && !decode_cluster_ &&
      int64_t{m} * k * (kind == cuda::kOpGemvNormSwiglu ? 2 : 1) * dtype_size(act_) > kOneRowProgramMaxWeight) {
    // Layers this wide stream well kernel by kernel at one row (Qwen3-8B:
    // 83% of its roofline); the one-row program is measured to win only
    // on small ones (init_decode_fusion). From now on one-row steps are
    // not fused; this one goes on op by op.
    decode_min_rows_ = 2;
    flush_decode();
    decode_step_ = false;
    return false;
  }
  if (fits && decode_cluster_ && rows == 1 && kind == cuda::kOpGemvAdd && p.kv_heads > 0) {
    // The cluster kernel's buffers, sized before the op joins: growing one
    // runs what is pending (drop_recordings), which only the first step sees.
    // (sm_count_ bounds the clusters.)
    const size_t clusters = static_cast<size_t>(sm_count_);
    grown(cluster_sums_, cluster_sums_bytes_, 2 * clusters * m * sizeof(float), "decode cluster sums");
    grown(cluster_resid_, cluster_resid_bytes_, 2 * m * dtype_size(act_), "decode cluster residual");
  }
  if (!fits || (p.num_ops > 0 && p.rows != rows) || p.num_ops == cuda::kMaxDecodeOps) flush_decode();
  if (!fits) return false;
  p.rows = rows;
  p.max_k = std::max(p.max_k, k);
  p.ops[p.num_ops++] =
      cuda::DecodeOp{kind,   static_cast<int32_t>(m),     k,        eps,     x.data,  norm ? norm->data : nullptr,
                     w.data, bias ? bias->data : nullptr, out.data, nullptr, nullptr, {}};
  return true;
}

bool CudaBackend::fuse_attention(const Tensor& qkv, const QkvLayout& layout, const Tensor* q_norm,
                                 const Tensor* k_norm, float eps, std::span<const int32_t> positions,
                                 std::span<const float> inv_freq, const AttentionBatch& batch, float scale,
                                 Tensor& k_pool, Tensor& v_pool, Tensor& out) {
  const int rows = static_cast<int>(qkv.dim(0)), heads = static_cast<int>(layout.heads);
  const int kv_heads = static_cast<int>(layout.kv_heads), hd = static_cast<int>(layout.head_dim);
  const bool staged_here = &batch == step_.attention && positions.data() == step_.positions_h;
  if (decode_step_ && !cuda::decode_attention_fits(ty(qkv.dtype), rows, heads, kv_heads, hd))
    fuse_decode_ = decode_step_ = false;  // this model's attention stays on its own kernels
  auto& p = *program_;
  const bool fits = decode_step_ && staged_here && qkv.dtype == act_ && out.dtype == act_;
  const bool other_layout = p.heads != 0 && (p.heads != heads || p.kv_heads != kv_heads || p.head_dim != hd ||
                                             p.scale != scale || p.inv_freq != device_floats(inv_freq));
  if (!fits || (p.num_ops > 0 && p.rows != rows) || other_layout || p.num_ops == cuda::kMaxDecodeOps ||
      kv_map_count_ == cuda::kMaxKvMaps)
    flush_decode();
  if (!fits) return false;
  const int splits = cuda::decode_attention_splits(rows, kv_heads, sm_count_);
  // Growing a buffer flushes what is pending (drop_recordings), so before
  // the program's header is written.
  auto* partial = static_cast<float*>(grown(attn_scratch_, attn_scratch_bytes_,
                                            size_t(rows) * heads * splits * (hd + 2) * sizeof(float),
                                            "attention scratch"));
  auto* counters = static_cast<int32_t*>(grown(attn_counters_, attn_counters_bytes_,
                                               size_t(rows) * kv_heads * sizeof(int32_t), "attention counters"));
  const Staged& s = step_;
  p.rows = rows;
  p.heads = heads;
  p.kv_heads = kv_heads;
  p.head_dim = hd;
  p.splits = splits;
  p.page_size = s.page_size;
  p.scale = scale;
  p.positions = s.positions;
  p.slots = s.slots;
  p.row_seq = s.row_seq;
  p.seqs = s.seqs;
  p.pages = s.pages;
  p.inv_freq = device_floats(inv_freq);
  p.partial = partial;
  p.counters = counters;
  // Its pools' tensor maps, at its index among the program's attention ops.
  const int map_index = kv_map_count_++;
  kv_maps_ok_ = kv_maps_ok_ && kv_box_ && s.page_size % cuda::kKvBoxRows == 0 &&
                kv_map(k_pool, hd, kv_maps_->k[map_index]) && kv_map(v_pool, hd, kv_maps_->v[map_index]);
  p.ops[p.num_ops++] = cuda::DecodeOp{cuda::kOpAttention,
                                      map_index,
                                      0,
                                      eps,
                                      qkv.data,
                                      q_norm ? q_norm->data : nullptr,
                                      k_norm ? k_norm->data : nullptr,
                                      nullptr,
                                      out.data,
                                      k_pool.data,
                                      v_pool.data,
                                      {}};
  return true;
}

bool CudaBackend::kv_map(const Tensor& pool, int head_dim, CUtensorMap& out) {
  const int64_t slots = pool.dim(0);
  const int kv_dim = static_cast<int>(pool.dim(1));
  auto it = kv_map_cache_.find(pool.data);
  if (it == kv_map_cache_.end() || it->second.slots != slots || it->second.kv_dim != kv_dim ||
      it->second.head_dim != head_dim) {
    KvMapEntry e{slots, kv_dim, head_dim, false, {}};
    e.ok = cuda::make_kv_map(e.map, pool.data, slots, kv_dim, head_dim);
    it = kv_map_cache_.insert_or_assign(pool.data, e).first;
  }
  out = it->second.map;
  return it->second.ok;
}

void CudaBackend::flush_decode() {
  if (!program_ || program_->num_ops == 0) return;
  cuda::DecodeProgram& p = *program_;
  p.barrier = decode_barrier_;
  p.inflight_bytes = decode_inflight_;
  p.hold = decode_hold_ ? 1 : 0;
  p.min_chunk = decode_min_chunk_;
  p.one_chunk = decode_one_chunk_;
  p.trace = trace_;
  // Emptied whatever the launch does: a failed launch must not leave its ops pending.
  struct Reset {
    cuda::DecodeProgram& p;
    CudaBackend& b;
    ~Reset() {
      p.num_ops = p.heads = p.max_k = 0;
      b.kv_map_count_ = 0;
      b.kv_maps_ok_ = true;
    }
  } reset{p, *this};
  p.kv_box = kv_maps_ok_ ? 1 : 0;
  ++decode_programs_;
  p.flags = nullptr;
  if (decode_flags_) {
    const size_t words = cuda::plan_flagged(p, sm_count_, static_cast<int>(dtype_size(act_)));
    if (words > 0 && grow_flags(words)) p.flags = static_cast<unsigned long long*>(flags_);
    p.flag_merge = flag_merge_ ? 1 : 0;
    p.poll_ns = poll_ns_;
  }
  if (run_cluster_program()) {
    if (trace_) write_decode_trace(p.clusters * p.cluster);
    return;
  }
  cuda::run_decode_program(ty(act_), p, *kv_maps_, sm_count_, stream_);
  if (p.flags) ++decode_flagged_programs_;
  if (trace_) write_decode_trace(sm_count_);
}

// Whether flags_ holds `words` (the pending program's flagged outputs),
// grown if not. Graphs hold the old buffer's address: they go. Not while
// a graph is recorded: a step runs for real before its shape is recorded
// (run_recorded), and that run grew it for the same program.
bool CudaBackend::grow_flags(size_t words) {
  const size_t bytes = words * 8;
  if (bytes <= flags_bytes_) return true;
  if (capturing_) return false;
  drop_graphs();
  check_cuda(cudaStreamSynchronize(stream_), "decode flags");
  if (flags_) cudaFree(flags_);
  flags_ = nullptr;
  flags_bytes_ = 0;
  flags_ = device_alloc(bytes, "decode flags");
  check_cuda(cudaMemsetAsync(flags_, 0, bytes, stream_), "decode flags");
  flags_bytes_ = bytes;
  return true;
}

// A one-row program of whole layers on the cluster kernel, where it is on
// and can serve it; false when not (nothing launched).
bool CudaBackend::run_cluster_program() {
  cuda::DecodeProgram& p = *program_;
  if (!decode_cluster_ || p.rows != 1 || p.kv_heads < 1 || p.num_ops < 5) return false;
  if (cluster_kv_heads_ != p.kv_heads) {
    cluster_kv_heads_ = p.kv_heads;
    const cuda::ClusterShape shape = cuda::decode_cluster_shape(ty(act_), p.kv_heads, sm_count_, cluster_limit_);
    cluster_size_ = shape.size;
    cluster_count_ = shape.count;
    // Where it cannot run at all, one-row steps go back to kernel by kernel
    // (the op-list kernel is slower there).
    if (cluster_size_ == 0) decode_cluster_ = false;
  }
  p.cluster = cluster_size_;
  p.load_bytes = cluster_load_bytes_;
  p.balance = cluster_balance_ ? 1 : 0;
  // Every cluster takes at least 32 of the intermediate (decode_cluster_fits).
  p.clusters = std::max(p.kv_heads, std::min(cluster_count_, p.ops[3].m / 32));
  if (p.cluster == 0 || !cuda::decode_cluster_fits(p)) return false;
  const size_t hidden = static_cast<size_t>(p.ops[0].k), clusters = static_cast<size_t>(p.clusters);
  if (cluster_sums_bytes_ < 2 * clusters * hidden * sizeof(float) ||
      cluster_resid_bytes_ < 2 * hidden * dtype_size(act_))
    return false;
  p.sums = static_cast<float*>(cluster_sums_);
  p.resid = cluster_resid_;
  p.hold = cluster_hold_ ? 1 : 0;
  p.inflight_bytes = cluster_inflight_;
  if (!cuda::run_decode_cluster(ty(act_), p, stream_)) {
    decode_cluster_ = false;
    p.hold = decode_hold_ ? 1 : 0;  // the op-list kernel's pacing, for the launch that follows
    p.inflight_bytes = decode_inflight_;
    return false;
  }
  ++decode_cluster_programs_;
  return true;
}

// Text: "ops blocks", the op kinds, then per op and block the kTraceStamps
// stamps (the cluster kernel's: per layer in the slots of its first and
// fourth op, see decode_cluster.cu). Skipped while a graph is being
// recorded (no sync possible then).
void CudaBackend::write_decode_trace(int blocks) {
  cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
  check_cuda(cudaStreamIsCapturing(stream_, &capturing), "decode trace");
  if (capturing != cudaStreamCaptureStatusNone) return;
  const cuda::DecodeProgram& p = *program_;
  std::vector<unsigned long long> t(size_t(p.num_ops) * blocks * cuda::kTraceStamps);
  check_cuda(cudaStreamSynchronize(stream_), "decode trace");
  check_cuda(cudaMemcpy(t.data(), trace_, t.size() * 8, cudaMemcpyDeviceToHost), "decode trace");
  std::ofstream f(trace_path_);
  f << p.num_ops << ' ' << blocks << '\n';
  for (int i = 0; i < p.num_ops; ++i) f << p.ops[i].kind << (i + 1 < p.num_ops ? ' ' : '\n');
  for (size_t i = 0; i < t.size(); ++i) f << t[i] << ((i + 1) % cuda::kTraceStamps ? ' ' : '\n');
}

}  // namespace nativelm
