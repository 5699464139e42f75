// net_weights.cpp: see net_weights.h. Its own file because it sees runtime/'s plan.h, which main.cpp
// must not (main.cpp's plan.h is codegen's).
#include "net_weights.h"

#include "plan.h"
#include "weights.h"

namespace cnnc {

bool netWeights(const std::string& planJson, const std::string& path, interop::NamedTensors& out, std::string& err) {
  rt::Plan p;
  if (!rt::parsePlan(planJson.data(), planJson.size(), p, err)) return false;
  rt::Weights w;
  if (path.empty()) rt::initWeights(p, 0, w);
  else if (!rt::loadWeights(p, path, w, err)) return false;
  for (size_t i = 0; i < p.params.size(); ++i)
    if (!w.f32[i].empty()) out[p.params[i].name] = std::move(w.f32[i]);
  return true;
}

}  // namespace cnnc
