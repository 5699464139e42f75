// Output-size arithmetic against values PyTorch 1.13 computes for the same layers.
#include "shape_rules.h"

#include <gtest/gtest.h>

using namespace cnnc;

TEST(ShapeRules, ConvMatchesPyTorch) {
  EXPECT_EQ(convOutSize(224, 7, 2, 3, 1), 112);  // ResNet stem
  EXPECT_EQ(convOutSize(32, 5, 1, 0, 1), 28);    // LeNet conv1
  EXPECT_EQ(convOutSize(56, 1, 2, 0, 1), 28);    // projection shortcut
  EXPECT_EQ(convOutSize(224, 11, 4, 2, 1), 55);  // AlexNet conv1
  EXPECT_EQ(convOutSize(10, 3, 1, 2, 2), 10);    // dilation 2, padding 2
  EXPECT_EQ(convOutSize(3, 5, 1, 0, 1), -1);     // kernel larger than input
}

TEST(ShapeRules, PoolCeilMode) {
  // GoogLeNet: MaxPool2d(3, 2, ceil_mode=True) on 112 -> 56, on 56 -> 28, on 14 -> 7.
  EXPECT_EQ(poolOutSize(112, 3, 2, 0, 1, true), 56);
  EXPECT_EQ(poolOutSize(56, 3, 2, 0, 1, true), 28);
  EXPECT_EQ(poolOutSize(14, 2, 2, 0, 1, true), 7);
  EXPECT_EQ(poolOutSize(112, 3, 2, 0, 1, false), 55);
  // The last window may not start in the right padding: 5, k=2, s=2, p=1, ceil -> 3 (not 4).
  EXPECT_EQ(poolOutSize(5, 2, 2, 1, 1, true), 3);
  EXPECT_EQ(poolOutSize(6, 3, 3, 0, 1, true), 2);
}

TEST(ShapeRules, CheckedArithmetic) {
  int64_t r;
  EXPECT_TRUE(mulOk(1 << 20, 1 << 20, r));
  EXPECT_EQ(r, int64_t(1) << 40);
  EXPECT_FALSE(mulOk(INT64_MAX, 2, r));
  EXPECT_FALSE(addOk(INT64_MAX, 1, r));
}
