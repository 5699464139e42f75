// comm_mpi.cpp: Comm over Open MPI (comm.h), linked into executables only.
//
// One communication thread owns MPI: it calls MPI_Init_thread (so MPI_THREAD_FUNNELED holds), runs
// the collectives in the order they were posted, and finalises. The training thread posts work
// and either goes on (startAllreduce: the bucketed gradient sums overlap the backward pass) or
// waits for it. Waits are bounded by CNNC_COMM_TIMEOUT seconds (default 300): a collective that
// does not finish in that time means a rank is gone or the network failed, and the step fails
// with that message instead of hanging. A rank that dies is usually noticed sooner: mpirun then
// sends SIGTERM to every other rank, and train_loop.cpp ends them with an error at once.
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "comm.h"

#ifdef CNNC_HAVE_MPI
#include <mpi.h>
#endif

namespace cnnc::rt {

namespace {
int envInt(const char* name, int dflt) {
  const char* v = getenv(name);
  return v && *v ? atoi(v) : dflt;
}
}  // namespace

bool launchedByMpi(int& rank, int& size) {
  // Open MPI's mpirun, and launchers that set the same variables; PMI_* for MPICH-style launchers.
  size = envInt("OMPI_COMM_WORLD_SIZE", envInt("PMI_SIZE", 1));
  rank = envInt("OMPI_COMM_WORLD_RANK", envInt("PMI_RANK", 0));
  return size > 1;
}

#ifdef CNNC_HAVE_MPI

namespace {

class MpiComm : public Comm {
public:
  bool start(std::string& err) {
    timeoutS_ = envInt("CNNC_COMM_TIMEOUT", 300);
    worker_ = std::thread([this] { loop(); });
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [&] { return started_; });
    if (!initErr_.empty()) {
      err = initErr_;
      return false;
    }
    return true;
  }
  ~MpiComm() override {
    {
      std::lock_guard<std::mutex> l(mu_);
      quit_ = true;
    }
    cv_.notify_all();
    // A worker stuck in a collective with a dead rank would never return: leave it (the process
    // is ending, and MPI_Finalize must not run then).
    if (broken_) worker_.detach();
    else if (worker_.joinable()) worker_.join();
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  bool broadcast(void* data, size_t bytes, std::string& err) override {
    return run([=] {
      char* p = (char*)data;
      for (size_t done = 0; done < bytes;) {  // MPI counts are int
        int n = (int)std::min<size_t>(bytes - done, 1u << 30);
        int rc = MPI_Bcast(p + done, n, MPI_BYTE, 0, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return rc;
        done += (size_t)n;
      }
      return (int)MPI_SUCCESS;
    }, "broadcast", err);
  }
  bool allreduceSum(float* data, size_t n, std::string& err) override {
    return run([=] { return sumF(data, n); }, "gradient sum", err);
  }
  bool allreduceSum(double* data, size_t n, std::string& err) override {
    return run([=] { return MPI_Allreduce(MPI_IN_PLACE, data, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD); }, "sum", err);
  }
  void startAllreduce(float* data, size_t n) override { post([=] { return sumF(data, n); }); }
  bool waitAll(std::string& err) override {
    uint64_t last;
    {
      std::lock_guard<std::mutex> l(mu_);
      last = posted_;
    }
    return waitFor(last, "gradient sum", err);
  }
  void takeTimes(double& commMs, double& blockedMs) override {
    std::lock_guard<std::mutex> l(mu_);
    commMs = commMs_;
    blockedMs = blockedMs_;
    commMs_ = blockedMs_ = 0;
  }

private:
  static int sumF(float* data, size_t n) {
    for (size_t done = 0; done < n;) {
      int k = (int)std::min<size_t>(n - done, 1u << 28);
      int rc = MPI_Allreduce(MPI_IN_PLACE, data + done, k, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
      if (rc != MPI_SUCCESS) return rc;
      done += (size_t)k;
    }
    return MPI_SUCCESS;
  }
  void loop() {
    int provided = 0;
    int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
    {
      std::lock_guard<std::mutex> l(mu_);
      if (rc != MPI_SUCCESS) initErr_ = "MPI_Init_thread failed: " + errText(rc);
      else {
        // Errors come back as codes, so a failed collective is reported, not an abort.
        MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
        MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
        MPI_Comm_size(MPI_COMM_WORLD, &size_);
      }
      started_ = true;
    }
    cv_.notify_all();
    if (rc != MPI_SUCCESS) return;
    for (;;) {
      std::function<int()> job;
      {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [&] { return quit_ || !jobs_.empty(); });
        if (jobs_.empty()) break;  // quit with nothing left
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      auto t0 = std::chrono::steady_clock::now();
      int r = job();
      double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      {
        std::lock_guard<std::mutex> l(mu_);
        commMs_ += ms;
        ++done_;
        if (r != MPI_SUCCESS && failRc_ == MPI_SUCCESS) failRc_ = r;
      }
      cv_.notify_all();
    }
    MPI_Finalize();
  }
  uint64_t post(std::function<int()> job) {
    std::lock_guard<std::mutex> l(mu_);
    jobs_.push_back(std::move(job));
    cv_.notify_all();
    return ++posted_;
  }
  bool run(std::function<int()> job, const char* what, std::string& err) { return waitFor(post(std::move(job)), what, err); }
  bool waitFor(uint64_t id, const char* what, std::string& err) {
    auto t0 = std::chrono::steady_clock::now();
    std::unique_lock<std::mutex> l(mu_);
    bool ok = cv_.wait_for(l, std::chrono::seconds(timeoutS_), [&] { return done_ >= id || failRc_ != MPI_SUCCESS; });
    blockedMs_ += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    std::string who = "rank " + std::to_string(rank_) + " of " + std::to_string(size_);
    if (!ok) {
      broken_ = true;
      err = who + ": a " + std::string(what) + " did not finish within " + std::to_string(timeoutS_) +
            " s (CNNC_COMM_TIMEOUT): another rank stopped or the network failed";
      return false;
    }
    if (failRc_ != MPI_SUCCESS) {
      broken_ = true;
      err = who + ": a " + std::string(what) + " failed: " + errText(failRc_);
      return false;
    }
    return true;
  }
  static std::string errText(int rc) {
    char buf[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, buf, &len);
    return std::string(buf, (size_t)len);
  }

  std::thread worker_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<int()>> jobs_;
  uint64_t posted_ = 0, done_ = 0;
  int failRc_ = MPI_SUCCESS, rank_ = 0, size_ = 1, timeoutS_ = 300;
  bool started_ = false, quit_ = false, broken_ = false;
  std::string initErr_;
  double commMs_ = 0, blockedMs_ = 0;
};

}  // namespace

std::unique_ptr<Comm> makeComm(std::string& err) {
  int rank, size;
  if (!launchedByMpi(rank, size)) return std::make_unique<Comm>();
  auto c = std::make_unique<MpiComm>();
  if (!c->start(err)) return nullptr;
  return c;
}

#else

std::unique_ptr<Comm> makeComm(std::string& err) {
  int rank, size;
  if (!launchedByMpi(rank, size)) return std::make_unique<Comm>();
  err = "this executable was built without Open MPI, so it cannot train as one of " + std::to_string(size) +
        " ranks: install it (apt-get install libopenmpi-dev openmpi-bin, as scripts/setup.sh does), rebuild cnnc, and compile the net again";
  return nullptr;
}

#endif

}  // namespace cnnc::rt
