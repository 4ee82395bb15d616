#pragma once
// The parsed form of a template: expressions and statements as plain trees.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "chat/jinja_value.h"

namespace nativelm::chat::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    Literal,   // value
    Name,      // name
    List, Tuple, Dict,  // args (Dict: keys and values interleaved)
    Attr,      // a.name
    Index,     // a[b]
    Slice,     // a[b:c:d], missing parts are null
    Call,      // a(args, kwargs)
    Filter,    // a | name(args, kwargs); a is null inside {% filter %}
    Test,      // a is [not] name(args)
    Unary,     // name is the operator: "-", "+", "not"
    Binary,    // name is the operator; and/or short-circuit
    Cond,      // b if a else c
  };
  Kind kind;
  int line = 0;
  Value value;
  std::string name;
  ExprPtr a, b, c, d;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  bool negated = false;
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct MacroDef {
  std::string name;
  std::vector<std::pair<std::string, ExprPtr>> params;  // default may be null
  Body body;
};

struct Stmt {
  enum class Kind {
    Text,      // text
    Output,    // {{ expr }}
    If,        // branches: (cond, body)...; else_body
    For,       // targets in expr [if cond]: body / else_body
    Set,       // targets (or attr target: name + attr) = expr
    SetBlock,  // {% set x %}body{% endset %}, optional filter expr
    Macro,     // macro
    CallBlock, // {% call(params) expr %}body{% endcall %}
    FilterBlock,  // {% filter f %}body{% endfilter %}
    Break, Continue,
    Scope,     // a body rendered in place ({% generation %} of transformers)
  };
  Kind kind;
  int line = 0;
  std::string text;
  ExprPtr expr, cond;
  std::vector<std::string> targets;
  std::string attr;  // {% set ns.attr = ... %}
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body body, else_body;
  std::shared_ptr<MacroDef> macro;
};

}  // namespace nativelm::chat::jinja
