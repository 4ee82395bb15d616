#include "chat/py_json.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "chat/py_string.h"
#include "util/error.h"

namespace nativelm::chat::py {

using jinja::Value;

void append_json_string(std::string& out, std::string_view s, bool ensure_ascii) {
  out += '"';
  auto escape_cp = [&](char32_t c) {
    if (c >= 0x10000) {  // surrogate pair, as Python writes it
      char32_t v = c - 0x10000;
      out += fmt::format("\\u{:04x}\\u{:04x}", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
    } else {
      out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
    }
  };
  // Python's two-character escapes; nullptr for everything else.
  auto short_escape = [](char32_t c) -> const char* {
    switch (c) {
      case '"': return "\\\"";
      case '\\': return "\\\\";
      case '\n': return "\\n";
      case '\r': return "\\r";
      case '\t': return "\\t";
      case '\b': return "\\b";
      case '\f': return "\\f";
      default: return nullptr;
    }
  };
  if (ensure_ascii) {
    for (char32_t c : decode(s)) {
      if (const char* e = short_escape(c)) out += e;
      else if (c < 0x20 || c > 0x7e) escape_cp(c);
      else out += static_cast<char>(c);
    }
  } else {  // byte-wise: multi-byte UTF-8 passes through untouched
    for (char ch : s) {
      const auto c = static_cast<unsigned char>(ch);
      if (const char* e = short_escape(c)) out += e;
      else if (c < 0x20) out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
      else out += ch;
    }
  }
  out += '"';
}

namespace {

struct Dumper {
  const DumpsOptions& opt;
  std::string out;
  int depth = 0;

  void newline(int level) {
    out += '\n';
    for (int i = 0; i < level; ++i) out += *opt.indent;
  }

  void dump(const Value& v) {
    if (depth > 512) fail("tojson: value nested too deeply");
    switch (v.kind()) {
      case Value::Kind::None: out += "null"; return;
      case Value::Kind::Bool: out += v.as_bool() ? "true" : "false"; return;
      case Value::Kind::Int: out += std::to_string(v.as_int()); return;
      case Value::Kind::Float: {
        double f = v.as_float();
        if (std::isnan(f)) out += "NaN";
        else if (std::isinf(f)) out += f > 0 ? "Infinity" : "-Infinity";
        else out += jinja::format_float(f);
        return;
      }
      case Value::Kind::String: append_json_string(out, v.as_string(), opt.ensure_ascii); return;
      case Value::Kind::List: dump_list(v.as_list()->items); return;
      case Value::Kind::Dict:
        if (v.as_dict()->is_namespace) break;
        dump_dict(*v.as_dict());
        return;
      default: break;
    }
    fail("tojson: Object of type {} is not JSON serializable", v.type_name());
  }

  void dump_list(const std::vector<Value>& items) {
    if (items.empty()) {
      out += "[]";
      return;
    }
    out += '[';
    ++depth;
    for (size_t i = 0; i < items.size(); ++i) {
      if (i) out += opt.item_separator;
      if (opt.indent) newline(depth);
      dump(items[i]);
    }
    --depth;
    if (opt.indent) newline(depth);
    out += ']';
  }

  void dump_dict(const jinja::DictData& d) {
    if (d.items.empty()) {
      out += "{}";
      return;
    }
    std::vector<const std::pair<std::string, Value>*> entries;
    for (const auto& e : d.items) entries.push_back(&e);
    if (opt.sort_keys)
      std::stable_sort(entries.begin(), entries.end(),
                       [](auto* a, auto* b) { return a->first < b->first; });
    out += '{';
    ++depth;
    for (size_t i = 0; i < entries.size(); ++i) {
      if (i) out += opt.item_separator;
      if (opt.indent) newline(depth);
      append_json_string(out, entries[i]->first, opt.ensure_ascii);
      out += opt.key_separator;
      dump(entries[i]->second);
    }
    --depth;
    if (opt.indent) newline(depth);
    out += '}';
  }
};

}  // namespace

std::string json_dumps(const Value& value, const DumpsOptions& options) {
  Dumper d{options, {}, 0};
  d.dump(value);
  return std::move(d.out);
}

}  // namespace nativelm::chat::py
