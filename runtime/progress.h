// progress.h: a progress bar for long work (training epochs, evaluation): done/total, rate, the
// latest loss and an ETA. On a terminal it redraws one line; elsewhere (CI logs, pipes) it prints a
// line at every 10% so logs stay short.
#pragma once
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>

namespace cnnc::rt {

class Progress {
public:
  Progress(std::string title, int64_t total, const char* unit = "img", FILE* out = stderr);
  // out == nullptr draws nothing (the ranks other than 0 in data-parallel training).
  // `done` items so far; `extra` is shown after the rate (e.g. "loss 0.4321"). Work that stops at a
  // deadline (a tuning budget) passes the seconds left to it: the ETA is never later.
  void update(int64_t done, const std::string& extra = "", double etaAtMost = INFINITY);
  void finish(const std::string& extra = "");
  // The line update() would draw, for tests.
  std::string line(int64_t done, double seconds, const std::string& extra, double etaAtMost = INFINITY) const;

private:
  std::string title_;
  int64_t total_;
  const char* unit_;
  FILE* out_;
  bool tty_;
  int lastDecile_ = -1;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point lastDraw_;
};

// "1:02:03" or "4:05" for a duration in seconds.
std::string formatDuration(double seconds);

}  // namespace cnnc::rt
