#pragma once
// Walks a parsed template and renders it. Python/jinja2 semantics throughout:
// undefined values print as "", using one otherwise raises jinja2's message.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "chat/jinja_ast.h"
#include "chat/jinja_value.h"

namespace nativelm::chat::jinja {

// Bounds that keep a hostile template from exhausting time, memory or stack.
struct RenderLimits {
  size_t max_output_bytes = 64u << 20;  // also caps any single string or list
  int64_t max_steps = 20'000'000;       // statements, loop iterations and calls
  int max_call_depth = 64;              // nested macro calls
};

struct RenderOptions {
  // What strftime_now() sees; unset means the real clock.
  std::optional<std::chrono::system_clock::time_point> now;
  RenderLimits limits;
};

// Thrown by raise_exception(); the message is the template's own.
struct TemplateRaised {
  std::string message;
};

class Interpreter {
 public:
  Interpreter(const Value& globals, const RenderOptions& options);

  std::string render(const Body& body);

  Value eval(const Expr& e);
  Value call(const Value& callee, CallArgs& args);
  Value apply_filter(const std::string& name, const Value& input, CallArgs& args);
  bool apply_test(const std::string& name, const Value& input, CallArgs& args);
  Value get_attr(const Value& obj, const std::string& name);
  Value get_item(const Value& obj, const Value& key);
  std::string render_macro(const MacroDef& macro, CallArgs& args, const Value& caller);

  void step();
  void check_size(size_t n) const;
  const RenderOptions& options() const { return options_; }

 private:
  struct Frame {
    std::vector<std::pair<std::string, Value>> vars;
    Frame* parent = nullptr;
  };
  enum class Flow { Normal, Break, Continue };

  Flow exec(const Body& body, std::string& out);
  Flow exec_stmt(const Stmt& s, std::string& out);
  Flow exec_if(const Stmt& s, std::string& out);
  Flow exec_for(const Stmt& s, std::string& out);
  void exec_set(const Stmt& s);
  void exec_call_block(const Stmt& s, std::string& out);
  std::string render_body(const Body& body);
  std::vector<Value> iterate(const Value& v);
  void assign(const std::vector<std::string>& targets, const Value& v);
  void bind(const std::string& name, Value v);
  Value lookup(const std::string& name);
  Value eval_binary(const Expr& e);
  Value eval_call(const Expr& e);
  Value eval_filter(const Expr& e);
  CallArgs eval_args(const Expr& e);
  Value make_loop(size_t index, const std::vector<Value>& items);
  void emit(std::string& out, std::string_view text) const;

  const Value& globals_;
  RenderOptions options_;
  Frame root_;
  Frame* frame_ = &root_;
  Value filter_input_;
  int64_t steps_ = 0;
  int call_depth_ = 0;
  int line_ = 0;  // of the statement being run, for error messages
};

// Python semantics for the binary operators (+ - * / // % ** ~ and comparisons).
Value binary_op(Interpreter& in, const std::string& op, const Value& a, const Value& b);
// Python slicing a[start:stop:step] of a str, list or tuple.
Value slice(const Value& obj, const Value& start, const Value& stop, const Value& step);
// jinja2's error for using an undefined value.
[[noreturn]] void raise_undefined(const Value& v);

}  // namespace nativelm::chat::jinja
