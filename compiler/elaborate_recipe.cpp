// elaborate_recipe.cpp: a network's training recipe, `recipe { key = value ... }`.
//
// 1. Each field's key must be one of common/recipe.h's, set once; its value is evaluated in the
//    network's scope (so `epochs = e` may use a network parameter) and must have the field's kind,
//    range and choices. Every error points at the key or the value.
// 2. Then the fields are checked together, with the defaults standing in for what the recipe leaves
//    out: milestones and warmup within the epochs, schedule and optimizer settings that apply to the
//    schedule and optimizer chosen (a `milestones` under `schedule = "cosine"` would be ignored
//    silently at run time, so it is an error here).
// 3. The checked values go to Graph::recipe, and from there into the plan (codegen/plan.cpp), where
//    the executable's `train` takes them as its defaults.
#include "common/recipe.h"
#include "elaborator.h"

namespace cnnc {

namespace {

std::string numText(double v) {
  char buf[32];
  snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

}  // namespace

void Elaborator::recipe(const Stmt& st, Scope& s) {
  std::vector<std::string> keys;
  for (const recipe::Field& f : recipe::kFields) keys.push_back(f.key);
  std::map<std::string, const Arg*> seen;
  std::map<std::string, recipe::Value> got;
  for (const Arg& a : st.call.args) {
    const recipe::Field* f = recipe::find(a.name);
    if (!f) {
      std::string c = closest(a.name, keys), all;
      for (const auto& k : keys) all += (all.empty() ? "" : ", ") + k;
      error(a.loc, "unknown recipe field '" + a.name + "'", c.empty() ? "the fields are: " + all : "did you mean '" + c + "'?");
      continue;
    }
    if (auto it = seen.find(a.name); it != seen.end()) {
      error(a.loc, "recipe field '" + a.name + "' is set twice (first at " + sm_.where(it->second->loc) + ")", "keep one of them");
      continue;
    }
    seen[a.name] = &a;
    // A bare word such as `optimizer = sgd` reads as a variable; say how to write it.
    Value probe;
    if (f->kind == recipe::Kind::String && a.value->kind == Expr::Name && !lookup(a.value->text, s, probe)) {
      error(a.value->loc, "'" + a.value->text + "' is not defined", "recipe text is written in quotes: " + a.name + " = \"" + a.value->text + "\"");
      continue;
    }
    Value v = eval(*a.value, s);
    if (v.kind == Value::None) continue;  // reported by eval
    recipe::Value e;
    e.key = f->key;
    e.where = sm_.where(a.loc);
    std::string what = "recipe field '" + a.name + "'", bad;
    auto wrongKind = [&] { error(a.value->loc, what + " takes " + recipe::kindName(f->kind) + ", got " + valueStr(v), f->help); };
    switch (f->kind) {
      case recipe::Kind::Int:
        if (v.kind != Value::Int) { wrongKind(); continue; }
        e.num = (double)v.i;
        bad = recipe::checkRange(*f, e.num);
        break;
      case recipe::Kind::Float:
        if (!v.isNumber()) { wrongKind(); continue; }
        e.num = v.asDouble();
        bad = recipe::checkRange(*f, e.num);
        break;
      case recipe::Kind::Bool:
        if (v.kind != Value::Bool) { wrongKind(); continue; }
        e.flag = v.b;
        break;
      case recipe::Kind::String:
        if (v.kind != Value::String) { wrongKind(); continue; }
        e.text = v.s;
        bad = e.text.empty() ? "must not be empty" : recipe::checkChoice(*f, e.text);
        break;
      case recipe::Kind::IntList: {
        if (v.kind != Value::List) { wrongKind(); continue; }
        for (const Value& x : v.list) {
          if (x.kind != Value::Int) { wrongKind(); bad = "-"; break; }
          e.list.push_back(x.i);
          if (bad.empty()) bad = recipe::checkRange(*f, (double)x.i);
        }
        if (bad == "-") continue;
        break;
      }
    }
    if (!bad.empty()) {
      error(a.value->loc, what + " " + bad + ", got " + valueStr(v), f->help);
      continue;
    }
    got[e.key] = e;
  }

  // 2. The fields together; `num(key)` is the recipe's value or the default.
  auto num = [&](const char* key) { auto it = got.find(key); return it != got.end() ? it->second.num : std::stod(recipe::find(key)->def); };
  auto text = [&](const char* key) { auto it = got.find(key); return it != got.end() ? it->second.text : std::string(recipe::find(key)->def); };
  auto at = [&](const char* key) { return seen.at(key)->value->loc; };
  const double epochs = num("epochs"), warmup = num("warmup");
  const std::string sched = text("schedule"), opt = text("optimizer");
  std::string epochsFrom = got.count("epochs") ? "" : " (the default)";
  if (got.count("warmup") && warmup >= epochs)
    error(at("warmup"), "a warmup of " + numText(warmup) + " epochs leaves no epoch of the schedule: epochs = " + numText(epochs) + epochsFrom,
          "make warmup smaller than epochs");
  if (got.count("milestones")) {
    if (sched != "multistep") {
      error(at("milestones"), "milestones apply to schedule = \"multistep\", but the schedule is \"" + sched + "\"",
            "set schedule = \"multistep\", or remove the milestones");
    } else {
      // After warmup the schedule counts from the warmup's end (runtime/lr_schedule.h).
      double last = epochs - warmup;
      for (int64_t m : got["milestones"].list)
        if ((double)m >= last) {
          error(at("milestones"), "milestone " + std::to_string(m) + " lies beyond the training: the schedule runs " + numText(last) +
                " epochs (epochs = " + numText(epochs) + epochsFrom + (warmup > 0 ? ", minus " + numText(warmup) + " of warmup" : "") + ")",
                "milestones count epochs from 0 after the warmup; use values below " + numText(last));
          break;
        }
    }
  } else if (got.count("schedule") && sched == "multistep") {
    error(at("schedule"), "schedule \"multistep\" needs milestones", "add e.g. milestones = [30, 60]");
  }
  // Settings of another schedule, then of another optimizer (common/recipe.h says which read which;
  // milestones have their message above).
  for (const recipe::Field& f : recipe::kFields) {
    std::string k = f.key;
    if (!got.count(k) || k == "milestones" || recipe::listed(f.schedules, sched)) continue;
    std::vector<std::string> s = recipe::words(f.schedules);
    if (s.size() == 1)
      error(at(f.key), k + " applies to schedule = \"" + s[0] + "\", but the schedule is \"" + sched + "\"", "set schedule = \"" + s[0] + "\", or remove " + k);
    else
      error(at(f.key), k + " applies to the " + s[0] + " and " + s[1] + " schedules, but the schedule is \"" + sched + "\"", "remove " + k);
  }
  for (const recipe::Field& f : recipe::kFields) {
    std::string k = f.key;
    if (!got.count(k) || recipe::listed(f.optimizers, opt)) continue;
    std::vector<std::string> opts = recipe::words(f.optimizers);
    std::string list;
    for (size_t i = 0; i < opts.size(); ++i) list += (i ? (i + 1 == opts.size() ? " and \"" : ", \"") : "\"") + opts[i] + "\"";
    error(at(f.key), k + " applies to optimizer " + list + ", but the optimizer is \"" + opt + "\"", "remove " + k);
  }
  if (got.count("nesterov") && got["nesterov"].flag && opt == "sgd" && num("momentum") == 0)
    error(at("nesterov"), "Nesterov momentum needs a momentum above 0", "set momentum, e.g. momentum = 0.9");

  // 3. In the order written.
  for (const Arg& a : st.call.args)
    if (auto it = got.find(a.name); it != got.end() && seen.count(a.name) && seen[a.name] == &a) g_->recipe.push_back(it->second);
}

}  // namespace cnnc
