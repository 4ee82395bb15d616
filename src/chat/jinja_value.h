#pragma once
// The values a Jinja template computes with. They follow Python semantics
// (what transformers' jinja2 sees): dicts keep insertion order, `{{ 1.0 }}`
// prints "1.0", None/True/False print capitalised, lists print as Python reprs.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace nativelm::chat::jinja {

class Value;
class Interpreter;

struct ListData {
  std::vector<Value> items;
  bool is_tuple = false;  // only changes how it prints: (a, b) instead of [a, b]
};

struct DictData {
  std::vector<std::pair<std::string, Value>> items;
  bool is_namespace = false;  // namespace() objects accept attribute assignment

  const Value* find(std::string_view key) const;
  void set(const std::string& key, Value value);
};

struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

struct Function {
  std::string name;
  std::function<Value(Interpreter&, CallArgs&)> call;
};

struct UndefinedData {
  // What jinja2 would say if the undefined value is used: "'x' is undefined".
  std::shared_ptr<const std::string> hint;
};
struct NoneData {};

using ListPtr = std::shared_ptr<ListData>;
using DictPtr = std::shared_ptr<DictData>;
using FunctionPtr = std::shared_ptr<const Function>;

class Value {
 public:
  enum class Kind : uint8_t { Undefined, None, Bool, Int, Float, String, List, Dict, Function };

  Value() = default;
  Value(NoneData) : data_(NoneData{}) {}
  Value(bool b) : data_(b) {}
  Value(int64_t i) : data_(i) {}
  Value(int i) : data_(static_cast<int64_t>(i)) {}
  Value(double f) : data_(f) {}
  Value(std::string s) : data_(std::move(s)) {}
  Value(const char* s) : data_(std::string(s)) {}
  Value(ListPtr l) : data_(std::move(l)) {}
  Value(DictPtr d) : data_(std::move(d)) {}
  Value(FunctionPtr f) : data_(std::move(f)) {}

  static Value none() { return Value(NoneData{}); }
  static Value undefined(std::string hint);
  static Value list(std::vector<Value> items = {}, bool tuple = false);
  static Value dict();
  static Value function(std::string name, std::function<Value(Interpreter&, CallArgs&)> fn);

  Kind kind() const { return static_cast<Kind>(data_.index()); }
  bool is_undefined() const { return kind() == Kind::Undefined; }
  bool is_none() const { return kind() == Kind::None; }
  bool is_bool() const { return kind() == Kind::Bool; }
  bool is_int() const { return kind() == Kind::Int; }
  bool is_float() const { return kind() == Kind::Float; }
  bool is_number() const { return is_int() || is_float() || is_bool(); }
  bool is_string() const { return kind() == Kind::String; }
  bool is_list() const { return kind() == Kind::List; }
  bool is_dict() const { return kind() == Kind::Dict; }
  bool is_function() const { return kind() == Kind::Function; }

  bool as_bool() const { return std::get<bool>(data_); }
  int64_t as_int() const { return std::get<int64_t>(data_); }
  double as_float() const { return std::get<double>(data_); }
  const std::string& as_string() const { return std::get<std::string>(data_); }
  const ListPtr& as_list() const { return std::get<ListPtr>(data_); }
  const DictPtr& as_dict() const { return std::get<DictPtr>(data_); }
  const FunctionPtr& as_function() const { return std::get<FunctionPtr>(data_); }
  const std::string& undefined_hint() const;

  // Numbers as Python sees them (bool is an int).
  double to_double() const;
  int64_t to_int() const;

  bool truthy() const;
  // str(x) in Python; undefined prints as "".
  std::string str() const;
  // repr(x) in Python, used for items inside printed lists and dicts.
  std::string repr() const;
  // "dict object", "str object", ...: how jinja2 names a type in errors.
  std::string type_name() const;

  static Value from_json(const nlohmann::ordered_json& j);
  nlohmann::ordered_json to_json() const;

 private:
  std::variant<UndefinedData, NoneData, bool, int64_t, double, std::string, ListPtr, DictPtr,
               FunctionPtr>
      data_;
};

// Python ==.
bool equals(const Value& a, const Value& b);
// Python <; throws nativelm::Error for unorderable types.
bool less_than(const Value& a, const Value& b);
// Python repr of a float ("1.0", "1e+16", "inf").
std::string format_float(double f);

}  // namespace nativelm::chat::jinja
