#pragma once
// Runs one forward step for a set of sequences over the shared KV pool: grows
// each sequence's page table for its new tokens, builds the ForwardBatch and
// returns next-token logits on the host. Schedulers decide *what* to run;
// this decides nothing.
#include <cstdint>
#include <deque>
#include <span>
#include <vector>

#include "engine/kv_pool.h"
#include "model/transformer.h"

namespace nativelm {

// A request's slice of the KV cache.
struct SeqKv {
  std::vector<int32_t> pages;
  int32_t kv_len = 0;  // positions already cached
};

class ModelRunner {
 public:
  ModelRunner(Transformer& model, KvPool& pool);
  ~ModelRunner();

  Transformer& model() { return model_; }
  KvPool& pool() { return pool_; }
  // Pages `seq` must gain before it can take `new_tokens` more tokens.
  int32_t pages_needed(const SeqKv& seq, int32_t new_tokens) const;

  // Appends tokens[i] to seqs[i] and fills logits [seqs.size(), vocab] with
  // the next-token logits after each sequence's last new token, or, with
  // all_positions, [all new tokens, vocab] (for scoring text). Throws
  // nativelm::Error when the pool runs out of pages (nothing is changed then).
  void step(std::span<SeqKv* const> seqs, std::span<const std::vector<int32_t>> tokens,
            std::vector<float>& logits, bool all_positions = false);
  // As step, but returns each sequence's most likely next token (computed
  // where the logits are, so they never travel to the host).
  void step_greedy(std::span<SeqKv* const> seqs, std::span<const std::vector<int32_t>> tokens,
                   std::vector<int32_t>& next);
  // As step, picking each sequence's next token by picks[i] where the
  // logits are (and, if given, their log-probabilities: see TokenPick).
  void step_sample(std::span<SeqKv* const> seqs, std::span<const std::vector<int32_t>> tokens,
                   std::span<const TokenPick> picks, std::vector<int32_t>& next,
                   std::vector<PickLogprobs>* logprobs = nullptr);
  // The overlapped form of step_greedy / step_sample: queues the step and
  // its token picks (argmax when picks is empty) and returns without
  // waiting; collect() returns each launched step's tokens, oldest first.
  // from_prev (empty, or one entry per sequence): where from_prev[i] >= 0,
  // sequence i's one new token is the one picked for row from_prev[i] of
  // the step launched just before, whose value the host need not know yet
  // (tokens[i] holds a placeholder).
  // At most two launched steps may be uncollected.
  void launch(std::span<SeqKv* const> seqs, std::span<const std::vector<int32_t>> tokens,
              std::span<const TokenPick> picks, std::span<const int32_t> from_prev);
  void collect(std::vector<int32_t>& next, std::vector<PickLogprobs>* logprobs = nullptr);
  // Returns the sequence's pages to the pool.
  void release(SeqKv& seq);

 private:
  void reserve_pages(std::span<SeqKv* const> seqs, std::span<const std::vector<int32_t>> tokens);
  // Runs the step; the logits rows stay in backend memory.
  Tensor run(std::span<SeqKv* const> seqs, std::span<const std::vector<int32_t>> tokens,
             bool all_positions, std::span<const int32_t> from_prev = {});
  void pad_for_recording(ForwardBatch& batch) const;

  Transformer& model_;
  KvPool& pool_;
  Tensor logits_;
  int64_t logits_rows_ = 0;
  int32_t padding_page_ = -1;  // held for good when the backend replays recordings
  int launched_ = 0;           // launched steps not collected yet
  struct Collected {
    std::vector<int32_t> tokens;
    std::vector<PickLogprobs> logprobs;
  };
  std::deque<Collected> collected_;  // picks taken early to feed a step on the host
};

}  // namespace nativelm
