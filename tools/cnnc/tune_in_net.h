// tune_in_net.h: the last step of `cnnc tune`: what the isolated search found, measured in the net.
#pragma once
#include <string>

#include "graph.h"
#include "source.h"
#include "tune.h"

namespace cnnc {

// Compiles `g` twice, with the default schedules and with the best on record in o.dbPath, profiles
// both executables in alternation (`X bench [--train] --profile --json`, `rounds` times each), and
// appends, for every kernel whose schedule differs between the two, its time per call in the net
// with the default, and with the tuned schedule when that is 3% faster there (records with situ
// "net", which a compile prefers over isolated ones). So a schedule that wins alone and does not
// win in the net is not used. Prints a summary on stderr. False with
// `err` when a compile, a run or the database fails.
bool measureInNet(const Graph& g, const SourceManager& sm, const codegen::TuneOptions& o, bool train, int rounds, std::string& err);

}  // namespace cnnc
