// Python semantics for operators, indexing and slicing.
#include <algorithm>
#include <cmath>

#include "chat/jinja_builtins.h"
#include "chat/jinja_interpreter.h"
#include "chat/py_string.h"
#include "util/error.h"

namespace nativelm::chat::jinja {
namespace {

[[noreturn]] void unsupported(const std::string& op, const Value& a, const Value& b) {
  fail("unsupported operand type(s) for {}: '{}' and '{}'", op, a.type_name(), b.type_name());
}

template <typename Op>
int64_t checked(Op op, int64_t x, int64_t y) {
  int64_t r = 0;
  if (op(x, y, &r)) fail("integer overflow");
  return r;
}

Value arithmetic(const std::string& op, const Value& a, const Value& b) {
  bool as_float = a.is_float() || b.is_float();
  if (op == "/") {
    double d = b.to_double();
    if (d == 0) fail("division by zero");
    return Value(a.to_double() / d);
  }
  if (as_float) {
    double x = a.to_double(), y = b.to_double();
    if (op == "+") return Value(x + y);
    if (op == "-") return Value(x - y);
    if (op == "*") return Value(x * y);
    if (op == "**") return Value(std::pow(x, y));
    if (y == 0) fail("float division by zero");
    if (op == "//") return Value(std::floor(x / y));
    double m = std::fmod(x, y);
    if (m != 0 && ((m < 0) != (y < 0))) m += y;
    return Value(m);
  }
  int64_t x = a.to_int(), y = b.to_int();
  if (op == "+") return Value(checked([](int64_t p, int64_t q, int64_t* r) { return __builtin_add_overflow(p, q, r); }, x, y));
  if (op == "-") return Value(checked([](int64_t p, int64_t q, int64_t* r) { return __builtin_sub_overflow(p, q, r); }, x, y));
  if (op == "*") return Value(checked([](int64_t p, int64_t q, int64_t* r) { return __builtin_mul_overflow(p, q, r); }, x, y));
  if (op == "**") {
    if (y < 0) return Value(std::pow(static_cast<double>(x), static_cast<double>(y)));
    if (x == -1) return Value(y % 2 ? int64_t{-1} : int64_t{1});
    int64_t result = 1;
    for (int64_t i = 0; i < y; ++i) {
      if (__builtin_mul_overflow(result, x, &result)) fail("integer overflow");
      if (result == 0 || result == 1) break;
    }
    return Value(result);
  }
  if (y == 0) fail("integer division or modulo by zero");
  if (x == INT64_MIN && y == -1) fail("integer overflow");
  int64_t q = x / y, m = x % y;
  if (m != 0 && ((m < 0) != (y < 0))) {  // Python floors toward -inf
    --q;
    m += y;
  }
  return Value(op == "//" ? q : m);
}

Value repeat(Interpreter& in, const Value& seq, int64_t n) {
  if (n <= 0) return seq.is_string() ? Value(std::string()) : Value::list({}, seq.as_list()->is_tuple);
  if (seq.is_string()) {
    in.check_size(seq.as_string().size() * static_cast<uint64_t>(n));
    std::string out;
    for (int64_t i = 0; i < n; ++i) out += seq.as_string();
    return Value(std::move(out));
  }
  const auto& items = seq.as_list()->items;
  in.check_size(items.size() * static_cast<uint64_t>(n) * sizeof(Value));
  std::vector<Value> out;
  for (int64_t i = 0; i < n; ++i) out.insert(out.end(), items.begin(), items.end());
  return Value::list(std::move(out), seq.as_list()->is_tuple);
}

// "%s" % x, the printf-style formatting some templates use.

// Python's '%d' % x for a float: the exact integer part, however large (an
// int64 cast would be undefined past 2^63).
std::string float_as_int_text(double x) {
  if (std::isnan(x)) fail("cannot convert float NaN to integer");
  if (std::isinf(x)) fail("cannot convert float infinity to integer");
  const double t = std::trunc(x);
  return t == 0 ? "0" : fmt::format("{:.0f}", t);
}
Value percent_format(Interpreter& in, const std::string& fmt_str, const Value& arg) {
  std::vector<Value> args = arg.is_list() && arg.as_list()->is_tuple ? arg.as_list()->items
                                                                      : std::vector<Value>{arg};
  std::string out;
  size_t next = 0;
  for (size_t i = 0; i < fmt_str.size(); ++i) {
    if (fmt_str[i] != '%') {
      out += fmt_str[i];
      continue;
    }
    if (++i >= fmt_str.size()) fail("incomplete format");
    char c = fmt_str[i];
    if (c == '%') {
      out += '%';
      continue;
    }
    if (next >= args.size()) fail("not enough arguments for format string");
    const Value& v = args[next++];
    if (c == 's') out += v.str();
    else if (c == 'r') out += v.repr();
    else if (c == 'd' || c == 'i') out += v.is_float() ? float_as_int_text(v.as_float()) : std::to_string(v.to_int());
    else fail("unsupported format character '{}'", c);
    in.check_size(out.size());
  }
  if (next < args.size()) fail("not all arguments converted during string formatting");
  return Value(std::move(out));
}

bool contains(const Value& needle, const Value& hay) {
  switch (hay.kind()) {
    case Value::Kind::String:
      if (!needle.is_string()) fail("'in <string>' requires string as left operand, not {}", needle.type_name());
      return hay.as_string().find(needle.as_string()) != std::string::npos;
    case Value::Kind::List:
      for (const auto& x : hay.as_list()->items)
        if (equals(x, needle)) return true;
      return false;
    case Value::Kind::Dict:
      return needle.is_string() && hay.as_dict()->find(needle.as_string()) != nullptr;
    case Value::Kind::Undefined: return false;
    default: fail("argument of type '{}' is not iterable", hay.type_name());
  }
}

}  // namespace

Value binary_op(Interpreter& in, const std::string& op, const Value& a, const Value& b) {
  if (op == "~") {
    std::string s = a.str() + b.str();
    in.check_size(s.size());
    return Value(std::move(s));
  }
  if (op == "==") return Value(equals(a, b));
  if (op == "!=") return Value(!equals(a, b));
  if (op == "in") return Value(contains(a, b));
  if (op == "not in") return Value(!contains(a, b));
  if (a.is_undefined()) raise_undefined(a);
  if (b.is_undefined()) raise_undefined(b);
  if (op == "<") return Value(less_than(a, b));
  if (op == ">") return Value(less_than(b, a));
  if (op == "<=") return Value(!less_than(b, a));
  if (op == ">=") return Value(!less_than(a, b));
  if (a.is_number() && b.is_number()) return arithmetic(op, a, b);
  if (op == "+") {
    if (a.is_string() && b.is_string()) {
      in.check_size(a.as_string().size() + b.as_string().size());
      return Value(a.as_string() + b.as_string());
    }
    if (a.is_list() && b.is_list()) {
      in.check_size((a.as_list()->items.size() + b.as_list()->items.size()) * sizeof(Value));
      std::vector<Value> items = a.as_list()->items;
      items.insert(items.end(), b.as_list()->items.begin(), b.as_list()->items.end());
      return Value::list(std::move(items), a.as_list()->is_tuple);
    }
  }
  if (op == "*") {
    if ((a.is_string() || a.is_list()) && (b.is_int() || b.is_bool())) return repeat(in, a, b.to_int());
    if ((b.is_string() || b.is_list()) && (a.is_int() || a.is_bool())) return repeat(in, b, a.to_int());
  }
  if (op == "%" && a.is_string()) return percent_format(in, a.as_string(), b);
  unsupported(op, a, b);
}

namespace {

// Python's slice.indices(): clamps start/stop for a sequence of length n.
void slice_indices(int64_t n, const Value& start, const Value& stop, const Value& step_v,
                   int64_t& s, int64_t& e, int64_t& st) {
  auto as_index = [](const Value& v) {
    if (!v.is_int() && !v.is_bool()) fail("slice indices must be integers or None");
    return v.to_int();
  };
  st = step_v.is_none() ? 1 : as_index(step_v);
  if (st == 0) fail("slice step cannot be zero");
  if (st == INT64_MIN) st = -INT64_MAX;
  auto clamp = [&](const Value& v, int64_t def) {
    if (v.is_none()) return def;
    int64_t i = as_index(v);
    if (i < 0) {
      i = i < -n ? (st < 0 ? -1 : 0) : i + n;
    } else if (i >= n) {
      i = st < 0 ? n - 1 : n;
    }
    return i;
  };
  s = clamp(start, st < 0 ? n - 1 : 0);
  e = clamp(stop, st < 0 ? -1 : n);
}

template <typename T>
std::vector<T> take(const std::vector<T>& src, int64_t s, int64_t e, int64_t st) {
  std::vector<T> out;
  if (st > 0) {
    for (int64_t i = s; i < e; i += st) out.push_back(src[static_cast<size_t>(i)]);
  } else {
    for (int64_t i = s; i > e; i += st) out.push_back(src[static_cast<size_t>(i)]);
  }
  return out;
}

}  // namespace

Value slice(const Value& obj, const Value& start, const Value& stop, const Value& step) {
  int64_t s, e, st;
  if (obj.is_string()) {
    const std::string& str = obj.as_string();
    bool ascii = std::all_of(str.begin(), str.end(), [](char c) { return (c & 0x80) == 0; });
    if (ascii) {
      slice_indices(static_cast<int64_t>(str.size()), start, stop, step, s, e, st);
      std::vector<char> chars(str.begin(), str.end());
      auto out = take(chars, s, e, st);
      return Value(std::string(out.begin(), out.end()));
    }
    auto cps = py::decode(str);
    slice_indices(static_cast<int64_t>(cps.size()), start, stop, step, s, e, st);
    return Value(py::encode(take(cps, s, e, st)));
  }
  if (obj.is_list()) {
    const auto& items = obj.as_list()->items;
    slice_indices(static_cast<int64_t>(items.size()), start, stop, step, s, e, st);
    return Value::list(take(items, s, e, st), obj.as_list()->is_tuple);
  }
  fail("'{}' is not subscriptable", obj.type_name());
}

Value Interpreter::get_item(const Value& obj, const Value& key) {
  if (obj.is_undefined()) raise_undefined(obj);
  if (obj.is_dict() && key.is_string()) {
    if (const Value* v = obj.as_dict()->find(key.as_string())) return *v;
    if (!obj.as_dict()->is_namespace) {
      if (auto m = find_method(obj, key.as_string())) return *m;
    }
  } else if ((obj.is_list() || obj.is_string()) && (key.is_int() || key.is_bool())) {
    int64_t i = key.to_int();
    if (obj.is_list()) {
      auto n = static_cast<int64_t>(obj.as_list()->items.size());
      if (i < 0) i += n;
      if (i >= 0 && i < n) return obj.as_list()->items[static_cast<size_t>(i)];
    } else {
      auto cps = py::decode(obj.as_string());
      auto n = static_cast<int64_t>(cps.size());
      if (i < 0) i += n;
      if (i >= 0 && i < n) return Value(py::encode({cps[static_cast<size_t>(i)]}));
    }
  } else if (key.is_string()) {
    return get_attr(obj, key.as_string());
  }
  if (key.is_string())
    return Value::undefined(fmt::format("'{}' has no attribute '{}'", obj.type_name(), key.as_string()));
  return Value::undefined(fmt::format("'{}' has no element {}", obj.type_name(), key.repr()));
}

}  // namespace nativelm::chat::jinja
