#include "core/dim_expr.h"

#include <cctype>

#include "core/record_error.h"

namespace trtpack::core {
namespace {

bool is_symbol_start(char c) { return (c >= 'a' && c <= 'z') || c == '_'; }
bool is_symbol_char(char c) { return is_symbol_start(c) || (c >= '0' && c <= '9'); }

class Parser {
 public:
  Parser(std::string_view text, const std::string& field) : text_(text), field_(field) {}

  DimExpr parse_all() {
    if (text_.size() > kMaxDimExprLength)
      fail("expression is " + std::to_string(text_.size()) + " characters; the limit is " +
           std::to_string(kMaxDimExprLength) + ": simplify the shape expression");
    DimExpr e = expr(0);
    skip_space();
    if (pos_ != text_.size()) fail_here("unexpected '" + std::string(1, text_[pos_]) + "'");
    return e;
  }

 private:
  [[noreturn]] void fail(const std::string& why) const {
    throw RecordError(field_, why + " (expression \"" + std::string(text_) +
                                  "\"; grammar: integers, symbols, + - * // %, parentheses, max(a,b), min(a,b))");
  }
  [[noreturn]] void fail_here(const std::string& why) const {
    fail(why + " at offset " + std::to_string(pos_));
  }

  void skip_space() {
    while (pos_ < text_.size() && text_[pos_] == ' ') ++pos_;
  }
  bool accept(std::string_view token) {
    skip_space();
    if (text_.substr(pos_, token.size()) != token) return false;
    pos_ += token.size();
    return true;
  }
  void expect(std::string_view token) {
    if (!accept(token)) fail_here("expected '" + std::string(token) + "'");
  }
  static DimExpr binary(DimExpr::Kind kind, DimExpr a, DimExpr b) {
    DimExpr e;
    e.kind = kind;
    e.args.push_back(std::move(a));
    e.args.push_back(std::move(b));
    return e;
  }

  DimExpr expr(int depth) {
    if (depth > kMaxDimExprDepth)
      fail("nesting deeper than " + std::to_string(kMaxDimExprDepth) + ": simplify the shape expression");
    DimExpr left = term(depth);
    for (;;) {
      if (accept("+")) left = binary(DimExpr::Kind::kAdd, std::move(left), term(depth));
      else if (accept("-")) left = binary(DimExpr::Kind::kSub, std::move(left), term(depth));
      else return left;
    }
  }

  DimExpr term(int depth) {
    DimExpr left = factor(depth);
    for (;;) {
      if (accept("//")) left = binary(DimExpr::Kind::kFloorDiv, std::move(left), factor(depth));
      else if (accept("*")) left = binary(DimExpr::Kind::kMul, std::move(left), factor(depth));
      else if (accept("%")) left = binary(DimExpr::Kind::kMod, std::move(left), factor(depth));
      else return left;
    }
  }

  DimExpr factor(int depth) {
    skip_space();
    if (pos_ >= text_.size()) fail_here("expression ends early");
    char c = text_[pos_];
    if (c == '(') {
      ++pos_;
      DimExpr inner = expr(depth + 1);
      expect(")");
      return inner;
    }
    if (std::isdigit(static_cast<unsigned char>(c))) return integer();
    if (is_symbol_start(c)) return name_or_call(depth);
    fail_here("unexpected '" + std::string(1, c) + "'");
  }

  DimExpr integer() {
    DimExpr e;
    while (pos_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_]))) {
      int digit = text_[pos_++] - '0';
      if (__builtin_mul_overflow(e.value, 10, &e.value) || __builtin_add_overflow(e.value, digit, &e.value))
        fail("integer literal does not fit in 64 bits");
    }
    return e;
  }

  DimExpr name_or_call(int depth) {
    size_t start = pos_;
    while (pos_ < text_.size() && is_symbol_char(text_[pos_])) ++pos_;
    std::string name(text_.substr(start, pos_ - start));
    if (name == "max" || name == "min") {
      expect("(");
      DimExpr a = expr(depth + 1);
      expect(",");
      DimExpr b = expr(depth + 1);
      expect(")");
      return binary(name == "max" ? DimExpr::Kind::kMax : DimExpr::Kind::kMin, std::move(a), std::move(b));
    }
    DimExpr e;
    e.kind = DimExpr::Kind::kSymbol;
    e.symbol = std::move(name);
    return e;
  }

  std::string_view text_;
  const std::string& field_;
  size_t pos_ = 0;
};

int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

int64_t floor_mod(int64_t a, int64_t b) {
  int64_t r = a % b;
  return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}

}  // namespace

std::string_view DimExpr::op() const {
  switch (kind) {
    case Kind::kAdd: return "+";
    case Kind::kSub: return "-";
    case Kind::kMul: return "*";
    case Kind::kFloorDiv: return "//";
    case Kind::kMod: return "%";
    case Kind::kMax: return "max";
    case Kind::kMin: return "min";
    default: return "";
  }
}

bool is_symbol_name(std::string_view name) {
  if (name.empty() || !is_symbol_start(name[0]) || name == "max" || name == "min") return false;
  for (char c : name)
    if (!is_symbol_char(c)) return false;
  return true;
}

DimExpr parse_dim_expr(std::string_view text, const std::string& field) {
  return Parser(text, field).parse_all();
}

void collect_symbols(const DimExpr& expr, std::set<std::string>& out) {
  if (expr.kind == DimExpr::Kind::kSymbol) out.insert(expr.symbol);
  for (const DimExpr& arg : expr.args) collect_symbols(arg, out);
}

int64_t eval_dim_expr(const DimExpr& expr, const std::map<std::string, int64_t>& symbols, const std::string& field) {
  using Kind = DimExpr::Kind;
  if (expr.kind == Kind::kInt) return expr.value;
  if (expr.kind == Kind::kSymbol) {
    auto it = symbols.find(expr.symbol);
    if (it == symbols.end()) throw RecordError(field, "no value given for symbol '" + expr.symbol + "'");
    return it->second;
  }
  int64_t a = eval_dim_expr(expr.args[0], symbols, field);
  int64_t b = eval_dim_expr(expr.args[1], symbols, field);
  int64_t r = 0;
  bool overflow = false;
  switch (expr.kind) {
    case Kind::kAdd: overflow = __builtin_add_overflow(a, b, &r); break;
    case Kind::kSub: overflow = __builtin_sub_overflow(a, b, &r); break;
    case Kind::kMul: overflow = __builtin_mul_overflow(a, b, &r); break;
    case Kind::kFloorDiv:
    case Kind::kMod:
      if (b == 0) throw RecordError(field, "division by zero evaluating '" + std::string(expr.op()) + "'");
      overflow = (a == INT64_MIN && b == -1);
      if (!overflow) r = expr.kind == Kind::kFloorDiv ? floor_div(a, b) : floor_mod(a, b);
      break;
    case Kind::kMax: r = a > b ? a : b; break;
    case Kind::kMin: r = a < b ? a : b; break;
    default: break;
  }
  if (overflow) throw RecordError(field, "int64 overflow evaluating '" + std::string(expr.op()) + "'");
  return r;
}

}  // namespace trtpack::core
