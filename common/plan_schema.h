// plan_schema.h: the execution plan as JSON, the one contract between the compiler and the
// runtime. codegen writes it (planJsonObject in codegen/plan.cpp, trainPlanToJson in
// codegen/train_plan.cpp), cnnc embeds it in the executable, the runtime reads it (parsePlan in
// runtime/plan.cpp). Every key and every enum spelling of that JSON is written here once.
//
// A plan is one object:
//   format            kFormat
//   net, source, target, mean[], std[], arena_per_image, input, output
//   params[]          {name, shape, dtype, role, op, fan_in, where[, fill]}  fill: a constant initial value
//   acts[]            {shape, storage, name}            activation tensors, views of storages
//   storages[]        {offset, size}                    arena slots, floats per image
//   consts[]          {kind, shape, param, conv_w, conv_b, bn_w, bn_b, bn_mean, bn_var, eps, pack}
//                     pack: the layout a conv weight is rearranged into at load ("none", "blocked",
//                     "winograd": ConstPack)
//   kernels[]         {fn, signature, flops}        flops: per image, 2 x multiply-adds (0: memory-bound)
//   calls[]           {kernel, args[] {const, id}, label}
//   recipe[]          {key, value, where}   the network's training recipe (keys: common/recipe.h), in
//                                          source order; value a number, bool, string or int list
//   no_training       why the executable has no training step (absent when it has one): the net's
//                     output is not scores, or it was built with --inference-only
// and, in a training plan (mode = "train"):
//   labels, loss, eps, param_grad[], forward_calls, seeds[],
//   bns[]             {stats, dparams, gamma, beta, mean, var, tracked, momentum, elems_per_image}
#pragma once
#include <cstddef>
#include <iterator>
#include <string_view>

namespace cnnc::plan_schema {

inline constexpr char kFormat[] = "cnnc-plan-1";

// The keys, named as they are spelt (but for "std" and "const": std_, is_const).
namespace key {
inline constexpr char format[] = "format", net[] = "net", source[] = "source", target[] = "target", mean[] = "mean", std_[] = "std",
                      arena_per_image[] = "arena_per_image", input[] = "input", output[] = "output", mode[] = "mode";
inline constexpr char params[] = "params", name[] = "name", shape[] = "shape", dtype[] = "dtype", role[] = "role", op[] = "op",
                      fan_in[] = "fan_in", where[] = "where", fill[] = "fill";
inline constexpr char acts[] = "acts", storage[] = "storage", storages[] = "storages", offset[] = "offset", size[] = "size";
inline constexpr char consts[] = "consts", kind[] = "kind", param[] = "param", conv_w[] = "conv_w", conv_b[] = "conv_b", bn_w[] = "bn_w",
                      bn_b[] = "bn_b", bn_mean[] = "bn_mean", bn_var[] = "bn_var", eps[] = "eps", pack[] = "pack";
inline constexpr char kernels[] = "kernels", fn[] = "fn", signature[] = "signature", flops[] = "flops";
inline constexpr char calls[] = "calls", kernel[] = "kernel", args[] = "args", is_const[] = "const", id[] = "id", label[] = "label";
inline constexpr char recipe[] = "recipe", key_[] = "key", value[] = "value", no_training[] = "no_training";
inline constexpr char labels[] = "labels", loss[] = "loss", param_grad[] = "param_grad", forward_calls[] = "forward_calls", seeds[] = "seeds";
inline constexpr char bns[] = "bns", stats[] = "stats", dparams[] = "dparams", gamma[] = "gamma", beta[] = "beta", var[] = "var",
                      tracked[] = "tracked", momentum[] = "momentum", elems_per_image[] = "elems_per_image";
}  // namespace key

// "mode": a plan without it infers.
inline constexpr char kModeInfer[] = "infer", kModeTrain[] = "train";

// A parameter's "dtype" and "role" (compiler/graph.h ParamRole).
inline constexpr char kDTypeF32[] = "F32", kDTypeI64[] = "I64";
inline constexpr char kRoleWeight[] = "weight", kRoleBias[] = "bias", kRoleRunningMean[] = "running_mean", kRoleRunningVar[] = "running_var",
                      kRoleNumBatchesTracked[] = "num_batches_tracked";

// What a constant kernel argument holds ("kind"), computed from the weights at load time.
// Inference: Param (a copy of a parameter), FoldConvBN (a conv's weight or bias with the batch norm
// after it folded in), BNScale, BNShift, Zeros, Ones (batchnorm(affine=false)'s gamma in training). Training: ParamRef (the live parameter, updated in
// place), Grad (the gradient of `param`), Stats and DParams ([2,C] per batch norm), Eps (label
// smoothing, [1]), Seed (int32 [2]).
enum class ConstKind { Param, FoldConvBN, BNScale, BNShift, Zeros, ParamRef, Grad, Stats, DParams, Eps, Seed, Ones };
inline constexpr ConstKind kLastConstKind = ConstKind::Ones;  // keep last: tests walk every kind

// The spellings of "kind". FoldConvBN is spelt after the half it holds (foldBias: the bias).
struct ConstKindName {
  ConstKind kind;
  bool foldBias;
  const char* name;
};
inline constexpr ConstKindName kConstKindNames[] = {
    {ConstKind::Param, false, "param"},        {ConstKind::FoldConvBN, false, "fold_weight"}, {ConstKind::FoldConvBN, true, "fold_bias"},
    {ConstKind::BNScale, false, "bn_scale"},   {ConstKind::BNShift, false, "bn_shift"},       {ConstKind::Zeros, false, "zeros"},
    {ConstKind::ParamRef, false, "param_ref"}, {ConstKind::Grad, false, "grad"},              {ConstKind::Stats, false, "stats"},
    {ConstKind::DParams, false, "dparams"},    {ConstKind::Eps, false, "eps"},                {ConstKind::Seed, false, "seed"},
    {ConstKind::Ones, false, "ones"},
};

constexpr const char* constKindName(ConstKind k, bool foldBias = false) {
  for (const auto& e : kConstKindNames)
    if (e.kind == k && e.foldBias == (k == ConstKind::FoldConvBN && foldBias)) return e.name;
  return "?";
}

// How a conv weight [O, C, kh, kw] is rearranged at load for the kernel that reads it ("pack"):
// Blocked, in blocks of T output channels ([O/T, C, kh, kw, T], common/packed_layout.h);
// Winograd, transformed for F(2x2, 3x3) ([16, C, O], common/winograd_weights.h).
enum class ConstPack { None, Blocked, Winograd };
inline constexpr ConstPack kLastConstPack = ConstPack::Winograd;  // keep last
inline constexpr const char* kConstPackNames[] = {"none", "blocked", "winograd"};  // in the enum's order
static_assert(std::size(kConstPackNames) == static_cast<size_t>(kLastConstPack) + 1);

constexpr const char* constPackName(ConstPack p) { return kConstPackNames[static_cast<int>(p)]; }

// false for a spelling the table does not know.
constexpr bool constPackFromName(std::string_view name, ConstPack& pack) {
  for (int i = 0; i <= static_cast<int>(kLastConstPack); ++i)
    if (name == kConstPackNames[i]) {
      pack = static_cast<ConstPack>(i);
      return true;
    }
  return false;
}

// false for a spelling the table does not know.
constexpr bool constKindFromName(std::string_view name, ConstKind& kind, bool& foldBias) {
  for (const auto& e : kConstKindNames)
    if (name == e.name) {
      kind = e.kind;
      foldBias = e.foldBias;
      return true;
    }
  return false;
}

}  // namespace cnnc::plan_schema
