#include "tokenizer/tokenizer.h"

#include <nlohmann/json.hpp>

#include <fstream>
#include <iterator>

#include "tokenizer/added_vocabulary.h"
#include "tokenizer/bpe.h"
#include "tokenizer/bpe_tables.h"
#include "tokenizer/decoder.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/post_processor.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/tokenizer_file.h"
#include "tokenizer/transformers_config.h"
#include "tokenizer/utf8.h"
#include "util/error.h"

namespace nativelm {

struct Tokenizer::Impl {
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<Bpe> model;
  AddedVocabulary added;
  std::optional<PostProcessor> post_processor;
  std::unique_ptr<Decoder> decoder;
  int32_t vocab_size = 0;

  Impl(const nlohmann::json& j, const BpeTables& tables);
  const std::string* token_of(int32_t id) const;
};

namespace {

const nlohmann::json& field(const nlohmann::json& j, const char* key) {
  static const nlohmann::json null_json;
  auto it = j.find(key);
  return it == j.end() ? null_json : *it;
}

void check_document(const nlohmann::json& j) {
  if (!j.is_object()) fail("tokenizer.json must be a JSON object");
  const nlohmann::json& model = field(j, "model");
  if (!model.is_object()) fail("tokenizer.json has no \"model\" object");
  std::string type = model.value("type", model.contains("merges") ? "BPE" : "");
  if (type != "BPE") {
    fail("unsupported tokenizer model type '{}': nativelm supports BPE tokenizers only", type);
  }
}

std::string read_text(const std::filesystem::path& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open {} '{}'", what, path.string());
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

nlohmann::json parse_json(const std::string& text, const std::filesystem::path& path) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    fail("'{}' is not valid JSON: {}", path.string(), e.what());
  }
}

}  // namespace

Tokenizer::Impl::Impl(const nlohmann::json& j, const BpeTables& tables) {
  normalizer = make_normalizer(field(j, "normalizer"));
  pre_tokenizer = make_pre_tokenizer(field(j, "pre_tokenizer"));
  model = std::make_unique<Bpe>(j.at("model"), tables);
  const auto& added_json = field(j, "added_tokens");
  added = AddedVocabulary(added_json.is_null() ? nlohmann::json::array() : added_json, normalizer.get());
  post_processor.emplace(field(j, "post_processor"));
  decoder = make_decoder(field(j, "decoder"));
  vocab_size = model->id_bound();
  for (const auto& t : added.tokens()) vocab_size = std::max(vocab_size, t.id + 1);
}

const std::string* Tokenizer::Impl::token_of(int32_t id) const {
  if (const AddedToken* t = added.find(id)) return &t->surface;
  return model->id_to_token(id);
}

Tokenizer::Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::Tokenizer(const Tokenizer&) = default;
Tokenizer& Tokenizer::operator=(const Tokenizer&) = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::build(const nlohmann::json& document, const BpeTables& tables, const nlohmann::json* config) {
  try {
    if (!config) return Tokenizer(std::make_shared<const Impl>(document, tables));
    return Tokenizer(std::make_shared<const Impl>(apply_transformers_config(document, *config, tables), tables));
  } catch (const nlohmann::json::exception& e) {
    fail("malformed tokenizer.json{}: {}", config ? " or tokenizer_config.json" : "", e.what());
  }
}

Tokenizer Tokenizer::from_json(const nlohmann::json& tokenizer_json) {
  return from_document(tokenizer_json, nullptr);
}

Tokenizer Tokenizer::from_json(const nlohmann::json& tokenizer_json, const nlohmann::json& tokenizer_config) {
  return from_document(tokenizer_json, &tokenizer_config);
}

// The model type is checked first: other models lay out "vocab" differently.
Tokenizer Tokenizer::from_document(const nlohmann::json& tokenizer_json, const nlohmann::json* config) {
  check_document(tokenizer_json);
  try {
    return build(tokenizer_json, BpeTables::from_model_json(tokenizer_json.at("model")), config);
  } catch (const nlohmann::json::exception& e) {
    fail("malformed tokenizer.json: {}", e.what());
  }
}

Tokenizer Tokenizer::from_file(const std::filesystem::path& tokenizer_json) {
  if (!std::filesystem::is_regular_file(tokenizer_json)) {
    fail("tokenizer file '{}' does not exist or is not a file", tokenizer_json.string());
  }
  auto config_path = tokenizer_json.parent_path() / "tokenizer_config.json";
  try {
    TokenizerFile file = parse_tokenizer_file(read_text(tokenizer_json, "tokenizer file"));
    check_document(file.document);
    if (file.tables.vocab.empty()) file.tables = BpeTables::from_model_json(file.document.at("model"));
    if (!std::filesystem::is_regular_file(config_path)) return build(file.document, file.tables, nullptr);
    nlohmann::json config = parse_json(read_text(config_path, "tokenizer config"), config_path);
    return build(file.document, file.tables, &config);
  } catch (const nlohmann::json::parse_error& e) {
    fail("tokenizer file '{}' is not valid JSON: {}", tokenizer_json.string(), e.what());
  } catch (const nlohmann::json::exception& e) {
    fail("tokenizer file '{}' is malformed: {}", tokenizer_json.string(), e.what());
  } catch (const Error& e) {
    fail("{}: {}", tokenizer_json.string(), e.what());
  }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  if (size_t bad = utf8::find_invalid(text); bad != std::string_view::npos) {
    fail("cannot tokenize text that is not valid UTF-8 (bad byte 0x{:02X} at offset {})",
         static_cast<unsigned char>(text[bad]), bad);
  }
  const Impl& m = *impl_;
  std::vector<int32_t> ids;
  std::vector<Piece> pieces;
  for (auto& span : m.added.split_and_normalize(text, m.normalizer.get())) {
    if (span.id) {
      ids.push_back(*span.id);
      continue;
    }
    pieces.assign(1, Piece{std::move(span.text), span.at_start});
    if (m.pre_tokenizer) m.pre_tokenizer->apply(pieces);
    for (const auto& piece : pieces) m.model->tokenize(piece.text, ids);
  }
  return add_special_tokens ? m.post_processor->apply(std::move(ids)) : ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  const Impl& m = *impl_;
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    // Ids past the tokenizer's vocabulary (models pad their embedding
    // tables) decode to nothing, as in Hugging Face tokenizers.
    const std::string* token = m.token_of(id);
    if (!token) continue;
    if (skip_special_tokens && is_special(id)) continue;
    tokens.push_back(*token);
  }
  if (!m.decoder) {
    std::string joined;
    for (size_t i = 0; i < tokens.size(); ++i) joined += (i ? " " : "") + tokens[i];
    return joined;
  }
  std::string text;
  for (const auto& piece : m.decoder->decode_chain(std::move(tokens))) text += piece;
  return text;
}

int32_t Tokenizer::vocab_size() const { return impl_->vocab_size; }

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  if (auto id = impl_->added.find(token)) return id;
  return impl_->model->token_to_id(token);
}

std::string Tokenizer::id_to_token(int32_t id) const {
  const std::string* token = impl_->token_of(id);
  if (!token) fail("no token has id {} (vocabulary size {})", id, impl_->vocab_size);
  return *token;
}

bool Tokenizer::is_special(int32_t id) const {
  const AddedToken* t = impl_->added.find(id);
  return t && t->special;
}

}  // namespace nativelm
