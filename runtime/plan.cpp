// plan.cpp (runtime): JSON -> Plan.
#include "plan.h"

#include <nlohmann/json.hpp>

#include "common/recipe.h"

namespace cnnc::rt {

bool parsePlan(const char* text, size_t size, Plan& p, std::string& err) {
  using namespace plan_schema;
  try {
    auto j = nlohmann::json::parse(text, text + size);
    if (j.value(key::format, "") != kFormat) { err = "embedded plan has an unknown format"; return false; }
    p.net = j[key::net]; p.source = j[key::source]; p.target = j[key::target];
    p.mean = j[key::mean].get<std::vector<double>>();
    p.std = j[key::std_].get<std::vector<double>>();
    if (j.contains(key::recipe))
      for (auto& x : j[key::recipe]) {
        recipe::Value r;
        r.key = x[key::key_];
        r.where = x[key::where];
        const recipe::Field* f = recipe::find(r.key);
        if (!f) { err = "embedded plan has a recipe field '" + r.key + "' this runtime does not know"; return false; }
        const auto& v = x[key::value];
        switch (f->kind) {
          case recipe::Kind::Int: case recipe::Kind::Float: r.num = v.get<double>(); break;
          case recipe::Kind::Bool: r.flag = v.get<bool>(); break;
          case recipe::Kind::String: r.text = v.get<std::string>(); break;
          case recipe::Kind::IntList: r.list = v.get<std::vector<int64_t>>(); break;
        }
        p.recipe.push_back(r);
      }
    p.noTraining = j.value(key::no_training, "");
    p.arenaPerImage = j[key::arena_per_image];
    p.input = j[key::input]; p.output = j[key::output];
    for (auto& x : j[key::params]) {
      p.params.push_back({x[key::name], x[key::dtype], x[key::role], x[key::op], x[key::where], x[key::shape].get<Dims>(), x[key::fan_in]});
      if (x.contains(key::fill)) p.params.back().hasFill = true, p.params.back().fill = x[key::fill];
    }
    for (auto& x : j[key::acts]) p.acts.push_back({x[key::shape].get<Dims>(), x[key::storage], x[key::name]});
    for (auto& x : j[key::storages]) p.storages.push_back({x[key::offset], x[key::size]});
    for (auto& x : j[key::consts]) {
      ConstSpec c;
      std::string kind = x[key::kind];
      if (!constKindFromName(kind, c.kind, c.foldBias)) { err = "embedded plan has a constant of unknown kind '" + kind + "'"; return false; }
      c.shape = x[key::shape].get<Dims>();
      c.param = x[key::param]; c.convW = x[key::conv_w]; c.convB = x[key::conv_b];
      c.bnW = x[key::bn_w]; c.bnB = x[key::bn_b]; c.bnMean = x[key::bn_mean]; c.bnVar = x[key::bn_var];
      c.eps = x[key::eps];
      std::string pack = x.value(key::pack, std::string(constPackName(ConstPack::None)));
      if (!constPackFromName(pack, c.pack)) { err = "embedded plan has a constant packed in an unknown layout '" + pack + "'"; return false; }
      p.consts.push_back(std::move(c));
    }
    for (auto& x : j[key::kernels]) p.kernels.push_back({x[key::fn], x[key::signature], x.value(key::flops, 0.0)});
    for (auto& x : j[key::calls]) {
      CallSpec c;
      c.kernel = x[key::kernel];
      c.label = x[key::label];
      for (auto& a : x[key::args]) c.args.push_back({a[key::is_const], a[key::id]});
      p.calls.push_back(std::move(c));
    }
    if (j.value(key::mode, kModeInfer) == kModeTrain) {
      p.mode = kModeTrain;
      p.labels = j[key::labels]; p.loss = j[key::loss]; p.eps = j[key::eps]; p.forwardCalls = j[key::forward_calls];
      p.paramGrad = j[key::param_grad].get<std::vector<int>>();
      p.seeds = j[key::seeds].get<std::vector<int>>();
      for (auto& b : j[key::bns])
        p.bns.push_back({b[key::stats], b[key::dparams], b[key::gamma], b[key::beta], b[key::mean], b[key::var], b[key::tracked], b[key::momentum],
                         b[key::elems_per_image]});
    }
  } catch (const std::exception& e) {
    err = std::string("embedded plan is malformed: ") + e.what();
    return false;
  }
  return true;
}

std::string noTrainingReason(const Plan& infer) {
  // Every plan of this compiler says why; one that does not came from elsewhere.
  return infer.noTraining.empty() ? std::string("its plan does not say why (compile the net again with this cnnc)") : infer.noTraining;
}

std::string noTrainingMessage(const Plan& infer) { return "network " + infer.net + " has no training step: " + noTrainingReason(infer); }

}  // namespace cnnc::rt
