// tuning_db.cpp: reading, appending and applying tuning records (tuning_db.h).
#include "tuning_db.h"

#include <ctime>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/fnv1a.h"

namespace cnnc::codegen {

using nlohmann::json;

namespace {

// FNV-1a, 64 bits, as 16 hex digits: enough to notice an edit, not a security measure.
std::string checksum(const std::string& s) { return fnv1aHex(s); }

json scheduleToJson(const Schedule& s) {
  json j = {{"vec", s.vec}, {"tileC", s.tileC}, {"tileX", s.tileX}, {"tileY", s.tileY},
            {"cvec", s.chanVec}, {"lanes", s.lanes}, {"wino", s.winograd}};
  if (s.autoBatch) j["auto"] = s.autoBatch;  // only when set: records without it keep their checksums
  if (s.flat) j["flat"] = s.flat;
  if (s.task) j["task"] = s.task;
  if (s.phase) j["phase"] = s.phase;
  if (s.order) j["order"] = s.order;
  return j;
}

// The record's fields without the checksum; json objects keep their keys sorted, so the text is canonical.
json recordBody(const TuningRecord& r) {
  json j = {{"v", kTuningFormat}, {"kernel", r.kernel}, {"target", r.target}, {"schedule", scheduleToJson(r.schedule)},
            {"median_ms", r.medianMs}, {"batch", r.batch}, {"cnnc", r.version}, {"date", r.date}, {"net", r.net}, {"tune_s", r.tuneSeconds}};
  if (r.inNet) j["situ"] = "net";  // only when set: isolated records keep their checksums
  return j;
}

// Field `name` of `j` as an int in [lo, hi]; false with `err` when absent, mistyped or out of range.
bool intField(const json& j, const char* name, int lo, int hi, int& out, std::string& err) {
  auto it = j.find(name);
  if (it == j.end() || !it->is_number_integer()) { err = std::string("field '") + name + "' missing or not an integer"; return false; }
  long long v = it->get<long long>();
  if (v < lo || v > hi) { err = std::string("field '") + name + "' out of range (" + std::to_string(v) + ")"; return false; }
  out = (int)v;
  return true;
}

bool stringField(const json& j, const char* name, std::string& out, std::string& err) {
  auto it = j.find(name);
  if (it == j.end() || !it->is_string()) { err = std::string("field '") + name + "' missing or not a string"; return false; }
  out = it->get<std::string>();
  return true;
}

// Parses one line into `r`; false with `err` saying what is wrong with it.
bool parseRecord(const std::string& line, TuningRecord& r, std::string& err) {
  json j = json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object()) { err = "not a JSON object"; return false; }
  int v = 0;
  if (!intField(j, "v", 0, 1 << 30, v, err)) return false;
  if (v != kTuningFormat) {
    err = "record format " + std::to_string(v) + ", this cnnc reads format " + std::to_string(kTuningFormat) + " (written by another cnnc version)";
    return false;
  }
  std::string sum;
  if (!stringField(j, "sum", sum, err)) return false;
  if (!stringField(j, "kernel", r.kernel, err) || !stringField(j, "target", r.target, err) || !stringField(j, "cnnc", r.version, err) ||
      !stringField(j, "date", r.date, err) || !stringField(j, "net", r.net, err))
    return false;
  auto ts = j.find("tune_s");
  if (ts == j.end() || !ts->is_number() || ts->get<double>() < 0) { err = "field 'tune_s' missing or negative"; return false; }
  r.tuneSeconds = ts->get<double>();
  auto ms = j.find("median_ms");
  if (ms == j.end() || !ms->is_number() || !(ms->get<double>() > 0) || ms->get<double>() > 1e7) {
    err = "field 'median_ms' missing or not a positive time";
    return false;
  }
  r.medianMs = ms->get<double>();
  if (auto si = j.find("situ"); si != j.end()) {
    if (!si->is_string() || *si != "net") { err = "field 'situ' must be \"net\" when present"; return false; }
    r.inNet = true;
  }
  if (!intField(j, "batch", 1, 1 << 20, r.batch, err)) return false;
  auto sc = j.find("schedule");
  if (sc == j.end() || !sc->is_object()) { err = "field 'schedule' missing or not an object"; return false; }
  Schedule& s = r.schedule;
  if (!intField(*sc, "vec", 1, 64, s.vec, err) || !intField(*sc, "tileC", 1, 64, s.tileC, err) || !intField(*sc, "tileX", 1, 64, s.tileX, err) ||
      !intField(*sc, "tileY", 1, 64, s.tileY, err) ||
      !intField(*sc, "cvec", 0, 16, s.chanVec, err) || !intField(*sc, "lanes", 1, 64, s.lanes, err) || !intField(*sc, "wino", 0, 2, s.winograd, err))
    return false;
  if (s.winograd != 0 && s.winograd != 2) { err = "field 'wino' must be 0 or 2"; return false; }
  if (sc->contains("auto") && !intField(*sc, "auto", 1, 1 << 20, s.autoBatch, err)) return false;
  if (sc->contains("flat") && !intField(*sc, "flat", 0, 4, s.flat, err)) return false;
  if (sc->contains("task") && !intField(*sc, "task", 1, 1 << 16, s.task, err)) return false;
  if (sc->contains("phase") && !intField(*sc, "phase", 0, 1, s.phase, err)) return false;
  if (sc->contains("order") && !intField(*sc, "order", 0, 2, s.order, err)) return false;
  // Records of cnnc 0.1.0 carry "par", a schedule field that nothing read (since removed); it
  // stays in their checksummed body so they still verify.
  json body = recordBody(r);
  int par = 0;
  if (sc->contains("par")) {
    if (!intField(*sc, "par", 0, 1, par, err)) return false;
    body["schedule"]["par"] = par;
  }
  if (checksum(body.dump()) != sum) {
    err = "checksum mismatch: the record was changed after cnnc wrote it (edit the schedule with `cnnc tune`, not by hand)";
    return false;
  }
  return true;
}

}  // namespace

std::string recordToLine(const TuningRecord& r) {
  json body = recordBody(r);
  body["sum"] = checksum(body.dump());
  return body.dump();
}

void addTuningRecord(TuningDb& db, const TuningRecord& r, const std::string& version) {
  db.records.push_back(r);
  if (r.version != version) { ++db.otherVersion; return; }
  auto key = std::make_pair(r.kernel, r.target);
  auto it = db.best.find(key);
  bool better = it == db.best.end() || (r.inNet && !it->second.inNet) || (r.inNet == it->second.inNet && r.medianMs < it->second.medianMs);
  if (better) db.best[key] = r;
}

int sinceBestOnRecord(const TuningDb& db, const std::string& key, const std::string& target, const std::string& version, int batch) {
  double best = 0;
  int since = 0;
  bool any = false;
  for (const TuningRecord& r : db.records) {
    if (r.kernel != key || r.target != target || r.version != version || r.batch != batch || r.inNet) continue;
    if (!any || r.medianMs < 0.99 * best) best = r.medianMs, since = 0, any = true;
    else ++since;
  }
  return since;
}

std::string tuningDateNow() {
  char b[32];
  time_t t = time(nullptr);
  strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
  return b;
}

bool readTuningDb(const std::string& path, const std::string& version, TuningDb& db, std::string& err, std::vector<std::string>& warnings) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (errno == ENOENT) return true;  // no database yet
    err = "cannot read tuning database '" + path + "': " + strerror(errno);
    return false;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  size_t pos = 0;
  int lineNo = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    bool torn = nl == std::string::npos;
    std::string line = text.substr(pos, torn ? std::string::npos : nl - pos);
    pos = torn ? text.size() : nl + 1;
    ++lineNo;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    TuningRecord r;
    std::string why;
    if (!parseRecord(line, r, why)) {
      if (torn) {  // a write cut short by a kill: the records before it stand
        warnings.push_back(path + ":" + std::to_string(lineNo) + ": skipping an incomplete last record (" + why + ")");
        break;
      }
      err = path + ":" + std::to_string(lineNo) + ": bad tuning record: " + why +
            "; remove the line, or the file, and run `cnnc tune` again";
      return false;
    }
    addTuningRecord(db, r, version);
  }
  if (db.otherVersion)
    warnings.push_back(path + ": ignoring " + std::to_string(db.otherVersion) + " record(s) measured by another cnnc version (run `cnnc tune` again)");
  return true;
}

bool appendTuningRecord(const std::string& path, const TuningRecord& r, std::string& err) {
  std::error_code ec;
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (!dir.empty()) std::filesystem::create_directories(dir, ec);
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_APPEND, 0644);
  if (fd < 0) { err = "cannot write tuning database '" + path + "': " + strerror(errno); return false; }
  std::string line = recordToLine(r) + "\n";
  // A kill during an earlier write can leave a last line without its newline: cut it off (it was
  // never a whole record), so the new record starts a line of its own.
  struct stat st;
  if (fstat(fd, &st) == 0 && st.st_size > 0) {
    off_t end = st.st_size;
    char c = '\n';
    while (end > 0 && pread(fd, &c, 1, end - 1) == 1 && c != '\n') --end;
    if (end != st.st_size && ftruncate(fd, end) != 0) {
      err = "cannot repair tuning database '" + path + "': " + strerror(errno);
      close(fd);
      return false;
    }
  }
  bool ok = write(fd, line.data(), line.size()) == (ssize_t)line.size();
  int e = errno;
  ok = fsync(fd) == 0 && ok;
  close(fd);
  if (!ok) { err = "cannot write tuning database '" + path + "': " + strerror(e ? e : EIO); return false; }
  return true;
}

std::string defaultTuningDbPath() {
  if (const char* p = getenv("CNNC_TUNING_DB"); p && *p) return p;
  if (const char* x = getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/cnnc/tuning.jsonl";
  const char* home = getenv("HOME");
  return std::string(home && *home ? home : ".") + "/.cache/cnnc/tuning.jsonl";
}

int applyTuning(std::vector<KernelSpec>& specs, const std::string& target, const TuningDb& db) {
  int n = 0;
  for (auto& s : specs) {
    auto it = db.best.find({s.key(), target});
    if (it == db.best.end()) continue;
    s.schedule = it->second.schedule;
    ++n;
  }
  return n;
}

}  // namespace cnnc::codegen
