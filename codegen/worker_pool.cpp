// worker_pool.cpp: see worker_pool.h.
//
// Protocol, one Unix socket pair per worker: the driver sends a job index (4 bytes), the worker
// answers with the index and a status byte when the job is done. A worker whose socket closes
// before it answers has died in that job. The driver hands a job only to an idle worker, so it
// always knows which job a dead worker held. Sockets, not pipes: send(MSG_NOSIGNAL) to a dead
// worker fails instead of raising SIGPIPE in the driver.
#include "worker_pool.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <vector>

namespace cnnc::codegen {

namespace {

struct Worker {
  pid_t pid = -1;
  int fd = -1;
  long job = -1;  // the job it is running, -1 when idle
};

struct Record {
  uint32_t job;
  uint8_t ok;
};

// Reads exactly n bytes; false on end of file or error.
bool readFull(int fd, void* buf, size_t n) {
  auto* p = static_cast<char*>(buf);
  while (n > 0) {
    ssize_t r = recv(fd, p, n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= (size_t)r;
  }
  return true;
}

bool writeFull(int fd, const void* buf, size_t n) {
  auto* p = static_cast<const char*>(buf);
  while (n > 0) {
    ssize_t r = send(fd, p, n, MSG_NOSIGNAL);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= (size_t)r;
  }
  return true;
}

[[noreturn]] void workerLoop(int fd, const WorkerPoolOptions& opts, const std::function<bool(size_t)>& work) {
  if (opts.initWorker) opts.initWorker();
  uint32_t job;
  while (readFull(fd, &job, sizeof job)) {
    bool ok = false;
    try {
      ok = work(job);
    } catch (const std::exception& e) {
      fprintf(stderr, "cnnc: error: %s\n", e.what());
    }
    fflush(nullptr);
    Record r{job, (uint8_t)ok};
    if (!writeFull(fd, &r, sizeof r)) break;
  }
  _exit(0);  // the driver closed its end: no more jobs
}

}  // namespace

bool runInWorkers(size_t jobs, const WorkerPoolOptions& opts, const std::function<bool(size_t)>& work,
                  const std::function<bool(size_t, bool, bool)>& done, std::string& err) {
  if (jobs == 0) return true;
  std::vector<Worker> workers;
  auto spawn = [&]() -> bool {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) { err = std::string("socketpair failed: ") + strerror(errno); return false; }
    fflush(nullptr);
    pid_t pid = fork();
    if (pid < 0) {
      err = std::string("fork failed: ") + strerror(errno);
      close(sv[0]);
      close(sv[1]);
      return false;
    }
    if (pid == 0) {
      close(sv[0]);
      // Other workers' sockets stay open in a forked child unless closed; one held here would hide
      // that worker's death (no end of file) from the driver.
      for (const Worker& w : workers) close(w.fd);
      workerLoop(sv[1], opts, work);
    }
    close(sv[1]);
    workers.push_back({pid, sv[0], -1});
    return true;
  };
  size_t next = 0;
  bool stop = false, ok = true;
  int want = (int)std::max<size_t>(1, std::min<size_t>(jobs, (size_t)std::max(1, opts.workers)));
  for (int i = 0; i < want && ok; ++i) ok = spawn();
  while (ok) {
    for (Worker& w : workers)
      if (w.job < 0 && !stop && next < jobs) {
        uint32_t j = (uint32_t)next;
        if (!writeFull(w.fd, &j, sizeof j)) continue;  // died idle: its end of file comes below
        w.job = (long)next++;
      }
    std::vector<pollfd> fds;
    for (const Worker& w : workers) fds.push_back({w.fd, POLLIN, 0});
    bool busy = false;
    for (const Worker& w : workers) busy |= w.job >= 0;
    if (!busy && (stop || next >= jobs)) break;
    if (poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      err = std::string("poll failed: ") + strerror(errno);
      ok = false;
      break;
    }
    for (size_t i = fds.size(); i-- > 0;) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      Worker& w = workers[i];
      Record r{};
      if (readFull(w.fd, &r, sizeof r) && w.job >= 0 && r.job == (uint32_t)w.job) {
        long j = w.job;
        w.job = -1;
        if (!done((size_t)j, r.ok != 0, false)) stop = true;
        continue;
      }
      // The worker died (or broke the protocol): its job failed; a fresh worker replaces it.
      long j = w.job;
      close(w.fd);
      waitpid(w.pid, nullptr, 0);
      workers.erase(workers.begin() + (long)i);
      if (j >= 0 && !done((size_t)j, false, true)) stop = true;
      if (!stop && next < jobs && !spawn()) ok = false;
    }
    if (workers.empty() && !stop && next < jobs && !spawn()) ok = false;
  }
  for (Worker& w : workers) close(w.fd);
  for (Worker& w : workers) waitpid(w.pid, nullptr, 0);
  return ok;
}

}  // namespace cnnc::codegen
