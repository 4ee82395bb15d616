// Python str and dict methods that chat templates call (content.strip(),
// message.get('x'), tools.items() ...). Mutating methods are absent, as in
// transformers' ImmutableSandboxedEnvironment.
#include "chat/jinja_builtins.h"
#include "chat/py_string.h"
#include "util/error.h"

namespace nativelm::chat::jinja {
namespace {


std::string arg_string(const Value& v, const char* fn) {
  if (!v.is_string()) fail("{}() argument must be str, not {}", fn, v.type_name());
  return v.as_string();
}

Value strip_method(const Value& self, CallArgs& args, const char* name, bool l, bool r) {
  Params p(args, name, {"chars"});
  return Value(py::strip(self.as_string(), p.string_or_none(0), l, r));
}

Value list_of(const std::vector<std::string>& parts) {
  std::vector<Value> out(parts.begin(), parts.end());
  return Value::list(std::move(out));
}

// startswith/endswith accept a str or a tuple of them.
bool affix_match(const Value& self, const Value& arg, bool prefix) {
  auto one = [&](const Value& a) {
    const std::string& s = arg_string(a, prefix ? "startswith" : "endswith");
    return prefix ? py::starts_with(self.as_string(), s) : py::ends_with(self.as_string(), s);
  };
  if (arg.is_list()) {
    for (const auto& a : arg.as_list()->items)
      if (one(a)) return true;
    return false;
  }
  return one(arg);
}

template <typename Pred>
bool all_chars(const std::string& s, Pred pred) {
  if (s.empty()) return false;
  for (char32_t c : py::decode(s))
    if (!pred(c)) return false;
  return true;
}

Value split_method(const Value& self, CallArgs& args, bool right) {
  Params p(args, right ? "rsplit" : "split", {"sep", "maxsplit"});
  auto sep = p.string_or_none(0);
  if (sep && sep->empty()) fail("empty separator");
  int64_t maxsplit = p.int_or(1, -1);
  return list_of(right ? py::rsplit(self.as_string(), sep, maxsplit) : py::split(self.as_string(), sep, maxsplit));
}

Value find_method_impl(const Value& self, CallArgs& args, bool right) {
  Params p(args, right ? "rfind" : "find", {"sub"});
  std::string sub = arg_string(p.get(0), "find");
  const std::string& s = self.as_string();
  size_t at = right ? s.rfind(sub) : s.find(sub);
  if (at == std::string::npos) return Value(-1);
  return Value(static_cast<int64_t>(py::length(std::string_view(s).substr(0, at))));
}

// str.format with positional {} / {0} and keyword {name} fields.
Value format_method(Interpreter& in, const Value& self, CallArgs& args) {
  const std::string& f = self.as_string();
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < f.size(); ++i) {
    char c = f[i];
    if ((c == '{' || c == '}') && i + 1 < f.size() && f[i + 1] == c) {
      out += c;
      ++i;
      continue;
    }
    if (c != '{') {
      out += c;
      continue;
    }
    size_t close = f.find('}', i);
    if (close == std::string::npos) fail("Single '{{' encountered in format string");
    std::string field = f.substr(i + 1, close - i - 1);
    const Value* v = nullptr;
    if (field.empty() || std::isdigit(static_cast<unsigned char>(field[0]))) {
      size_t idx = field.empty() ? auto_index++ : std::stoul(field);
      if (idx >= args.positional.size()) fail("Replacement index {} out of range", idx);
      v = &args.positional[idx];
    } else {
      for (const auto& [k, x] : args.keyword)
        if (k == field) v = &x;
      if (!v) fail("format: missing keyword '{}'", field);
    }
    out += v->str();
    in.check_size(out.size());
    i = close;
  }
  return Value(std::move(out));
}

Value str_method(Interpreter& in, const std::string& name, const Value& self, CallArgs& args) {
  const std::string& s = self.as_string();
  if (name == "strip") return strip_method(self, args, "strip", true, true);
  if (name == "lstrip") return strip_method(self, args, "lstrip", true, false);
  if (name == "rstrip") return strip_method(self, args, "rstrip", false, true);
  if (name == "split") return split_method(self, args, false);
  if (name == "rsplit") return split_method(self, args, true);
  if (name == "splitlines") return list_of(py::splitlines(s));
  if (name == "startswith" || name == "endswith") {
    Params p(args, name, {"prefix"});
    return Value(affix_match(self, p.get(0), name == "startswith"));
  }
  if (name == "upper") return Value(py::upper(s));
  if (name == "lower") return Value(py::lower(s));
  if (name == "title") return Value(py::title(s));
  if (name == "capitalize") return Value(py::capitalize(s));
  if (name == "replace") {
    Params p(args, "replace", {"old", "new", "count"});
    std::string out = py::replace(s, arg_string(p.get(0), "replace"), arg_string(p.get(1), "replace"), p.int_or(2, -1));
    in.check_size(out.size());
    return Value(std::move(out));
  }
  if (name == "find") return find_method_impl(self, args, false);
  if (name == "rfind") return find_method_impl(self, args, true);
  if (name == "count") {
    Params p(args, "count", {"sub"});
    return Value(py::count(s, arg_string(p.get(0), "count")));
  }
  if (name == "join") {
    Params p(args, "join", {"iterable"});
    std::string out;
    bool first = true;
    for (const auto& item : p.get(0).is_list() ? p.get(0).as_list()->items : std::vector<Value>{}) {
      if (!first) out += s;
      first = false;
      out += arg_string(item, "join");
      in.check_size(out.size());
    }
    return Value(std::move(out));
  }
  if (name == "format") return format_method(in, self, args);
  if (name == "isdigit") return Value(all_chars(s, [](char32_t c) { return c >= '0' && c <= '9'; }));
  if (name == "isspace") return Value(all_chars(s, py::is_space));
  if (name == "isalpha") return Value(all_chars(s, [](char32_t c) { return c < 0x80 ? std::isalpha(static_cast<int>(c)) != 0 : true; }));
  if (name == "isalnum") return Value(all_chars(s, [](char32_t c) { return c < 0x80 ? std::isalnum(static_cast<int>(c)) != 0 : true; }));
  if (name == "islower") return Value(py::lower(s) == s && py::upper(s) != s);
  if (name == "isupper") return Value(py::upper(s) == s && py::lower(s) != s);
  fail("str has no method '{}'", name);
}

Value dict_method(const std::string& name, const Value& self, CallArgs& args) {
  const auto& d = *self.as_dict();
  if (name == "items") {
    std::vector<Value> out;
    out.reserve(d.items.size());
    for (const auto& [k, v] : d.items) out.push_back(Value::list({Value(k), v}, true));
    return Value::list(std::move(out));
  }
  if (name == "keys" || name == "values") {
    std::vector<Value> out;
    for (const auto& [k, v] : d.items) out.push_back(name == "keys" ? Value(k) : v);
    return Value::list(std::move(out));
  }
  Params p(args, "get", {"key", "default"});
  const Value& key = p.get(0);
  if (key.is_string()) {
    if (const Value* v = d.find(key.as_string())) return *v;
  }
  return p.get_or(1, Value::none());
}

const char* const kStrMethods[] = {"strip", "lstrip", "rstrip", "split", "rsplit", "splitlines",
                                   "startswith", "endswith", "upper", "lower", "title",
                                   "capitalize", "replace", "find", "rfind", "count", "join",
                                   "format", "isdigit", "isspace", "isalpha", "isalnum",
                                   "islower", "isupper"};
const char* const kDictMethods[] = {"items", "keys", "values", "get"};

template <size_t N>
bool listed(const char* const (&names)[N], const std::string& name) {
  for (const char* n : names)
    if (name == n) return true;
  return false;
}

}  // namespace

std::optional<Value> find_method(const Value& obj, const std::string& name) {
  if (obj.is_string() && listed(kStrMethods, name)) {
    return Value::function(name, [obj, name](Interpreter& in, CallArgs& args) {
      return str_method(in, name, obj, args);
    });
  }
  if (obj.is_dict() && !obj.as_dict()->is_namespace && listed(kDictMethods, name)) {
    return Value::function(name, [obj, name](Interpreter&, CallArgs& args) {
      if (name != "get" && (!args.positional.empty() || !args.keyword.empty()))
        fail("{}() takes no arguments", name);
      return dict_method(name, obj, args);
    });
  }
  return std::nullopt;
}

}  // namespace nativelm::chat::jinja
