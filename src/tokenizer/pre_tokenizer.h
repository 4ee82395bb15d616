#pragma once
// Hugging Face pre-tokenizers: cut normalized text into pieces that the model
// tokenizes independently (BPE merges never cross a piece boundary).
#include <nlohmann/json_fwd.hpp>

#include <memory>
#include <string>
#include <vector>

namespace nativelm {

struct Piece {
  std::string text;
  // Whether the piece begins at the very start of the input; Metaspace's
  // "first" scheme only adds its prefix there.
  bool at_start = false;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces `pieces` with their refinement; empty pieces are dropped.
  virtual void apply(std::vector<Piece>& pieces) const = 0;
};

// nullptr for a JSON null. Throws nativelm::Error for unknown types or options.
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& j);

// How a Split keeps the delimiters it finds (Hugging Face SplitDelimiterBehavior).
enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

// A segment of a string with whether it was a delimiter match.
struct Segment {
  size_t begin, end;
  bool is_match;
};

// Applies `behavior` to the segments (which cover the text in order) and
// returns the byte ranges of the resulting non-empty pieces.
std::vector<std::pair<size_t, size_t>> apply_split_behavior(const std::vector<Segment>& segments,
                                                            SplitBehavior behavior);

}  // namespace nativelm
