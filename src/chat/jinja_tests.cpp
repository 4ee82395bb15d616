// jinja2's builtin tests (`x is defined`, `x is string`, ...).
#include <string_view>
#include <utility>

#include "chat/jinja_builtins.h"
#include "chat/py_string.h"
#include "util/error.h"

namespace nativelm::chat::jinja {
namespace {

Value other(const CallArgs& a, const char* test) {
  Params p(a, test, {"other"});
  return p.get(0);
}

bool t_defined(Interpreter&, const Value& v, CallArgs&) { return !v.is_undefined(); }
bool t_undefined(Interpreter&, const Value& v, CallArgs&) { return v.is_undefined(); }
bool t_none(Interpreter&, const Value& v, CallArgs&) { return v.is_none(); }
bool t_boolean(Interpreter&, const Value& v, CallArgs&) { return v.is_bool(); }
bool t_true(Interpreter&, const Value& v, CallArgs&) { return v.is_bool() && v.as_bool(); }
bool t_false(Interpreter&, const Value& v, CallArgs&) { return v.is_bool() && !v.as_bool(); }
bool t_integer(Interpreter&, const Value& v, CallArgs&) { return v.is_int(); }
bool t_float(Interpreter&, const Value& v, CallArgs&) { return v.is_float(); }
bool t_number(Interpreter&, const Value& v, CallArgs&) { return v.is_number(); }
bool t_string(Interpreter&, const Value& v, CallArgs&) { return v.is_string(); }
bool t_mapping(Interpreter&, const Value& v, CallArgs&) { return v.is_dict() && !v.as_dict()->is_namespace; }
bool t_callable(Interpreter&, const Value& v, CallArgs&) { return v.is_function(); }
// Python's iter() works on these; jinja2's Undefined is iterable (and empty).
bool t_iterable(Interpreter&, const Value& v, CallArgs&) {
  return v.is_string() || v.is_list() || (v.is_dict() && !v.as_dict()->is_namespace) || v.is_undefined();
}
bool t_sequence(Interpreter& in, const Value& v, CallArgs& a) { return t_iterable(in, v, a); }
bool t_eq(Interpreter&, const Value& v, CallArgs& a) { return equals(v, other(a, "eq")); }
bool t_ne(Interpreter&, const Value& v, CallArgs& a) { return !equals(v, other(a, "ne")); }
bool t_lt(Interpreter&, const Value& v, CallArgs& a) { return less_than(v, other(a, "lt")); }
bool t_gt(Interpreter&, const Value& v, CallArgs& a) { return less_than(other(a, "gt"), v); }
bool t_le(Interpreter&, const Value& v, CallArgs& a) { return !less_than(other(a, "le"), v); }
bool t_ge(Interpreter&, const Value& v, CallArgs& a) { return !less_than(v, other(a, "ge")); }
bool t_in(Interpreter& in, const Value& v, CallArgs& a) {
  return binary_op(in, "in", v, other(a, "in")).as_bool();
}
bool t_sameas(Interpreter&, const Value& v, CallArgs& a) {
  Value o = other(a, "sameas");
  if (v.kind() != o.kind()) return false;
  if (v.is_none() || v.is_undefined()) return true;
  if (v.is_bool()) return v.as_bool() == o.as_bool();
  if (v.is_list()) return v.as_list() == o.as_list();
  if (v.is_dict()) return v.as_dict() == o.as_dict();
  return equals(v, o);
}
bool t_divisibleby(Interpreter&, const Value& v, CallArgs& a) {
  int64_t n = other(a, "divisibleby").to_int();
  if (n == 0) fail("integer division or modulo by zero");
  if (n == -1) return true;
  return v.to_int() % n == 0;
}
bool t_even(Interpreter&, const Value& v, CallArgs&) { return v.to_int() % 2 == 0; }
bool t_odd(Interpreter&, const Value& v, CallArgs&) { return v.to_int() % 2 != 0; }
bool t_lower(Interpreter&, const Value& v, CallArgs&) {
  return v.is_string() && py::lower(v.as_string()) == v.as_string() && py::upper(v.as_string()) != v.as_string();
}
bool t_upper(Interpreter&, const Value& v, CallArgs&) {
  return v.is_string() && py::upper(v.as_string()) == v.as_string() && py::lower(v.as_string()) != v.as_string();
}
bool t_filter(Interpreter&, const Value& v, CallArgs&) { return v.is_string() && find_filter(v.as_string()); }
bool t_test(Interpreter&, const Value& v, CallArgs&) { return v.is_string() && find_test(v.as_string()); }
bool t_escaped(Interpreter&, const Value&, CallArgs&) { return false; }

const std::pair<std::string_view, TestFn> kTests[] = {
    {"defined", t_defined}, {"undefined", t_undefined}, {"none", t_none},
    {"boolean", t_boolean}, {"true", t_true}, {"false", t_false}, {"integer", t_integer},
    {"float", t_float}, {"number", t_number}, {"string", t_string}, {"mapping", t_mapping},
    {"callable", t_callable}, {"iterable", t_iterable}, {"sequence", t_sequence},
    {"eq", t_eq}, {"equalto", t_eq}, {"==", t_eq}, {"ne", t_ne}, {"!=", t_ne},
    {"lt", t_lt}, {"lessthan", t_lt}, {"<", t_lt}, {"gt", t_gt}, {"greaterthan", t_gt},
    {">", t_gt}, {"le", t_le}, {"<=", t_le}, {"ge", t_ge}, {">=", t_ge}, {"in", t_in},
    {"sameas", t_sameas}, {"divisibleby", t_divisibleby}, {"even", t_even}, {"odd", t_odd},
    {"lower", t_lower}, {"upper", t_upper}, {"filter", t_filter}, {"test", t_test},
    {"escaped", t_escaped},
};

}  // namespace

TestFn find_test(std::string_view name) {
  for (const auto& [n, fn] : kTests)
    if (n == name) return fn;
  return nullptr;
}

}  // namespace nativelm::chat::jinja
