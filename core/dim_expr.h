#pragma once
// Symbolic tensor dimensions: "s0", "(s1-3)//2+1", "max(s0,2)*4".
// Grammar (whitespace between tokens is ignored):
//   expr   := term   (("+" | "-") term)*
//   term   := factor (("*" | "//" | "%") factor)*
//   factor := INT | SYMBOL | ("max" | "min") "(" expr "," expr ")" | "(" expr ")"
//   INT    := [0-9]+          SYMBOL := [a-z_][a-z0-9_]*   ("max"/"min" are reserved)
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace trtpack::core {

inline constexpr size_t kMaxDimExprLength = 256;
inline constexpr int kMaxDimExprDepth = 32;

struct DimExpr {
  enum class Kind { kInt, kSymbol, kAdd, kSub, kMul, kFloorDiv, kMod, kMax, kMin };
  Kind kind = Kind::kInt;
  int64_t value = 0;           // kInt
  std::string symbol;          // kSymbol
  std::vector<DimExpr> args;   // two operands for every binary kind

  // The operator's spelling in the grammar: "+", "-", "*", "//", "%", "max", "min" ("" for leaves).
  std::string_view op() const;
};

// Parses one expression; throws RecordError(field, ...) on malformed input or past the limits above.
DimExpr parse_dim_expr(std::string_view text, const std::string& field = "dim");

// Symbols the expression uses.
void collect_symbols(const DimExpr& expr, std::set<std::string>& out);

// Evaluates with Python's semantics (floor division, modulo takes the divisor's sign); throws
// RecordError on an unknown symbol, division by zero or int64 overflow.
int64_t eval_dim_expr(const DimExpr& expr, const std::map<std::string, int64_t>& symbols,
                      const std::string& field = "dim");

bool is_symbol_name(std::string_view name);

}  // namespace trtpack::core
