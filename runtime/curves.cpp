// curves.cpp: see curves.h. Axes get "nice" ticks (1, 2 or 5 x 10^k) so the numbers read cleanly.
#include "curves.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace cnnc::rt {

namespace {

double niceStep(double range, int ticks) {
  double raw = range / std::max(1, ticks);
  double p = std::pow(10.0, std::floor(std::log10(raw)));
  double m = raw / p;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) o += c == '<' ? "&lt;" : c == '>' ? "&gt;" : c == '&' ? "&amp;" : std::string(1, c);
  return o;
}

std::string num(double v) {
  char b[32];
  snprintf(b, sizeof b, std::fabs(v) >= 100 || v == std::floor(v) ? "%.0f" : std::fabs(v) >= 1 ? "%.1f" : "%.3g", v);
  return b;
}

}  // namespace

std::string renderCurves(const std::string& title, const std::vector<Panel>& panels) {
  const double W = 460, H = 320, ml = 56, mr = 16, mt = 40, mb = 44;
  std::ostringstream o;
  double total = W * std::max<size_t>(1, panels.size());
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << total << "\" height=\"" << H + 24 << "\" font-family=\"Helvetica,Arial,sans-serif\" font-size=\"12\">\n"
    << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    << "<text x=\"" << total / 2 << "\" y=\"18\" text-anchor=\"middle\" font-size=\"15\">" << esc(title) << "</text>\n";
  for (size_t pi = 0; pi < panels.size(); ++pi) {
    const Panel& p = panels[pi];
    double x0 = pi * W + ml, y0 = 24 + mt, pw = W - ml - mr, ph = H - mt - mb;
    size_t n = 0;
    double lo = INFINITY, hi = -INFINITY;
    for (const auto& s : p.series) {
      n = std::max(n, s.y.size());
      for (double v : s.y)
        if (std::isfinite(v)) { lo = std::min(lo, v); hi = std::max(hi, v); }
    }
    if (!std::isfinite(lo)) { lo = 0; hi = 1; }
    if (hi - lo < 1e-12) { hi += 0.5; lo -= 0.5; }
    double step = niceStep(hi - lo, 5);
    lo = std::floor(lo / step) * step;
    hi = std::ceil(hi / step) * step;
    double xmax = std::max<double>(2, (double)n);
    auto X = [&](double e) { return x0 + (e - 1) / (xmax - 1) * pw; };
    auto Y = [&](double v) { return y0 + ph - (v - lo) / (hi - lo) * ph; };
    o << "<text x=\"" << x0 + pw / 2 << "\" y=\"" << y0 - 12 << "\" text-anchor=\"middle\" font-size=\"13\">" << esc(p.title) << "</text>\n";
    for (double v = lo; v <= hi + step / 2; v += step)
      o << "<line x1=\"" << x0 << "\" x2=\"" << x0 + pw << "\" y1=\"" << Y(v) << "\" y2=\"" << Y(v) << "\" stroke=\"#e5e7eb\"/>"
        << "<text x=\"" << x0 - 6 << "\" y=\"" << Y(v) + 4 << "\" text-anchor=\"end\" fill=\"#374151\">" << num(v) << "</text>\n";
    double xs = niceStep(xmax - 1, 6);
    for (double e = 1; e <= xmax + 1e-9; e += std::max(1.0, xs))
      o << "<text x=\"" << X(e) << "\" y=\"" << y0 + ph + 16 << "\" text-anchor=\"middle\" fill=\"#374151\">" << num(e) << "</text>\n";
    o << "<rect x=\"" << x0 << "\" y=\"" << y0 << "\" width=\"" << pw << "\" height=\"" << ph << "\" fill=\"none\" stroke=\"#9ca3af\"/>\n"
      << "<text x=\"" << x0 + pw / 2 << "\" y=\"" << y0 + ph + 34 << "\" text-anchor=\"middle\">epoch</text>\n"
      << "<text transform=\"translate(" << x0 - 42 << "," << y0 + ph / 2 << ") rotate(-90)\" text-anchor=\"middle\">" << esc(p.yLabel) << "</text>\n";
    for (size_t si = 0; si < p.series.size(); ++si) {
      const Series& s = p.series[si];
      std::string pts;
      for (size_t e = 0; e < s.y.size(); ++e) {
        if (!std::isfinite(s.y[e])) continue;
        char b[64];
        snprintf(b, sizeof b, "%.1f,%.1f ", X((double)e + 1), Y(s.y[e]));
        pts += b;
      }
      o << "<polyline fill=\"none\" stroke=\"" << s.color << "\" stroke-width=\"2\"" << (s.dashed ? " stroke-dasharray=\"6,4\"" : "") << " points=\"" << pts << "\"/>\n";
      double ly = y0 + 14 + 16 * si;
      o << "<line x1=\"" << x0 + pw - 120 << "\" x2=\"" << x0 + pw - 100 << "\" y1=\"" << ly - 4 << "\" y2=\"" << ly - 4 << "\" stroke=\"" << s.color
        << "\" stroke-width=\"2\"" << (s.dashed ? " stroke-dasharray=\"6,4\"" : "") << "/>"
        << "<text x=\"" << x0 + pw - 94 << "\" y=\"" << ly << "\">" << esc(s.name) << "</text>\n";
    }
  }
  o << "</svg>\n";
  return o.str();
}

}  // namespace cnnc::rt
