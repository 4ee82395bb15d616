#include "engine/model_runner.h"

#include "util/error.h"

namespace nativelm {

ModelRunner::ModelRunner(Transformer& model, KvPool& pool) : model_(model), pool_(pool) {}

ModelRunner::~ModelRunner() {
  if (!logits_.empty()) model_.backend().free(logits_);
}

int32_t ModelRunner::pages_needed(const SeqKv& seq, int32_t new_tokens) const {
  const int32_t ps = pool_.page_size();
  const int32_t have = static_cast<int32_t>(seq.pages.size());
  const int32_t need = (seq.kv_len + new_tokens + ps - 1) / ps;
  return need > have ? need - have : 0;
}

void ModelRunner::reserve_pages(std::span<SeqKv* const> seqs,
                                std::span<const std::vector<int32_t>> tokens) {
  int64_t total = 0;
  for (size_t i = 0; i < seqs.size(); ++i)
    total += pages_needed(*seqs[i], static_cast<int32_t>(tokens[i].size()));
  if (total > pool_.free_pages())
    fail("KV cache is full: this step needs {} more pages of {} tokens, {} are free", total,
         pool_.page_size(), pool_.free_pages());
  for (size_t i = 0; i < seqs.size(); ++i)
    for (int32_t n = pages_needed(*seqs[i], static_cast<int32_t>(tokens[i].size())); n > 0; --n)
      seqs[i]->pages.push_back(*pool_.allocate());
}

void ModelRunner::step(std::span<SeqKv* const> seqs, std::span<const std::vector<int32_t>> tokens,
                       std::vector<float>& logits, bool all_positions) {
  if (seqs.size() != tokens.size()) fail("ModelRunner::step: {} sequences but {} token lists", seqs.size(), tokens.size());
  const int64_t max_len = model_.config().max_position_embeddings;
  for (size_t i = 0; i < seqs.size(); ++i) {
    if (tokens[i].empty()) fail("ModelRunner::step: sequence {} has no new tokens", i);
    if (seqs[i]->kv_len + static_cast<int64_t>(tokens[i].size()) > max_len)
      fail("sequence of {} tokens exceeds the model's context length {}",
           seqs[i]->kv_len + tokens[i].size(), max_len);
  }
  reserve_pages(seqs, tokens);

  ForwardBatch batch;
  const int32_t ps = pool_.page_size();
  batch.attention.page_size = ps;
  for (size_t i = 0; i < seqs.size(); ++i) {
    SeqKv& s = *seqs[i];
    AttentionSeq a;
    a.q_begin = static_cast<int32_t>(batch.tokens.size());
    a.q_len = static_cast<int32_t>(tokens[i].size());
    for (int32_t t = 0; t < a.q_len; ++t) {
      const int32_t pos = s.kv_len + t;
      batch.tokens.push_back(tokens[i][t]);
      batch.positions.push_back(pos);
      batch.attention.slots.push_back(s.pages[pos / ps] * ps + pos % ps);
      if (all_positions) batch.logit_rows.push_back(a.q_begin + t);
    }
    s.kv_len += a.q_len;
    a.kv_len = s.kv_len;
    a.pages = s.pages.data();
    batch.attention.seqs.push_back(a);
    if (!all_positions) batch.logit_rows.push_back(a.q_begin + a.q_len - 1);
  }

  Backend& backend = model_.backend();
  const int64_t rows = static_cast<int64_t>(batch.logit_rows.size());
  const int64_t vocab = model_.config().vocab_size;
  if (rows > logits_rows_) {
    if (!logits_.empty()) backend.free(logits_);
    logits_ = backend.alloc(DType::F32, {rows, vocab});
    logits_rows_ = rows;
  }
  Tensor out = logits_.rows(0, rows);
  model_.forward(batch, pool_.tensors(), out);
  logits.resize(rows * vocab);
  backend.copy_to_host(out, logits.data());
}

void ModelRunner::release(SeqKv& seq) {
  for (int32_t p : seq.pages) pool_.release(p);
  seq.pages.clear();
  seq.kv_len = 0;
}

}  // namespace nativelm
