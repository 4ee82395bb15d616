#pragma once
// The CUDA backend: weights copied to the GPU once (converted to the model's
// dtype on the way), activations and the KV cache in that dtype, our own
// kernels for everything but the large matrix products (cuBLASLt), one
// stream, and decode steps replayed as CUDA graphs per batch-size bucket.
#include <cuda.h>
#include <cuda_runtime_api.h>

#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/kernels.h"

namespace nativelm {
namespace cuda {
class Gemm;
struct DecodeProgram;
struct KvMaps;
}

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(const BackendOptions& options);
  ~CudaBackend() override;

  std::string name() const override;
  void set_model_dtype(DType dtype) override { act_ = dtype; }
  DType activation_dtype() const override { return act_; }

  Tensor upload_weight(const Tensor& host) override;
  Tensor upload_stacked(std::span<const Tensor> parts) override;
  Tensor alloc(DType dtype, std::initializer_list<int64_t> shape) override;
  void free(Tensor& t) override;
  void copy_to_host(const Tensor& src, void* dst) override;
  void copy_from_host(const void* src, Tensor& dst) override;
  void synchronize() override;
  void prepare_sampling(int32_t vocab) override;
  int64_t available_memory() const override;

  void begin_step(const StepInputs& inputs) override;
  void end_step() override;
  int32_t graph_batch_size(int32_t seqs) const override;
  void run_recorded(int32_t key, const std::function<void()>& body) override;
  void drop_recordings() override;

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
  void prepare_attention(const Tensor& qkv, const QkvLayout& layout, const Tensor* q_norm, const Tensor* k_norm,
                         float eps, std::span<const int32_t> positions, std::span<const float> inv_freq,
                         const AttentionBatch& batch, float scale, Tensor& k_pool, Tensor& v_pool, Tensor& q,
                         Tensor& out) override;
  void silu_mul(const Tensor& gate_up, Tensor& out) override;
  void add(Tensor& residual, const Tensor& x) override;
  void norm_linear(const Tensor& x, const Tensor& norm, float eps, const Tensor& w, const Tensor* bias,
                   Tensor& normed, Tensor& out) override;
  void linear_add(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& residual, Tensor& proj) override;
  void norm_linear_swiglu(const Tensor& x, const Tensor& norm, float eps, const Tensor& w, const Tensor* bias,
                          Tensor& normed, Tensor& gate_up, Tensor& out) override;
  void gather_rows(const Tensor& x, std::span<const int32_t> rows, Tensor& out) override;
  void argmax(const Tensor& logits, std::span<int32_t> out) override;
  void sample(const Tensor& logits, std::span<const TokenPick> rows, std::span<int32_t> out) override;
  bool samples_on_device() const override { return true; }
  void start_pick(const Tensor& logits, std::span<const TokenPick> picks) override;
  void collect_picks(std::vector<int32_t>& out, std::vector<PickLogprobs>* logprobs) override;
  using Backend::collect_picks;
  bool feeds_picks() const override { return true; }

  int recordings() const { return static_cast<int>(graphs_.size()); }
  // Decode programs launched so far (each one persistent-kernel launch).
  int64_t decode_programs() const { return decode_programs_; }
  // Decode steps of at least this many rows (and at most kMaxDecodeRows), of
  // any length, run their layers as a decode program (for tests; the default
  // takes it only where it is faster).
  void set_decode_program_rows(int min_rows);
  // Of those, the one-row programs run by the cluster kernel (decode_cluster.cu).
  int64_t decode_cluster_programs() const { return decode_cluster_programs_; }
  // One-row decode steps run their layers on the cluster kernel where it can
  // serve them (NATIVELM_DECODE_CLUSTER=1; for tests and measurements).
  void set_decode_cluster(bool on);
  // Decode programs exchange activations as flagged words instead of grid
  // barriers where they can (DecodeProgram::flags; on by default,
  // NATIVELM_DECODE_FLAGS=0 turns it off), and how many launched so far
  // ran that way.
  void set_decode_flags(bool on) { decode_flags_ = on; }
  int64_t decode_flagged_programs() const { return decode_flagged_programs_; }

 private:
  // A step's host inputs laid out in one int32 arena and copied over at once.
  struct Staged {
    const int32_t *tokens_h = nullptr, *positions_h = nullptr, *logit_rows_h = nullptr,
                  *slots_h = nullptr;
    size_t n = 0, rows = 0;
    const AttentionBatch* attention = nullptr;
    const int32_t *tokens = nullptr, *positions = nullptr, *slots = nullptr, *logit_rows = nullptr,
                  *row_seq = nullptr, *pages = nullptr, *tiles = nullptr, *from_pick = nullptr;
    const cuda::SeqInfo* seqs = nullptr;
    int num_seqs = 0, page_size = 0, num_tiles = 0;
  };
  // qkv_prepare's shape checks (and slot checks outside a step), and its
  // kernel arguments with positions and slots from staging s.
  void check_qkv(const Tensor& qkv, const QkvLayout& layout, const Tensor* q_norm, const Tensor* k_norm,
                 std::span<const int32_t> positions, std::span<const float> inv_freq,
                 std::span<const int32_t> slots, const Tensor& k_pool, const Tensor& v_pool,
                 const Tensor& q_out) const;
  cuda::QkvArgs qkv_args(const Tensor& qkv, const QkvLayout& layout, const Tensor* q_norm, const Tensor* k_norm,
                         float eps, std::span<const float> inv_freq, const Staged& s, Tensor& k_pool,
                         Tensor& v_pool, Tensor& q_out);
  // attention's checks and kernel arguments; positions (may be empty) are
  // staged with the batch, and *used (if given) is the staging.
  cuda::AttentionArgs attention_args(const Tensor& q, const Tensor& k_pool, const Tensor& v_pool,
                                     const AttentionBatch& batch, int64_t head_dim, float scale, Tensor& out,
                                     std::span<const int32_t> positions, const Staged** used = nullptr);
  // Two pinned host halves used in turn, so the host can lay out step N + 1
  // while step N's copy has not run yet; one device buffer, so recorded
  // steps always read the same address.
  struct Arena {
    int32_t* host[2] = {nullptr, nullptr};
    cudaEvent_t copied[2] = {nullptr, nullptr};  // each half's last copy to the device
    int next = 0;
    int32_t* device = nullptr;
    size_t capacity = 0;  // int32 elements
  };
  void stage(const StepInputs& in, Arena& arena, Staged& out, bool may_drop);
  // The staged copy covering `need`: this step's, or a one-off upload.
  const Staged& staged(const StepInputs& need);
  const float* device_floats(std::span<const float> host);
  // A device buffer of at least `bytes`, regrown (and zeroed) when too small;
  // regrowing drops the recordings that used the old one.
  void* grown(void*& buffer, size_t& capacity, size_t bytes, const char* what);
  void* device_alloc(size_t bytes, const char* what);
  void upload_rows(const Tensor& host, void* dst);
  cuda::Ty ty(DType t) const { return static_cast<cuda::Ty>(t); }

  BackendOptions options_;
  int device_ = 0;
  int sm_count_ = 0;
  DType act_ = DType::BF16;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<cuda::Gemm> gemm_;
  // Pinned staging for weight uploads, two halves used in turn.
  void* upload_host_ = nullptr;
  cudaEvent_t upload_done_[2] = {nullptr, nullptr};
  int upload_half_ = 0;

  Arena step_arena_, adhoc_arena_;
  Staged step_, adhoc_;
  bool in_step_ = false;
  bool capturing_ = false;
  struct HostFloats {
    std::vector<float> host;
    float* device = nullptr;
  };
  std::vector<HostFloats> float_cache_;  // inv_freq tables
  void* attn_scratch_ = nullptr;  // split-KV partial results
  size_t attn_scratch_bytes_ = 0;
  void* attn_counters_ = nullptr;  // split-KV merge tickets, kept zeroed
  size_t attn_counters_bytes_ = 0;
  int32_t* ids_device_ = nullptr;  // the newest pick's tokens
  float2* argmax_scratch_ = nullptr;
  cuda::SampleRow* picks_device_ = nullptr;  // ids_capacity_ rows
  // Pinned, two slots of ids_capacity_ rows each, used by picks in turn.
  int32_t* ids_host_ = nullptr;
  cuda::SampleRow* picks_host_ = nullptr;
  void ensure_id_buffers(size_t rows);
  // The picks' logit edits: device, and pinned in two slots as picks_host_.
  cuda::EditRow* edits_device_ = nullptr;
  cuda::EditRow* edits_host_ = nullptr;
  float* edits_raw_ = nullptr;  // device: each edit's logit before it
  size_t edits_capacity_ = 0;  // per slot
  void ensure_edit_buffers(size_t edits);
  // The sampling kernels' scratch (sized by the vocabulary, not the rows).
  void* sample_scratch_ = nullptr;
  size_t sample_scratch_bytes_ = 0;

  // --- decode fusion (decode_fusion.cpp) ---
  // In a decode step of at most kMaxDecodeRows rows, the layer ops that the
  // persistent decode kernel serves are not launched one by one: they are
  // appended to program_, which runs as one kernel at the first op that
  // cannot join it (or when the step ends). Every other op flushes first.
  void init_decode_fusion();
  bool fusable_decode(const StepInputs& inputs) const;
  bool fuse_gemv(int kind, const Tensor& x, const Tensor* norm, float eps, const Tensor& w, const Tensor* bias,
                 int64_t m, Tensor& out);
  bool fuse_attention(const Tensor& qkv, const QkvLayout& layout, const Tensor* q_norm, const Tensor* k_norm,
                      float eps, std::span<const int32_t> positions, std::span<const float> inv_freq,
                      const AttentionBatch& batch, float scale, Tensor& k_pool, Tensor& v_pool, Tensor& out);
  void flush_decode();
  std::unique_ptr<cuda::DecodeProgram> program_;
  // The tensor maps of the pending program's attention ops (KvMaps), how
  // many it has, and whether every one of them could be made (and boxes are
  // on); the maps made so far, by pool (with the shape they were made for).
  std::unique_ptr<cuda::KvMaps> kv_maps_;
  int kv_map_count_ = 0;
  bool kv_maps_ok_ = true;
  bool kv_box_ = true;  // NATIVELM_DECODE_KV_BOX=0: a bulk copy per cached position instead
  struct KvMapEntry {
    int64_t slots;
    int kv_dim, head_dim;
    bool ok;
    CUtensorMap map;
  };
  std::map<const void*, KvMapEntry> kv_map_cache_;
  bool kv_map(const Tensor& pool, int head_dim, CUtensorMap& out);
  bool fuse_decode_ = false;  // NATIVELM_DECODE_KERNEL=0 turns it off; off for shapes it cannot serve
  int decode_min_rows_ = 1;
  bool decode_rows_set_ = false;  // set_decode_program_rows (tests, =all): no width limit at one row
  // One-row steps run the program only while no layer matrix is wider than
  // this (bytes): measured faster on Qwen3-0.6B (largest 12.6 MB), not on
  // wider layers (fuse_gemv).
  static constexpr int64_t kOneRowProgramMaxWeight = 16 << 20;
  int32_t decode_context_per_row_ = 0;  // longest sequence (kv_len) a fused step may have, per row
  int32_t decode_context_one_row_ = 0;  // the same for a step of one row
  bool decode_step_ = false;  // this step's layer ops may be fused
  uint32_t* decode_barrier_ = nullptr;
  // Decode kernel pacing, measured best on an H100 (docs/benchmarks.md);
  // NATIVELM_DECODE_HOLD=0 and NATIVELM_DECODE_INFLIGHT=BYTES for comparisons.
  bool decode_hold_ = true;
  uint32_t decode_inflight_ = 32u << 10;  // bytes a block of the decode kernel may have in flight
  // The same for the cluster kernel, whose blocks stream ~2-4x the bytes
  // per step (measured on an H100, docs/benchmarks.md: holding cost it 7-10%,
  // 16 KB loads 30%, moving MLP work off the attention clusters 5%).
  // NATIVELM_DECODE_LOAD_BYTES and NATIVELM_DECODE_BALANCE=1 for comparisons.
  bool cluster_hold_ = false, cluster_balance_ = false;
  uint32_t cluster_inflight_ = 128u << 10;
  int32_t cluster_load_bytes_ = 64 << 10;
  // Rows up to which a product outside a decode program takes the GEMV
  // kernel; more go to cuBLASLt (NATIVELM_GEMV_MAX_ROWS, at most
  // kGemvMaxRows). Qwen3-8B on an H100 (2026-11-24): the GEMV kernel wins
  // at 1 row (157 tok/s against 149), ties at 2, and loses at 4 (468 against
  // 540) and 8 rows (276 against 1,105).
  int64_t gemv_max_rows_ = 2;
  // Attention positions per chunk at least (decode kernel), and up to how
  // many positions one row's attention is a single chunk (one load, no
  // merge). Measured on an H100 (docs/benchmarks.md, 2026-11-24): one chunk
  // up to 128 positions at batch 1 (60/10 +3% against chunks of 16); at
  // least 64 a chunk was level at batch 1 beyond that, +1% at batch 8 and
  // -3% at batch 4.
  int32_t decode_min_chunk_ = 16;
  int32_t decode_one_chunk_ = 128;
  int64_t decode_programs_ = 0;
  bool decode_flags_ = true;
  bool flag_merge_ = true;  // DecodeProgram::flag_merge (NATIVELM_DECODE_FLAG_MERGE=0 for comparisons)
  // DecodeProgram::poll_ns (NATIVELM_DECODE_POLL_NS). Measured on an H100
  // (docs/benchmarks.md): 100 ns +0-1% over none, 1,000 ns -3%.
  uint32_t poll_ns_ = 100;
  int64_t decode_flagged_programs_ = 0;
  void* flags_ = nullptr;  // the flagged outputs, grown as programs need (zeroed: epoch 0 is no launch's)
  size_t flags_bytes_ = 0;
  bool grow_flags(size_t words);
  // Destroys the recorded graphs (they hold buffer addresses about to go),
  // leaving what is pending; drop_recordings runs that first.
  void drop_graphs();
  // The cluster kernel for one-row programs: on or off, its shape for
  // kv_heads (worked out once: zeros where it cannot run; at most
  // cluster_limit_ clusters, NATIVELM_DECODE_CLUSTERS), and its buffers
  // (partial sums of the o and down projections, residual).
  bool decode_cluster_ = false;
  int cluster_kv_heads_ = 0, cluster_limit_ = 1 << 20;
  int cluster_size_ = 0, cluster_count_ = 0;
  int64_t decode_cluster_programs_ = 0;
  void* cluster_sums_ = nullptr;
  size_t cluster_sums_bytes_ = 0;
  void* cluster_resid_ = nullptr;
  size_t cluster_resid_bytes_ = 0;
  bool run_cluster_program();
  // NATIVELM_DECODE_TRACE=FILE: each eagerly run program's phase timestamps
  // are written to FILE (the last program wins), for profiling.
  std::string trace_path_;
  unsigned long long* trace_ = nullptr;
  void write_decode_trace(int blocks);
  size_t ids_capacity_ = 0;
  // Log-probability results [ids_capacity_, kLogprobStride]: device, and
  // pinned in two slots as ids_host_.
  float* lp_device_ = nullptr;
  float* lp_host_ = nullptr;
  struct Outstanding {
    int slot = 0;
    size_t rows = 0;
    bool saved = false;  // tokens (and logprobs) already below (the slots were reallocated)
    std::vector<int32_t> tokens;
    std::vector<int32_t> lp_top;  // per row: -1, or the top count asked for (empty: none asked)
    std::vector<PickLogprobs> logprobs;
  };
  void save_logprobs(Outstanding& o) const;
  void ensure_sample_scratch(int vocab);
  size_t last_pick_rows_ = 0;  // rows of the newest pick (fed picks index them)
  std::deque<Outstanding> outstanding_;
  cudaEvent_t pick_done_[2] = {nullptr, nullptr};
  int pick_slot_ = 0;
  std::map<int32_t, cudaGraphExec_t> graphs_;
};

namespace cuda {
// Empty when a CUDA device is usable, else the reason.
std::string unavailable_reason();
}  // namespace cuda

}  // namespace nativelm
