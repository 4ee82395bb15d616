#include "chat/jinja_interpreter.h"

#include "chat/jinja_builtins.h"
#include "util/error.h"

namespace nativelm::chat::jinja {

void raise_undefined(const Value& v) { fail("{}", v.undefined_hint()); }

Interpreter::Interpreter(const Value& globals, const RenderOptions& options)
    : globals_(globals), options_(options) {}

void Interpreter::step() {
  if (++steps_ > options_.limits.max_steps)
    fail("template exceeded {} evaluation steps (infinite loop?)", options_.limits.max_steps);
}

void Interpreter::check_size(size_t n) const {
  if (n > options_.limits.max_output_bytes)
    fail("template output exceeds the limit of {} bytes", options_.limits.max_output_bytes);
}

void Interpreter::emit(std::string& out, std::string_view text) const {
  check_size(out.size() + text.size());
  out.append(text);
}

std::string Interpreter::render(const Body& body) {
  std::string out;
  try {
    if (exec(body, out) != Flow::Normal) fail("'break' or 'continue' outside of a loop");
  } catch (const Error& e) {
    fail("chat template error at line {}: {}", line_, e.what());
  } catch (const std::bad_alloc&) {
    fail("chat template error at line {}: out of memory", line_);
  } catch (const std::logic_error& e) {  // e.g. std::out_of_range from a number conversion
    fail("chat template error at line {}: {}", line_, e.what());
  }
  return out;
}

std::string Interpreter::render_body(const Body& body) {
  std::string out;
  Flow flow = exec(body, out);
  if (flow != Flow::Normal) fail("'break' or 'continue' outside of a loop");
  return out;
}

Interpreter::Flow Interpreter::exec(const Body& body, std::string& out) {
  for (const auto& s : body) {
    Flow f = exec_stmt(*s, out);
    if (f != Flow::Normal) return f;
  }
  return Flow::Normal;
}

Interpreter::Flow Interpreter::exec_stmt(const Stmt& s, std::string& out) {
  step();
  line_ = s.line;
  switch (s.kind) {
    case Stmt::Kind::Text: emit(out, s.text); return Flow::Normal;
    case Stmt::Kind::Output: {
      Value v = eval(*s.expr);
      if (v.is_string()) emit(out, v.as_string());
      else emit(out, v.str());
      return Flow::Normal;
    }
    case Stmt::Kind::If: return exec_if(s, out);
    case Stmt::Kind::For: return exec_for(s, out);
    case Stmt::Kind::Set: exec_set(s); return Flow::Normal;
    case Stmt::Kind::SetBlock: {
      Value v = render_body(s.body);
      if (s.expr) {
        filter_input_ = std::move(v);
        v = eval(*s.expr);
      }
      bind(s.targets[0], std::move(v));
      return Flow::Normal;
    }
    case Stmt::Kind::Macro: {
      auto def = s.macro;
      bind(def->name, Value::function(def->name, [def](Interpreter& in, CallArgs& args) {
             return Value(in.render_macro(*def, args, Value()));
           }));
      return Flow::Normal;
    }
    case Stmt::Kind::CallBlock: exec_call_block(s, out); return Flow::Normal;
    case Stmt::Kind::FilterBlock: {
      filter_input_ = Value(render_body(s.body));
      emit(out, eval(*s.expr).str());
      return Flow::Normal;
    }
    case Stmt::Kind::Break: return Flow::Break;
    case Stmt::Kind::Continue: return Flow::Continue;
    case Stmt::Kind::Scope: return exec(s.body, out);
  }
  return Flow::Normal;
}

Interpreter::Flow Interpreter::exec_if(const Stmt& s, std::string& out) {
  for (const auto& [cond, body] : s.branches) {
    if (eval(*cond).truthy()) return exec(body, out);
  }
  return exec(s.else_body, out);
}

std::vector<Value> Interpreter::iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::List: return v.as_list()->items;
    case Value::Kind::Dict: {
      if (v.as_dict()->is_namespace) break;
      std::vector<Value> keys;
      for (const auto& kv : v.as_dict()->items) keys.emplace_back(kv.first);
      return keys;
    }
    case Value::Kind::String: {
      std::vector<Value> chars;
      const std::string& s = v.as_string();
      for (size_t i = 0; i < s.size();) {
        size_t n = 1;
        while (i + n < s.size() && (static_cast<unsigned char>(s[i + n]) & 0xC0) == 0x80) ++n;
        chars.emplace_back(s.substr(i, n));
        i += n;
      }
      return chars;
    }
    case Value::Kind::Undefined: return {};
    default: break;
  }
  fail("'{}' object is not iterable", v.type_name());
}

Value Interpreter::make_loop(size_t index, const std::vector<Value>& items) {
  auto d = std::make_shared<DictData>();
  auto n = static_cast<int64_t>(items.size());
  auto i = static_cast<int64_t>(index);
  d->items.reserve(12);
  d->items.emplace_back("index", Value(i + 1));
  d->items.emplace_back("index0", Value(i));
  d->items.emplace_back("revindex", Value(n - i));
  d->items.emplace_back("revindex0", Value(n - i - 1));
  d->items.emplace_back("first", Value(i == 0));
  d->items.emplace_back("last", Value(i == n - 1));
  d->items.emplace_back("length", Value(n));
  d->items.emplace_back("depth", Value(1));
  d->items.emplace_back("depth0", Value(0));
  d->items.emplace_back("previtem", i > 0 ? items[index - 1] : Value::undefined("there is no previous item"));
  d->items.emplace_back("nextitem", i + 1 < n ? items[index + 1] : Value::undefined("there is no next item"));
  d->items.emplace_back("cycle", Value::function("cycle", [i](Interpreter&, CallArgs& args) {
    if (args.positional.empty()) fail("no items for cycling given");
    return args.positional[static_cast<size_t>(i) % args.positional.size()];
  }));
  return Value(std::move(d));
}

Interpreter::Flow Interpreter::exec_for(const Stmt& s, std::string& out) {
  std::vector<Value> items = iterate(eval(*s.expr));
  if (s.cond) {  // jinja2 filters before counting, so loop.length sees only kept items
    std::vector<Value> kept;
    for (auto& item : items) {
      Frame f{{}, frame_};
      frame_ = &f;
      try {
        assign(s.targets, item);
        bool keep = eval(*s.cond).truthy();
        frame_ = f.parent;
        if (keep) kept.push_back(std::move(item));
      } catch (...) {
        frame_ = f.parent;
        throw;
      }
    }
    items = std::move(kept);
  }
  if (items.empty()) return exec(s.else_body, out);
  for (size_t i = 0; i < items.size(); ++i) {
    step();
    Frame f{{}, frame_};  // a fresh scope per iteration, as jinja2 does
    frame_ = &f;
    Flow flow;
    try {
      assign(s.targets, items[i]);
      f.vars.emplace_back("loop", make_loop(i, items));
      flow = exec(s.body, out);
    } catch (...) {
      frame_ = f.parent;
      throw;
    }
    frame_ = f.parent;
    if (flow == Flow::Break) break;
  }
  return Flow::Normal;
}

void Interpreter::bind(const std::string& name, Value v) {
  for (auto& [k, existing] : frame_->vars) {
    if (k == name) {
      existing = std::move(v);
      return;
    }
  }
  frame_->vars.emplace_back(name, std::move(v));
}

void Interpreter::assign(const std::vector<std::string>& targets, const Value& v) {
  if (targets.size() == 1) {
    bind(targets[0], v);
    return;
  }
  std::vector<Value> parts = iterate(v);
  if (parts.size() != targets.size())
    fail("cannot unpack {} values into {} names", parts.size(), targets.size());
  for (size_t i = 0; i < targets.size(); ++i) bind(targets[i], parts[i]);
}

void Interpreter::exec_set(const Stmt& s) {
  Value v = eval(*s.expr);
  if (s.attr.empty()) {
    assign(s.targets, v);
    return;
  }
  Value target = lookup(s.targets[0]);
  if (!target.is_dict() || !target.as_dict()->is_namespace)
    fail("cannot assign attribute on non-namespace object '{}'", s.targets[0]);
  target.as_dict()->set(s.attr, std::move(v));
}

void Interpreter::exec_call_block(const Stmt& s, std::string& out) {
  auto def = s.macro;
  Value caller = Value::function("caller", [def](Interpreter& in, CallArgs& args) {
    return Value(in.render_macro(*def, args, Value()));
  });
  Value callee = eval(*s.expr->a);
  CallArgs args = eval_args(*s.expr);
  args.keyword.emplace_back("caller", caller);
  emit(out, call(callee, args).str());
}

std::string Interpreter::render_macro(const MacroDef& macro, CallArgs& args, const Value& caller) {
  if (call_depth_ >= options_.limits.max_call_depth)
    fail("macro calls nested deeper than {} (infinite recursion?)", options_.limits.max_call_depth);
  Frame f{{}, &root_};  // macros see the template's top-level names, not the caller's
  Frame* saved = frame_;
  frame_ = &f;
  ++call_depth_;
  try {
    size_t npos = args.positional.size();
    std::vector<Value> extra;
    for (size_t i = 0; i < npos; ++i) {
      if (i < macro.params.size()) f.vars.emplace_back(macro.params[i].first, args.positional[i]);
      else extra.push_back(args.positional[i]);
    }
    auto kwargs = Value::dict();
    for (auto& [k, v] : args.keyword) {
      bool is_param = false;
      for (const auto& p : macro.params) is_param |= p.first == k;
      if (is_param) bind(k, v);
      else if (k == "caller") f.vars.emplace_back("caller", v);
      else kwargs.as_dict()->set(k, v);
    }
    for (size_t i = npos; i < macro.params.size(); ++i) {
      const auto& [name, def] = macro.params[i];
      bool bound = false;
      for (const auto& kv : f.vars) bound |= kv.first == name;
      if (!bound) f.vars.emplace_back(name, def ? eval(*def) : Value::undefined(fmt::format("parameter '{}' was not provided", name)));
    }
    f.vars.emplace_back("varargs", Value::list(std::move(extra)));
    f.vars.emplace_back("kwargs", kwargs);
    if (!caller.is_undefined()) f.vars.emplace_back("caller", caller);
    std::string out = render_body(macro.body);
    frame_ = saved;
    --call_depth_;
    return out;
  } catch (...) {
    frame_ = saved;
    --call_depth_;
    throw;
  }
}

Value Interpreter::lookup(const std::string& name) {
  for (Frame* f = frame_; f; f = f->parent) {
    for (auto it = f->vars.rbegin(); it != f->vars.rend(); ++it)
      if (it->first == name) return it->second;
  }
  if (globals_.is_dict()) {
    if (const Value* v = globals_.as_dict()->find(name)) return *v;
  }
  Value g = find_global(name);
  if (!g.is_undefined()) return g;
  return Value::undefined(fmt::format("'{}' is undefined", name));
}

CallArgs Interpreter::eval_args(const Expr& e) {
  CallArgs args;
  args.positional.reserve(e.args.size());
  for (const auto& a : e.args) args.positional.push_back(eval(*a));
  for (const auto& [k, v] : e.kwargs) args.keyword.emplace_back(k, eval(*v));
  return args;
}

Value Interpreter::call(const Value& callee, CallArgs& args) {
  if (callee.is_undefined()) raise_undefined(callee);
  if (!callee.is_function()) fail("'{}' is not callable", callee.type_name());
  step();
  return callee.as_function()->call(*this, args);
}

Value Interpreter::eval_call(const Expr& e) {
  Value callee = eval(*e.a);
  CallArgs args = eval_args(e);
  return call(callee, args);
}

Value Interpreter::apply_filter(const std::string& name, const Value& input, CallArgs& args) {
  FilterFn fn = find_filter(name);
  if (!fn) fail("no filter named '{}'", name);
  step();
  return fn(*this, input, args);
}

bool Interpreter::apply_test(const std::string& name, const Value& input, CallArgs& args) {
  TestFn fn = find_test(name);
  if (!fn) fail("no test named '{}'", name);
  return fn(*this, input, args);
}

Value Interpreter::eval_filter(const Expr& e) {
  Value input = e.a ? eval(*e.a) : filter_input_;
  CallArgs args = eval_args(e);
  return apply_filter(e.name, input, args);
}

Value Interpreter::eval_binary(const Expr& e) {
  const std::string& op = e.name;
  if (op == "and") {
    Value a = eval(*e.a);
    return a.truthy() ? eval(*e.b) : a;
  }
  if (op == "or") {
    Value a = eval(*e.a);
    return a.truthy() ? a : eval(*e.b);
  }
  Value a = eval(*e.a);
  Value b = eval(*e.b);
  return binary_op(*this, op, a, b);
}

Value Interpreter::eval(const Expr& e) {
  switch (e.kind) {
    case Expr::Kind::Literal: return e.value;
    case Expr::Kind::Name: return lookup(e.name);
    case Expr::Kind::List:
    case Expr::Kind::Tuple: {
      std::vector<Value> items;
      items.reserve(e.args.size());
      for (const auto& a : e.args) items.push_back(eval(*a));
      return Value::list(std::move(items), e.kind == Expr::Kind::Tuple);
    }
    case Expr::Kind::Dict: {
      auto d = Value::dict();
      for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
        Value k = eval(*e.args[i]);
        if (!k.is_string()) fail("only string keys are supported in dict literals");
        d.as_dict()->set(k.as_string(), eval(*e.args[i + 1]));
      }
      return d;
    }
    case Expr::Kind::Attr: return get_attr(eval(*e.a), e.name);
    case Expr::Kind::Index: return get_item(eval(*e.a), eval(*e.b));
    case Expr::Kind::Slice: {
      Value obj = eval(*e.a);
      if (obj.is_undefined()) raise_undefined(obj);
      return slice(obj, e.b ? eval(*e.b) : Value::none(), e.c ? eval(*e.c) : Value::none(),
                   e.d ? eval(*e.d) : Value::none());
    }
    case Expr::Kind::Call: return eval_call(e);
    case Expr::Kind::Filter: return eval_filter(e);
    case Expr::Kind::Test: {
      Value v = eval(*e.a);
      CallArgs args = eval_args(e);
      return Value(apply_test(e.name, v, args) != e.negated);
    }
    case Expr::Kind::Unary: {
      Value v = eval(*e.a);
      if (e.name == "not") return Value(!v.truthy());
      if (v.is_undefined()) raise_undefined(v);
      if (!v.is_number()) fail("bad operand type for unary {}: '{}'", e.name, v.type_name());
      if (e.name == "+") return v.is_bool() ? Value(v.to_int()) : v;
      if (v.is_float()) return Value(-v.as_float());
      if (v.to_int() == INT64_MIN) fail("integer overflow");
      return Value(-v.to_int());
    }
    case Expr::Kind::Binary: return eval_binary(e);
    case Expr::Kind::Cond: {
      if (eval(*e.a).truthy()) return eval(*e.b);
      if (e.c) return eval(*e.c);
      return Value::undefined("the inline if-expression evaluated to false and no else section was defined");
    }
  }
  return Value();
}

Value Interpreter::get_attr(const Value& obj, const std::string& name) {
  if (obj.is_undefined()) raise_undefined(obj);
  if (obj.is_dict() && obj.as_dict()->is_namespace) {
    if (const Value* v = obj.as_dict()->find(name)) return *v;
  } else {
    // jinja2 tries the Python attribute first, then the item: d.items is the method.
    if (auto m = find_method(obj, name)) return *m;
    if (obj.is_dict()) {
      if (const Value* v = obj.as_dict()->find(name)) return *v;
    }
  }
  return Value::undefined(fmt::format("'{}' has no attribute '{}'", obj.type_name(), name));
}

}  // namespace nativelm::chat::jinja
