// replay_main.cpp: runs fuzz_frontend.cpp's target over files in one process, as libFuzzer does when
// given files: every file of the corpus (seeds and any crashers found) goes through the parser, the
// elaborator and the summary printer. A crash or an uncaught exception ends the test; a file that
// takes more than 2 seconds is reported by name (the alarm) and fails it.
// Usage: fuzz_replay DIR...   (every regular file below each DIR)
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

const char* g_current = "";

void onAlarm(int) {
  // Only async-signal-safe calls here.
  const char msg[] = "fuzz_replay: more than 2 s on ";
  (void)!write(2, msg, sizeof msg - 1);
  (void)!write(2, g_current, std::char_traits<char>::length(g_current));
  (void)!write(2, "\n", 1);
  _exit(3);
}

}  // namespace

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i)
    for (const auto& e : fs::recursive_directory_iterator(argv[i]))
      if (e.is_regular_file() && e.path().filename().string()[0] != '.') files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  if (files.empty()) {
    fprintf(stderr, "fuzz_replay: no files under the given folders\n");
    return 1;
  }
  signal(SIGALRM, onAlarm);
  double slowest = 0;
  std::string slowestFile;
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string bytes = ss.str();
    g_current = f.c_str();
    alarm(2);
    auto t0 = std::chrono::steady_clock::now();
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    alarm(0);
    if (dt > slowest) slowest = dt, slowestFile = f;
  }
  printf("%zu files passed (slowest %.3f s: %s)\n", files.size(), slowest, slowestFile.c_str());
  return 0;
}
