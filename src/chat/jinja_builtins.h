#pragma once
// The filters, tests, global functions and str/dict methods templates can use.
#include <initializer_list>
#include <optional>
#include <string_view>
#include <vector>

#include "chat/jinja_interpreter.h"

namespace nativelm::chat::jinja {

using FilterFn = Value (*)(Interpreter&, const Value&, CallArgs&);
using TestFn = bool (*)(Interpreter&, const Value&, CallArgs&);

FilterFn find_filter(std::string_view name);
TestFn find_test(std::string_view name);
// range, namespace, dict, raise_exception, strftime_now; undefined when unknown.
Value find_global(const std::string& name);
// A bound method such as "abc".upper or d.items; nullopt when there is none.
std::optional<Value> find_method(const Value& obj, const std::string& name);

// Binds call arguments to parameter names the way Python does.
class Params {
 public:
  Params(const CallArgs& args, std::string_view function, std::initializer_list<const char*> names);
  bool has(size_t i) const { return values_[i].has_value(); }
  const Value& get(size_t i) const;
  Value get_or(size_t i, Value fallback) const { return has(i) ? *values_[i] : std::move(fallback); }
  std::optional<std::string> string_or_none(size_t i) const;
  int64_t int_or(size_t i, int64_t fallback) const;

 private:
  std::string function_;
  std::vector<std::optional<Value>> values_;
  std::vector<const char*> names_;
};

}  // namespace nativelm::chat::jinja
