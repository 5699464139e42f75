// comm.h: the collectives data-parallel training needs, behind one interface, so that the core
// runtime does not depend on MPI. `LocalComm` is the single process (every collective is a no-op);
// the Open MPI implementation lives in comm_mpi.cpp, linked only into executables.
//
// Every rank must issue the same collectives in the same order (MPI's rule). Blocking calls return
// false with `err` when the job failed (a dead rank, a timeout); the caller then exits non-zero
// without writing anything.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace cnnc::rt {

class Comm {
public:
  virtual ~Comm() = default;
  virtual int rank() const { return 0; }
  virtual int size() const { return 1; }
  // Copies `bytes` at `data` from rank 0 to every rank.
  virtual bool broadcast(void* data, size_t bytes, std::string& err) { return true; }
  // In-place elementwise sums over the ranks.
  virtual bool allreduceSum(float* data, size_t n, std::string& err) { return true; }
  virtual bool allreduceSum(double* data, size_t n, std::string& err) { return true; }
  // Starts an in-place float sum and returns at once (the backward pass goes on meanwhile);
  // waitAll() completes every started sum. `data` must stay valid until then.
  virtual void startAllreduce(float* data, size_t n) {}
  virtual bool waitAll(std::string& err) { return true; }
  // Milliseconds spent inside collectives since the last call, and how much of that the caller
  // spent blocked waiting (the rest overlapped computation); both reset.
  virtual void takeTimes(double& commMs, double& blockedMs) { commMs = blockedMs = 0; }
  bool distributed() const { return size() > 1; }
};

// The MPI job this process belongs to, or LocalComm when it was not started by mpirun (no
// OMPI_COMM_WORLD_SIZE, or a size of 1). Defined in comm_mpi.cpp: an executable built without
// Open MPI returns nullptr with `err` saying how to get it when mpirun started it with -np > 1.
std::unique_ptr<Comm> makeComm(std::string& err);

// Whether the process was started as one of several MPI ranks (environment only; calls no MPI).
bool launchedByMpi(int& rank, int& size);

}  // namespace cnnc::rt
