// Diagnostics: rendering with caret and notes, de-duplication, -Werror.
#include "diagnostics.h"

#include <gtest/gtest.h>

using namespace cnnc;

TEST(Diagnostics, RendersCaretUnderColumn) {
  SourceManager sm;
  int id = sm.add("f.cnn", "network n {\n  conv(0, 3)\n}\n");
  Diagnostics d(sm);
  Diagnostic x;
  x.loc = {id, 2, 8, 1};
  x.message = "bad";
  x.notes.push_back("in block 'b' instantiated at f.cnn:9:3");
  x.hint = "fix it";
  EXPECT_EQ(d.render(x), "f.cnn:2:8: error: bad\n 2 |   conv(0, 3)\n   |        ^\nnote: in block 'b' instantiated at f.cnn:9:3\nhint: fix it\n");
}

TEST(Diagnostics, DeduplicatesAndPromotesWarnings) {
  SourceManager sm;
  int id = sm.add("f.cnn", "x\n");
  Diagnostics d(sm);
  testing::internal::CaptureStderr();
  d.error({id, 1, 1, 1}, "same");
  d.error({id, 1, 1, 1}, "same");
  d.warningsAsErrors = true;
  d.warning({id, 1, 1, 1}, "w");
  testing::internal::GetCapturedStderr();
  EXPECT_EQ(d.errors(), 2);
  EXPECT_EQ(d.warnings(), 0);
}
