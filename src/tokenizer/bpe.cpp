#include "tokenizer/bpe.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <queue>

#include "tokenizer/utf8.h"
#include "util/error.h"

namespace nativelm {
namespace {

constexpr size_t kCacheCapacity = 65536;
constexpr size_t kMaxCachedPieceBytes = 256;

std::string optional_string(const nlohmann::json& model, const char* key) {
  auto it = model.find(key);
  return it == model.end() || it->is_null() ? std::string() : it->get<std::string>();
}

}  // namespace

Bpe::Bpe(const nlohmann::json& model, const BpeTables& tables) {
  load_vocab(tables);
  continuing_subword_prefix_ = optional_string(model, "continuing_subword_prefix");
  end_of_word_suffix_ = optional_string(model, "end_of_word_suffix");
  fuse_unk_ = model.value("fuse_unk", false);
  byte_fallback_ = model.value("byte_fallback", false);
  ignore_merges_ = model.value("ignore_merges", false);
  if (model.contains("dropout") && !model.at("dropout").is_null() && model.at("dropout").get<double>() > 0.0) {
    fail("BPE dropout is not supported (tokenization would not be deterministic)");
  }
  if (std::string unk = optional_string(model, "unk_token"); !unk.empty()) {
    auto id = token_to_id(unk);
    if (!id) fail("BPE unk_token '{}' is not in the vocabulary", unk);
    unk_id_ = id;
  }
  byte_ids_.resize(256);
  for (int b = 0; b < 256; ++b) byte_ids_[b] = token_to_id(fmt::format("<0x{:02X}>", b));
  load_merges(tables);
}

void Bpe::load_vocab(const BpeTables& tables) {
  vocab_.reserve(tables.vocab.size());
  for (const auto& [token, id] : tables.vocab) {
    if (id < 0) fail("BPE vocab token '{}' has a negative id {}", token, id);
    if (static_cast<size_t>(id) >= id_to_token_.size()) {
      id_to_token_.resize(id + 1);
      has_id_.resize(id + 1);
    }
    id_to_token_[id] = token;
    has_id_[id] = true;
    vocab_.insert_or_assign(token, id);
  }
}

void Bpe::load_merges(const BpeTables& tables) {
  merges_ = MergeTable(tables.merges.size());
  int32_t rank = 0;
  for (const auto& [a, b] : tables.merges) {
    auto a_id = token_to_id(a), b_id = token_to_id(b);
    if (!a_id || !b_id) fail("BPE merge #{} ('{}' '{}') uses a token missing from the vocabulary", rank, a, b);
    std::string merged = a + b.substr(std::min(continuing_subword_prefix_.size(), b.size()));
    auto new_id = token_to_id(merged);
    if (!new_id) fail("BPE merge #{} produces '{}', which is missing from the vocabulary", rank, merged);
    // Later duplicates win, as when tokenizers collects merges into a map.
    merges_.set(*a_id, *b_id, MergeRule{rank, *new_id});
    ++rank;
  }
}

std::optional<int32_t> Bpe::token_to_id(std::string_view token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* Bpe::id_to_token(int32_t id) const {
  return id >= 0 && id < id_bound() && has_id_[id] ? &id_to_token_[id] : nullptr;
}

std::vector<int32_t> Bpe::initial_symbols(std::string_view piece) const {
  std::vector<int32_t> symbols;
  std::optional<int32_t> pending_unk;  // fuse_unk collapses runs of unknown characters
  for (size_t pos = 0; pos < piece.size();) {
    size_t begin = pos;
    utf8::next(piece, pos);
    std::string symbol;
    if (begin > 0) symbol = continuing_subword_prefix_;
    symbol.append(piece.substr(begin, pos - begin));
    if (pos == piece.size()) symbol += end_of_word_suffix_;
    if (auto id = token_to_id(symbol)) {
      if (pending_unk) symbols.push_back(*std::exchange(pending_unk, std::nullopt));
      symbols.push_back(*id);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (char c : symbol) all = all && byte_ids_[static_cast<unsigned char>(c)].has_value();
      if (all) {
        for (char c : symbol) symbols.push_back(*byte_ids_[static_cast<unsigned char>(c)]);
        continue;
      }
    }
    // Without an unk token, tokenizers silently drops the character.
    if (!unk_id_) continue;
    if (pending_unk && !fuse_unk_) symbols.push_back(*pending_unk);
    pending_unk = unk_id_;
  }
  if (pending_unk) symbols.push_back(*pending_unk);
  return symbols;
}

void Bpe::merge_all(std::vector<int32_t>& symbols) const {
  struct Candidate {
    int32_t rank;
    int32_t pos;
    int32_t new_id;
    bool operator<(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  const int32_t n = static_cast<int32_t>(symbols.size());
  std::vector<int32_t> prev(n), next(n);
  std::vector<bool> alive(n, true);
  for (int32_t i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  std::priority_queue<Candidate> queue;
  auto consider = [&](int32_t left) {
    if (left < 0 || next[left] < 0) return;
    if (const MergeRule* m = merges_.find(symbols[left], symbols[next[left]])) queue.push({m->rank, left, m->new_id});
  };
  for (int32_t i = 0; i + 1 < n; ++i) consider(i);
  while (!queue.empty()) {
    Candidate top = queue.top();
    queue.pop();
    int32_t right = next[top.pos];
    if (!alive[top.pos] || right < 0) continue;
    // Skip entries made stale by an earlier merge of either side.
    const MergeRule* m = merges_.find(symbols[top.pos], symbols[right]);
    if (!m || m->new_id != top.new_id) continue;
    symbols[top.pos] = top.new_id;
    alive[right] = false;
    next[top.pos] = next[right];
    if (next[right] >= 0) prev[next[right]] = top.pos;
    consider(prev[top.pos]);
    consider(top.pos);
  }
  size_t kept = 0;
  for (int32_t i = 0; i < n; ++i) {
    if (alive[i]) symbols[kept++] = symbols[i];
  }
  symbols.resize(kept);
}

void Bpe::tokenize(std::string_view piece, std::vector<int32_t>& out) const {
  if (piece.empty()) return;
  if (ignore_merges_) {
    if (auto id = token_to_id(piece)) {
      out.push_back(*id);
      return;
    }
  }
  bool cacheable = piece.size() <= kMaxCachedPieceBytes;
  std::string key(piece);
  if (cacheable) {
    std::lock_guard lock(cache_mutex_);
    if (auto it = cache_.find(key); it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> symbols = initial_symbols(piece);
  merge_all(symbols);
  out.insert(out.end(), symbols.begin(), symbols.end());
  if (cacheable) {
    std::lock_guard lock(cache_mutex_);
    if (cache_.size() < kCacheCapacity) cache_.emplace(std::move(key), std::move(symbols));
  }
}

}  // namespace nativelm
