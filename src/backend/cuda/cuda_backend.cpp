// CudaBackend: device memory, weight uploads, step staging and CUDA graphs.
// The ops themselves are in cuda_ops.cpp.
#include "backend/cuda/cuda_backend.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/decode_program.h"
#include "backend/cuda/gemm.h"
#include "util/error.h"
#include "util/log.h"

namespace nativelm {

using cuda::check_cuda;

namespace {

constexpr size_t kUploadHalf = 32u << 20;  // bytes per pinned staging half
constexpr size_t kInitialArena = 1u << 20;  // int32 elements

// Host-side conversion of n elements into `dst` of dtype `to`.
void convert_host(const std::byte* src, DType from, void* dst, DType to, size_t n) {
  if (from == to) {
    std::memcpy(dst, src, n * dtype_size(from));
    return;
  }
  for (size_t i = 0; i < n; ++i) {
    float v = 0;
    switch (from) {
      case DType::F32: std::memcpy(&v, src + 4 * i, 4); break;
      case DType::F16: { uint16_t h; std::memcpy(&h, src + 2 * i, 2); v = f16_to_f32(h); break; }
      case DType::BF16: { uint16_t h; std::memcpy(&h, src + 2 * i, 2); v = bf16_to_f32(h); break; }
    }
    switch (to) {
      case DType::F32: static_cast<float*>(dst)[i] = v; break;
      case DType::F16: static_cast<uint16_t*>(dst)[i] = f32_to_f16(v); break;
      case DType::BF16: static_cast<uint16_t*>(dst)[i] = f32_to_bf16(v); break;
    }
  }
}

}  // namespace

namespace cuda {

std::string unavailable_reason() {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) return std::string("no CUDA device: ") + cudaGetErrorString(err);
  if (count == 0) return "no CUDA device found";
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess && prop.major < 8)
    return "the GPU (" + std::string(prop.name) + ", sm_" + std::to_string(prop.major * 10 + prop.minor) +
           ") is older than sm_80";
  return "";
}

}  // namespace cuda

CudaBackend::CudaBackend(const BackendOptions& options) : options_(options) {
  check_cuda(cudaSetDevice(device_), "cudaSetDevice");
  check_cuda(cudaDeviceGetAttribute(&sm_count_, cudaDevAttrMultiProcessorCount, device_), "SM count");
  check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "stream");
  gemm_ = std::make_unique<cuda::Gemm>(stream_);
  int major = 0;
  check_cuda(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device_), "compute capability");
  cuda::enable_overlapped_launch(major >= 9 && std::getenv("NATIVELM_CUDA_NO_PDL") == nullptr);
  if (const char* v = std::getenv("NATIVELM_GEMV_MAX_ROWS"); v && std::atol(v) >= 0)
    gemv_max_rows_ = std::min<int64_t>(std::atol(v), cuda::kGemvMaxRows);
  check_cuda(cudaMallocHost(&upload_host_, 2 * kUploadHalf), "pinned staging");
  for (auto& e : upload_done_) check_cuda(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "event");
  for (auto& e : pick_done_) check_cuda(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "event");
  for (Arena* a : {&step_arena_, &adhoc_arena_})
    for (auto& e : a->copied) check_cuda(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "event");
  init_decode_fusion();
}

CudaBackend::~CudaBackend() {
  cudaStreamSynchronize(stream_);
  for (auto& [key, exec] : graphs_) cudaGraphExecDestroy(exec);
  for (Arena* a : {&step_arena_, &adhoc_arena_}) {
    for (int i = 0; i < 2; ++i) {
      if (a->host[i]) cudaFreeHost(a->host[i]);
      if (a->copied[i]) cudaEventDestroy(a->copied[i]);
    }
    if (a->device) cudaFree(a->device);
  }
  for (auto& e : pick_done_) cudaEventDestroy(e);
  for (auto& f : float_cache_) cudaFree(f.device);
  if (attn_scratch_) cudaFree(attn_scratch_);
  if (attn_counters_) cudaFree(attn_counters_);
  if (decode_barrier_) cudaFree(decode_barrier_);
  if (flags_) cudaFree(flags_);
  if (trace_) cudaFree(trace_);
  if (ids_device_) cudaFree(ids_device_);
  if (argmax_scratch_) cudaFree(argmax_scratch_);
  if (picks_device_) cudaFree(picks_device_);
  if (picks_host_) cudaFreeHost(picks_host_);
  if (edits_device_) cudaFree(edits_device_);
  if (edits_host_) cudaFreeHost(edits_host_);
  if (sample_scratch_) cudaFree(sample_scratch_);
  if (edits_raw_) cudaFree(edits_raw_);
  if (lp_device_) cudaFree(lp_device_);
  if (lp_host_) cudaFreeHost(lp_host_);
  if (ids_host_) cudaFreeHost(ids_host_);
  for (auto& e : upload_done_) cudaEventDestroy(e);
  if (upload_host_) cudaFreeHost(upload_host_);
  gemm_.reset();
  cudaStreamDestroy(stream_);
}

std::string CudaBackend::name() const {
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, device_);
  return fmt::format("cuda:{} ({}, sm_{}, {:.1f} GiB, {})", device_, prop.name, prop.major * 10 + prop.minor,
                     static_cast<double>(prop.totalGlobalMem) / (1 << 30), dtype_name(act_));
}

void* CudaBackend::device_alloc(size_t bytes, const char* what) {
  if (capturing_) fail("CUDA backend: {} would allocate during graph capture", what);
  void* p = nullptr;
  if (bytes == 0) bytes = 1;
  const cudaError_t err = cudaMalloc(&p, bytes);
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error state of a failed allocation
    size_t free = 0, total = 0;
    cudaMemGetInfo(&free, &total);
    fail("out of GPU memory: {} needs {:.1f} MB, {:.1f} MB of {:.1f} MB are free", what, bytes / 1e6,
         free / 1e6, total / 1e6);
  }
  return p;
}

Tensor CudaBackend::alloc(DType dtype, std::initializer_list<int64_t> shape) {
  flush_decode();
  Tensor t(nullptr, dtype, shape);
  t.data = device_alloc(static_cast<size_t>(t.bytes()), "a buffer");
  check_cuda(cudaMemsetAsync(t.data, 0, static_cast<size_t>(t.bytes()), stream_), "memset");
  return t;
}

void CudaBackend::free(Tensor& t) {
  flush_decode();
  if (!t.data) return;
  // A recording may use this memory; it cannot outlive it.
  drop_recordings();
  check_cuda(cudaStreamSynchronize(stream_), "synchronize before free");
  check_cuda(cudaFree(t.data), "cudaFree");
  t.data = nullptr;
}

// Copies a host tensor's rows into device memory at dst, converted to the
// model's dtype, through the two pinned halves in turn (one fills while the
// other is in flight).
void CudaBackend::upload_rows(const Tensor& host, void* dst) {
  const size_t n = static_cast<size_t>(host.numel());
  const size_t out_es = dtype_size(act_), in_es = dtype_size(host.dtype);
  const size_t per_chunk = kUploadHalf / std::max(out_es, in_es);
  const auto* src = static_cast<const std::byte*>(host.data);
  for (size_t done = 0; done < n; done += per_chunk) {
    const size_t count = std::min(per_chunk, n - done);
    check_cuda(cudaEventSynchronize(upload_done_[upload_half_]), "upload staging");
    void* stage = static_cast<std::byte*>(upload_host_) + upload_half_ * kUploadHalf;
    convert_host(src + done * in_es, host.dtype, stage, act_, count);
    check_cuda(cudaMemcpyAsync(static_cast<std::byte*>(dst) + done * out_es, stage, count * out_es,
                               cudaMemcpyHostToDevice, stream_),
               "weight upload");
    check_cuda(cudaEventRecord(upload_done_[upload_half_], stream_), "upload event");
    upload_half_ ^= 1;
  }
}

Tensor CudaBackend::upload_weight(const Tensor& host) {
  flush_decode();
  Tensor t = host;
  t.dtype = act_;
  t.data = device_alloc(static_cast<size_t>(t.bytes()), "the model's weights");
  upload_rows(host, t.data);
  return t;
}

Tensor CudaBackend::upload_stacked(std::span<const Tensor> parts) {
  flush_decode();
  if (parts.empty()) fail("upload_stacked: no parts");
  Tensor t = parts[0];
  t.shape[0] = 0;
  for (const Tensor& p : parts) {
    if (p.ndim != t.ndim || !std::equal(p.shape.begin() + 1, p.shape.begin() + p.ndim, t.shape.begin() + 1))
      fail("upload_stacked: parts differ in trailing shape");
    t.shape[0] += p.dim(0);
  }
  t.dtype = act_;
  t.data = device_alloc(static_cast<size_t>(t.bytes()), "the model's weights");
  int64_t row = 0;
  for (const Tensor& p : parts) {
    upload_rows(p, t.rows(row, p.dim(0)).data);
    row += p.dim(0);
  }
  return t;
}

void CudaBackend::copy_to_host(const Tensor& src, void* dst) {
  flush_decode();
  check_cuda(cudaMemcpyAsync(dst, src.data, static_cast<size_t>(src.bytes()), cudaMemcpyDeviceToHost, stream_),
             "copy to host");
  check_cuda(cudaStreamSynchronize(stream_), "copy to host");
}

void CudaBackend::copy_from_host(const void* src, Tensor& dst) {
  flush_decode();
  check_cuda(cudaStreamSynchronize(stream_), "copy from host");
  check_cuda(cudaMemcpy(dst.data, src, static_cast<size_t>(dst.bytes()), cudaMemcpyHostToDevice),
             "copy from host");
}

void CudaBackend::synchronize() {
  flush_decode();
  check_cuda(cudaStreamSynchronize(stream_), "synchronize");
}

int64_t CudaBackend::available_memory() const {
  size_t free = 0, total = 0;
  check_cuda(cudaMemGetInfo(&free, &total), "cudaMemGetInfo");
  // Headroom for cuBLASLt, graphs and activation growth.
  const int64_t reserve = int64_t{1} << 30;
  return std::max<int64_t>(0, static_cast<int64_t>(free) - reserve);
}

// --- steps ---

void CudaBackend::stage(const StepInputs& in, Arena& arena, Staged& out, bool may_drop) {
  const AttentionBatch* ab = in.attention;
  const size_t n = std::max(in.tokens.size(), std::max(in.positions.size(), ab ? ab->slots.size() : 0));
  const size_t seqs = ab ? ab->seqs.size() : 0;
  size_t pages = 0;
  if (ab)
    for (const AttentionSeq& s : ab->seqs) pages += static_cast<size_t>((s.kv_len + ab->page_size - 1) / std::max(1, ab->page_size));
  // Fixed order, so a batch of one shape always lands at the same offsets.
  const size_t o_tokens = 0, o_pos = o_tokens + in.tokens.size(), o_slots = o_pos + in.positions.size();
  const size_t o_rows = o_slots + (ab ? ab->slots.size() : 0), o_rowseq = o_rows + in.logit_rows.size();
  size_t tiles = 0;
  if (ab)
    for (const AttentionSeq& s : ab->seqs)
      if (s.q_len >= cuda::kPrefillMinRows) tiles += static_cast<size_t>((s.q_len + cuda::kPrefillTile - 1) / cuda::kPrefillTile);
  const size_t o_seqs = o_rowseq + (ab ? n : 0), o_pages = o_seqs + 4 * seqs, o_tiles = o_pages + pages;
  const size_t o_from = o_tiles + 2 * tiles, from = in.from_pick.empty() ? 0 : n;
  if (!in.from_pick.empty() && (in.from_pick.size() != n || !ids_device_))
    fail("step inputs: {} rows take picked tokens for {} tokens{}", in.from_pick.size(), n,
         ids_device_ ? "" : ", but no pick was started");
  const size_t total = o_from + from;
  if (total > arena.capacity) {
    if (capturing_) fail("CUDA backend: step inputs outgrew their buffer during graph capture");
    if (may_drop) drop_recordings();
    check_cuda(cudaStreamSynchronize(stream_), "staging");
    for (auto& h : arena.host)
      if (h) cudaFreeHost(h);
    if (arena.device) cudaFree(arena.device);
    arena.capacity = std::max(total * 2, kInitialArena);
    for (auto& h : arena.host) check_cuda(cudaMallocHost(&h, arena.capacity * 4), "pinned step buffer");
    arena.device = static_cast<int32_t*>(device_alloc(arena.capacity * 4, "the step buffer"));
  }
  // This half was last copied out two steps ago; that copy is long done
  // unless the host runs far ahead.
  const int half = arena.next;
  arena.next ^= 1;
  check_cuda(cudaEventSynchronize(arena.copied[half]), "staging");
  int32_t* h = arena.host[half];
  std::copy(in.from_pick.begin(), in.from_pick.end(), h + o_from);
  std::copy(in.tokens.begin(), in.tokens.end(), h + o_tokens);
  std::copy(in.positions.begin(), in.positions.end(), h + o_pos);
  std::copy(in.logit_rows.begin(), in.logit_rows.end(), h + o_rows);
  if (ab) {
    std::copy(ab->slots.begin(), ab->slots.end(), h + o_slots);
    int32_t page_off = 0;
    int32_t* tile = h + o_tiles;
    for (size_t i = 0; i < seqs; ++i) {
      const AttentionSeq& s = ab->seqs[i];
      if (s.q_len < 1 || s.kv_len < s.q_len || s.q_begin < 0 || static_cast<size_t>(s.q_begin + s.q_len) > n)
        fail("attention: sequence {} has rows [{}, {}) and {} cached positions for {} rows", i, s.q_begin,
             s.q_begin + s.q_len, s.kv_len, n);
      const int32_t np = (s.kv_len + ab->page_size - 1) / ab->page_size;
      int32_t* info = h + o_seqs + 4 * i;
      info[0] = s.q_begin;
      info[1] = s.q_len;
      info[2] = s.kv_len;
      info[3] = page_off;
      std::copy(s.pages, s.pages + np, h + o_pages + page_off);
      for (int32_t r = s.q_begin; r < s.q_begin + s.q_len; ++r) h[o_rowseq + r] = static_cast<int32_t>(i);
      page_off += np;
      if (s.q_len >= cuda::kPrefillMinRows)
        for (int32_t q0 = 0; q0 < s.q_len; q0 += cuda::kPrefillTile) {
          *tile++ = static_cast<int32_t>(i);
          *tile++ = q0;
        }
    }
  }
  check_cuda(cudaMemcpyAsync(arena.device, h, total * 4, cudaMemcpyHostToDevice, stream_), "step inputs");
  check_cuda(cudaEventRecord(arena.copied[half], stream_), "staging");
  int32_t* d = arena.device;
  // Rows fed from the newest pick take its tokens on the device.
  if (from > 0) cuda::feed_tokens(d + o_tokens, d + o_from, ids_device_, static_cast<int>(n), stream_);
  out = Staged{};
  out.tokens_h = in.tokens.data();
  out.positions_h = in.positions.data();
  out.logit_rows_h = in.logit_rows.data();
  out.slots_h = ab ? ab->slots.data() : nullptr;
  out.n = n;
  out.rows = in.logit_rows.size();
  out.attention = ab;
  out.tokens = d + o_tokens;
  out.positions = d + o_pos;
  out.slots = d + o_slots;
  out.logit_rows = d + o_rows;
  out.row_seq = d + o_rowseq;
  out.seqs = reinterpret_cast<const cuda::SeqInfo*>(d + o_seqs);
  out.pages = d + o_pages;
  out.num_seqs = static_cast<int>(seqs);
  out.tiles = d + o_tiles;
  out.num_tiles = static_cast<int>(tiles);
  out.page_size = ab ? ab->page_size : 0;
  out.from_pick = from > 0 ? d + o_from : nullptr;
}

void CudaBackend::begin_step(const StepInputs& inputs) {
  program_->num_ops = 0;  // ops left by a step that threw midway are not run
  stage(inputs, step_arena_, step_, true);
  in_step_ = true;
  decode_step_ = fuse_decode_ && fusable_decode(inputs);
}

void CudaBackend::end_step() {
  flush_decode();
  in_step_ = false;
  decode_step_ = false;
  check_cuda(cudaGetLastError(), "a kernel launch of this step");
}

const CudaBackend::Staged& CudaBackend::staged(const StepInputs& need) {
  if (in_step_) {
    const Staged& s = step_;
    const bool ok = (need.tokens.empty() || (need.tokens.data() == s.tokens_h && need.tokens.size() == s.n)) &&
                    (need.positions.empty() || (need.positions.data() == s.positions_h && need.positions.size() == s.n)) &&
                    (need.logit_rows.empty() || (need.logit_rows.data() == s.logit_rows_h && need.logit_rows.size() == s.rows)) &&
                    (!need.attention || need.attention == s.attention);
    if (ok) return s;
  }
  if (capturing_) fail("CUDA backend: an op was given inputs outside its step during graph capture");
  check_cuda(cudaStreamSynchronize(stream_), "one-off inputs");
  stage(need, adhoc_arena_, adhoc_, false);
  return adhoc_;
}

const float* CudaBackend::device_floats(std::span<const float> host) {
  for (auto& f : float_cache_)
    if (f.host.size() == host.size() && std::equal(host.begin(), host.end(), f.host.begin())) return f.device;
  HostFloats f;
  f.host.assign(host.begin(), host.end());
  f.device = static_cast<float*>(device_alloc(host.size_bytes(), "a constant table"));
  check_cuda(cudaMemcpy(f.device, host.data(), host.size_bytes(), cudaMemcpyHostToDevice), "constant table");
  float_cache_.push_back(std::move(f));
  return float_cache_.back().device;
}

void* CudaBackend::grown(void*& buffer, size_t& capacity, size_t bytes, const char* what) {
  if (bytes <= capacity) return buffer;
  if (capturing_) fail("CUDA backend: {} outgrew its buffer during graph capture", what);
  drop_recordings();
  check_cuda(cudaStreamSynchronize(stream_), what);
  if (buffer) cudaFree(buffer);
  buffer = device_alloc(bytes, what);
  check_cuda(cudaMemsetAsync(buffer, 0, bytes, stream_), what);
  capacity = bytes;
  return buffer;
}

// --- recordings (CUDA graphs) ---

int32_t CudaBackend::graph_batch_size(int32_t seqs) const {
  if (!options_.cuda_graphs || seqs < 1 || seqs > options_.cuda_graph_max_bs) return 0;
  static constexpr int32_t kBuckets[] = {1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 80, 96, 128, 160, 192, 256, 384, 512};
  for (int32_t b : kBuckets)
    if (b >= seqs) return std::min(b, options_.cuda_graph_max_bs);
  return seqs;
}

void CudaBackend::run_recorded(int32_t key, const std::function<void()>& body) {
  if (key <= 0 || !options_.cuda_graphs) {
    body();
    flush_decode();
    return;
  }
  // A step whose layers run as a decode program records a different graph
  // than the same batch size run op by op.
  key = key * 2 + (decode_step_ ? 1 : 0);
  if (auto it = graphs_.find(key); it != graphs_.end()) {
    check_cuda(cudaGraphLaunch(it->second, stream_), "graph launch");
    return;
  }
  // First sight of this shape: run it for real (allocations and GEMM plans
  // happen here), then record the same work for the next time.
  body();
  flush_decode();
  cudaGraph_t graph = nullptr;
  check_cuda(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), "begin capture");
  capturing_ = true;
  try {
    body();
    flush_decode();
  } catch (...) {
    program_->num_ops = 0;
    capturing_ = false;
    cudaStreamEndCapture(stream_, &graph);
    if (graph) cudaGraphDestroy(graph);
    throw;
  }
  capturing_ = false;
  check_cuda(cudaStreamEndCapture(stream_, &graph), "end capture");
  cudaGraphExec_t exec = nullptr;
  const cudaError_t err = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  check_cuda(err, "graph instantiate");
  graphs_[key] = exec;
}

void CudaBackend::drop_recordings() {
  flush_decode();
  drop_graphs();
}

void CudaBackend::drop_graphs() {
  if (graphs_.empty()) return;
  if (capturing_) fail("CUDA backend: recordings dropped during graph capture");
  cudaStreamSynchronize(stream_);
  for (auto& [key, exec] : graphs_) cudaGraphExecDestroy(exec);
  graphs_.clear();
}

}  // namespace nativelm
