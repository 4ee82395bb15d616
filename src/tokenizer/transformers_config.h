#pragma once
// transformers (v5) does not always run tokenizer.json as written: some
// tokenizer classes named in tokenizer_config.json rebuild parts of the
// pipeline from their own defaults. This reproduces those rebuilds so nativelm
// matches AutoTokenizer. Today that is LlamaTokenizer, which replaces the
// legacy Prepend/Replace normalizers of older Llama 2 / Mistral files with a
// Metaspace pre-tokenizer (visible on inputs that start with spaces).
#include <nlohmann/json.hpp>

#include "tokenizer/bpe_tables.h"

namespace nativelm {

// The tokenizer.json that transformers effectively runs for `config`;
// `tables` holds the model vocabulary (for looking up BOS/EOS ids).
nlohmann::json apply_transformers_config(nlohmann::json tokenizer_json, const nlohmann::json& config,
                                         const BpeTables& tables);

}  // namespace nativelm
