// The progress line (rate, ETA) and the SVG curves.
#include <gtest/gtest.h>

#include <cmath>

#include "curves.h"
#include "progress.h"

using namespace cnnc::rt;

TEST(Progress, LineShowsRateAndEta) {
  Progress p("epoch 1/3", 1000, "img", stderr);
  std::string l = p.line(250, 2.0, "loss 0.5000");
  EXPECT_NE(l.find("25%"), std::string::npos) << l;
  EXPECT_NE(l.find("250/1000"), std::string::npos) << l;
  EXPECT_NE(l.find("125 img/s"), std::string::npos) << l;
  EXPECT_NE(l.find("loss 0.5000"), std::string::npos) << l;
  EXPECT_NE(l.find("ETA 0:06"), std::string::npos) << l;  // 750 images at 125/s
  // Below one item per second the rate reads as seconds per item.
  Progress slow("tune", 10, "kernel", stderr);
  std::string s = slow.line(2, 50.0, "");
  EXPECT_NE(s.find("25.0 s/kernel"), std::string::npos) << s;
  EXPECT_NE(s.find("ETA 3:20"), std::string::npos) << s;  // 8 kernels at 25 s
  // Work that stops at a deadline: never past it (a tune with 30 s of its budget left).
  std::string d = slow.line(2, 50.0, "", 30.0);
  EXPECT_NE(d.find("ETA 0:30"), std::string::npos) << d;
  EXPECT_EQ(formatDuration(3725), "1:02:05");
  EXPECT_EQ(formatDuration(NAN), "--:--");
}

TEST(Curves, OnePolylinePerSeriesWithAllPoints) {
  Panel loss{"loss", "cross-entropy", {{"train", {2.0, 1.0, 0.5}, "#2563eb"}, {"test", {2.1, 1.2, NAN}, "#d97706", true}}};
  std::string svg = renderCurves("lenet5", {loss});
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  size_t lines = 0;
  for (size_t p = 0; (p = svg.find("<polyline", p)) != std::string::npos; ++p) ++lines;
  EXPECT_EQ(lines, 2u);
  // The NaN leaves out one point: 3 + 2 coordinate pairs.
  size_t commas = 0;
  for (size_t p = svg.find("points=\""); p != std::string::npos; p = svg.find("points=\"", p + 1)) {
    size_t e = svg.find('"', p + 8);
    for (size_t i = p + 8; i < e; ++i) commas += svg[i] == ',';
  }
  EXPECT_EQ(commas, 5u);
  EXPECT_NE(svg.find("stroke-dasharray"), std::string::npos);
}
