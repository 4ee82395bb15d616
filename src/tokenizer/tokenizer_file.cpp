#include "tokenizer/tokenizer_file.h"

#include <vector>

#include "util/error.h"

namespace nativelm {
namespace {

using Event = nlohmann::json::parse_event_t;

// Follows the parser's events and diverts model.vocab and model.merges.
class Diverter {
 public:
  explicit Diverter(BpeTables& tables) : tables_(tables) {}

  // nlohmann's parser callback: returning false drops the element from the DOM.
  bool operator()(int depth, Event event, nlohmann::json& value) {
    if (event == Event::key) {
      if (keys_.size() <= static_cast<size_t>(depth)) keys_.resize(depth + 1);
      keys_[depth] = value.get<std::string>();
    }
    if (depth < 2 || keys_.size() < 3 || keys_[1] != "model") return true;
    if (depth == 2 && event == Event::value && keys_[2] == "type" && value.is_string()) {
      is_bpe_ = value.get<std::string>() == "BPE";
    }
    // Other models lay out their vocabulary differently; leave them to the DOM.
    if (depth < 3 || !is_bpe_) return true;
    if (keys_[2] == "vocab") return vocab_event(depth, event, value);
    if (keys_[2] == "merges") return merges_event(depth, event, value);
    return true;
  }

 private:
  bool vocab_event(int depth, Event event, nlohmann::json& value) {
    if (event == Event::key) return true;
    if (depth != 3 || event != Event::value) fail("BPE \"vocab\" must map each token to an integer id");
    if (!value.is_number_integer()) fail("BPE vocab token '{}' has a non-integer id {}", keys_[3], value.dump());
    tables_.vocab.emplace_back(keys_[3], value.get<int32_t>());
    return false;
  }

  bool merges_event(int depth, Event event, nlohmann::json& value) {
    if (depth == 3 && event == Event::array_start) {
      pair_.clear();
    } else if (depth == 4 && event == Event::value) {
      pair_.push_back(std::move(value));
      return false;
    } else if (depth == 3 && event == Event::array_end) {
      tables_.add_merge(nlohmann::json(std::move(pair_)));
      pair_ = nlohmann::json::array();
      return false;
    } else if (depth == 3 && event == Event::value) {
      tables_.add_merge(value);
      return false;
    }
    return true;
  }

  BpeTables& tables_;
  std::vector<std::string> keys_;  // the last key seen at each depth
  bool is_bpe_ = false;            // tokenizers writes the model's "type" first
  nlohmann::json pair_ = nlohmann::json::array();
};

}  // namespace

TokenizerFile parse_tokenizer_file(const std::string& text) {
  TokenizerFile file;
  Diverter diverter(file.tables);
  file.document = nlohmann::json::parse(text, std::ref(diverter));
  return file;
}

}  // namespace nativelm
