#include "engine/perplexity.h"

#include <algorithm>

#include "engine/kv_pool.h"
#include "engine/model_runner.h"
#include "util/error.h"

namespace nativelm {

namespace {

// -log softmax(row)[target], in double for a stable sum over many tokens.
double nll(std::span<const float> row, int32_t target) {
  const float top = *std::max_element(row.begin(), row.end());
  double sum = 0;
  for (float v : row) sum += std::exp(static_cast<double>(v - top));
  return std::log(sum) + top - row[target];
}

}  // namespace

PerplexityResult perplexity(LoadedModel& m, std::span<const int32_t> ids, int32_t window) {
  if (window < 2) fail("the perplexity window must hold at least 2 tokens");
  if (window > m.config.max_position_embeddings)
    fail("window {} exceeds the model's context length {}", window, m.config.max_position_embeddings);
  if (ids.size() < 2) fail("the text has fewer than 2 tokens");
  KvPoolShape shape{m.config.num_layers, m.config.kv_dim(), m.model->kv_dtype(), 16, 0};
  shape.num_pages = (window + shape.page_size - 1) / shape.page_size;
  KvPool pool(*m.backend, shape);
  ModelRunner runner(*m.model, pool);
  const int64_t vocab = m.config.vocab_size;
  PerplexityResult r;
  std::vector<float> logits;
  for (size_t begin = 0; begin < ids.size(); begin += window) {
    const size_t end = std::min(ids.size(), begin + window);
    if (end - begin < 2) break;  // a lone last token predicts nothing
    SeqKv seq;
    SeqKv* seqs[] = {&seq};
    std::vector<std::vector<int32_t>> tokens = {std::vector<int32_t>(ids.begin() + begin, ids.begin() + end)};
    runner.step(seqs, tokens, logits, /*all_positions=*/true);
    runner.release(seq);
    for (size_t t = 0; t + 1 < end - begin; ++t)
      r.total_nll += nll(std::span<const float>(logits).subspan(t * vocab, vocab), tokens[0][t + 1]);
    r.predicted_tokens += static_cast<int64_t>(end - begin - 1);
    ++r.windows;
  }
  return r;
}

}  // namespace nativelm
