// curves.h: training curves as an SVG picture a person can open in any browser: one panel of loss
// and one of accuracy against epochs, one polyline per series.
#pragma once
#include <string>
#include <vector>

namespace cnnc::rt {

struct Series {
  std::string name;          // legend text, e.g. "train loss" or "plain34"
  std::vector<double> y;     // one value per epoch (epoch 1 first); NaN leaves a gap
  std::string color;         // CSS colour
  bool dashed = false;
};

struct Panel {
  std::string title, yLabel;
  std::vector<Series> series;
};

// Renders panels side by side; returns the SVG text.
std::string renderCurves(const std::string& title, const std::vector<Panel>& panels);

}  // namespace cnnc::rt
