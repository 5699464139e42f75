#!/usr/bin/python3
"""Reference values from PyTorch 1.13 (Debian's, /usr/bin/python3) for cnnc's optimizers and LR
schedules. Run from anywhere:  /usr/bin/python3 tests/torch/optim_ref.py

Writes, next to tests/unit/:
  tests/unit/optim_ref_data.h   for tests/unit/optim_test.cpp (runtime/optim.h, runtime/lr_schedule.h):
      three parameter tensors (19, 6 and 3 values: ATen's AVX2 kernels take 8 floats at a time, so
      both the vector body and the scalar tail are exercised), five steps of fixed gradients, and for
      each optimizer config the parameters after every step and torch's optimizer state after the
      last one (under cnnc's state names); the LR of each schedule at every epoch or iteration.
      Floats are written with 9 significant digits and doubles with 17, so the C++ literals are the
      exact torch values.

torch.optim is run with foreach=False (1.13's default on CPU): the single-tensor path that
runtime/optim.cpp reproduces operation by operation.
"""
import os
import sys
import warnings

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
UNIT = os.path.normpath(os.path.join(HERE, "..", "unit"))

# ---------------------------------------------------------------------------------------------
# optim_ref_data.h

PARAMS = [("conv.weight", 19), ("bn.weight", 6), ("fc.bias", 3)]
STEPS = 5
VARYING_LRS = [0.1, 0.05, 0.2, 0.1, 0.01]

# name, kind, torch kwargs (lr excluded), per-step lrs, last parameter excluded from weight decay
OPTIM_CASES = [
    ("sgd", "sgd", {}, [0.1] * STEPS, False),
    ("sgd_momentum_wd", "sgd", dict(momentum=0.9, weight_decay=5e-4), [0.1] * STEPS, False),
    ("sgd_nesterov", "sgd", dict(momentum=0.9, nesterov=True), [0.05] * STEPS, False),
    ("sgd_dampening", "sgd", dict(momentum=0.9, dampening=0.1), [0.1] * STEPS, False),
    ("adam", "adam", {}, [1e-3] * STEPS, False),
    ("adam_wd", "adam", dict(weight_decay=1e-2), [1e-2] * STEPS, False),
    ("adamw", "adamw", dict(weight_decay=1e-2), [1e-2] * STEPS, False),
    ("adam_amsgrad", "adam", dict(amsgrad=True), [1e-2] * STEPS, False),
    # Beyond the brief: a no-decay group (BN/bias exclusion), an lr that changes every step,
    # non-default betas/eps, Nesterov with weight decay, amsgrad with weight decay.
    ("sgd_nesterov_wd_nodecay_lrs", "sgd", dict(momentum=0.8, nesterov=True, weight_decay=5e-2),
     [x * 0.5 for x in VARYING_LRS], True),
    ("sgd_momentum_wd_nodecay_lrs", "sgd", dict(momentum=0.9, dampening=0.25, weight_decay=5e-2), VARYING_LRS, True),
    ("adam_amsgrad_wd_nodecay_lrs", "adam", dict(betas=(0.8, 0.99), eps=1e-6, weight_decay=1e-1, amsgrad=True),
     [x * 0.1 for x in VARYING_LRS], True),
    ("adamw_nodecay_lrs", "adamw", dict(betas=(0.8, 0.99), eps=1e-6, weight_decay=1e-1),
     [x * 0.1 for x in VARYING_LRS], True),
    ("adamw_amsgrad", "adamw", dict(weight_decay=1e-2, amsgrad=True), [1e-2] * STEPS, False),
    ("rmsprop", "rmsprop", {}, [1e-2] * STEPS, False),
    # torchvision's MobileNetV3 recipe: momentum 0.9, eps 0.0316, alpha 0.9, weight decay 1e-5.
    ("rmsprop_momentum_wd", "rmsprop", dict(momentum=0.9, eps=0.0316, alpha=0.9, weight_decay=1e-5), [0.064] * STEPS, False),
    ("rmsprop_centered_nodecay_lrs", "rmsprop", dict(centered=True, momentum=0.5, weight_decay=1e-2), [x * 0.1 for x in VARYING_LRS], True),
    ("rmsprop_centered", "rmsprop", dict(centered=True, alpha=0.9), [1e-2] * STEPS, False),
]

# Schedules: base lr 0.1; name -> (C++ fields, torch scheduler factory, epochs, iters per epoch)
def schedule_cases():
    L = torch.optim.lr_scheduler

    def warm(o, w, then):
        first = L.LinearLR(o, start_factor=0.1, total_iters=w)
        if then is None:
            return first
        return L.SequentialLR(o, [first, then], milestones=[w])

    E = 30
    return [
        ("constant", dict(kind="constant"), lambda o: L.LambdaLR(o, lambda e: 1.0), E, 1),
        ("step", dict(kind="step", stepSize=10, gamma=0.1), lambda o: L.StepLR(o, 10, 0.1), E, 1),
        ("multistep", dict(kind="multistep", milestones=[5, 15], gamma=0.5),
         lambda o: L.MultiStepLR(o, [5, 15], 0.5), E, 1),
        ("cosine", dict(kind="cosine", tMax=30, etaMin=1e-4),
         lambda o: L.CosineAnnealingLR(o, T_max=30, eta_min=1e-4), E, 1),
        ("warmup_cosine", dict(kind="cosine", tMax=27, etaMin=1e-4, warmup=3, warmupStart=0.1),
         lambda o: warm(o, 3, L.CosineAnnealingLR(o, T_max=27, eta_min=1e-4)), E, 1),
        ("warmup_step", dict(kind="step", stepSize=10, gamma=0.1, warmup=3, warmupStart=0.1),
         lambda o: warm(o, 3, L.StepLR(o, 10, 0.1)), E, 1),
        ("warmup_multistep", dict(kind="multistep", milestones=[5, 15], gamma=0.5, warmup=3, warmupStart=0.1),
         lambda o: warm(o, 3, L.MultiStepLR(o, [5, 15], 0.5)), E, 1),
        ("warmup_constant", dict(kind="constant", warmup=3, warmupStart=0.1), lambda o: warm(o, 3, None), E, 1),
        ("cosine_past_tmax", dict(kind="cosine", tMax=10, etaMin=1e-2),
         lambda o: L.CosineAnnealingLR(o, T_max=10, eta_min=1e-2), E, 1),
        # Stepped after every batch: 6 epochs of 4 iterations.
        ("iter_warmup_cosine", dict(kind="cosine", tMax=19, etaMin=0.0, warmup=5, warmupStart=0.1, perIteration=True),
         lambda o: warm(o, 5, L.CosineAnnealingLR(o, T_max=19, eta_min=0.0)), 6, 4),
        ("iter_multistep", dict(kind="multistep", milestones=[7, 13], gamma=0.5, perIteration=True),
         lambda o: L.MultiStepLR(o, [7, 13], 0.5), 6, 4),
    ]


def make_inputs():
    g = torch.Generator().manual_seed(1234)
    init = [torch.randn(n, generator=g) for _, n in PARAMS]
    scales = [1.0, 0.5, 2.0, 1e-3, 1.0]
    grads = []
    for s in range(STEPS):
        step = [torch.randn(n, generator=g) * scales[s] for _, n in PARAMS]
        if s == 1:
            step[0][3] = 0.0      # a zero gradient
            step[1][2] = 1e-20    # a tiny one: its square is a float32 subnormal
        grads.append(step)
    return init, grads


def run_optim(kind, kw, lrs, exclude_last, init, grads):
    ps = [torch.nn.Parameter(x.clone()) for x in init]
    cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "rmsprop": torch.optim.RMSprop}[kind]
    if exclude_last:
        groups = [{"params": ps[:-1]}, {"params": ps[-1:], "weight_decay": 0.0}]
    else:
        groups = [{"params": ps}]
    opt = cls(groups, lr=lrs[0], foreach=False, **kw)
    traj = []
    for s in range(STEPS):
        for group in opt.param_groups:
            group["lr"] = lrs[s]
        for p, gr in zip(ps, grads[s]):
            p.grad = gr.clone()
        opt.step()
        traj.append([p.detach().clone() for p in ps])
    state = []
    for (name, _), p in zip(PARAMS, ps):
        st = opt.state[p]
        # RMSprop's in cnnc's order: square_avg, momentum_buffer, grad_avg.
        order = ("square_avg", "momentum_buffer", "grad_avg") if kind == "rmsprop" else ("momentum_buffer", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")
        for buf in order:
            if buf in st and st[buf] is not None and not (buf == "momentum_buffer" and kind == "rmsprop" and kw.get("momentum", 0) == 0):
                state.append(("optim.%s.%s" % (name, buf), st[buf].clone()))
    state.append(("optim.step", torch.tensor([float(STEPS)])))
    return traj, state


def run_schedule(factory, epochs, ipe):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    sched = factory(opt)
    lrs = []
    for _ in range(epochs * ipe):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def cf(x):
    """A float32 value as a C++ float literal that reads back exactly."""
    return "%.9ef" % float(x)


def cd(x):
    """A double as a C++ double literal that reads back exactly."""
    return "%.17e" % float(x)


def floats(t):
    return "{" + ", ".join(cf(v) for v in t.flatten().tolist()) + "}"


def write_header(path):
    init, grads = make_inputs()
    out = []
    w = out.append
    w("// Generated by tests/torch/optim_ref.py with PyTorch %s (torch.optim, foreach=False). Do not edit;" % torch.__version__)
    w("// regenerate with: /usr/bin/python3 tests/torch/optim_ref.py")
    w("#pragma once")
    w("#include <string>")
    w("#include <utility>")
    w("#include <vector>")
    w("")
    w("namespace optim_ref {")
    w("")
    w("struct Param {")
    w("  const char* name;")
    w("  std::vector<float> init;")
    w("};")
    w("inline const std::vector<Param> kParams = {")
    for (name, _), x in zip(PARAMS, init):
        w('    {"%s", %s},' % (name, floats(x)))
    w("};")
    w("// kGrads[step][param]")
    w("inline const std::vector<std::vector<std::vector<float>>> kGrads = {")
    for step in grads:
        w("    {" + ", ".join(floats(x) for x in step) + "},")
    w("};")
    w("")
    w("struct Case {")
    w("  const char* name;")
    w('  const char* kind;  // "sgd", "adam", "adamw", "rmsprop"')
    w("  double weightDecay, momentum, dampening;")
    w("  bool nesterov;")
    w("  double beta1, beta2, eps;")
    w("  bool amsgrad;")
    w("  double alpha;")
    w("  bool centered;")
    w("  bool lastNoDecay;  // the last parameter sits in a param group with weight_decay=0")
    w("  std::vector<double> lrs;  // per step")
    w("  std::vector<std::vector<std::vector<float>>> after;  // [step][param]: parameters after the step")
    w("  std::vector<std::pair<std::string, std::vector<float>>> state;  // after the last step, cnnc names")
    w("};")
    w("inline const std::vector<Case> kCases = {")
    for name, kind, kw, lrs, excl in OPTIM_CASES:
        traj, state = run_optim(kind, kw, lrs, excl, init, grads)
        betas = kw.get("betas", (0.9, 0.999))
        w("    {\"%s\", \"%s\", %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s," % (
            name, kind, cd(kw.get("weight_decay", 1e-2 if kind == "adamw" else 0.0)), cd(kw.get("momentum", 0.0)),
            cd(kw.get("dampening", 0.0)), "true" if kw.get("nesterov", False) else "false", cd(betas[0]),
            cd(betas[1]), cd(kw.get("eps", 1e-8)), "true" if kw.get("amsgrad", False) else "false",
            cd(kw.get("alpha", 0.99)), "true" if kw.get("centered", False) else "false",
            "true" if excl else "false"))
        w("     {" + ", ".join(cd(x) for x in lrs) + "},")
        w("     {")
        for step in traj:
            w("      {" + ", ".join(floats(x) for x in step) + "},")
        w("     },")
        w("     {")
        for sname, t in state:
            w('      {"%s", %s},' % (sname, floats(t)))
        w("     }},")
    w("};")
    w("")
    w("struct Schedule {")
    w("  const char* name;")
    w("  const char* kind;")
    w("  double gamma;")
    w("  int stepSize;")
    w("  std::vector<int> milestones;")
    w("  int tMax;")
    w("  double etaMin;")
    w("  int warmup;")
    w("  double warmupStart;")
    w("  bool perIteration;")
    w("  int epochs, itersPerEpoch;")
    w("  std::vector<double> lrs;  // base lr 0.1; per epoch, or per iteration when perIteration")
    w("};")
    w("inline const std::vector<Schedule> kSchedules = {")
    warnings.filterwarnings("ignore")
    for name, f, factory, epochs, ipe in schedule_cases():
        lrs = run_schedule(factory, epochs, ipe)
        w("    {\"%s\", \"%s\", %s, %d, {%s}, %d, %s, %d, %s, %s, %d, %d," % (
            name, f["kind"], cd(f.get("gamma", 0.1)), f.get("stepSize", 30),
            ", ".join(str(m) for m in f.get("milestones", [])), f.get("tMax", 100), cd(f.get("etaMin", 0.0)),
            f.get("warmup", 0), cd(f.get("warmupStart", 0.1)), "true" if f.get("perIteration") else "false",
            epochs, ipe))
        w("     {" + ", ".join(cd(x) for x in lrs) + "}},")
    w("};")
    w("")
    w("}  // namespace optim_ref")
    with open(path, "w") as fh:
        fh.write("\n".join(out) + "\n")
    print("wrote", path)


if __name__ == "__main__":
    if not torch.__version__.startswith("1.13"):
        print("warning: the references were made with PyTorch 1.13; this is %s" % torch.__version__, file=sys.stderr)
    write_header(os.path.join(UNIT, "optim_ref_data.h"))
