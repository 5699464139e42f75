// tune_in_net.h: the last step of `cnnc tune`: what the isolated search found, measured in the net.
#pragma once
#include <string>

#include "graph.h"
#include "source.h"
#include "tune.h"

namespace cnnc {

// Compiles `g` with the default schedules and with the 1st, 2nd, ... `candidates`-th fastest
// isolated schedule of every tuned kernel in o.dbPath, profiles the executables in a rotating order
// (`X bench [--train] --profile --json`, `rounds` times each), and appends, for every kernel with
// another schedule on record, its time per call in the net with the default, and with the fastest
// other schedule when that is 3% faster there, 2% faster again in as many fresh profiled runs, and
// the confirmed schedules together make the whole net 1% faster (records with situ "net", which a
// compile prefers over isolated ones). So a schedule that wins alone and does not win in the net
// is not used, and one that ranked second alone can. Prints a summary on stderr. False with `err`
// when a compile, a run or the database fails.
bool measureInNet(const Graph& g, const SourceManager& sm, const codegen::TuneOptions& o, bool train, int rounds, int candidates,
                  std::string& err);

}  // namespace cnnc
