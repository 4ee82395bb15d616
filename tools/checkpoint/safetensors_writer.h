#pragma once
// Streams tensors into safetensors files without holding a whole tensor in
// memory, splitting them into shards (with a model.safetensors.index.json)
// when they exceed the shard size, as transformers' save_pretrained does.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <vector>

#include "checkpoint/qwen3_shape.h"
#include "util/dtype.h"

namespace nativelm::tools {

// Writes elements [first, first + out.size()/dtype_size) of `tensor` into `out`.
using TensorFiller =
    std::function<void(const TensorSpec& tensor, int64_t first, std::span<std::byte> out)>;

// Groups tensors in order into shards of at most `max_shard_bytes` (a tensor
// larger than that gets a shard of its own).
std::vector<std::vector<TensorSpec>> plan_shards(const std::vector<TensorSpec>& tensors,
                                                 DType dtype, uint64_t max_shard_bytes);

// Writes model.safetensors, or model-0000i-of-0000n.safetensors plus the index.
// Returns the total number of tensor bytes written.
uint64_t write_safetensors(const std::filesystem::path& dir,
                           const std::vector<std::vector<TensorSpec>>& shards, DType dtype,
                           const TensorFiller& fill);

}  // namespace nativelm::tools
