#pragma once
// Tokens added on top of the model vocabulary (special tokens such as
// <|im_start|>, and plain extras). They are cut out of the input before the
// normalizer and the model ever see it, with Hugging Face's leftmost-longest
// matching and its single_word / lstrip / rstrip rules.
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace nativelm {

class Normalizer;

struct AddedToken {
  int32_t id = 0;
  std::string content;
  // What id_to_token and decode show: for a normalized token, Hugging Face
  // keeps the normalized content (the same text it matches against).
  std::string surface;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
  bool special = false;
};

// A stretch of input: either an added token (id set) or text for the model.
struct Span {
  std::string text;
  std::optional<int32_t> id;
  bool at_start = false;  // begins at the start of the whole input
};

class AddedVocabulary {
 public:
  AddedVocabulary() = default;
  // `added_tokens` is tokenizer.json's list; `normalizer` may be null.
  AddedVocabulary(const nlohmann::json& added_tokens, const Normalizer* normalizer);

  // Splits `text` around added tokens and normalizes the rest, in the same
  // order as tokenizers' AddedVocabulary::extract_and_normalize.
  std::vector<Span> split_and_normalize(std::string_view text, const Normalizer* normalizer) const;

  const AddedToken* find(int32_t id) const;
  std::optional<int32_t> find(std::string_view content) const;
  const std::vector<AddedToken>& tokens() const { return tokens_; }

 private:
  // A byte trie over token contents for leftmost-longest matching.
  struct Trie {
    std::vector<std::map<unsigned char, int32_t>> edges{1};
    std::vector<int32_t> token_at{-1};  // index into tokens_, -1 where no token ends
    void insert(std::string_view key, int32_t token_index);
    bool empty() const { return edges.size() == 1; }
  };
  void split(const Trie& trie, std::vector<Span>& spans) const;
  std::vector<Span> split_one(const Trie& trie, const Span& span) const;

  std::vector<AddedToken> tokens_;
  std::unordered_map<int32_t, size_t> by_id_;
  std::unordered_map<std::string, int32_t> by_content_;
  Trie raw_trie_;         // tokens with normalized == false, matched on the raw input
  Trie normalized_trie_;  // tokens with normalized == true, matched after normalization
};

}  // namespace nativelm
