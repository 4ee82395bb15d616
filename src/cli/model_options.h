#pragma once
// Flags every model-running subcommand shares, named as in SGLang.
#include <CLI/CLI.hpp>
#include <string>

#include "engine/loaded_model.h"

namespace nativelm::cli {

struct ModelOptions {
  std::string model_path;
  std::string device = "cpu";
  int threads = 0;

  void add_to(CLI::App& app) {
    app.add_option("--model-path", model_path, "Model folder or Hugging Face repo id (offline cache)")
        ->required();
    app.add_option("--device", device, "cpu or cuda")->capture_default_str();
    app.add_option("--threads", threads, "CPU threads (0: all cores)")->capture_default_str();
  }
  std::unique_ptr<LoadedModel> load() const { return LoadedModel::load(model_path, {device, threads}); }
};

}  // namespace nativelm::cli
