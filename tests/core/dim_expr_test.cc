#include "core/dim_expr.h"

#include <gtest/gtest.h>

#include "tests/core/test_util.h"

namespace trtpack::core {
namespace {

using testing::fails_with;

// Fully parenthesised form of the AST, to check structure and precedence.
std::string show(const DimExpr& e) {
  if (e.kind == DimExpr::Kind::kInt) return std::to_string(e.value);
  if (e.kind == DimExpr::Kind::kSymbol) return e.symbol;
  if (e.kind == DimExpr::Kind::kMax || e.kind == DimExpr::Kind::kMin)
    return std::string(e.op()) + "(" + show(e.args[0]) + "," + show(e.args[1]) + ")";
  return "(" + show(e.args[0]) + std::string(e.op()) + show(e.args[1]) + ")";
}

int64_t eval(const std::string& text, std::map<std::string, int64_t> symbols = {}) {
  return eval_dim_expr(parse_dim_expr(text), symbols);
}

TEST(DimExpr, ParsesWithPrecedenceAndLeftAssociativity) {
  EXPECT_EQ(show(parse_dim_expr("(s1-3)//2+1")), "(((s1-3)//2)+1)");
  EXPECT_EQ(show(parse_dim_expr("a + b * c % 4")), "(a+((b*c)%4))");
  EXPECT_EQ(show(parse_dim_expr("10-3-2")), "((10-3)-2)");
  EXPECT_EQ(show(parse_dim_expr(" max( s0 , min(s_1,2) ) * 4 ")), "(max(s0,min(s_1,2))*4)");
  EXPECT_EQ(show(parse_dim_expr("s0")), "s0");
  EXPECT_EQ(show(parse_dim_expr("0")), "0");
}

TEST(DimExpr, EvaluatesLikePython) {
  EXPECT_EQ(eval("10-3-2"), 5);
  EXPECT_EQ(eval("(s1-3)//2+1", {{"s1", 16}}), 7);
  EXPECT_EQ(eval("(0-7)//2"), -4);  // floor, not truncation
  EXPECT_EQ(eval("(0-7)%3"), 2);    // sign of the divisor
  EXPECT_EQ(eval("7%(0-3)"), -2);
  EXPECT_EQ(eval("max(s0,2)*4", {{"s0", 1}}), 8);
  EXPECT_EQ(eval("min(s0,2)*4", {{"s0", 1}}), 4);
}

TEST(DimExpr, CollectsSymbols) {
  std::set<std::string> used;
  collect_symbols(parse_dim_expr("max(s0, s1) + s0 * 2"), used);
  EXPECT_EQ(used, (std::set<std::string>{"s0", "s1"}));
}

TEST(DimExpr, RejectsMalformedInputNamingTheProblem) {
  const std::pair<const char*, const char*> cases[] = {
      {"", "ends early"},          {"s0+", "ends early"},     {"(s0", "expected ')'"},
      {"s0)", "unexpected ')'"},   {"max(s0)", "expected ','"}, {"foo(s0,1)", "unexpected '('"},
      {"S0", "unexpected 'S'"},    {"1.5", "unexpected '.'"}, {"s0 / 2", "unexpected '/'"},
      {"s0 ** 2", "unexpected '*'"}, {"-s0", "unexpected '-'"}, {"s0\t+1", "unexpected '\t'"},
      {"max", "expected '('"},     {"99999999999999999999", "does not fit in 64 bits"},
  };
  for (const auto& [text, part] : cases)
    EXPECT_TRUE(fails_with([&] { parse_dim_expr(text, "outputs[0].shape[1]"); }, "outputs[0].shape[1]", part)) << text;
}

TEST(DimExpr, EnforcesLengthAndDepthLimits) {
  std::string deep = std::string(40, '(') + "s0" + std::string(40, ')');
  EXPECT_TRUE(fails_with([&] { parse_dim_expr(deep); }, "dim", "nesting deeper than 32"));
  std::string ok_depth = std::string(30, '(') + "s0" + std::string(30, ')');
  EXPECT_EQ(show(parse_dim_expr(ok_depth)), "s0");
  std::string long_expr = "s0";
  while (long_expr.size() <= kMaxDimExprLength) long_expr += "+1";
  EXPECT_TRUE(fails_with([&] { parse_dim_expr(long_expr); }, "dim", "the limit is 256"));
}

TEST(DimExpr, EvaluationErrorsAreRecordErrors) {
  EXPECT_TRUE(fails_with([] { eval("s0+s9", {{"s0", 1}}); }, "dim", "no value given for symbol 's9'"));
  EXPECT_TRUE(fails_with([] { eval("s0//(s0-1)", {{"s0", 1}}); }, "dim", "division by zero"));
  EXPECT_TRUE(fails_with([] { eval("s0%0", {{"s0", 1}}); }, "dim", "division by zero"));
  EXPECT_TRUE(fails_with([] { eval("s0*s0*s0", {{"s0", int64_t{1} << 40}}); }, "dim", "overflow"));
}

TEST(DimExpr, SymbolNames) {
  EXPECT_TRUE(is_symbol_name("s0"));
  EXPECT_TRUE(is_symbol_name("_batch_2"));
  EXPECT_FALSE(is_symbol_name("max"));
  EXPECT_FALSE(is_symbol_name("0s"));
  EXPECT_FALSE(is_symbol_name("S0"));
  EXPECT_FALSE(is_symbol_name(""));
}

}  // namespace
}  // namespace trtpack::core
