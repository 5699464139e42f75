// plot.h: `cnnc plot LOG.jsonl... -o OUT.svg`: one metric of several training runs in one picture.
//
// Each LOG is the log.jsonl that `X train --out DIR` writes (one JSON object per epoch: epoch, train_loss,
// train_accuracy, test_loss, test_accuracy, ...), or the run folder DIR itself. Every run becomes one series,
// named after its run folder unless --names says otherwise, drawn by runtime/curves.cpp.
// Exit status: 0 success, 1 a log or the output cannot be read, parsed or written, 2 bad command line.
#pragma once

namespace cnnc {

// argv[1] is "plot"; the options follow it.
int runPlot(int argc, char** argv);

}  // namespace cnnc
