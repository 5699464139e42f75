// Parsing: the AST keeps locations; malformed bytes are rejected before ANTLR runs.
#include <gtest/gtest.h>

#include "parser.h"
#include "test_util.h"

using namespace cnnc;

TEST(Parser, KeepsLocationsOnNodes) {
  SourceManager sm;
  Diagnostics d(sm);
  int id = sm.add("x.cnn", "network n {\n  input(1, 8, 8)\n  c1: conv(4, 3) * 2\n}\n");
  auto ast = parseSource(id, sm, d);
  ASSERT_TRUE(ast);
  ASSERT_EQ(ast->decls.size(), 1u);
  const Decl& n = *ast->decls[0];
  EXPECT_EQ(n.loc.line, 1);
  EXPECT_EQ(n.loc.col, 9);
  ASSERT_EQ(n.body.size(), 2u);
  const Stmt& s = *n.body[1];
  EXPECT_EQ(s.kind, Stmt::Layer);
  EXPECT_EQ(s.label, "c1");
  EXPECT_EQ(s.call.callee, "conv");
  EXPECT_EQ(s.call.loc.line, 3);
  EXPECT_EQ(s.call.loc.col, 7);
  ASSERT_TRUE(s.count);
  EXPECT_EQ(s.count->intValue, 2);
}

TEST(Parser, RejectsInvalidUtf8WithPosition) {
  size_t off = 0;
  std::string why;
  EXPECT_FALSE(checkText(std::string("ab\xC3\x28", 4), off, why));
  EXPECT_EQ(off, 2u);
  EXPECT_FALSE(checkText(std::string("a\0b", 3), off, why));
  EXPECT_EQ(off, 1u);
  EXPECT_NE(why.find("binary"), std::string::npos);
  EXPECT_FALSE(checkText("\xED\xA0\x80", off, why));   // UTF-16 surrogate
  EXPECT_FALSE(checkText("\xC0\xAF", off, why));       // overlong
  EXPECT_TRUE(checkText("# caf\xC3\xA9 \xE2\x9C\x93\n", off, why));
}

TEST(Parser, BoundsNesting) {
  std::string deep = "network n { input(1) let x = " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }";
  auto c = test::compile(deep);
  EXPECT_FALSE(c->ok);
  EXPECT_NE(c->messages().find("nesting is deeper than"), std::string::npos) << c->messages();
}

TEST(Parser, ReportsSyntaxErrorAtToken) {
  auto c = test::compile("network n {\n  input(1, 8, 8)\n  conv(4, 3 @\n}\n");
  EXPECT_FALSE(c->ok);
  ASSERT_FALSE(c->diags->all().empty());
  const auto& d = c->diags->all()[0];
  EXPECT_EQ(d.loc.line, 3);
  EXPECT_EQ(d.loc.col, 13);
  EXPECT_NE(d.message.find("stray character '@'"), std::string::npos) << d.message;
}
