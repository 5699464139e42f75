// checkpoint.cpp: see checkpoint.h.
#include "checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/atomic_file.h"
#include "safetensors.h"

namespace cnnc::rt {

std::string checkpointPath(const std::string& dir) { return dir + "/checkpoint.safetensors"; }
std::string previousCheckpointPath(const std::string& dir) { return dir + "/checkpoint.prev.safetensors"; }

bool saveCheckpoint(const std::string& dir, const Plan& p, const Weights& w, const CheckpointState& s, std::string& err) {
  std::vector<TensorOut> ts;
  for (size_t i = 0; i < p.params.size(); ++i) {
    const ParamSpec& ps = p.params[i];
    if (ps.isInt64()) ts.push_back({ps.name, DType::I64, ps.shape, &w.i64[i], sizeof(int64_t)});
    else ts.push_back({ps.name, DType::F32, ps.shape, w.f32[i].data(), w.f32[i].size() * sizeof(float)});
  }
  for (const auto& [name, v] : s.extra) ts.push_back({name, DType::F32, {(int64_t)v.size()}, v.data(), v.size() * sizeof(float)});
  std::map<std::string, std::string> meta = s.meta;
  meta["cnnc.net"] = p.net;
  meta["format"] = "pt";
  std::string cur = checkpointPath(dir), prev = previousCheckpointPath(dir);
  if (access(cur.c_str(), F_OK) == 0) {
    // Keep the last good checkpoint under its own name: link, then rename over the old "prev".
    std::string tmp = tempPathFor(prev);
    unlink(tmp.c_str());
    int e = link(cur.c_str(), tmp.c_str()) != 0 ? errno : moveIntoPlace(tmp, prev);
    if (e) {
      err = "cannot keep the previous checkpoint as '" + prev + "': " + strerror(e);
      unlink(tmp.c_str());
      return false;
    }
  }
  return writeSafeTensors(cur, ts, meta, err);
}

static bool loadOne(const std::string& path, const Plan& p, Weights& w, CheckpointState& s, std::string& err) {
  SafeTensors st;
  if (!st.load(path, err)) return false;
  auto it = st.metadata().find("cnnc.net");
  if (it == st.metadata().end()) {
    err = path + " is not a cnnc checkpoint (no 'cnnc.net' in its metadata)";
    return false;
  }
  if (it->second != p.net) {
    err = path + " is a checkpoint of network '" + it->second + "', but this executable is '" + p.net + "'; resume with the " + it->second +
          " executable, or start a new run in another folder";
    return false;
  }
  CheckpointState cs;
  cs.meta = st.metadata();
  Weights out;
  if (!weightsFromTensors(p, st, path, out, &cs.extra, err)) return false;
  w = std::move(out);
  s = std::move(cs);
  return true;
}

bool loadCheckpoint(const std::string& dir, const Plan& p, Weights& w, CheckpointState& s, bool& usedPrevious, std::string& err) {
  usedPrevious = false;
  std::string first;
  if (loadOne(checkpointPath(dir), p, w, s, first)) return true;
  // Another network's checkpoint is the user's mistake, not damage: do not fall back.
  if (first.find("is a checkpoint of network") != std::string::npos) { err = first; return false; }
  std::string second;
  if (access(previousCheckpointPath(dir).c_str(), F_OK) == 0 && loadOne(previousCheckpointPath(dir), p, w, s, second)) {
    usedPrevious = true;
    return true;
  }
  err = first + (second.empty() ? "" : "\nand the previous checkpoint failed too: " + second);
  return false;
}

}  // namespace cnnc::rt
