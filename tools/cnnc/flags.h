// flags.h: command-line flags that `cnnc` and `cnnc tune` share.
#pragma once
#include <string>
#include <vector>

#include "frontend.h"

namespace cnnc {

// Puts `-D NAME=VALUE` overrides and `--input-shape C,H,W` into `fo`. On a malformed flag it prints
// the error on stderr and returns false (the caller exits with status 2).
bool applyNetworkFlags(const std::vector<std::string>& defines, const std::string& inputShape, FrontendOptions& fo);

}  // namespace cnnc
