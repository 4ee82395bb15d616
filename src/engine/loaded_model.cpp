#include "engine/loaded_model.h"

#include "io/model_path.h"
#include "util/error.h"
#include "util/log.h"
#include "util/thread_pool.h"
#include "util/timer.h"

namespace nativelm {

std::unique_ptr<LoadedModel> LoadedModel::load(const std::string& model_path, const LoadOptions& options) {
  Timer timer;
  auto m = std::make_unique<LoadedModel>();
  m->name = model_path;
  m->dir = io::resolve_model_path(model_path);
  m->config = load_model_config(m->dir);
  m->defaults = GenerationDefaults::load(m->dir);
  const auto tokenizer_path = m->dir / "tokenizer.json";
  if (!std::filesystem::exists(tokenizer_path)) fail("{} has no tokenizer.json", m->dir.string());
  m->tokenizer = std::make_unique<Tokenizer>(Tokenizer::from_file(tokenizer_path));
  if (options.threads > 0) ThreadPool::set_global_threads(options.threads);
  m->backend = make_backend(options.device, options.backend);
  m->weights = std::make_unique<io::WeightStore>(m->dir);
  m->model = std::make_unique<Transformer>(m->config, *m->weights, *m->backend);
  log::info("loaded {} ({}, {} layers, hidden {}, {:.1f} MB of weights) on {} in {:.2f} s",
            m->dir.string(), m->config.architecture, m->config.num_layers, m->config.hidden_size,
            m->weights->total_bytes() / 1e6, m->backend->name(), timer.seconds());
  return m;
}

std::vector<int32_t> LoadedModel::eos_token_ids() const {
  return defaults.eos_token_ids.empty() ? config.eos_token_ids : defaults.eos_token_ids;
}

}  // namespace nativelm
