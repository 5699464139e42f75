// tuning_db.h: the tuning database, an append-only file of JSON lines, one per measured schedule
// candidate. Records are keyed by (kernel, target): the kernel is KernelSpec::key() (shapes and
// attributes, no schedule), the target Halide's resolved target string, so one file serves every
// net and machines of one target can share it. Two databases concatenated are a database.
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "kernel.h"

namespace cnnc::codegen {

struct TuningRecord {
  std::string kernel;  // KernelSpec::key()
  std::string target;  // resolved Halide target
  Schedule schedule;
  double medianMs = 0;  // median time of one call at `batch`
  int batch = 1;
  std::string version;  // cnnc version that measured it
  std::string date;     // UTC, ISO 8601
  std::string net;      // the tune that measured it ("resnet18/infer"): `cnnc tune --resume` counts its time
  double tuneSeconds = 0;  // compile + measurement time this record cost
  // Measured in the whole net (`cnnc tune`'s last step, situ "net"), not alone: per kernel, a
  // compile prefers these records over isolated ones (tools/cnnc/tune_in_net.cpp says why).
  bool inNet = false;
};

// Format version of a record line ("v"). A reader rejects other versions: their fields may mean
// something else.
constexpr int kTuningFormat = 1;

// The record as one line of JSON (no newline), with a checksum over its fields ("sum"): a record
// edited by hand no longer matches and is rejected rather than trusted.
std::string recordToLine(const TuningRecord& r);

struct TuningDb {
  std::vector<TuningRecord> records;
  // Fastest record per (kernel, target), among records of this cnnc version; among those measured
  // in the net where the kernel has any.
  std::map<std::pair<std::string, std::string>, TuningRecord> best;
  int otherVersion = 0;  // records of another cnnc version, ignored (their schedules may differ)
};

// Reads `path` (a missing file is an empty database). Errors name the line: invalid JSON, missing or
// mistyped fields, a checksum mismatch, another format version. A torn last line (no newline: a
// tune killed mid-write) is skipped with a warning in `warnings`. Returns false with `err` set.
bool readTuningDb(const std::string& path, const std::string& version, TuningDb& db, std::string& err, std::vector<std::string>& warnings);

// Adds `r` to `db` as readTuningDb adds each line: to its records, and to `best` when r is of
// `version` (in-net records first, then the fastest), else to the count of other versions.
void addTuningRecord(TuningDb& db, const TuningRecord& r, const std::string& version);

// The candidates on record for (kernel key, target, version, batch) measured after the best of them,
// in file order, a 1% gain counting as better (the search's rule, tune.cpp): where an earlier
// search of this kernel left its patience count. Records measured in the whole net are skipped.
int sinceBestOnRecord(const TuningDb& db, const std::string& key, const std::string& target, const std::string& version, int batch);

// Now, UTC, ISO 8601 ("2026-12-05T13:02:06Z"): the date a record carries.
std::string tuningDateNow();

// Appends one record line and syncs it to disk before returning, so a tune killed at any moment
// keeps every record it reported. A torn last line left by an earlier kill is cut off first.
bool appendTuningRecord(const std::string& path, const TuningRecord& r, std::string& err);

// The default database: $CNNC_TUNING_DB, else $XDG_CACHE_HOME/cnnc/tuning.jsonl, else
// ~/.cache/cnnc/tuning.jsonl.
std::string defaultTuningDbPath();

// Replaces the schedule of every spec that has a record for `target` in `db`; returns how many.
int applyTuning(std::vector<KernelSpec>& specs, const std::string& target, const TuningDb& db);

}  // namespace cnnc::codegen
