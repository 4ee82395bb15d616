#pragma once
// The bulk of a BPE tokenizer.json: its vocabulary and merge list, held apart
// from the JSON document so that a file can be read without building a DOM
// node for each of Gemma's 262k tokens and 515k merges.
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace nativelm {

struct BpeTables {
  std::vector<std::pair<std::string, int32_t>> vocab;
  std::vector<std::pair<std::string, std::string>> merges;  // in rank order

  // From the "model" object of a parsed tokenizer.json.
  static BpeTables from_model_json(const nlohmann::json& model);
  // Appends one "merges" entry: "a b" (legacy) or ["a", "b"].
  void add_merge(const nlohmann::json& entry);
  void add_merge(const std::string& legacy);
};

}  // namespace nativelm
