// progress.cpp: see progress.h.
#include "progress.h"

#include <unistd.h>

#include <cmath>

namespace cnnc::rt {

std::string formatDuration(double s) {
  if (!std::isfinite(s) || s < 0) return "--:--";
  long t = (long)(s + 0.5);
  char b[32];
  if (t >= 3600) snprintf(b, sizeof b, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
  else snprintf(b, sizeof b, "%ld:%02ld", t / 60, t % 60);
  return b;
}

Progress::Progress(std::string title, int64_t total, const char* unit, FILE* out)
    : title_(std::move(title)), total_(total > 0 ? total : 1), unit_(unit), out_(out), tty_(out && isatty(fileno(out)) != 0) {
  start_ = lastDraw_ = std::chrono::steady_clock::now();
}

std::string Progress::line(int64_t done, double secs, const std::string& extra, double etaAtMost) const {
  double frac = std::min(1.0, (double)done / (double)total_);
  const int width = 24;
  int filled = (int)(frac * width);
  std::string bar(filled, '#');
  bar += std::string(width - filled, '.');
  double rate = secs > 0 ? done / secs : 0;
  double eta = rate > 0 ? std::min((total_ - done) / rate, etaAtMost) : NAN;
  // Slow work (a kernel tuned per minute) reads better as seconds per item than as 0 items/s.
  char r[64];
  if (rate >= 1 || rate == 0) snprintf(r, sizeof r, "%.0f %s/s", rate, unit_);
  else snprintf(r, sizeof r, "%.1f s/%s", 1 / rate, unit_);
  char b[256];
  snprintf(b, sizeof b, "%s [%s] %3d%% %lld/%lld  %s  %s  ETA %s", title_.c_str(), bar.c_str(), (int)(frac * 100), (long long)done,
           (long long)total_, r, extra.c_str(), formatDuration(eta).c_str());
  return b;
}

void Progress::update(int64_t done, const std::string& extra, double etaAtMost) {
  if (!out_) return;
  auto now = std::chrono::steady_clock::now();
  double secs = std::chrono::duration<double>(now - start_).count();
  if (tty_) {
    // At most 10 redraws a second: drawing must not cost training time.
    if (std::chrono::duration<double>(now - lastDraw_).count() < 0.1 && done < total_) return;
    lastDraw_ = now;
    fprintf(out_, "\r%s\033[K", line(done, secs, extra, etaAtMost).c_str());
    fflush(out_);
  } else {
    int decile = (int)(10 * done / total_);
    if (decile == lastDecile_) return;
    lastDecile_ = decile;
    fprintf(out_, "%s\n", line(done, secs, extra, etaAtMost).c_str());
  }
}

void Progress::finish(const std::string& extra) {
  if (!out_) return;
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  if (tty_) fprintf(out_, "\r%s\033[K\n", line(total_, secs, extra).c_str());
  else if (lastDecile_ != 10) fprintf(out_, "%s\n", line(total_, secs, extra).c_str());
  fflush(out_);
}

}  // namespace cnnc::rt
