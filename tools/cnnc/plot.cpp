// plot.cpp: see plot.h.
#include "plot.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/atomic_file.h"
#include "curves.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace cnnc {

namespace {

struct Run {
  std::string path, name;
  std::vector<double> y;  // y[e - 1] is epoch e's value; NaN where the log has none
  int64_t lastEpoch = 0;
};

int fail(const std::string& m) {
  fprintf(stderr, "cnnc: error: %s\n", m.c_str());
  return 1;
}

bool readFile(const std::string& path, std::string& text, std::string& err) {
  FILE* f = fopen(path.c_str(), "rb");
  if (!f) { err = "cannot read '" + path + "': " + strerror(errno); return false; }
  char buf[1 << 16];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  bool ok = !ferror(f);
  int e = errno;
  fclose(f);
  if (!ok) { err = "cannot read '" + path + "': " + strerror(e ? e : EIO); return false; }
  return true;
}

// One log: every non-blank line a JSON object; `metric` (a number, or null for a non-finite value) goes to
// the position of its line's "epoch" (or its line number among the objects when there is no "epoch").
bool readLog(Run& r, const std::string& metric, std::string& err) {
  std::string text;
  if (!readFile(r.path, text, err)) return false;
  int64_t lineNo = 0, objects = 0, withMetric = 0;
  std::vector<std::string> keys;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string line = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    pos = nl == std::string::npos ? text.size() : nl + 1;
    ++lineNo;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::string where = r.path + ":" + std::to_string(lineNo) + ": ";
    json j;
    try {
      j = json::parse(line);
    } catch (const json::parse_error& e) {
      // e.what(): "[json.exception.parse_error.101] parse error at line 1, column 27: syntax error while ...".
      std::string w = e.what();
      size_t p = w.find(": ", w.find("parse error"));
      err = r.path + ":" + std::to_string(lineNo) + ":" + std::to_string(e.byte) + ": malformed JSON line: " + (p == std::string::npos ? w : w.substr(p + 2));
      return false;
    }
    if (!j.is_object()) { err = where + "expected a JSON object (one line per epoch), got " + std::string(j.type_name()); return false; }
    ++objects;
    if (keys.empty())
      for (auto it = j.begin(); it != j.end(); ++it) keys.push_back(it.key());
    int64_t epoch = objects;
    if (j.contains("epoch")) {
      const json& e = j["epoch"];
      if (!e.is_number_integer() || e.get<int64_t>() < 1 || e.get<int64_t>() > 1000000) {
        err = where + "'epoch' must be an integer from 1 to 1000000, got " + e.dump();
        return false;
      }
      epoch = e.get<int64_t>();
    }
    if (!j.contains(metric)) continue;
    const json& v = j[metric];
    if (!v.is_number() && !v.is_null()) { err = where + "'" + metric + "' must be a number, got " + v.dump(); return false; }
    ++withMetric;
    if ((int64_t)r.y.size() < epoch) r.y.resize(epoch, NAN);
    r.y[epoch - 1] = v.is_null() ? NAN : v.get<double>();
    r.lastEpoch = std::max(r.lastEpoch, epoch);
  }
  if (objects == 0) { err = r.path + ": no epochs: the log is empty"; return false; }
  if (withMetric == 0) {
    std::string list;
    for (const auto& k : keys) list += (list.empty() ? "" : ", ") + k;
    err = r.path + ": no line has '" + metric + "' (the first line's keys: " + list + ")";
    return false;
  }
  return true;
}

// The run folder's name: "runs/plain34/log.jsonl" -> "plain34".
std::string runName(const std::string& logPath) {
  std::error_code ec;
  fs::path p = fs::absolute(fs::path(logPath), ec).lexically_normal();
  std::string name = p.parent_path().filename().string();
  return name.empty() ? fs::path(logPath).stem().string() : name;
}

bool writeFile(const std::string& path, const std::string& data, std::string& err) {
  AtomicWrite w = writeFileAtomically(path, data);
  if (!w) err = "cannot write '" + path + "': " + strerror(w.error);
  return bool(w);
}

}  // namespace

int runPlot(int argc, char** argv) {
  CLI::App app{"cnnc plot: draws one metric of several training runs (the log.jsonl of each `X train --out DIR`) in one SVG", "cnnc plot"};
  std::vector<std::string> logs;
  std::string output, metric = "train_loss", names, title;
  app.add_option("logs", logs, "log.jsonl files (or run folders holding one), one series each")->required()->type_name("LOG.jsonl");
  app.add_option("-o,--output", output, "the SVG file to write")->required()->type_name("OUT.svg");
  app.add_option("--metric", metric, "what to draw: train_loss (default), test_loss, train_accuracy or test_accuracy")
      ->check(CLI::IsMember({"train_loss", "test_loss", "train_accuracy", "test_accuracy"}));
  app.add_option("--names", names, "series names, comma-separated, one per log (default: each run folder's name)")->type_name("A,B,...");
  app.add_option("--title", title, "the picture's title (default: the series names joined by 'vs')");
  app.footer("Exit status: 0 success, 1 a log or the output cannot be read, parsed or written, 2 bad command line.\n"
             "Example: cnnc plot runs/plain34/log.jsonl runs/resnet34/log.jsonl --metric train_loss -o degradation.svg");
  try {
    app.parse(argc - 1, argv + 1);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  std::vector<Run> runs(logs.size());
  std::vector<std::string> given;
  if (!names.empty()) {
    for (size_t p = 0;;) {
      size_t c = names.find(',', p);
      given.push_back(names.substr(p, c == std::string::npos ? std::string::npos : c - p));
      if (c == std::string::npos) break;
      p = c + 1;
    }
    if (given.size() != logs.size()) {
      fprintf(stderr, "cnnc: error: --names gives %zu names for %zu logs: give one per log, in order\n", given.size(), logs.size());
      return 2;
    }
  }
  std::string err;
  for (size_t i = 0; i < logs.size(); ++i) {
    std::error_code ec;
    runs[i].path = fs::is_directory(logs[i], ec) ? (fs::path(logs[i]) / "log.jsonl").string() : logs[i];
    runs[i].name = given.empty() ? runName(runs[i].path) : given[i];
    if (!readLog(runs[i], metric, err)) return fail(err);
  }

  static const char* kColors[] = {"#dc2626", "#2563eb", "#059669", "#d97706", "#7c3aed", "#db2777", "#0891b2", "#4b5563"};
  bool loss = metric.find("loss") != std::string::npos;
  std::string label = metric.substr(0, metric.find('_')) + " " + metric.substr(metric.find('_') + 1);
  rt::Panel panel{label, loss ? "cross-entropy" : "fraction correct", {}};
  std::string joined;
  for (size_t i = 0; i < runs.size(); ++i) {
    panel.series.push_back({runs[i].name, runs[i].y, kColors[i % (sizeof kColors / sizeof *kColors)], i >= sizeof kColors / sizeof *kColors});
    joined += (i ? " vs " : "") + runs[i].name;
  }
  if (title.empty()) title = joined;
  if (!writeFile(output, rt::renderCurves(title, {panel}), err)) return fail(err);
  for (const auto& r : runs) {
    char v[32] = "null";
    if (std::isfinite(r.y[r.lastEpoch - 1])) snprintf(v, sizeof v, "%.4f", r.y[r.lastEpoch - 1]);
    printf("%s: %s %s at epoch %lld (%s)\n", r.name.c_str(), metric.c_str(), v, (long long)r.lastEpoch, r.path.c_str());
  }
  printf("wrote %s\n", output.c_str());
  return 0;
}

}  // namespace cnnc
