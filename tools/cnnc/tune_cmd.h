// tune_cmd.h: `cnnc tune FILE.cnn [--target T] [--budget 10m] [--db PATH] [--train] [--resume]`:
// tunes the net's kernels on this machine and appends the measurements to the tuning database.
// Exit status: 0 success, 1 errors (input, database, a target this machine cannot time), 2 bad command line.
#pragma once

namespace cnnc {

// argv[1] is "tune"; the options follow it.
int runTune(int argc, char** argv);

}  // namespace cnnc
