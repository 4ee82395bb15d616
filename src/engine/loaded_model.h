#pragma once
// Everything that comes from one model folder, loaded once: config, weights
// (memory-mapped), the backend holding them, tokenizer and decoding defaults.
#include <filesystem>
#include <memory>
#include <string>

#include "backend/backend.h"
#include "engine/sampling.h"
#include "io/weight_store.h"
#include "model/config.h"
#include "model/transformer.h"
#include "tokenizer/tokenizer.h"

namespace nativelm {

struct LoadOptions {
  std::string device = "cpu";
  int threads = 0;  // 0: all cores
  BackendOptions backend;
};

struct LoadedModel {
  std::filesystem::path dir;
  std::string name;  // what the user passed as --model-path
  ModelConfig config;
  GenerationDefaults defaults;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<io::WeightStore> weights;
  std::unique_ptr<Transformer> model;
  std::unique_ptr<Tokenizer> tokenizer;

  // Resolves --model-path (folder or cached Hub repo id) and loads it.
  static std::unique_ptr<LoadedModel> load(const std::string& model_path, const LoadOptions& options);

  // EOS ids from generation_config.json, else config.json.
  std::vector<int32_t> eos_token_ids() const;
};

}  // namespace nativelm
