#include "io/weight_store.h"

#include <fmt/ranges.h>

#include <set>

#include "io/json_file.h"
#include "util/error.h"

namespace nativelm::io {

namespace fs = std::filesystem;

namespace {

std::vector<fs::path> shard_files(const fs::path& dir) {
  const fs::path index = dir / "model.safetensors.index.json";
  if (fs::exists(index)) {
    auto json = read_json_file(index);
    if (!json.contains("weight_map") || !json["weight_map"].is_object())
      fail("{} has no weight_map object", index.string());
    std::set<std::string> names;
    for (const auto& [tensor, file] : json["weight_map"].items()) {
      if (!file.is_string()) fail("{}: weight_map['{}'] is not a file name", index.string(), tensor);
      names.insert(file.get<std::string>());
    }
    std::vector<fs::path> files;
    for (const auto& name : names) {
      if (name.find('/') != std::string::npos || name.find("..") != std::string::npos)
        fail("{}: shard name '{}' points outside the model folder", index.string(), name);
      files.push_back(dir / name);
    }
    return files;
  }
  if (fs::exists(dir / "model.safetensors")) return {dir / "model.safetensors"};
  fail("{} holds no weights: expected model.safetensors or model.safetensors.index.json",
       dir.string());
}

}  // namespace

WeightStore::WeightStore(const fs::path& model_dir) : dir_(model_dir) {
  for (const auto& file : shard_files(model_dir)) {
    if (!fs::exists(file)) fail("missing weight shard {}", file.string());
    files_.push_back(std::make_unique<SafetensorsFile>(file));
  }
}

const TensorView* WeightStore::find(const std::string& name) const {
  for (const auto& f : files_) {
    auto it = f->tensors().find(name);
    if (it != f->tensors().end()) return &it->second;
  }
  return nullptr;
}

bool WeightStore::contains(const std::string& name) const { return find(name) != nullptr; }

const TensorView& WeightStore::get(const std::string& name, const std::vector<int64_t>& shape) const {
  const TensorView* t = find(name);
  if (!t) fail("checkpoint {} has no tensor '{}'", dir_.string(), name);
  if (t->shape != shape)
    fail("tensor '{}' in {} has shape [{}] but the config implies [{}]", name, t->file.string(),
         fmt::join(t->shape, ", "), fmt::join(shape, ", "));
  if (!t->dtype)
    fail("tensor '{}' in {} has dtype {}, which nativelm does not support (use F32, F16 or BF16)",
         name, t->file.string(), t->dtype_name);
  return *t;
}

size_t WeightStore::total_bytes() const {
  size_t n = 0;
  for (const auto& f : files_)
    for (const auto& [name, t] : f->tensors()) n += t.nbytes;
  return n;
}

}  // namespace nativelm::io
