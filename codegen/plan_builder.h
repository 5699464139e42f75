// plan_builder.h: the state that plan.cpp and train_plan.cpp walk the graph with, and the steps each
// op contributes to it. An op's steps live in its file (codegen/ops/<op>.cpp), next to its kernels:
//   - inference: the op's kernel calls, absorbing what follows it when it can (a conv takes a batch
//     norm, a residual add and an activation);
//   - training forward: its kernels in training mode, as a Group whose tail carries the output;
//   - training backward: given the gradient of its group's output, the calls that give its input and
//     its parameters their gradients.
// ops/registry.cpp maps each OpKind to them (opPlanEntry). Input and flatten make no kernels: the
// builders handle them.
#pragma once
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "plan.h"
#include "train_plan.h"

namespace cnnc::codegen {

// Walks the graph in node order into an inference Plan (plan.cpp, steps 1-4).
struct InferenceBuilder {
  const Graph& g;
  Plan p;
  std::vector<int> consumers;
  std::vector<std::vector<int>> users;
  std::vector<int> tensorOf;  // node -> ActTensor
  std::vector<bool> done;     // nodes already planned (absorbed into an earlier group)
  std::map<std::string, int> specIndex;
  std::map<int, std::function<void()>> deferred;  // tail node -> emission of its group

  explicit InferenceBuilder(const Graph& graph);

  // The single consumer of node `id`, or -1.
  int soleUser(int id) const;
  int newTensor(const Dims& shape, const std::string& name, int storage = -1) { return addActTensor(p, shape, name, storage); }
  // The index into Graph::params of n's parameter with `role`, or -1.
  int param(const Node& n, ParamRole role) const;
  int newConst(ConstTensor c);
  int constParam(int paramIdx);
  int zeros(int64_t n);  // a bias of zeros, for convs and linears declared without one
  KernelArg act(int node) const { return {false, tensorOf[node]}; }
  // A kernel spec for node n: its input and output shapes and attributes.
  KernelSpec specOf(const Node& n) const;
  // Emits one call of `s` with inputs `named` (bindArgs), whose output is node `last`'s.
  void emit(KernelSpec s, const NamedArgs& named, const Node& last, const std::string& label);
  // Emits one call whose output is `tensor`, an intermediate of node `node`'s group (its statistics).
  void emitTo(KernelSpec s, const NamedArgs& named, int tensor, const std::string& label, int node);
  // Absorbs a single-consumer activation after `cur`; returns the new tail.
  int absorbAct(int cur, KernelSpec& s, std::string& label);
  // Node n as one call of kind k on its input, fusing nothing (pools, lrn, softmax).
  void single(const Node& n, KernelKind k);
  // Node n's output is its input's storage (flatten; dropout at inference).
  void view(const Node& n);
  // Runs `emit` when node `tail` is reached: a group runs where its last node is, so operands it
  // reads (a residual computed by a projection shortcut after the main path) already exist.
  void deferTo(int tail, int head, std::function<void()> emit);

  void run();
};

// One group of the training forward pass: the kernels of node `head` and what they absorbed
// (an activation), whose output is node `tail`'s.
struct Group {
  OpKind op;
  int head = -1, tail = -1;
  Act act;
  int stats = -1, seed = -1;
  int out = -1;  // ActTensor of the tail's output
  // The group that node n starts.
  static Group of(const Node& n) {
    Group g;
    g.op = n.op;
    g.head = n.id;
    return g;
  }
};

// The backward step of one group (TrainingBuilder::backward): what an op's backward planner gets.
struct BackStep {
  const Group& gr;
  const Node& head;
  int m;             // the group's tail node
  int dPre;          // the gradient of the head's output (through the group's activation, unless in BN)
  int xin;           // the head's input node (-1: none)
  int x;             // its ActTensor
  Dims inShape;      // its shape
  std::string dl;    // "d" + head's name, for labels
  bool actInOp;      // the group's activation is differentiated inside the op's backward kernels (BN, concat)
};

// Walks the graph into a training-step plan (train_plan.cpp).
struct TrainingBuilder {
  const Graph& g;
  TrainPlan& tp;
  Plan& p;
  std::vector<int> consumers;
  std::vector<std::vector<int>> users;
  std::vector<int> tensorOf, groupOfTail, paramRefs;
  std::vector<bool> done;
  // Max pools folded into the BN + ReLU before them (forward): the BN kernels compute the pool and,
  // backward, route its gradient themselves, so no MaxPool or MaxPoolBack kernel is made.
  std::set<int> foldedPools;
  std::map<int, int> pooledGrad;  // BN group tail -> the folded pool whose gradient its backward routes
  // Batch norms without an activation whose only reader is an add of two tensors of their shape
  // (a residual block's last BN): the add makes their BNApply call (ops/add.cpp), with its other
  // operand as a residual and its activation, so the BN's own output is never stored. By BN node:
  // the call as batchnormForward built it, less the residual and the output.
  struct DeferredApply {
    KernelSpec spec;
    NamedArgs args;
    std::string label;
  };
  std::map<int, DeferredApply> deferredApply;
  std::vector<bool> isAlias;
  std::vector<Group> groups;
  std::vector<std::vector<int>> contrib;  // per node: the tensors that add up to its output's gradient
  std::map<std::string, int> specIndex;

  TrainingBuilder(const Graph& graph, TrainPlan& t);

  int soleUser(int id) const;
  int newTensor(const Dims& shape, const std::string& name, int storage = -1) { return addActTensor(p, shape, name, storage); }
  int newConst(ConstTensor c);
  int paramRef(int idx);      // the live value of parameter idx, as a kernel argument
  int gradOfParam(int idx);   // parameter idx's gradient buffer
  int zeros(int64_t n);
  int ones(int64_t n);  // batchnorm(affine=false)'s gamma
  int param(const Node& n, ParamRole role) const;
  KernelArg act(int t) const { return {false, t}; }
  KernelArg cst(int c) const { return {true, c}; }
  KernelSpec spec(KernelKind k, Dims in, Dims out, const Attrs& a = Attrs(), const Act& act = Act()) const;
  // Emits one kernel call: its inputs bound by name (bindArgs), then the output.
  void call(KernelSpec s, const NamedArgs& in, KernelArg out, const std::string& label, int node);
  // Closes group `gr` at its head, or at a single following activation it absorbs (with allowAct,
  // and only one whose gradient reads its output: the group stores only that); returns the output
  // tensor. With `noOutput` the output is never stored (a folded pool computes its own): -1.
  int finishGroup(Group gr, std::string& label, bool allowAct, bool noOutput = false);
  // Node n as a group of its own: one call of kind k on its input (pools, lrn, softmax).
  void singleForward(const Node& n, KernelKind k);
  // A max pool whose windows tile its input exactly (the rule of ops/pool.h).
  bool tilesItsInput(const Node& pool) const;
  // The gradient of node m's output: the sum of its consumers' contributions (or -1: none).
  int gradOf(int m);
  bool needsGrad(int node) const { return g.nodes[node].op != OpKind::Input; }
  // The input gradient of the step's head, a call of kind `k` (with the activation whose gradient
  // it applies inline, and extra inputs' shapes): skipped when the input needs none.
  void giveInput(const BackStep& st, KernelKind k, const NamedArgs& args, const Attrs& a, const Act& fused = Act(), std::vector<Dims> extra = {});

  // The steps of an op with a weight and an optional bias (conv, linear), forward of kind `k`:
  // one kernel absorbing a following activation; backward: the input gradient (`data`), the
  // weight gradient (`weight`) and the bias gradient, left out where batch norms cancel it.
  void weightedForward(const Node& n, KernelKind k);
  void weightedBackward(const BackStep& st, KernelKind data, KernelKind weight);
  bool biasCancels(int m, const Group& gr) const;

  void forward();
  void backward();
};

// The plan steps of one op (ops/registry.cpp has a row per OpKind with kernels).
struct OpPlanEntry {
  OpKind op;
  void (*infer)(InferenceBuilder&, const Node&);        // inference
  void (*forward)(TrainingBuilder&, const Node&);       // training, forward
  void (*backward)(TrainingBuilder&, const BackStep&);  // training, backward
};

// The row of `op`; throws std::logic_error for ops without one (input, flatten).
const OpPlanEntry& opPlanEntry(OpKind op);

}  // namespace cnnc::codegen
