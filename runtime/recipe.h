// recipe.h: a compiled network's training recipe as the defaults of `X train` (and `X info`).
// Each field of common/recipe.h is one flag; its default is the value the .cnn file's `recipe`
// gives it, else common/recipe.h's. A flag given on the command line wins over both.
#pragma once
#include <string>

#include <CLI/CLI.hpp>

#include "plan.h"
#include "train_loop.h"

namespace cnnc::rt {

// o's recipe fields set to common/recipe.h's defaults, then to the plan's recipe.
void applyRecipe(const Plan& p, TrainOptions& o);

// One option per recipe field on `cmd`, bound to o's fields, each help text ending in the default
// that applies and where it comes from. Call after applyRecipe.
void addRecipeOptions(CLI::App* cmd, TrainOptions& o, const Plan& p);

// Where field `key`'s value comes from after parsing: "flag --lr", "recipe nets/lenet5.cnn:18:3"
// or "default".
std::string recipeOrigin(const std::string& key, const Plan& p, const CLI::App* cmd);

// The recipe in effect, one field per line ("  lr               0.05     recipe nets/lenet5.cnn:18:3"),
// fields that do not apply to the chosen optimizer and schedule left out.
std::string describeRecipe(const TrainOptions& o, const Plan& p, const CLI::App* cmd);

// One line for the start of a run: "sgd lr 0.05 momentum 0.9, cosine, 10 epochs of batch 64 (recipe of
// nets/lenet5.cnn; flags: --lr)".
std::string recipeSummary(const TrainOptions& o, const Plan& p, const CLI::App* cmd);

}  // namespace cnnc::rt
