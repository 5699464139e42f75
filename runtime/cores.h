// cores.h: how many threads this process may usefully run.
#pragma once
#include <sched.h>

#include <thread>

namespace cnnc::rt {

// The cores this process may run on: under `mpirun --bind-to core` a rank's own core(s), not the
// machine's; at least 1.
inline int allowedCores() {
  cpu_set_t cpus;
  int n = sched_getaffinity(0, sizeof cpus, &cpus) == 0 ? CPU_COUNT(&cpus) : (int)std::thread::hardware_concurrency();
  return n > 0 ? n : 1;
}

}  // namespace cnnc::rt
