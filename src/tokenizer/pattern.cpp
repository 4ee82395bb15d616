#include "tokenizer/pattern.h"

#include <nlohmann/json.hpp>

#include "util/error.h"

namespace nativelm {

Pattern Pattern::from_json(const nlohmann::json& j) {
  Pattern p;
  if (j.is_object() && j.contains("String")) {
    p.literal_ = j.at("String").get<std::string>();
  } else if (j.is_object() && j.contains("Regex")) {
    p.regex_.emplace(j.at("Regex").get<std::string>());
  } else {
    fail("tokenizer pattern must be {{\"String\": ...}} or {{\"Regex\": ...}}, got {}", j.dump());
  }
  return p;
}

std::vector<std::pair<size_t, size_t>> Pattern::find_all(std::string_view text) const {
  if (regex_) return regex_->find_all(text);
  std::vector<std::pair<size_t, size_t>> out;
  if (literal_.empty()) return out;
  for (size_t pos = text.find(literal_); pos != std::string_view::npos; pos = text.find(literal_, pos)) {
    out.emplace_back(pos, pos + literal_.size());
    pos += literal_.size();
  }
  return out;
}

std::string Pattern::replace_all(std::string_view text, std::string_view with) const {
  std::string out;
  size_t prev = 0;
  for (auto [begin, end] : find_all(text)) {
    out.append(text.substr(prev, begin - prev));
    out.append(with);
    prev = end;
  }
  out.append(text.substr(prev));
  return out;
}

}  // namespace nativelm
