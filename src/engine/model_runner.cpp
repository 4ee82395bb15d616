#include "engine/model_runner.h"

#include <algorithm>

#include "util/error.h"

namespace nativelm {

ModelRunner::ModelRunner(Transformer& model, KvPool& pool) : model_(model), pool_(pool) {
  // Padding rows of recorded decode batches write their K/V here.
  if (model_.backend().graph_batch_size(1) > 0) {
    if (auto page = pool_.allocate()) padding_page_ = *page;
  }
}

ModelRunner::~ModelRunner() {
  if (!logits_.empty()) model_.backend().free(logits_);
  if (padding_page_ >= 0) pool_.release(padding_page_);
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

Tensor ModelRunner::run(std::span<SeqKv* const> seqs, std::span<const std::vector<int32_t>> tokens,
                        bool all_positions, std::span<const int32_t> from_prev) {
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
  bool decode_only = !all_positions;
  for (size_t i = 0; i < seqs.size(); ++i) {
    SeqKv& s = *seqs[i];
    AttentionSeq a;
    a.q_begin = static_cast<int32_t>(batch.tokens.size());
    a.q_len = static_cast<int32_t>(tokens[i].size());
    decode_only = decode_only && a.q_len == 1;
    const int32_t fed = from_prev.empty() ? -1 : from_prev[i];
    if (fed >= 0 && a.q_len != 1) fail("ModelRunner::launch: a fed sequence takes exactly one new token");
    for (int32_t t = 0; t < a.q_len; ++t) {
      const int32_t pos = s.kv_len + t;
      if (!from_prev.empty()) batch.from_pick.push_back(fed);
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
  const int64_t rows = static_cast<int64_t>(batch.logit_rows.size());
  if (decode_only && padding_page_ >= 0) pad_for_recording(batch);

  Backend& backend = model_.backend();
  const int64_t padded_rows = static_cast<int64_t>(batch.logit_rows.size());
  const int64_t vocab = model_.config().vocab_size;
  if (padded_rows > logits_rows_) {
    if (!logits_.empty()) backend.free(logits_);
    logits_ = backend.alloc(DType::F32, {padded_rows, vocab});
    logits_rows_ = padded_rows;
    backend.drop_recordings();
  }
  Tensor out = logits_.rows(0, padded_rows);
  model_.forward(batch, pool_.tensors(), out);
  return logits_.rows(0, rows);
}

// Pads a decode batch with one-token sequences on the padding page up to the
// size the backend replays recordings for.
void ModelRunner::pad_for_recording(ForwardBatch& batch) const {
  const int32_t n = static_cast<int32_t>(batch.attention.seqs.size());
  const int32_t size = model_.backend().graph_batch_size(n);
  if (size < n) return;
  const int32_t ps = pool_.page_size();
  for (int32_t i = n; i < size; ++i) {
    if (!batch.from_pick.empty()) batch.from_pick.push_back(-1);
    batch.tokens.push_back(0);
    batch.positions.push_back(0);
    batch.attention.slots.push_back(padding_page_ * ps);
    batch.attention.seqs.push_back({i, 1, 1, &padding_page_});
    batch.logit_rows.push_back(i);
  }
  batch.graph_key = size;
}

void ModelRunner::step(std::span<SeqKv* const> seqs, std::span<const std::vector<int32_t>> tokens,
                       std::vector<float>& logits, bool all_positions) {
  const Tensor out = run(seqs, tokens, all_positions);
  logits.resize(static_cast<size_t>(out.numel()));
  model_.backend().copy_to_host(out, logits.data());
}

void ModelRunner::step_greedy(std::span<SeqKv* const> seqs,
                              std::span<const std::vector<int32_t>> tokens,
                              std::vector<int32_t>& next) {
  const Tensor out = run(seqs, tokens, false);
  next.resize(static_cast<size_t>(out.dim(0)));
  model_.backend().argmax(out, next);
}

void ModelRunner::step_sample(std::span<SeqKv* const> seqs, std::span<const std::vector<int32_t>> tokens,
                              std::span<const TokenPick> picks, std::vector<int32_t>& next,
                              std::vector<PickLogprobs>* logprobs) {
  if (picks.size() != seqs.size()) fail("ModelRunner::step_sample: {} picks for {} sequences", picks.size(), seqs.size());
  if (launched_ > 0) fail("ModelRunner::step_sample: launched steps are not collected");
  const Tensor out = run(seqs, tokens, false);
  model_.backend().start_pick(out, picks);
  model_.backend().collect_picks(next, logprobs);
}

void ModelRunner::launch(std::span<SeqKv* const> seqs, std::span<const std::vector<int32_t>> tokens,
                         std::span<const TokenPick> picks, std::span<const int32_t> from_prev) {
  if (!picks.empty() && picks.size() != seqs.size())
    fail("ModelRunner::launch: {} picks for {} sequences", picks.size(), seqs.size());
  if (!from_prev.empty() && from_prev.size() != seqs.size())
    fail("ModelRunner::launch: {} feeds for {} sequences", from_prev.size(), seqs.size());
  if (launched_ >= 2) fail("ModelRunner::launch: two launched steps are not collected");
  Backend& backend = model_.backend();
  const bool fed = std::any_of(from_prev.begin(), from_prev.end(), [](int32_t f) { return f >= 0; });
  if (fed && launched_ == 0) fail("ModelRunner::launch: tokens fed from a step that was not launched");
  std::vector<std::vector<int32_t>> patched;
  if (fed && !backend.feeds_picks()) {
    // This backend cannot feed picks itself: fetch the previous step's
    // tokens now (such a backend has computed them already) and pass them
    // as plain tokens.
    if (static_cast<int>(collected_.size()) < launched_) {
      collected_.emplace_back();
      backend.collect_picks(collected_.back().tokens, &collected_.back().logprobs);
    }
    const std::vector<int32_t>& prev = collected_.back().tokens;
    patched.assign(tokens.begin(), tokens.end());
    for (size_t i = 0; i < seqs.size(); ++i)
      if (from_prev[i] >= 0) patched[i] = {prev.at(static_cast<size_t>(from_prev[i]))};
    tokens = patched;
    from_prev = {};
  }
  const Tensor out = run(seqs, tokens, false, fed ? from_prev : std::span<const int32_t>{});
  backend.start_pick(out, picks);
  ++launched_;
}

void ModelRunner::collect(std::vector<int32_t>& next, std::vector<PickLogprobs>* logprobs) {
  if (launched_ == 0) fail("ModelRunner::collect: no launched step");
  --launched_;
  if (!collected_.empty()) {
    next = std::move(collected_.front().tokens);
    if (logprobs) *logprobs = std::move(collected_.front().logprobs);
    collected_.pop_front();
    return;
  }
  model_.backend().collect_picks(next, logprobs);
}

void ModelRunner::release(SeqKv& seq) {
  for (int32_t p : seq.pages) pool_.release(p);
  seq.pages.clear();
  seq.kv_len = 0;
}

}  // namespace nativelm
