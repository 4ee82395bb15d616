#pragma once
// The Hugging Face BPE model: splits a pre-tokenized piece into characters and
// applies the ranked merges, lowest rank first (leftmost on ties), exactly as
// tokenizers' Word::merge_all does.
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/bpe_tables.h"
#include "tokenizer/merge_table.h"

namespace nativelm {

// Lets string-keyed maps be searched with a string_view without allocating.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

class Bpe {
 public:
  // `model` is the "model" object of tokenizer.json (type BPE) for the
  // options; the vocabulary and merges come in `tables`.
  Bpe(const nlohmann::json& model, const BpeTables& tables);

  // Appends the ids of one piece to `out`.
  void tokenize(std::string_view piece, std::vector<int32_t>& out) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  const std::string* id_to_token(int32_t id) const;
  // One past the largest id in the vocabulary.
  int32_t id_bound() const { return static_cast<int32_t>(id_to_token_.size()); }

 private:
  void load_vocab(const BpeTables& tables);
  void load_merges(const BpeTables& tables);
  std::vector<int32_t> initial_symbols(std::string_view piece) const;
  void merge_all(std::vector<int32_t>& symbols) const;

  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> has_id_;  // the vocabulary may leave ids unused
  MergeTable merges_;
  std::optional<int32_t> unk_id_;
  std::string continuing_subword_prefix_;
  std::string end_of_word_suffix_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  std::vector<std::optional<int32_t>> byte_ids_;  // <0xNN> tokens, for byte_fallback

  // Words repeat a lot in real text; remember their tokenization.
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace nativelm
