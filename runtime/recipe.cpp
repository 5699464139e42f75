// recipe.cpp: the training recipe's fields bound to TrainOptions, as defaults and as flags.
#include "recipe.h"

#include <cstdio>

#include "common/recipe.h"

namespace cnnc::rt {

namespace {

// Where one recipe field lives in TrainOptions: exactly one pointer is set.
struct Slot {
  int* i = nullptr;
  int64_t* i64 = nullptr;
  double* d = nullptr;
  bool* b = nullptr;
  std::string* s = nullptr;
  std::vector<int>* list = nullptr;
};

Slot slotOf(const std::string& key, TrainOptions& o) {
  Slot x;
  if (key == "epochs") x.i = &o.epochs;
  else if (key == "batch") x.i64 = &o.batch;
  else if (key == "optimizer") x.s = &o.optimizer;
  else if (key == "lr") x.d = &o.schedule.lr;
  else if (key == "momentum") x.d = &o.optim.momentum;
  else if (key == "nesterov") x.b = &o.optim.nesterov;
  else if (key == "alpha") x.d = &o.optim.alpha;
  else if (key == "eps") x.d = &o.optim.eps;
  else if (key == "weight_decay") x.d = &o.optim.weightDecay;
  else if (key == "schedule") x.s = &o.schedule.kind;
  else if (key == "step_size") x.i = &o.schedule.stepSize;
  else if (key == "gamma") x.d = &o.schedule.gamma;
  else if (key == "milestones") x.list = &o.schedule.milestones;
  else if (key == "warmup") x.i = &o.schedule.warmup;
  else if (key == "label_smoothing") x.d = &o.labelSmoothing;
  else if (key == "augment") x.b = &o.augment;
  else if (key == "resize") x.b = &o.resize;
  else if (key == "data") x.s = &o.data;
  else if (key == "format") x.s = &o.format;
  return x;
}

std::string fmt(double v) {
  char buf[32];
  snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

std::string valueText(const std::string& key, TrainOptions& o) {
  Slot x = slotOf(key, o);
  if (x.i) return std::to_string(*x.i);
  if (x.i64) return std::to_string(*x.i64);
  if (x.d) return fmt(*x.d);
  if (x.b) return *x.b ? "true" : "false";
  if (x.s) return *x.s;
  std::string s;
  for (int m : *x.list) s += (s.empty() ? "" : ", ") + std::to_string(m);
  return "[" + s + "]";
}

const recipe::Value* inRecipe(const Plan& p, const std::string& key) {
  for (const recipe::Value& r : p.recipe)
    if (r.key == key) return &r;
  return nullptr;
}

}  // namespace

void applyRecipe(const Plan& p, TrainOptions& o) {
  for (const recipe::Field& f : recipe::kFields) {
    Slot x = slotOf(f.key, o);
    const recipe::Value* r = inRecipe(p, f.key);
    std::string def = f.def;
    if (x.i) *x.i = r ? (int)r->num : std::stoi(def);
    else if (x.i64) *x.i64 = r ? (int64_t)r->num : std::stoll(def);
    else if (x.d) *x.d = r ? r->num : std::stod(def);
    else if (x.b) *x.b = r ? r->flag : def == "true";
    else if (x.s) *x.s = r ? r->text : def;
    else if (x.list) *x.list = r ? std::vector<int>(r->list.begin(), r->list.end()) : std::vector<int>{};
  }
}

void addRecipeOptions(CLI::App* cmd, TrainOptions& o, const Plan& p) {
  for (const recipe::Field& f : recipe::kFields) {
    Slot x = slotOf(f.key, o);
    const recipe::Value* r = inRecipe(p, f.key);
    std::string flag = recipe::flagOf(f), value = valueText(f.key, o);
    std::string help = std::string(f.help) + (r ? " (the recipe's, " + r->where + ")" : "");
    const recipe::Field* fp = &f;
    auto inRange = CLI::Validator([fp](std::string& v) {
      char* end = nullptr;
      double d = strtod(v.c_str(), &end);
      if (end == v.c_str() || *end) return std::string();  // left to CLI11's conversion error
      std::string bad = recipe::checkRange(*fp, d);
      return bad.empty() ? bad : "got " + v + ", but it " + bad;
    }, "");
    CLI::Option* opt = nullptr;
    if (x.b) {
      opt = cmd->add_flag(flag + ",!--no-" + flag.substr(2), *x.b, help);
    } else if (x.i) {
      opt = cmd->add_option(flag, *x.i, help)->check(inRange);
    } else if (x.i64) {
      opt = cmd->add_option(flag, *x.i64, help)->check(inRange);
    } else if (x.d) {
      opt = cmd->add_option(flag, *x.d, help)->check(inRange);
    } else if (x.s) {
      opt = cmd->add_option(flag, *x.s, help);
      if (*f.choices) opt->check(CLI::Validator([fp](std::string& v) { std::string bad = recipe::checkChoice(*fp, v); return bad.empty() ? bad : "got '" + v + "', but it " + bad; }, ""));
    } else if (x.list) {
      opt = cmd->add_option(flag, *x.list, help)->check(inRange);
    }
    if (!x.b) opt->default_str(f.kind == recipe::Kind::IntList && value == "[]" ? "none" : value);
  }
}

std::string recipeOrigin(const std::string& key, const Plan& p, const CLI::App* cmd) {
  const recipe::Field* f = recipe::find(key);
  std::string flag = recipe::flagOf(*f);
  if (cmd) {
    const CLI::Option* opt = cmd->get_option_no_throw(flag);
    if (opt && opt->count() > 0) return "flag " + flag;
  }
  if (const recipe::Value* r = inRecipe(p, key)) return "recipe " + r->where;
  return "default";
}

std::string describeRecipe(const TrainOptions& o, const Plan& p, const CLI::App* cmd) {
  TrainOptions copy = o;
  std::string out;
  for (const recipe::Field& f : recipe::kFields) {
    if (!recipe::applies(f, o.optimizer, o.schedule.kind)) continue;
    char line[512];
    snprintf(line, sizeof line, "  %-16s %-14s %s\n", f.key, valueText(f.key, copy).c_str(), recipeOrigin(f.key, p, cmd).c_str());
    out += line;
  }
  return out;
}

std::string recipeSummary(const TrainOptions& c, const Plan& p, const CLI::App* cmd) {
  std::string s = c.optimizer + " lr " + fmt(c.schedule.lr);
  if ((c.optimizer == "sgd" || c.optimizer == "rmsprop") && c.optim.momentum > 0)
    s += " momentum " + fmt(c.optim.momentum) + (c.optim.nesterov && c.optimizer == "sgd" ? " nesterov" : "");
  if (c.optimizer == "rmsprop") s += " alpha " + fmt(c.optim.alpha) + " eps " + fmt(c.optim.eps);
  if (c.optim.weightDecay > 0) s += " weight decay " + fmt(c.optim.weightDecay);
  s += ", " + c.schedule.kind;
  if (c.schedule.warmup > 0) s += " after " + std::to_string(c.schedule.warmup) + " epochs of warmup";
  if (c.labelSmoothing > 0) s += ", label smoothing " + fmt(c.labelSmoothing);
  if (c.augment) s += ", augmented";
  s += ", " + std::to_string(c.epochs) + " epochs of batch " + std::to_string(c.batch);
  std::string flags;
  for (const recipe::Field& f : recipe::kFields)
    if (recipeOrigin(f.key, p, cmd).rfind("flag", 0) == 0) flags += (flags.empty() ? "" : " ") + recipe::flagOf(f);
  s += " (" + (p.recipe.empty() ? std::string("defaults: the network has no recipe") : "recipe of " + p.source);
  if (!flags.empty()) s += "; flags: " + flags;
  return s + ")";
}

}  // namespace cnnc::rt
