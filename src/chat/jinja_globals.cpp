// Global functions (range, namespace, dict, raise_exception, strftime_now),
// str/dict methods, and argument binding shared by all builtins.
#include <ctime>

#include "chat/jinja_builtins.h"
#include "chat/py_string.h"
#include "util/error.h"

namespace nativelm::chat::jinja {

Params::Params(const CallArgs& args, std::string_view function,
               std::initializer_list<const char*> names)
    : function_(function), values_(names.size()), names_(names) {
  if (args.positional.size() > names.size())
    fail("{}() takes at most {} arguments ({} given)", function_, names.size(), args.positional.size());
  for (size_t i = 0; i < args.positional.size(); ++i) values_[i] = args.positional[i];
  for (const auto& [k, v] : args.keyword) {
    size_t i = 0;
    while (i < names_.size() && k != names_[i]) ++i;
    if (i == names_.size()) fail("{}() got an unexpected keyword argument '{}'", function_, k);
    values_[i] = v;
  }
}

const Value& Params::get(size_t i) const {
  if (!values_[i]) fail("{}() missing required argument '{}'", function_, names_[i]);
  return *values_[i];
}

std::optional<std::string> Params::string_or_none(size_t i) const {
  if (!has(i) || get(i).is_none()) return std::nullopt;
  if (!get(i).is_string()) fail("{}(): '{}' must be a string", function_, names_[i]);
  return get(i).as_string();
}

int64_t Params::int_or(size_t i, int64_t fallback) const {
  if (!has(i) || get(i).is_none()) return fallback;
  if (!get(i).is_int() && !get(i).is_bool()) fail("{}(): '{}' must be an integer", function_, names_[i]);
  return get(i).to_int();
}

namespace {

Value range_fn(Interpreter& in, CallArgs& args) {
  std::vector<int64_t> n;
  for (const auto& v : args.positional) {
    if (!v.is_int() && !v.is_bool()) fail("range() arguments must be integers");
    n.push_back(v.to_int());
  }
  if (n.empty() || n.size() > 3 || !args.keyword.empty()) fail("range() takes 1 to 3 integer arguments");
  int64_t start = n.size() == 1 ? 0 : n[0], stop = n.size() == 1 ? n[0] : n[1];
  int64_t step = n.size() == 3 ? n[2] : 1;
  if (step == 0) fail("range() arg 3 must not be zero");
  std::vector<Value> out;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
    in.check_size((out.size() + 1) * sizeof(Value));
    out.emplace_back(i);
    if ((step > 0 && i > INT64_MAX - step) || (step < 0 && i < INT64_MIN - step)) break;
  }
  return Value::list(std::move(out));
}

Value dict_from(CallArgs& args, bool is_namespace) {
  auto d = std::make_shared<DictData>();
  d->is_namespace = is_namespace;
  for (const auto& v : args.positional) {
    if (!v.is_dict()) fail("{}() positional arguments must be mappings", is_namespace ? "namespace" : "dict");
    for (const auto& [k, x] : v.as_dict()->items) d->set(k, x);
  }
  for (const auto& [k, v] : args.keyword) d->set(k, v);
  return Value(std::move(d));
}

Value strftime_now(Interpreter& in, CallArgs& args) {
  Params p(args, "strftime_now", {"format"});
  if (!p.get(0).is_string()) fail("strftime_now() format must be a string");
  auto now = in.options().now.value_or(std::chrono::system_clock::now());
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  localtime_r(&t, &tm);
  const std::string& f = p.get(0).as_string();
  std::string buf(f.size() * 8 + 64, '\0');
  size_t n = f.empty() ? 0 : std::strftime(buf.data(), buf.size(), f.c_str(), &tm);
  buf.resize(n);
  return Value(std::move(buf));
}

}  // namespace

Value find_global(const std::string& name) {
  static const Value range = Value::function("range", range_fn);
  static const Value ns = Value::function("namespace", [](Interpreter&, CallArgs& a) { return dict_from(a, true); });
  static const Value dict = Value::function("dict", [](Interpreter&, CallArgs& a) { return dict_from(a, false); });
  static const Value raise = Value::function("raise_exception", [](Interpreter&, CallArgs& a) -> Value {
    Params p(a, "raise_exception", {"message"});
    throw TemplateRaised{p.get(0).str()};
  });
  static const Value strftime = Value::function("strftime_now", strftime_now);
  if (name == "range") return range;
  if (name == "namespace") return ns;
  if (name == "dict") return dict;
  if (name == "raise_exception") return raise;
  if (name == "strftime_now") return strftime;
  return Value();
}

}  // namespace nativelm::chat::jinja
