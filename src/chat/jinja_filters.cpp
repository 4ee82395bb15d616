// jinja2's builtin filters as chat templates use them, with transformers'
// tojson (json.dumps, no HTML escaping) in place of jinja2's own.
#include <algorithm>
#include <cmath>
#include <string_view>
#include <utility>

#include "chat/jinja_builtins.h"
#include "chat/py_json.h"
#include "chat/py_string.h"
#include "util/error.h"

namespace nativelm::chat::jinja {
namespace {

std::vector<Value> items_of(Interpreter& in, const Value& v) {
  if (v.is_list()) return v.as_list()->items;
  if (v.is_undefined()) return {};
  if (v.is_dict() || v.is_string()) {
    // Iterating a dict yields keys, a string its characters.
    CallArgs none;
    return in.apply_filter("list", v, none).as_list()->items;
  }
  fail("'{}' object is not iterable", v.type_name());
}

std::string text_of(const Value& v) { return v.str(); }

Value f_trim(Interpreter&, const Value& v, CallArgs& a) {
  Params p(a, "trim", {"chars"});
  return Value(py::strip(text_of(v), p.string_or_none(0), true, true));
}
Value f_upper(Interpreter&, const Value& v, CallArgs&) { return Value(py::upper(text_of(v))); }
Value f_lower(Interpreter&, const Value& v, CallArgs&) { return Value(py::lower(text_of(v))); }
Value f_capitalize(Interpreter&, const Value& v, CallArgs&) { return Value(py::capitalize(text_of(v))); }

// jinja2's title: capitalise each word, words split at whitespace and brackets.
Value f_title(Interpreter&, const Value& v, CallArgs&) {
  std::string out;
  bool word_start = true;
  for (char32_t c : py::decode(text_of(v))) {
    std::string ch;
    py::append_utf8(ch, c);
    out += word_start ? py::upper(ch) : py::lower(ch);
    word_start = py::is_space(c) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<';
  }
  return Value(std::move(out));
}

Value f_length(Interpreter&, const Value& v, CallArgs&) {
  switch (v.kind()) {
    case Value::Kind::String: return Value(static_cast<int64_t>(py::length(v.as_string())));
    case Value::Kind::List: return Value(static_cast<int64_t>(v.as_list()->items.size()));
    case Value::Kind::Dict: return Value(static_cast<int64_t>(v.as_dict()->items.size()));
    case Value::Kind::Undefined: return Value(0);
    default: fail("object of type '{}' has no len()", v.type_name());
  }
}

Value f_tojson(Interpreter& in, const Value& v, CallArgs& a) {
  Params p(a, "tojson", {"ensure_ascii", "indent", "separators", "sort_keys"});
  py::DumpsOptions o;
  o.ensure_ascii = p.get_or(0, Value(false)).truthy();
  o.sort_keys = p.get_or(3, Value(false)).truthy();
  if (p.has(1) && !p.get(1).is_none()) {
    const Value& ind = p.get(1);
    if (ind.is_string()) o.indent = ind.as_string();
    else o.indent = std::string(static_cast<size_t>(std::clamp<int64_t>(ind.to_int(), 0, 64)), ' ');
    o.item_separator = ",";
  }
  if (p.has(2) && !p.get(2).is_none()) {
    const Value& sep = p.get(2);
    if (!sep.is_list() || sep.as_list()->items.size() != 2 || !sep.as_list()->items[0].is_string() ||
        !sep.as_list()->items[1].is_string())
      fail("tojson(): separators must be a pair of strings");
    o.item_separator = sep.as_list()->items[0].as_string();
    o.key_separator = sep.as_list()->items[1].as_string();
  }
  std::string out = py::json_dumps(v, o);
  in.check_size(out.size());
  return Value(std::move(out));
}

// Follows a dotted attribute path ("function.name", "0") as jinja2's attrgetter.
Value attribute_of(Interpreter& in, const Value& item, const std::string& path) {
  Value cur = item;
  for (const auto& part : py::split(path, std::string("."))) {
    bool digits = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    cur = in.get_item(cur, digits && part.size() < 18 ? Value(static_cast<int64_t>(std::stoll(part))) : Value(part));
  }
  return cur;
}

Value f_join(Interpreter& in, const Value& v, CallArgs& a) {
  Params p(a, "join", {"d", "attribute"});
  std::string sep = p.has(0) ? p.get(0).str() : "";
  std::string out;
  bool first = true;
  for (const auto& item : items_of(in, v)) {
    if (!first) out += sep;
    first = false;
    out += p.has(1) ? attribute_of(in, item, p.get(1).str()).str() : item.str();
    in.check_size(out.size());
  }
  return Value(std::move(out));
}

Value f_default(Interpreter&, const Value& v, CallArgs& a) {
  Params p(a, "default", {"default_value", "boolean"});
  bool use_default = v.is_undefined() || (p.get_or(1, Value(false)).truthy() && !v.truthy());
  return use_default ? p.get_or(0, Value(std::string())) : v;
}

Value f_first(Interpreter& in, const Value& v, CallArgs&) {
  auto items = items_of(in, v);
  return items.empty() ? Value::undefined("No first item, sequence was empty.") : items.front();
}

Value f_last(Interpreter& in, const Value& v, CallArgs&) {
  auto items = items_of(in, v);
  return items.empty() ? Value::undefined("No last item, sequence was empty.") : items.back();
}

Value f_replace(Interpreter& in, const Value& v, CallArgs& a) {
  Params p(a, "replace", {"old", "new", "count"});
  std::string out = py::replace(text_of(v), p.get(0).str(), p.get(1).str(), p.int_or(2, -1));
  in.check_size(out.size());
  return Value(std::move(out));
}

Value f_items(Interpreter&, const Value& v, CallArgs&) {
  if (v.is_undefined()) return Value::list();
  if (!v.is_dict()) fail("items(): can only get item pairs from a mapping, not {}", v.type_name());
  std::vector<Value> out;
  for (const auto& [k, x] : v.as_dict()->items) out.push_back(Value::list({Value(k), x}, true));
  return Value::list(std::move(out));
}

Value f_list(Interpreter&, const Value& v, CallArgs&) {
  if (v.is_list()) return Value::list(v.as_list()->items);
  if (v.is_dict()) {
    std::vector<Value> keys;
    for (const auto& kv : v.as_dict()->items) keys.emplace_back(kv.first);
    return Value::list(std::move(keys));
  }
  if (v.is_string()) {
    std::vector<Value> chars;
    for (char32_t c : py::decode(v.as_string())) chars.emplace_back(py::encode({c}));
    return Value::list(std::move(chars));
  }
  if (v.is_undefined()) return Value::list();
  fail("'{}' object is not iterable", v.type_name());
}

Value f_string(Interpreter&, const Value& v, CallArgs&) { return Value(v.str()); }
Value f_safe(Interpreter&, const Value& v, CallArgs&) { return v.is_string() ? v : Value(v.str()); }

std::optional<int64_t> parse_int(std::string s, int base) {
  s = py::strip(s, std::nullopt, true, true);
  std::string digits;
  for (char c : s)
    if (c != '_') digits += c;
  if (digits.empty()) return std::nullopt;
  size_t used = 0;
  try {
    long long v = std::stoll(digits, &used, base);
    if (used != digits.size()) return std::nullopt;
    return v;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::optional<double> parse_float(const std::string& s) {
  std::string t = py::strip(s, std::nullopt, true, true);
  if (t.empty()) return std::nullopt;
  try {
    size_t used = 0;
    double d = std::stod(t, &used);
    if (used != t.size()) return std::nullopt;
    return d;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

Value f_int(Interpreter&, const Value& v, CallArgs& a) {
  Params p(a, "int", {"default", "base"});
  Value fallback = p.get_or(0, Value(0));
  if (v.is_int() || v.is_bool()) return Value(v.to_int());
  if (v.is_float()) {
    double d = v.as_float();
    if (!std::isfinite(d) || std::fabs(d) >= 9.2e18) return fallback;
    return Value(static_cast<int64_t>(d));
  }
  if (v.is_string()) {
    int base = static_cast<int>(p.int_or(1, 10));
    if (base < 2 || base > 36) fail("int(): base must be between 2 and 36");
    if (auto i = parse_int(v.as_string(), base)) return Value(*i);
    if (auto d = parse_float(v.as_string()); d && std::isfinite(*d) && std::fabs(*d) < 9.2e18)
      return Value(static_cast<int64_t>(*d));
  }
  return fallback;
}

Value f_float(Interpreter&, const Value& v, CallArgs& a) {
  Params p(a, "float", {"default"});
  if (v.is_number()) return Value(v.to_double());
  if (v.is_string()) {
    if (auto d = parse_float(v.as_string())) return Value(*d);
  }
  return p.get_or(0, Value(0.0));
}

Value f_indent(Interpreter& in, const Value& v, CallArgs& a) {
  Params p(a, "indent", {"width", "first", "blank"});
  std::string pad;
  if (p.has(0) && p.get(0).is_string()) pad = p.get(0).as_string();
  else pad = std::string(static_cast<size_t>(std::clamp<int64_t>(p.int_or(0, 4), 0, 256)), ' ');
  bool first = p.get_or(1, Value(false)).truthy();
  bool blank = p.get_or(2, Value(false)).truthy();
  auto lines = py::splitlines(text_of(v) + "\n");  // jinja2 appends "\n" before splitting too
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) {
      out += "\n";
      if (blank || !lines[i].empty()) out += pad;
    }
    out += lines[i];
    in.check_size(out.size());
  }
  if (first) out = pad + out;
  return Value(std::move(out));
}

// select / reject / selectattr / rejectattr share this: which items pass a test.
Value select_items(Interpreter& in, const Value& v, CallArgs& a, bool by_attr, bool keep) {
  std::vector<Value> pos = a.positional;
  std::string attr;
  if (by_attr) {
    if (pos.empty()) fail("selectattr/rejectattr need an attribute name");
    attr = pos.front().str();
    pos.erase(pos.begin());
  }
  std::string test;
  if (!pos.empty()) {
    test = pos.front().str();
    pos.erase(pos.begin());
  }
  std::vector<Value> out;
  for (const auto& item : items_of(in, v)) {
    Value x = by_attr ? attribute_of(in, item, attr) : item;
    bool pass;
    if (test.empty()) {
      pass = x.truthy();
    } else {
      CallArgs targs{pos, a.keyword};
      pass = in.apply_test(test, x, targs);
    }
    if (pass == keep) out.push_back(item);
  }
  return Value::list(std::move(out));
}

Value f_select(Interpreter& in, const Value& v, CallArgs& a) { return select_items(in, v, a, false, true); }
Value f_reject(Interpreter& in, const Value& v, CallArgs& a) { return select_items(in, v, a, false, false); }
Value f_selectattr(Interpreter& in, const Value& v, CallArgs& a) { return select_items(in, v, a, true, true); }
Value f_rejectattr(Interpreter& in, const Value& v, CallArgs& a) { return select_items(in, v, a, true, false); }

Value f_map(Interpreter& in, const Value& v, CallArgs& a) {
  std::optional<std::string> attr;
  Value fallback;
  bool has_default = false;
  CallArgs rest;
  for (const auto& [k, x] : a.keyword) {
    if (k == "attribute") attr = x.str();
    else if (k == "default") {
      fallback = x;
      has_default = true;
    } else {
      rest.keyword.emplace_back(k, x);
    }
  }
  std::string filter;
  if (!attr) {
    if (a.positional.empty()) fail("map() needs a filter name or attribute=");
    filter = a.positional.front().str();
    rest.positional.assign(a.positional.begin() + 1, a.positional.end());
  }
  std::vector<Value> out;
  for (const auto& item : items_of(in, v)) {
    if (attr) {
      Value x = attribute_of(in, item, *attr);
      out.push_back(x.is_undefined() && has_default ? fallback : x);
    } else {
      CallArgs fa = rest;
      out.push_back(in.apply_filter(filter, item, fa));
    }
  }
  return Value::list(std::move(out));
}

Value f_reverse(Interpreter& in, const Value& v, CallArgs&) {
  if (v.is_string()) {
    auto cps = py::decode(v.as_string());
    std::reverse(cps.begin(), cps.end());
    return Value(py::encode(cps));
  }
  auto items = items_of(in, v);
  std::reverse(items.begin(), items.end());
  return Value::list(std::move(items));
}

// Sort keys as jinja2 builds them: strings compare case-insensitively by default.
Value sort_key(Interpreter& in, const Value& item, const std::optional<std::string>& attr, bool case_sensitive) {
  Value k = attr ? attribute_of(in, item, *attr) : item;
  if (!case_sensitive && k.is_string()) return Value(py::lower(k.as_string()));
  return k;
}

Value f_sort(Interpreter& in, const Value& v, CallArgs& a) {
  Params p(a, "sort", {"reverse", "case_sensitive", "attribute"});
  bool reverse = p.get_or(0, Value(false)).truthy();
  bool cs = p.get_or(1, Value(false)).truthy();
  auto attr = p.string_or_none(2);
  std::vector<std::pair<Value, Value>> keyed;
  for (const auto& item : items_of(in, v)) keyed.emplace_back(sort_key(in, item, attr, cs), item);
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
    return reverse ? less_than(y.first, x.first) : less_than(x.first, y.first);
  });
  std::vector<Value> out;
  for (auto& kv : keyed) out.push_back(std::move(kv.second));
  return Value::list(std::move(out));
}

Value f_dictsort(Interpreter& in, const Value& v, CallArgs& a) {
  Params p(a, "dictsort", {"case_sensitive", "by", "reverse"});
  CallArgs none;
  auto pairs = f_items(in, v, none).as_list()->items;
  bool cs = p.get_or(0, Value(false)).truthy();
  size_t pos = p.has(1) && p.get(1).str() == "value" ? 1 : 0;
  bool reverse = p.get_or(2, Value(false)).truthy();
  auto key = [&](const Value& pair) {
    const Value& k = pair.as_list()->items[pos];
    return !cs && k.is_string() ? Value(py::lower(k.as_string())) : k;
  };
  std::stable_sort(pairs.begin(), pairs.end(), [&](const Value& x, const Value& y) {
    return reverse ? less_than(key(y), key(x)) : less_than(key(x), key(y));
  });
  return Value::list(std::move(pairs));
}

Value f_unique(Interpreter& in, const Value& v, CallArgs& a) {
  Params p(a, "unique", {"case_sensitive", "attribute"});
  bool cs = p.get_or(0, Value(false)).truthy();
  auto attr = p.string_or_none(1);
  std::vector<Value> out, seen;
  for (const auto& item : items_of(in, v)) {
    Value k = sort_key(in, item, attr, cs);
    if (std::none_of(seen.begin(), seen.end(), [&](const Value& s) { return equals(s, k); })) {
      seen.push_back(k);
      out.push_back(item);
    }
  }
  return Value::list(std::move(out));
}

Value f_sum(Interpreter& in, const Value& v, CallArgs& a) {
  Params p(a, "sum", {"attribute", "start"});
  Value total = p.get_or(1, Value(0));
  auto attr = p.string_or_none(0);
  for (const auto& item : items_of(in, v))
    total = binary_op(in, "+", total, attr ? attribute_of(in, item, *attr) : item);
  return total;
}

Value extreme(Interpreter& in, const Value& v, CallArgs& a, bool want_max) {
  Params p(a, want_max ? "max" : "min", {"case_sensitive", "attribute"});
  bool cs = p.get_or(0, Value(false)).truthy();
  auto attr = p.string_or_none(1);
  auto items = items_of(in, v);
  if (items.empty()) return Value::undefined(fmt::format("No aggregated item, sequence was empty."));
  size_t best = 0;
  for (size_t i = 1; i < items.size(); ++i) {
    Value x = sort_key(in, items[i], attr, cs), b = sort_key(in, items[best], attr, cs);
    if (want_max ? less_than(b, x) : less_than(x, b)) best = i;
  }
  return items[best];
}

Value f_max(Interpreter& in, const Value& v, CallArgs& a) { return extreme(in, v, a, true); }
Value f_min(Interpreter& in, const Value& v, CallArgs& a) { return extreme(in, v, a, false); }

Value f_abs(Interpreter&, const Value& v, CallArgs&) {
  if (v.is_float()) return Value(std::fabs(v.as_float()));
  int64_t i = v.to_int();
  if (i == INT64_MIN) fail("integer overflow");
  return Value(i < 0 ? -i : i);
}

Value f_round(Interpreter&, const Value& v, CallArgs& a) {
  Params p(a, "round", {"precision", "method"});
  double scale = std::pow(10.0, static_cast<double>(std::clamp<int64_t>(p.int_or(0, 0), -300, 300)));
  std::string method = p.has(1) ? p.get(1).str() : "common";
  double x = v.to_double() * scale;
  double r = method == "ceil" ? std::ceil(x) : method == "floor" ? std::floor(x) : std::nearbyint(x);
  return Value(r / scale);
}

Value f_wordcount(Interpreter&, const Value& v, CallArgs&) {
  return Value(static_cast<int64_t>(py::split(text_of(v), std::nullopt).size()));
}

Value f_center(Interpreter&, const Value& v, CallArgs& a) {
  Params p(a, "center", {"width"});
  std::string s = text_of(v);
  auto width = static_cast<size_t>(std::clamp<int64_t>(p.int_or(0, 80), 0, 4096));
  size_t len = py::length(s);
  if (len >= width) return Value(s);
  size_t total = width - len, left = total / 2 + (total & width & 1);
  return Value(std::string(left, ' ') + s + std::string(total - left, ' '));
}

Value f_escape(Interpreter&, const Value& v, CallArgs&) {
  std::string out;
  for (char c : text_of(v)) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return Value(std::move(out));
}

Value f_batch(Interpreter& in, const Value& v, CallArgs& a) {
  Params p(a, "batch", {"linecount", "fill_with"});
  int64_t n = p.int_or(0, 1);
  if (n <= 0) fail("batch(): linecount must be positive");
  std::vector<Value> out, cur;
  for (const auto& item : items_of(in, v)) {
    cur.push_back(item);
    if (static_cast<int64_t>(cur.size()) == n) out.push_back(Value::list(std::exchange(cur, {})));
  }
  if (!cur.empty()) {
    if (p.has(1))
      while (static_cast<int64_t>(cur.size()) < n) cur.push_back(p.get(1));
    out.push_back(Value::list(std::move(cur)));
  }
  return Value::list(std::move(out));
}

Value f_format(Interpreter& in, const Value& v, CallArgs& a) {
  Value args = a.positional.size() == 1 ? a.positional[0] : Value::list(a.positional, true);
  return binary_op(in, "%", Value(text_of(v)), args);
}

const std::pair<std::string_view, FilterFn> kFilters[] = {
    {"abs", f_abs}, {"batch", f_batch}, {"capitalize", f_capitalize}, {"center", f_center},
    {"count", f_length}, {"d", f_default}, {"default", f_default}, {"dictsort", f_dictsort},
    {"e", f_escape}, {"escape", f_escape}, {"first", f_first}, {"float", f_float},
    {"format", f_format}, {"indent", f_indent}, {"int", f_int}, {"items", f_items},
    {"join", f_join}, {"last", f_last}, {"length", f_length}, {"list", f_list},
    {"lower", f_lower}, {"map", f_map}, {"max", f_max}, {"min", f_min}, {"reject", f_reject},
    {"rejectattr", f_rejectattr}, {"replace", f_replace}, {"reverse", f_reverse},
    {"round", f_round}, {"safe", f_safe}, {"select", f_select}, {"selectattr", f_selectattr},
    {"sort", f_sort}, {"string", f_string}, {"sum", f_sum}, {"title", f_title},
    {"tojson", f_tojson}, {"trim", f_trim}, {"unique", f_unique}, {"upper", f_upper},
    {"wordcount", f_wordcount},
};

}  // namespace

FilterFn find_filter(std::string_view name) {
  for (const auto& [n, fn] : kFilters)
    if (n == name) return fn;
  return nullptr;
}

}  // namespace nativelm::chat::jinja
