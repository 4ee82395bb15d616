#include "tokenizer/bpe_tables.h"

#include <nlohmann/json.hpp>

#include "util/error.h"

namespace nativelm {

BpeTables BpeTables::from_model_json(const nlohmann::json& model) {
  BpeTables t;
  const auto& vocab = model.at("vocab");
  if (!vocab.is_object()) fail("BPE \"vocab\" must be an object of token: id");
  t.vocab.reserve(vocab.size());
  for (const auto& [token, id] : vocab.items()) t.vocab.emplace_back(token, id.get<int32_t>());
  const auto& merges = model.at("merges");
  if (!merges.is_array()) fail("BPE \"merges\" must be an array");
  t.merges.reserve(merges.size());
  for (const auto& m : merges) t.add_merge(m);
  return t;
}

void BpeTables::add_merge(const nlohmann::json& entry) {
  if (entry.is_string()) return add_merge(entry.get_ref<const std::string&>());
  if (!entry.is_array() || entry.size() != 2 || !entry[0].is_string() || !entry[1].is_string()) {
    fail("BPE merge #{} must be a string or a pair of strings, got {}", merges.size(), entry.dump());
  }
  merges.emplace_back(entry[0].get<std::string>(), entry[1].get<std::string>());
}

void BpeTables::add_merge(const std::string& legacy) {
  // Exactly one space, as tokenizers requires of the legacy form.
  size_t space = legacy.find(' ');
  if (space == std::string::npos || legacy.find(' ', space + 1) != std::string::npos) {
    fail("BPE merge #{} '{}' is not two tokens separated by one space", merges.size(), legacy);
  }
  merges.emplace_back(legacy.substr(0, space), legacy.substr(space + 1));
}

}  // namespace nativelm
