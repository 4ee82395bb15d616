#pragma once
// Flags every model-running subcommand shares, named as in SGLang.
#include <CLI/CLI.hpp>
#include <string>

#include "engine/loaded_model.h"

namespace nativelm::cli {

// The bundled demo model (models/demo-shakespeare), found beside the binary
// (build/nativelm in a checkout) or in the source tree it was built from;
// empty when neither has it.
std::string default_model_path();

struct ModelOptions {
  std::string model_path;
  std::string device = "cpu";
  int threads = 0;
  bool disable_cuda_graph = false;
  int cuda_graph_max_bs = 160;

  void add_to(CLI::App& app) {
    app.add_option("--model-path", model_path,
                   "Model folder or Hugging Face repo id (offline cache); default: the bundled demo model");
    app.add_option("--device", device, "cpu or cuda")->capture_default_str();
    app.add_option("--threads", threads, "CPU threads (0: all cores)")->capture_default_str();
    app.add_flag("--disable-cuda-graph", disable_cuda_graph, "Run decode steps without CUDA graphs");
    app.add_option("--cuda-graph-max-bs", cuda_graph_max_bs, "Largest decode batch replayed from a CUDA graph")
        ->capture_default_str()
        ->check(CLI::Range(1, 4096));
  }
  // --model-path, or the bundled demo model when it was not given.
  std::string resolved_path() const;
  std::unique_ptr<LoadedModel> load() const {
    return LoadedModel::load(resolved_path(), {device, threads, {!disable_cuda_graph, cuda_graph_max_bs}});
  }
};

}  // namespace nativelm::cli
