// recipe.h: the fields of a training recipe, declared once. A `.cnn` network may carry a recipe
// (`recipe { lr = 0.05; ... }`, docs/language.md); the compiler checks each field against this table
// (compiler/elaborate_recipe.cpp), the plan carries the values (key "recipe"), and the executable's
// `train` flags are made from the same table (runtime/recipe.cpp): each field is one flag, spelt as
// the key with '-' for '_', whose default is the recipe's value or, without one, the default here.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace cnnc::recipe {

enum class Kind { Int, Float, Bool, String, IntList };

struct Field {
  const char* key;      // in the .cnn file and in the plan
  Kind kind;
  const char* def;      // the default without a recipe, as a flag would spell it ("" = none)
  const char* choices;  // String: the allowed values, '|'-separated ("" = any text)
  double lo, hi;        // Int, Float, IntList items: the allowed range
  bool loOpen, hiOpen;  // true: the bound itself is not allowed
  const char* help;
  // The optimizers and schedules that read this field, '|'-separated ("" = all): elsewhere the
  // compiler rejects it and `X info` leaves it out.
  const char* optimizers = "";
  const char* schedules = "";
};

// One field as a .cnn file set it, checked: the compiler's graph and the runtime's plan both hold
// these (the plan's JSON carries them between the two).
struct Value {
  std::string key;
  double num = 0;              // Int, Float
  bool flag = false;           // Bool
  std::string text;            // String
  std::vector<int64_t> list;   // IntList
  std::string where;           // "nets/lenet5.cnn:18:3"
};

inline constexpr double kInf = HUGE_VAL;

// Defaults train reasonably without a recipe: SGD with momentum 0.9 and a cosine schedule (plain
// SGD at lr 0.01 left LeNet-5 at 78% after 10 epochs, against 90% with the lesson's recipe).
inline constexpr Field kFields[] = {
    {"epochs", Kind::Int, "10", "", 1, 100000, false, false, "epochs"},
    {"batch", Kind::Int, "128", "", 1, 1 << 20, false, false, "images per step (the global batch under mpirun)"},
    {"optimizer", Kind::String, "sgd", "sgd|adam|adamw|rmsprop", 0, 0, false, false, "sgd, adam, adamw or rmsprop"},
    {"lr", Kind::Float, "0.01", "", 0, kInf, true, true, "learning rate (the base of the schedule)"},
    {"momentum", Kind::Float, "0.9", "", 0, 1, false, true, "momentum (sgd, rmsprop)", "sgd|rmsprop"},
    {"nesterov", Kind::Bool, "false", "", 0, 0, false, false, "Nesterov momentum (sgd)", "sgd"},
    {"alpha", Kind::Float, "0.99", "", 0, 1, false, false, "smoothing constant of the squared-gradient average (rmsprop)", "rmsprop"},
    {"eps", Kind::Float, "1e-08", "", 0, kInf, false, true, "term added to the denominator (adam, adamw, rmsprop)", "adam|adamw|rmsprop"},
    {"weight_decay", Kind::Float, "0", "", 0, kInf, false, true, "L2 (sgd, adam) or decoupled (adamw) weight decay"},
    {"schedule", Kind::String, "cosine", "constant|step|multistep|cosine", 0, 0, false, false, "learning-rate schedule: constant, step, multistep or cosine (to 0 at the last epoch)"},
    {"step_size", Kind::Int, "30", "", 1, 100000, false, false, "epochs between decays (schedule step)", "", "step"},
    {"gamma", Kind::Float, "0.1", "", 0, kInf, true, true, "decay factor (schedule step, multistep)", "", "step|multistep"},
    {"milestones", Kind::IntList, "", "", 1, 100000, false, false, "epochs at which the lr decays (schedule multistep)", "", "multistep"},
    {"warmup", Kind::Int, "0", "", 0, 100000, false, false, "epochs of linear warmup from 0.1 x lr"},
    {"label_smoothing", Kind::Float, "0", "", 0, 1, false, false, "cross-entropy label smoothing"},
    {"augment", Kind::Bool, "false", "", 0, 0, false, false, "random crop with padding (and flip for colour images)"},
    {"resize", Kind::Bool, "false", "", 0, 0, false, false, "resize images to the input size instead of zero-padding them"},
    {"data", Kind::String, "fashion-mnist", "", 0, 0, false, false,
     "fashion-mnist, or a folder holding IDX files, CIFAR-10 binary batches, or train/ and test/ with one subfolder of PNG/JPEG images per class"},
    {"format", Kind::String, "auto", "auto|idx|cifar|folder|segmentation", 0, 0, false, false, "data format: auto, idx, cifar, folder or segmentation"},
};

inline const Field* find(std::string_view key) {
  for (const Field& f : kFields)
    if (key == f.key) return &f;
  return nullptr;
}

inline const char* kindName(Kind k) {
  switch (k) {
    case Kind::Int: return "an integer";
    case Kind::Float: return "a number";
    case Kind::Bool: return "true or false";
    case Kind::String: return "a string";
    case Kind::IntList: return "a list of integers";
  }
  return "?";
}

// The flag of a field: "--weight-decay" for "weight_decay".
inline std::string flagOf(const Field& f) {
  std::string s = std::string("--") + f.key;
  for (char& c : s)
    if (c == '_') c = '-';
  return s;
}

// "" if v is in the field's range, else what is wrong ("must be > 0").
inline std::string checkRange(const Field& f, double v) {
  if (!std::isfinite(v)) return "must be a finite number";
  auto num = [&](double x) {
    std::string s = std::to_string(x);
    if (s.find('.') != std::string::npos) {
      while (s.back() == '0') s.pop_back();
      if (s.back() == '.') s.pop_back();
    }
    return s;
  };
  bool lowBad = f.loOpen ? v <= f.lo : v < f.lo, highBad = f.hi != kInf && (f.hiOpen ? v >= f.hi : v > f.hi);
  if (!lowBad && !highBad) return "";
  std::string low = std::string(f.loOpen ? "> " : ">= ") + num(f.lo), high = std::string(f.hiOpen ? "< " : "<= ") + num(f.hi);
  if (f.hi == kInf) return "must be " + low;
  return "must be " + low + " and " + high;
}

// The words of a '|'-separated list ("sgd|rmsprop").
inline std::vector<std::string> words(std::string_view c) {
  std::vector<std::string> out;
  while (!c.empty()) {
    size_t bar = c.find('|');
    out.emplace_back(c.substr(0, bar));
    c = bar == std::string_view::npos ? std::string_view() : c.substr(bar + 1);
  }
  return out;
}

inline bool listed(std::string_view list, const std::string& s) {
  if (list.empty()) return true;
  for (const std::string& w : words(list))
    if (w == s) return true;
  return false;
}

// "" if s is one of the field's choices (or the field takes any text), else the choices listed.
inline std::string checkChoice(const Field& f, const std::string& s) {
  if (listed(f.choices, s)) return "";
  std::string list;
  for (const std::string& w : words(f.choices)) list += (list.empty() ? "" : ", ") + w;
  return "must be one of " + list;
}

// Whether the chosen optimizer and schedule read field f.
inline bool applies(const Field& f, const std::string& optimizer, const std::string& schedule) {
  return listed(f.optimizers, optimizer) && listed(f.schedules, schedule);
}

}  // namespace cnnc::recipe
