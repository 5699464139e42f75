// plan.cpp (runtime): JSON -> Plan.
#include "plan.h"

#include <nlohmann/json.hpp>

namespace cnnc::rt {

bool parsePlan(const char* text, size_t size, Plan& p, std::string& err) {
  try {
    auto j = nlohmann::json::parse(text, text + size);
    if (j.value("format", "") != "cnnc-plan-1") { err = "embedded plan has an unknown format"; return false; }
    p.net = j["net"]; p.source = j["source"]; p.target = j["target"];
    p.mean = j["mean"].get<std::vector<double>>();
    p.std = j["std"].get<std::vector<double>>();
    p.arenaPerImage = j["arena_per_image"];
    p.input = j["input"]; p.output = j["output"];
    for (auto& x : j["params"])
      p.params.push_back({x["name"], x["dtype"], x["role"], x["op"], x["where"], x["shape"].get<Dims>(), x["fan_in"]});
    for (auto& x : j["acts"]) p.acts.push_back({x["shape"].get<Dims>(), x["storage"], x["name"]});
    for (auto& x : j["storages"]) p.storages.push_back({x["offset"], x["size"]});
    for (auto& x : j["consts"])
      p.consts.push_back({x["kind"], x["shape"].get<Dims>(), x["param"], x["conv_w"], x["conv_b"], x["bn_w"], x["bn_b"], x["bn_mean"], x["bn_var"], x["eps"], x.value("pack", false)});
    for (auto& x : j["kernels"]) p.kernels.push_back({x["fn"], x["signature"]});
    for (auto& x : j["calls"]) {
      CallSpec c;
      c.kernel = x["kernel"];
      c.label = x["label"];
      for (auto& a : x["args"]) c.args.push_back({a["const"], a["id"]});
      p.calls.push_back(std::move(c));
    }
    if (j.value("mode", "infer") == "train") {
      p.mode = "train";
      p.labels = j["labels"]; p.loss = j["loss"]; p.eps = j["eps"]; p.forwardCalls = j["forward_calls"];
      p.paramGrad = j["param_grad"].get<std::vector<int>>();
      p.seeds = j["seeds"].get<std::vector<int>>();
      for (auto& b : j["bns"])
        p.bns.push_back({b["stats"], b["dparams"], b["gamma"], b["beta"], b["mean"], b["var"], b["tracked"], b["momentum"], b["elems_per_image"]});
    }
  } catch (const std::exception& e) {
    err = std::string("embedded plan is malformed: ") + e.what();
    return false;
  }
  return true;
}

}  // namespace cnnc::rt
