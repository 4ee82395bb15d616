#include "chat/jinja_parser.h"

#include <charconv>
#include <cstdlib>
#include <set>

#include "chat/jinja_lexer.h"
#include "util/error.h"

namespace nativelm::chat::jinja {
namespace {

using T = Token::Type;
constexpr int kMaxNesting = 256;  // keeps hostile templates from overflowing the stack

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : toks_(std::move(tokens)) {}

  Body parse_template() {
    std::string stop;
    Body body = parse_body({}, stop);
    return body;
  }

 private:
  std::vector<Token> toks_;
  size_t pos_ = 0;
  int depth_ = 0;

  struct DepthGuard {
    Parser& p;
    explicit DepthGuard(Parser& parser) : p(parser) {
      if (++p.depth_ > kMaxNesting) p.error("template nested too deeply");
    }
    ~DepthGuard() { --p.depth_; }
  };

  // Left-deep chains (a + b + c ..., a.b.c ...) are parsed by loops but evaluated
  // and destroyed recursively, so each link counts as one level of nesting too.
  struct ChainGuard {
    Parser& p;
    int links = 0;
    explicit ChainGuard(Parser& parser) : p(parser) {}
    void step() {
      ++links;
      if (++p.depth_ > kMaxNesting) p.error("template nested too deeply");
    }
    ~ChainGuard() { p.depth_ -= links; }
  };

  const Token& cur() const { return toks_[pos_]; }
  const Token& peek(size_t n = 1) const { return toks_[std::min(pos_ + n, toks_.size() - 1)]; }
  void advance() {
    if (pos_ + 1 < toks_.size()) ++pos_;
  }

  [[noreturn]] void error(const std::string& message) const {
    fail("chat template syntax error at line {}: {}", cur().line, message);
  }

  bool is_op(const char* op) const { return cur().type == T::Op && cur().text == op; }
  bool is_name(const char* n) const { return cur().type == T::Name && cur().text == n; }
  bool accept_op(const char* op) {
    if (!is_op(op)) return false;
    advance();
    return true;
  }
  bool accept_name(const char* n) {
    if (!is_name(n)) return false;
    advance();
    return true;
  }
  void expect_op(const char* op) {
    if (!accept_op(op)) error(std::string("expected '") + op + "', got " + describe(cur()));
  }
  std::string expect_name() {
    if (cur().type != T::Name) error("expected a name, got " + describe(cur()));
    std::string n = cur().text;
    advance();
    return n;
  }
  void expect_block_end() {
    if (cur().type != T::BlockEnd) error("expected end of tag '%}', got " + describe(cur()));
    advance();
  }
  static std::string describe(const Token& t) {
    switch (t.type) {
      case T::End: return "end of template";
      case T::Text: return "text";
      case T::VarBegin: return "'{{'";
      case T::VarEnd: return "'}}'";
      case T::BlockBegin: return "'{%'";
      case T::BlockEnd: return "'%}'";
      case T::String: return "a string";
      default: return "'" + t.text + "'";
    }
  }

  // ---- statements ----

  // Parses until a block tag whose keyword is in `stops`; leaves the keyword in `stop`
  // with the parser positioned after it.
  Body parse_body(const std::set<std::string>& stops, std::string& stop) {
    DepthGuard guard(*this);
    Body body;
    while (true) {
      const Token& t = cur();
      if (t.type == T::End) {
        if (!stops.empty())
          error("unexpected end of template, expected one of: " + join(stops));
        stop.clear();
        return body;
      }
      if (t.type == T::Text) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::Text;
        s->text = t.text;
        s->line = t.line;
        body.push_back(std::move(s));
        advance();
      } else if (t.type == T::VarBegin) {
        advance();
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::Output;
        s->line = t.line;
        s->expr = parse_expression();
        if (cur().type != T::VarEnd) error("expected '}}', got " + describe(cur()));
        advance();
        body.push_back(std::move(s));
      } else if (t.type == T::BlockBegin) {
        advance();
        if (cur().type == T::Name && stops.count(cur().text)) {
          stop = cur().text;
          advance();
          return body;
        }
        body.push_back(parse_statement());
      } else {
        error("unexpected " + describe(t));
      }
    }
  }

  static std::string join(const std::set<std::string>& s) {
    std::string out;
    for (const auto& x : s) out += (out.empty() ? "" : ", ") + x;
    return out;
  }

  StmtPtr make(Stmt::Kind kind, int line) {
    auto s = std::make_unique<Stmt>();
    s->kind = kind;
    s->line = line;
    return s;
  }

  StmtPtr parse_statement() {
    int line = cur().line;
    std::string kw = expect_name();
    if (kw == "if") return parse_if(line);
    if (kw == "for") return parse_for(line);
    if (kw == "set") return parse_set(line);
    if (kw == "macro") return parse_macro(line);
    if (kw == "call") return parse_call_block(line);
    if (kw == "filter") return parse_filter_block(line);
    if (kw == "break" || kw == "continue") {
      expect_block_end();
      return make(kw == "break" ? Stmt::Kind::Break : Stmt::Kind::Continue, line);
    }
    if (kw == "generation") {
      expect_block_end();
      auto s = make(Stmt::Kind::Scope, line);
      std::string stop;
      s->body = parse_body({"endgeneration"}, stop);
      expect_block_end();
      return s;
    }
    error("unknown or unsupported tag '" + kw + "'");
  }

  StmtPtr parse_if(int line) {
    auto s = make(Stmt::Kind::If, line);
    while (true) {
      ExprPtr cond = parse_expression();
      expect_block_end();
      std::string stop;
      Body body = parse_body({"elif", "else", "endif"}, stop);
      s->branches.emplace_back(std::move(cond), std::move(body));
      if (stop == "elif") continue;
      if (stop == "else") {
        expect_block_end();
        s->else_body = parse_body({"endif"}, stop);
      }
      expect_block_end();
      return s;
    }
  }

  std::vector<std::string> parse_targets() {
    std::vector<std::string> names;
    bool paren = accept_op("(");
    do {
      names.push_back(expect_name());
    } while (accept_op(","));
    if (paren) expect_op(")");
    return names;
  }

  StmtPtr parse_for(int line) {
    auto s = make(Stmt::Kind::For, line);
    s->targets = parse_targets();
    if (!accept_name("in")) error("expected 'in' in for loop");
    s->expr = parse_tuple_or_expr(/*with_condition=*/false);
    if (accept_name("if")) s->cond = parse_expression();
    if (accept_name("recursive")) error("recursive for loops are not supported");
    expect_block_end();
    std::string stop;
    s->body = parse_body({"else", "endfor"}, stop);
    if (stop == "else") {
      expect_block_end();
      s->else_body = parse_body({"endfor"}, stop);
    }
    expect_block_end();
    return s;
  }

  StmtPtr parse_set(int line) {
    auto s = make(Stmt::Kind::Set, line);
    if (cur().type == T::Name && peek().type == T::Op && peek().text == ".") {
      s->targets.push_back(expect_name());
      advance();
      s->attr = expect_name();
    } else {
      s->targets = parse_targets();
    }
    if (accept_op("=")) {
      s->expr = parse_tuple_or_expr(true);
      expect_block_end();
      return s;
    }
    if (!s->attr.empty() || s->targets.size() != 1) error("expected '=' in set");
    s->kind = Stmt::Kind::SetBlock;
    if (accept_op("|")) s->expr = parse_filter_chain(nullptr);
    expect_block_end();
    std::string stop;
    s->body = parse_body({"endset"}, stop);
    expect_block_end();
    return s;
  }

  std::shared_ptr<MacroDef> parse_params(std::string name) {
    auto m = std::make_shared<MacroDef>();
    m->name = std::move(name);
    expect_op("(");
    while (!accept_op(")")) {
      if (!m->params.empty()) expect_op(",");
      if (accept_op(")")) break;
      std::string p = expect_name();
      ExprPtr def;
      if (accept_op("=")) def = parse_expression();
      m->params.emplace_back(std::move(p), std::move(def));
    }
    return m;
  }

  StmtPtr parse_macro(int line) {
    auto s = make(Stmt::Kind::Macro, line);
    std::string name = expect_name();
    s->macro = parse_params(name);
    expect_block_end();
    std::string stop;
    s->macro->body = parse_body({"endmacro"}, stop);
    if (cur().type == T::Name && cur().text == s->macro->name) advance();
    expect_block_end();
    return s;
  }

  StmtPtr parse_call_block(int line) {
    auto s = make(Stmt::Kind::CallBlock, line);
    s->macro = is_op("(") ? parse_params("caller") : std::make_shared<MacroDef>();
    s->macro->name = "caller";
    s->expr = parse_expression();
    if (s->expr->kind != Expr::Kind::Call) error("expected a macro call in call block");
    expect_block_end();
    std::string stop;
    s->macro->body = parse_body({"endcall"}, stop);
    expect_block_end();
    return s;
  }

  StmtPtr parse_filter_block(int line) {
    auto s = make(Stmt::Kind::FilterBlock, line);
    s->expr = parse_filter_chain(nullptr, /*first_needs_pipe=*/false);
    expect_block_end();
    std::string stop;
    s->body = parse_body({"endfilter"}, stop);
    expect_block_end();
    return s;
  }

  // ---- expressions ----

  ExprPtr node(Expr::Kind kind, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line;
    return e;
  }

  ExprPtr binary(std::string op, ExprPtr a, ExprPtr b, int line) {
    auto e = node(Expr::Kind::Binary, line);
    e->name = std::move(op);
    e->a = std::move(a);
    e->b = std::move(b);
    return e;
  }

  // `a, b` without brackets makes a tuple (in set and for).
  ExprPtr parse_tuple_or_expr(bool with_condition) {
    int line = cur().line;
    ExprPtr first = with_condition ? parse_expression() : parse_or();
    if (!is_op(",")) return first;
    auto t = node(Expr::Kind::Tuple, line);
    t->args.push_back(std::move(first));
    while (accept_op(",")) {
      if (cur().type == T::BlockEnd || is_name("if")) break;
      t->args.push_back(with_condition ? parse_expression() : parse_or());
    }
    return t;
  }

  ExprPtr parse_expression() {
    DepthGuard guard(*this);
    int line = cur().line;
    ExprPtr e = parse_or();
    ChainGuard chain(*this);
    while (accept_name("if")) {
      chain.step();
      auto c = node(Expr::Kind::Cond, line);
      c->a = parse_or();
      c->b = std::move(e);
      if (accept_name("else")) c->c = parse_expression();
      e = std::move(c);
    }
    return e;
  }

  ExprPtr parse_or() {
    ExprPtr e = parse_and();
    ChainGuard chain(*this);
    while (is_name("or")) {
      chain.step();
      int line = cur().line;
      advance();
      e = binary("or", std::move(e), parse_and(), line);
    }
    return e;
  }

  ExprPtr parse_and() {
    ExprPtr e = parse_not();
    ChainGuard chain(*this);
    while (is_name("and")) {
      chain.step();
      int line = cur().line;
      advance();
      e = binary("and", std::move(e), parse_not(), line);
    }
    return e;
  }

  ExprPtr parse_not() {
    if (is_name("not")) {
      DepthGuard guard(*this);
      auto e = node(Expr::Kind::Unary, cur().line);
      advance();
      e->name = "not";
      e->a = parse_not();
      return e;
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    ExprPtr e = parse_math1();
    ChainGuard chain(*this);
    while (true) {
      chain.step();
      int line = cur().line;
      std::string op;
      if (cur().type == T::Op && (cur().text == "==" || cur().text == "!=" || cur().text == "<" ||
                                  cur().text == ">" || cur().text == "<=" || cur().text == ">=")) {
        op = cur().text;
        advance();
      } else if (is_name("in")) {
        op = "in";
        advance();
      } else if (is_name("not") && peek().type == T::Name && peek().text == "in") {
        op = "not in";
        advance();
        advance();
      } else {
        return e;
      }
      e = binary(op, std::move(e), parse_math1(), line);
    }
  }

  ExprPtr parse_math1() {
    ExprPtr e = parse_concat();
    ChainGuard chain(*this);
    while (is_op("+") || is_op("-")) {
      chain.step();
      std::string op = cur().text;
      int line = cur().line;
      advance();
      e = binary(op, std::move(e), parse_concat(), line);
    }
    return e;
  }

  ExprPtr parse_concat() {
    ExprPtr e = parse_math2();
    ChainGuard chain(*this);
    while (is_op("~")) {
      chain.step();
      int line = cur().line;
      advance();
      e = binary("~", std::move(e), parse_math2(), line);
    }
    return e;
  }

  ExprPtr parse_math2() {
    ExprPtr e = parse_pow();
    ChainGuard chain(*this);
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      chain.step();
      std::string op = cur().text;
      int line = cur().line;
      advance();
      e = binary(op, std::move(e), parse_pow(), line);
    }
    return e;
  }

  ExprPtr parse_pow() {
    ExprPtr e = parse_unary(true);
    ChainGuard chain(*this);
    while (is_op("**")) {
      chain.step();
      int line = cur().line;
      advance();
      e = binary("**", std::move(e), parse_unary(true), line);
    }
    return e;
  }

  ExprPtr parse_unary(bool with_filter) {
    DepthGuard guard(*this);
    ExprPtr e;
    if (is_op("-") || is_op("+")) {
      e = node(Expr::Kind::Unary, cur().line);
      e->name = cur().text;
      advance();
      e->a = parse_unary(false);
    } else {
      e = parse_primary();
    }
    e = parse_postfix(std::move(e));
    if (with_filter) e = parse_filters_and_tests(std::move(e));
    return e;
  }

  ExprPtr parse_primary() {
    const Token& t = cur();
    int line = t.line;
    if (t.type == T::Name) {
      std::string n = t.text;
      advance();
      if (n == "true" || n == "True") return literal(Value(true), line);
      if (n == "false" || n == "False") return literal(Value(false), line);
      if (n == "none" || n == "None") return literal(Value::none(), line);
      auto e = node(Expr::Kind::Name, line);
      e->name = n;
      return e;
    }
    if (t.type == T::String) {
      std::string s = t.text;
      advance();
      while (cur().type == T::String) {  // adjacent literals concatenate
        s += cur().text;
        advance();
      }
      return literal(Value(std::move(s)), line);
    }
    if (t.type == T::Int) {
      int64_t v = 0;
      auto r = std::from_chars(t.text.data(), t.text.data() + t.text.size(), v);
      advance();
      if (r.ec != std::errc()) return literal(Value(std::strtod(t.text.c_str(), nullptr)), line);
      return literal(Value(v), line);
    }
    if (t.type == T::Float) {
      double v = std::strtod(t.text.c_str(), nullptr);
      advance();
      return literal(Value(v), line);
    }
    if (accept_op("(")) return parse_paren(line);
    if (accept_op("[")) {
      auto e = node(Expr::Kind::List, line);
      while (!accept_op("]")) {
        if (!e->args.empty()) expect_op(",");
        if (accept_op("]")) break;
        e->args.push_back(parse_expression());
      }
      return e;
    }
    if (accept_op("{")) {
      auto e = node(Expr::Kind::Dict, line);
      while (!accept_op("}")) {
        if (!e->args.empty()) expect_op(",");
        if (accept_op("}")) break;
        e->args.push_back(parse_expression());
        expect_op(":");
        e->args.push_back(parse_expression());
      }
      return e;
    }
    error("unexpected " + describe(t));
  }

  ExprPtr parse_paren(int line) {
    if (accept_op(")")) return node(Expr::Kind::Tuple, line);
    ExprPtr first = parse_expression();
    if (accept_op(")")) return first;
    auto t = node(Expr::Kind::Tuple, line);
    t->args.push_back(std::move(first));
    while (accept_op(",")) {
      if (is_op(")")) break;
      t->args.push_back(parse_expression());
    }
    expect_op(")");
    return t;
  }

  ExprPtr literal(Value v, int line) {
    auto e = node(Expr::Kind::Literal, line);
    e->value = std::move(v);
    return e;
  }

  ExprPtr parse_postfix(ExprPtr e) {
    ChainGuard chain(*this);
    while (true) {
      chain.step();
      int line = cur().line;
      if (accept_op(".")) {
        if (cur().type == T::Int) {  // foo.0 means foo[0]
          auto idx = node(Expr::Kind::Index, line);
          idx->a = std::move(e);
          idx->b = literal(Value(static_cast<int64_t>(std::atoll(cur().text.c_str()))), line);
          advance();
          e = std::move(idx);
          continue;
        }
        auto a = node(Expr::Kind::Attr, line);
        a->a = std::move(e);
        a->name = expect_name();
        e = std::move(a);
      } else if (accept_op("[")) {
        e = parse_subscript(std::move(e), line);
      } else if (is_op("(")) {
        e = parse_call(std::move(e));
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr target, int line) {
    ExprPtr parts[3];
    int part = 0;
    bool is_slice = false;
    while (!is_op("]")) {
      if (accept_op(":")) {
        is_slice = true;
        if (++part > 2) error("too many ':' in slice");
        continue;
      }
      if (parts[part]) error("expected ':' or ']' in subscript");
      parts[part] = parse_expression();
    }
    advance();
    if (!is_slice) {
      if (!parts[0]) error("empty subscript");
      auto e = node(Expr::Kind::Index, line);
      e->a = std::move(target);
      e->b = std::move(parts[0]);
      return e;
    }
    auto e = node(Expr::Kind::Slice, line);
    e->a = std::move(target);
    e->b = std::move(parts[0]);
    e->c = std::move(parts[1]);
    e->d = std::move(parts[2]);
    return e;
  }

  void parse_args(Expr& e) {
    expect_op("(");
    while (!accept_op(")")) {
      if (!e.args.empty() || !e.kwargs.empty()) expect_op(",");
      if (accept_op(")")) break;
      if (cur().type == T::Name && peek().type == T::Op && peek().text == "=") {
        std::string k = expect_name();
        advance();
        e.kwargs.emplace_back(std::move(k), parse_expression());
      } else {
        if (!e.kwargs.empty()) error("positional argument after keyword argument");
        e.args.push_back(parse_expression());
      }
    }
  }

  ExprPtr parse_call(ExprPtr target) {
    auto e = node(Expr::Kind::Call, cur().line);
    e->a = std::move(target);
    parse_args(*e);
    return e;
  }

  std::string parse_dotted_name() {
    std::string n = expect_name();
    while (is_op(".") && peek().type == T::Name) {
      advance();
      n += '.';
      n += expect_name();
    }
    return n;
  }

  // `value | f | g(x)`; with target == null this builds the chain a {% filter %} applies.
  ExprPtr parse_filter_chain(ExprPtr target, bool first_needs_pipe = false) {
    bool first = true;
    ChainGuard chain(*this);
    while (first ? (!first_needs_pipe || accept_op("|")) : accept_op("|")) {
      chain.step();
      first = false;
      auto f = node(Expr::Kind::Filter, cur().line);
      f->a = std::move(target);
      f->name = parse_dotted_name();
      if (is_op("(")) parse_args(*f);
      target = std::move(f);
    }
    return target;
  }

  ExprPtr parse_filters_and_tests(ExprPtr e) {
    ChainGuard chain(*this);
    while (true) {
      chain.step();
      if (is_op("|")) {
        e = parse_filter_chain(std::move(e), true);
      } else if (is_name("is")) {
        e = parse_test(std::move(e));
      } else if (is_op("(")) {
        e = parse_call(std::move(e));
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_test(ExprPtr target) {
    auto t = node(Expr::Kind::Test, cur().line);
    advance();  // 'is'
    t->negated = accept_name("not");
    t->a = std::move(target);
    t->name = parse_dotted_name();
    if (is_op("(")) {
      parse_args(*t);
    } else if ((cur().type == T::Name || cur().type == T::String || cur().type == T::Int ||
                cur().type == T::Float || is_op("(") || is_op("[") || is_op("{")) &&
               !is_name("else") && !is_name("or") && !is_name("and")) {
      if (is_name("is")) error("you cannot chain multiple tests with 'is'");
      t->args.push_back(parse_postfix(parse_primary()));
    }
    return t;
  }
};

}  // namespace

Body parse(std::string_view source) { return Parser(tokenize(source)).parse_template(); }

}  // namespace nativelm::chat::jinja
