#pragma once
// Python's json.dumps, which transformers installs as the `tojson` filter (in
// place of jinja2's HTML-escaping one). Templates print tool schemas with it, so
// spacing, key order and escapes must match it exactly.
#include <optional>
#include <string>

#include "chat/jinja_value.h"

namespace nativelm::chat::py {

struct DumpsOptions {
  std::optional<std::string> indent;  // None, or the text for one level
  std::string item_separator = ", ";
  std::string key_separator = ": ";
  bool ensure_ascii = false;
  bool sort_keys = false;
};

std::string json_dumps(const jinja::Value& value, const DumpsOptions& options);
void append_json_string(std::string& out, std::string_view s, bool ensure_ascii);

}  // namespace nativelm::chat::py
