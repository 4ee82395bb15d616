#pragma once
// Parses tokenizer.json text into a document for everything but the model's
// vocabulary and merges, which go straight into BpeTables. Building DOM nodes
// for those would take most of the load time of a large vocabulary.
#include <nlohmann/json.hpp>

#include <string>

#include "tokenizer/bpe_tables.h"

namespace nativelm {

struct TokenizerFile {
  // model.vocab and model.merges are left empty when they went to `tables`,
  // which happens for BPE models whose "type" precedes them (as tokenizers writes).
  nlohmann::json document;
  BpeTables tables;
};

// Throws nlohmann::json::parse_error for malformed text and nativelm::Error
// for malformed vocabulary or merge entries.
TokenizerFile parse_tokenizer_file(const std::string& text);

}  // namespace nativelm
