#include "tokenizer/added_vocabulary.h"

#include <nlohmann/json.hpp>

#include "tokenizer/normalizer.h"
#include "tokenizer/utf8.h"
#include "util/error.h"

namespace nativelm {
namespace {

char32_t last_char(std::string_view s) {
  size_t pos = s.size();
  while (pos > 0 && (static_cast<unsigned char>(s[pos - 1]) & 0xC0) == 0x80) --pos;
  if (pos > 0) --pos;
  return utf8::next(s, pos);
}

char32_t first_char(std::string_view s) {
  size_t pos = 0;
  return utf8::next(s, pos);
}

// Byte offset just after the last non-whitespace character of s[0, end).
size_t skip_whitespace_back(std::string_view s, size_t end) {
  size_t keep = 0;
  for (size_t pos = 0; pos < end;) {
    if (!utf8::is_whitespace(utf8::next(s, pos))) keep = pos;
  }
  return keep;
}

size_t skip_whitespace_forward(std::string_view s, size_t begin) {
  size_t pos = begin;
  while (pos < s.size()) {
    size_t at = pos;
    if (!utf8::is_whitespace(utf8::next(s, pos))) return at;
  }
  return pos;
}

}  // namespace

void AddedVocabulary::Trie::insert(std::string_view key, int32_t token_index) {
  int32_t node = 0;
  for (char c : key) {
    auto [it, inserted] = edges[node].try_emplace(static_cast<unsigned char>(c), static_cast<int32_t>(edges.size()));
    if (inserted) {
      edges.emplace_back();
      token_at.push_back(-1);
    }
    node = it->second;
  }
  // The first token with a given content wins, as in tokenizers.
  if (token_at[node] < 0) token_at[node] = token_index;
}

AddedVocabulary::AddedVocabulary(const nlohmann::json& added_tokens, const Normalizer* normalizer) {
  for (const auto& j : added_tokens) {
    AddedToken t;
    t.id = j.at("id").get<int32_t>();
    t.content = j.at("content").get<std::string>();
    t.single_word = j.value("single_word", false);
    t.lstrip = j.value("lstrip", false);
    t.rstrip = j.value("rstrip", false);
    t.normalized = j.value("normalized", !j.value("special", false));
    t.special = j.value("special", false);
    if (t.content.empty()) fail("added token {} has empty content", t.id);
    by_id_[t.id] = tokens_.size();
    by_content_.emplace(t.content, t.id);
    tokens_.push_back(std::move(t));
  }
  for (size_t i = 0; i < tokens_.size(); ++i) {
    auto& t = tokens_[i];
    t.surface = t.normalized && normalizer ? normalizer->normalize(t.content) : t.content;
    if (t.normalized) {
      if (!t.surface.empty()) normalized_trie_.insert(t.surface, static_cast<int32_t>(i));
    } else {
      raw_trie_.insert(t.content, static_cast<int32_t>(i));
    }
  }
}

const AddedToken* AddedVocabulary::find(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

std::optional<int32_t> AddedVocabulary::find(std::string_view content) const {
  auto it = by_content_.find(std::string(content));
  if (it == by_content_.end()) return std::nullopt;
  return it->second;
}

std::vector<Span> AddedVocabulary::split_one(const Trie& trie, const Span& span) const {
  const std::string& s = span.text;
  std::vector<Span> out;
  size_t emitted = 0;  // end of the last piece pushed to `out`
  auto push_text = [&](size_t begin, size_t end) {
    if (end > begin) out.push_back({s.substr(begin, end - begin), std::nullopt, span.at_start && begin == 0});
  };
  for (size_t i = 0; i < s.size();) {
    // Longest token starting at i; scanning i upwards makes it leftmost.
    int32_t node = 0, best = -1;
    size_t best_end = i;
    for (size_t j = i; j < s.size(); ++j) {
      auto it = trie.edges[node].find(static_cast<unsigned char>(s[j]));
      if (it == trie.edges[node].end()) break;
      node = it->second;
      if (trie.token_at[node] >= 0) best = trie.token_at[node], best_end = j + 1;
    }
    if (best < 0) {
      ++i;
      continue;
    }
    const AddedToken& t = tokens_[best];
    size_t start = i, stop = best_end;
    i = best_end;  // a rejected match still consumes its text, as with aho-corasick's find_iter
    if (t.single_word) {
      bool word_before = start > 0 && utf8::is_word_char(last_char(std::string_view(s).substr(0, start)));
      bool word_after = stop < s.size() && utf8::is_word_char(first_char(std::string_view(s).substr(stop)));
      if (word_before || word_after) continue;
    }
    if (t.lstrip) start = std::max(skip_whitespace_back(s, start), emitted);
    if (t.rstrip) stop = skip_whitespace_forward(s, stop);
    push_text(emitted, start);
    out.push_back({s.substr(start, stop - start), t.id, span.at_start && start == 0});
    emitted = stop;
    i = std::max(i, stop);
  }
  push_text(emitted, s.size());
  return out;
}

void AddedVocabulary::split(const Trie& trie, std::vector<Span>& spans) const {
  if (trie.empty()) return;
  std::vector<Span> out;
  for (auto& span : spans) {
    if (span.id) {
      out.push_back(std::move(span));
      continue;
    }
    for (auto& piece : split_one(trie, span)) out.push_back(std::move(piece));
  }
  spans = std::move(out);
}

std::vector<Span> AddedVocabulary::split_and_normalize(std::string_view text, const Normalizer* normalizer) const {
  std::vector<Span> spans;
  if (text.empty()) return spans;
  spans.push_back({std::string(text), std::nullopt, true});
  split(raw_trie_, spans);
  if (normalizer) {
    for (auto& span : spans) {
      if (span.id) continue;
      size_t lead = span.at_start ? utf8::char_len(static_cast<unsigned char>(span.text[0])) : 0;
      span.text = normalizer->normalize(std::move(span.text), lead);
      span.at_start = lead > 0;
    }
  }
  split(normalized_trie_, spans);
  std::erase_if(spans, [](const Span& s) { return !s.id && s.text.empty(); });
  return spans;
}

}  // namespace nativelm
