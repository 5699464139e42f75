// The kernel compiler's worker pool (codegen/worker_pool.h): every job runs once, failures and
// exceptions are reported as failures, a worker that dies in a job reports that job as crashed and
// the others still run, and a `done` that says stop starts no further job.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <map>
#include <stdexcept>

#include "worker_pool.h"

using cnnc::codegen::runInWorkers;
using cnnc::codegen::WorkerPoolOptions;

namespace {

struct Outcome {
  bool ok, crashed;
};

std::map<size_t, Outcome> run(size_t jobs, int workers, const std::function<bool(size_t)>& work, long stopAfter = -1) {
  std::map<size_t, Outcome> seen;
  WorkerPoolOptions o;
  o.workers = workers;
  o.initWorker = [] { (void)!freopen("/dev/null", "w", stderr); };  // the failures below print on purpose
  std::string err;
  bool ok = runInWorkers(jobs, o, work, [&](size_t j, bool ok, bool crashed) {
    EXPECT_EQ(seen.count(j), 0u) << "job " << j << " reported twice";
    seen[j] = {ok, crashed};
    return stopAfter < 0 || (long)seen.size() < stopAfter;
  }, err);
  EXPECT_TRUE(ok) << err;
  return seen;
}

}  // namespace

TEST(WorkerPool, EveryJobRunsOnceInParallelWorkers) {
  for (int workers : {1, 2, 5}) {
    auto seen = run(23, workers, [](size_t j) { return j % 3 != 1; });
    ASSERT_EQ(seen.size(), 23u) << workers << " workers";
    for (auto& [j, o] : seen) {
      EXPECT_EQ(o.ok, j % 3 != 1) << "job " << j;
      EXPECT_FALSE(o.crashed);
    }
  }
}

TEST(WorkerPool, AnExceptionIsAFailureAndTheWorkerGoesOn) {
  auto seen = run(6, 1, [](size_t j) -> bool {
    if (j == 2) throw std::runtime_error("boom");
    return true;
  });
  ASSERT_EQ(seen.size(), 6u);
  EXPECT_FALSE(seen[2].ok);
  EXPECT_FALSE(seen[2].crashed);
  EXPECT_TRUE(seen[5].ok);
}

TEST(WorkerPool, ADyingWorkerFailsOnlyItsJob) {
  // One worker: jobs after the crash must run in a fresh worker.
  auto seen = run(8, 1, [](size_t j) -> bool {
    if (j == 3) abort();
    if (j == 5) _exit(7);
    return true;
  });
  ASSERT_EQ(seen.size(), 8u);
  for (auto& [j, o] : seen) {
    bool dies = j == 3 || j == 5;
    EXPECT_EQ(o.ok, !dies) << "job " << j;
    EXPECT_EQ(o.crashed, dies) << "job " << j;
  }
}

TEST(WorkerPool, StopStartsNoFurtherJob) {
  auto seen = run(50, 2, [](size_t) { return false; }, 1);
  // The job running beside the first failure still finishes; nothing after it starts.
  EXPECT_GE(seen.size(), 1u);
  EXPECT_LE(seen.size(), 2u);
}

TEST(WorkerPool, NoJobsIsNothingToDo) {
  EXPECT_TRUE(run(0, 2, [](size_t) { return true; }).empty());
}
