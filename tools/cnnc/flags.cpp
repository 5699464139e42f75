// flags.cpp: command-line flags that `cnnc` and `cnnc tune` share (flags.h).
#include "flags.h"

#include <cstdio>
#include <cstdlib>
#include <sstream>

namespace cnnc {

bool applyNetworkFlags(const std::vector<std::string>& defines, const std::string& inputShape, FrontendOptions& fo) {
  for (const auto& d : defines) {
    auto eq = d.find('=');
    if (eq == std::string::npos || eq == 0) {
      fprintf(stderr, "cnnc: error: -D %s: expected NAME=VALUE, e.g. -D classes=10\n", d.c_str());
      return false;
    }
    fo.elab.overrides[d.substr(0, eq)] = d.substr(eq + 1);
  }
  if (inputShape.empty()) return true;
  std::stringstream ss(inputShape);
  std::string part;
  while (std::getline(ss, part, ',')) {
    char* end = nullptr;
    long long v = strtoll(part.c_str(), &end, 10);
    if (part.empty() || *end || v < 1) {
      fprintf(stderr, "cnnc: error: --input-shape %s: expected positive integers C,H,W (or F)\n", inputShape.c_str());
      return false;
    }
    fo.elab.inputShape.push_back(v);
  }
  return true;
}

}  // namespace cnnc
