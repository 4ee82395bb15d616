#include "tokenizer/transformers_config.h"

#include <optional>
#include <string>

#include "util/error.h"

namespace nativelm {
namespace {

// A special-token entry of tokenizer_config.json: a string or {"content": ...}.
std::optional<std::string> token_content(const nlohmann::json& config, const char* key, const char* fallback) {
  auto it = config.find(key);
  if (it == config.end()) return std::string(fallback);
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content")) return it->at("content").get<std::string>();
  return std::nullopt;  // explicitly null: no such token
}

std::optional<int32_t> lookup_id(const nlohmann::json& tok, const BpeTables& tables, const std::string& content) {
  if (auto added = tok.find("added_tokens"); added != tok.end() && added->is_array()) {
    for (const auto& t : *added) {
      if (t.at("content").get<std::string>() == content) return t.at("id").get<int32_t>();
    }
  }
  for (const auto& [token, id] : tables.vocab) {
    if (token == content) return id;
  }
  return std::nullopt;
}

nlohmann::json llama_post_processor(const nlohmann::json& tok, const nlohmann::json& config,
                                    const BpeTables& tables) {
  nlohmann::json single = nlohmann::json::array();
  nlohmann::json specials = nlohmann::json::object();
  auto add = [&](const char* key, const char* fallback) {
    auto content = token_content(config, key, fallback);
    if (!content) return;
    auto id = lookup_id(tok, tables, *content);
    if (!id) fail("tokenizer_config.json names {} '{}', which tokenizer.json does not define", key, *content);
    single.push_back({{"SpecialToken", {{"id", *content}, {"type_id", 0}}}});
    specials[*content] = {{"id", *content}, {"ids", {*id}}, {"tokens", {*content}}};
  };
  if (config.value("add_bos_token", true)) add("bos_token", "<s>");
  single.push_back({{"Sequence", {{"id", "A"}, {"type_id", 0}}}});
  if (config.value("add_eos_token", false)) add("eos_token", "</s>");
  return {{"type", "TemplateProcessing"}, {"single", single}, {"special_tokens", specials}};
}

void rebuild_llama(nlohmann::json& tok, const nlohmann::json& config, const BpeTables& tables) {
  auto flag = [&](const char* key, bool fallback) {
    auto it = config.find(key);
    return it == config.end() || it->is_null() ? fallback : it->get<bool>();
  };
  bool add_prefix_space = flag("add_prefix_space", true);
  bool legacy = flag("legacy", true);
  std::string scheme = !add_prefix_space ? "never" : legacy ? "always" : "first";
  tok["normalizer"] = nullptr;
  tok["pre_tokenizer"] = {
      {"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", scheme}, {"split", false}};
  nlohmann::json decoders = nlohmann::json::array({
      {{"type", "Replace"}, {"pattern", {{"String", "\u2581"}}}, {"content", " "}},
      {{"type", "ByteFallback"}},
      {{"type", "Fuse"}},
  });
  if (add_prefix_space) decoders.push_back({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});
  tok["decoder"] = {{"type", "Sequence"}, {"decoders", decoders}};
  tok["post_processor"] = llama_post_processor(tok, config, tables);
}

}  // namespace

nlohmann::json apply_transformers_config(nlohmann::json tok, const nlohmann::json& config,
                                         const BpeTables& tables) {
  std::string cls = config.value("tokenizer_class", std::string());
  const auto& model = tok.at("model");
  bool sentencepiece_bpe = model.value("type", std::string()) == "BPE" && model.value("byte_fallback", false);
  if ((cls == "LlamaTokenizer" || cls == "LlamaTokenizerFast") && sentencepiece_bpe) rebuild_llama(tok, config, tables);
  return tok;
}

}  // namespace nativelm
