#pragma once
// Reads a Hugging Face tokenizer.json and encodes/decodes exactly as
// transformers does (byte-level BPE as in Qwen and Llama 3, SentencePiece-style
// BPE with byte fallback as in Llama 2, Mistral and Gemma).
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace nativelm {

struct BpeTables;

class Tokenizer {
 public:
  // Loads tokenizer.json. When a tokenizer_config.json sits beside it, the
  // adjustments transformers makes for that tokenizer_class are applied too
  // (see transformers_config.h), so results match AutoTokenizer rather than
  // the bare tokenizers library. Throws nativelm::Error with a clear message.
  static Tokenizer from_file(const std::filesystem::path& tokenizer_json);
  // The bare tokenizer.json semantics of the tokenizers library.
  static Tokenizer from_json(const nlohmann::json& tokenizer_json);
  // tokenizer.json plus transformers' tokenizer_config.json adjustments.
  static Tokenizer from_json(const nlohmann::json& tokenizer_json, const nlohmann::json& tokenizer_config);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  Tokenizer(const Tokenizer&);
  Tokenizer& operator=(const Tokenizer&);
  ~Tokenizer();

  // `text` must be valid UTF-8 (nativelm::Error otherwise). Added tokens such
  // as <|im_start|> in the text are always recognised; add_special_tokens only
  // controls what the post-processor wraps around the result (e.g. BOS).
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true) const;
  // Throws nativelm::Error for an id that names no token.
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;

  int32_t vocab_size() const;  // one past the largest id, added tokens included
  std::optional<int32_t> token_to_id(std::string_view token) const;
  std::string id_to_token(int32_t id) const;  // raw vocabulary string; Error if unknown
  bool is_special(int32_t id) const;

 private:
  struct Impl;
  explicit Tokenizer(std::shared_ptr<const Impl> impl);
  // `config` (tokenizer_config.json) may be null.
  static Tokenizer from_document(const nlohmann::json& tokenizer_json, const nlohmann::json* config);
  static Tokenizer build(const nlohmann::json& document, const BpeTables& tables, const nlohmann::json* config);
  std::shared_ptr<const Impl> impl_;  // immutable once built, so copies share it
};

// Incremental detokenizer for streaming, one per request; it keeps a pointer
// to the tokenizer, which must outlive it. The concatenation of every step()
// and the final flush() equals tokenizer.decode(generated ids), and no
// returned piece ends inside a UTF-8 character. (The one exception: ids that
// spell malformed UTF-8 can make a longer decode repair bytes differently;
// text already returned then stays as it was.)
class DecodeStream {
 public:
  // `prompt_ids` are accepted for callers that have them; transformers decodes
  // the generated ids on their own, so the streamed text does not depend on them.
  DecodeStream(const Tokenizer& tokenizer, bool skip_special_tokens, std::span<const int32_t> prompt_ids = {});

  std::string step(int32_t id);  // newly completed text, possibly empty
  std::string flush();           // whatever is still held back at the end

 private:
  const Tokenizer* tokenizer_;
  bool skip_special_;
  std::vector<int32_t> window_;  // ids whose text is still needed as context
  size_t read_ = 0;              // window_[0, read_) produced `prefix_`
  std::string prefix_;           // decode(window_[0, read_))
};

}  // namespace nativelm
