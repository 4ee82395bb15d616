#pragma once
// One forward step's input: the new tokens of every sequence in the batch,
// flattened, with their positions, where their K/V go and which rows need
// logits. Prefill, decode and a mix of both look the same here.
#include <cstdint>
#include <vector>

#include "backend/backend.h"

namespace nativelm {

struct ForwardBatch {
  std::vector<int32_t> tokens;     // all new tokens, sequence after sequence
  std::vector<int32_t> positions;  // their positions within their sequence
  AttentionBatch attention;        // per-sequence ranges, page tables and KV slots
  std::vector<int32_t> logit_rows; // rows of `tokens` whose next-token logits are wanted
  // Empty, or per row of `tokens`: -1, or the row of the backend's newest
  // started pick whose token replaces tokens[i] (StepInputs::from_pick).
  std::vector<int32_t> from_pick;
  // > 0: a decode batch padded to a size the backend may replay from a
  // recording made under this key (Backend::run_recorded).
  int32_t graph_key = 0;
};

// The paged KV cache memory of every layer: [slots, kv_heads * head_dim].
struct KvCacheTensors {
  std::vector<Tensor> k;
  std::vector<Tensor> v;
  int32_t page_size = 0;
};

}  // namespace nativelm
