#pragma once
// Perplexity of a text under the model: the token ids are cut into
// consecutive, non-overlapping windows, each scored from an empty context;
// every token but a window's first is predicted from the ones before it.
#include <cmath>
#include <cstdint>
#include <span>

#include "engine/loaded_model.h"

namespace nativelm {

struct PerplexityResult {
  double total_nll = 0;
  int64_t predicted_tokens = 0;
  int64_t windows = 0;

  double mean_nll() const { return total_nll / static_cast<double>(predicted_tokens); }
  double perplexity() const { return std::exp(mean_nll()); }
};

PerplexityResult perplexity(LoadedModel& model, std::span<const int32_t> ids, int32_t window);

}  // namespace nativelm
