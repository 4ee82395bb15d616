#pragma once
// All tensors of a checkpoint folder, single-file (model.safetensors) or
// sharded (model.safetensors.index.json), looked up by name.
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace nativelm::io {

class WeightStore {
 public:
  // Throws nativelm::Error when the folder has no weights or a shard is bad.
  explicit WeightStore(const std::filesystem::path& model_dir);

  bool contains(const std::string& name) const;
  // The tensor, checked to exist, to have this shape and a dtype nativelm
  // computes with (f32, f16, bf16); otherwise a clear nativelm::Error.
  const TensorView& get(const std::string& name, const std::vector<int64_t>& shape) const;
  size_t total_bytes() const;

 private:
  const TensorView* find(const std::string& name) const;

  std::filesystem::path dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
};

}  // namespace nativelm::io
