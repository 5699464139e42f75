#!/usr/bin/env python3
"""Training-step parity: `X step` (forward, loss, backward, plain SGD) against PyTorch.

From the same weights (random, with non-trivial BN statistics) and the same batch, both compute
the cross-entropy loss, every parameter gradient, the SGD-updated parameters and the BN running
statistics (train mode). The reference is PyTorch in float64 ("truth"); PyTorch in float32 is run
too, to measure how well-conditioned the step is. Per tensor, with ref = float64 PyTorch:
  bound = 1e-4 * (1 + max |ref|)            for the loss, parameters and buffers
  bound = 1e-3 * max |ref| + 1e-6           for gradients
  pass if  max |cnnc - ref| <= max(bound, 4 * max |torch32 - ref|)
The second term matters for deep plain nets with batch-statistics BN on tiny maps (plain34,
ResNet-34 on 32x32 at batch 2), where PyTorch's own float32 gradients miss the float64 ones by
up to 40x the fixed bound: there cnnc must be as accurate as PyTorch, within a factor 4. A wrong
kernel (a missing tap, a wrong stride) is off by orders of magnitude more.

ReLU (and ReLU6) inputs within float32 rounding of an edge, and max-pool windows whose two largest
inputs are within rounding of each other (deep nets have some in nearly every draw), are decided by
rounding: float32 PyTorch, float64 PyTorch and cnnc may each decide one differently, and a flipped
element moves every gradient upstream of it by far more than rounding. So the float64 reference
takes cnnc's own decision for the elements and windows within EDGE_BAND x max |input| of an edge
or a tie where the two differ (cnnc's forward tensors, dumped with CNNC_DUMP_DIR, matched to each
call by value); everywhere else the decisions must agree, and the count taken is printed.
Single-process steps only (with --ranks every rank's dumps would share one folder).

With --ranks N the step runs under `mpirun -np N` (data parallel, each rank on its slice of the
batch) and the reference follows PyTorch DDP: N replicas, each on its slice in train mode, their
gradients averaged, the running statistics rank 0's; with --sync-bn (SyncBatchNorm) the reference
is one model on the whole batch.

Usage: step_parity.py --exe BUILT_NET --net NAME [--batch 4] [--shape C,H,W] [--lr 0.1] [--ranks N [--sync-bn]]
"""
import argparse
import contextlib
import copy
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
import parity  # noqa: E402
import reference_models  # noqa: E402
import st  # noqa: E402


M32 = 0xFFFFFFFF

# Bounds per tensor, ref = float64 PyTorch (see the docstring):
# loss, updated parameters, BN buffers: as forward parity (parity.TOL), relative to 1 + max |ref|.
VALUE_TOL = 1e-4
# gradients: relative to max |ref|; they sum batch x space products, a longer chain than a forward value.
GRAD_REL_TOL = 1e-3
# gradients: absolute floor for those that are ~0 (a conv bias before BN: torch's is rounding noise, cnnc's 0).
GRAD_ABS_TOL = 1e-6
# the bound is at least this many times PyTorch float32's own error: ill-conditioned steps (plain34) need it.
TORCH32_ERR_FACTOR = 4
# pool_near_ties: a window's top two within this fraction of the layer's max |x| is float32 noise.
NEAR_TIE_REL = 2e-6
# PyTorch's own max pool: EdgeDecisions replaces F.max_pool2d while the reference runs.
MAX_POOL2D = F.max_pool2d
# ReLU inputs within this fraction of the call's max |input| of an edge (0; 0 and 6 for ReLU6), and
# max-pool windows whose two largest inputs are that close, may take cnnc's decision
# (EdgeDecisions). Float32 errors of a deep net's activations are ~1e-5 of that.
EDGE_BAND = 1e-4
# A dumped cnnc tensor is a call's (a ReLU's output, a max pool's input) if it matches the float64
# one within this (relative to 1 + its max |value|): float32 forward errors are ~1e-5, two different
# tensors are off by O(1).
DUMP_MATCH_TOL = 1e-3


def dropout_mask(shape, p, s0, s1, unit="element"):
    """cnnc's dropout mask (codegen/ops/dropout.cpp keepMask): a hash of the NCHW flat index, or of
    the (image, channel) index (dropout2d) or the image index (droppath), broadcast over the rest."""
    if unit == "channel":
        shape = tuple(shape[:2]) + (1,) * (len(shape) - 2)
    elif unit == "sample":
        shape = (shape[0],) + (1,) * (len(shape) - 1)
    idx = np.arange(int(np.prod(shape)), dtype=np.uint64)
    h = ((idx * 0x9E3779B1) & M32) ^ np.uint64(s0) ^ np.uint64((s1 * 0x85EBCA6B) & M32)
    h = (((h ^ (h >> np.uint64(16))) * 0x7FEB352D) & M32)
    h = (((h ^ (h >> np.uint64(15))) * 0x846CA68B) & M32)
    h = h ^ (h >> np.uint64(16))
    u = (h >> np.uint64(8)).astype(np.float32) * np.float32(1.0 / 16777216.0)
    scale = np.float32(1.0) / (np.float32(1.0) - np.float32(p))
    return torch.from_numpy(np.where(u >= np.float32(p), scale, np.float32(0.0)).astype(np.float32).reshape(shape))


class SameMaskDropout(torch.nn.Module):
    """Applies the mask cnnc draws for dropout layer k at step seed `seed` (runtime/train.cpp)."""

    def __init__(self, p, k, seed, unit="element"):
        super().__init__()
        s = (seed * 0x9E3779B97F4A7C15 + (k + 1) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        self.p, self.s0, self.s1, self.unit = p, s & 0x7FFFFFFF, (s >> 32) & 0x7FFFFFFF, unit

    def forward(self, x):
        if self.p == 0:
            return x
        return x * dropout_mask(tuple(x.shape), self.p, self.s0, self.s1, self.unit).to(x.dtype)


def replace_dropout(model, seed, shape):
    """Swaps every nn.Dropout, nn.Dropout2d and torchvision StochasticDepth for SameMaskDropout,
    numbered in the order the forward pass calls them, as cnnc numbers its dropout layers. The order
    is taken from one probe forward (eval mode: no running statistic moves): a module's place in
    model.modules() is not enough, since EfficientNet's blocks without a skip own a StochasticDepth
    they never call."""
    from torchvision.ops import StochasticDepth
    units = {torch.nn.Dropout: "element", torch.nn.Dropout2d: "channel", StochasticDepth: "sample"}
    called, hooks = [], []
    for mod in model.modules():
        if type(mod) in units:
            hooks.append(mod.register_forward_pre_hook(lambda m, _inp: called.append(m)))
    was_training = model.training
    with torch.no_grad():
        model.eval()(torch.zeros((1,) + tuple(shape)))
    model.train(was_training)
    for h in hooks:
        h.remove()
    order = {id(m): i for i, m in reversed(list(enumerate(called)))}
    slots = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) in units:
                slots.append((order.get(id(child), len(called)), parent, name, child))
    k = 0
    for _, parent, name, child in sorted(slots, key=lambda t: t[0]):
        p = child.p if id(child) in order else 0.0
        setattr(parent, name, SameMaskDropout(p, k, seed, units[type(child)]))
        if p > 0:
            k += 1


def max_abs_diff(a, b):
    """max |a - b| in float64, in slices of 1M elements through one buffer (VGG's classifier weight
    is 0.8 GB in float64; a whole-tensor temporary spent seconds in page faults)."""
    if not b.size:
        return 0.0
    a, b = np.asarray(a).reshape(-1), np.asarray(b).reshape(-1)
    n = min(b.size, 1 << 20)
    buf, worst = np.empty(n, np.float64), 0.0
    for i in range(0, b.size, n):
        d = buf[:min(n, b.size - i)]
        np.subtract(a[i:i + n], b[i:i + n], out=d, dtype=np.float64)
        worst = max(worst, float(np.max(np.abs(d, out=d))))
    return worst


def grad_bound(scale):
    return GRAD_REL_TOL * scale + GRAD_ABS_TOL


def compare(got, ref, ref32, tag="", lr=0.0):
    """Each tensor of `ref` (float64 PyTorch) against cnnc's `got`: within max(fixed bound, 4 x float32
    PyTorch's own error `ref32`). An updated parameter `w - lr * g` carries lr times its gradient's
    error, so its bound is at least lr times that gradient's bound (DenseNet-121's stem: a gradient
    summed over 120 layers' paths, within its bound, moved the weight by 1.2 times VALUE_TOL).
    Returns (ok, text naming the tensor closest to its bound)."""
    ok, worst, pre = True, (0.0, ""), f"[{tag}]: " if tag else ""
    for name, want in ref.items():
        if name not in got:
            print(f"FAIL {pre}{name} missing from cnnc's output")
            ok = False
            continue
        have = got[name]
        if have.shape != want.shape:
            print(f"FAIL {pre}{name}: shape {have.shape}, torch {want.shape}")
            ok = False
            continue
        diff = max_abs_diff(have, want)
        scale = float(np.max(np.abs(want))) if want.size else 0.0
        torch_err = max_abs_diff(ref32[name], want)
        bound = max(grad_bound(scale) if name.startswith("grad.") else VALUE_TOL * (1 + scale), TORCH32_ERR_FACTOR * torch_err)
        g = ref.get("grad." + name)
        if g is not None and g.size:
            bound = max(bound, lr * grad_bound(float(np.max(np.abs(g)))))
        if diff > bound:
            print(f"FAIL {pre}{name}: max abs diff {diff:.3e} > {bound:.3e} (max |ref| {scale:.3e}, torch float32 off by {torch_err:.3e})")
            ok = False
        ratio = diff / bound if bound else 0
        if ratio >= worst[0]:
            worst = (ratio, f"{name}: {diff:.3e} of {bound:.3e}")
    return ok, worst[1]


def pool_top2(x, k, s, p, d, ceil_mode):
    """Per window of a max pool on x (N, C, H, W): its two largest inputs, (N, C, windows, 2)."""
    ho, wo = MAX_POOL2D(x, k, s, p, d, ceil_mode).shape[-2:]
    need_h, need_w = (ho - 1) * s[0] + d[0] * (k[0] - 1) + 1, (wo - 1) * s[1] + d[1] * (k[1] - 1) + 1
    xp = F.pad(x, (p[1], max(0, need_w - x.shape[-1] - p[1]), p[0], max(0, need_h - x.shape[-2] - p[0])), value=float("-inf"))
    xp = xp[..., :need_h, :need_w]
    cols = F.unfold(xp, k, dilation=d, stride=s).view(x.shape[0], x.shape[1], k[0] * k[1], -1)
    return cols.topk(2, dim=2).values.transpose(2, 3)


def pool_params(kernel_size, stride, padding, dilation):
    pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)
    k = pair(kernel_size)
    return k, pair(stride) if stride else k, pair(padding), pair(dilation)


def pool_near_ties(x, m):
    """Windows of max pool `m` on `x` whose two largest inputs differ by less than float32 noise
    (2e-6 of the layer's largest magnitude), their maximum not an exact ReLU zero. The gradient of
    such a window goes to whichever element rounding makes the larger, in PyTorch and in cnnc alike;
    an element's worth of gradient then moves to its neighbour and every later gradient differs."""
    k, s, p, d = pool_params(m.kernel_size, m.stride, m.padding, m.dilation)
    if k[0] * k[1] < 2:
        return 0
    top = pool_top2(x, k, s, p, d, m.ceil_mode)
    delta = NEAR_TIE_REL * float(x.abs().max())
    return int(((top[..., 0] - top[..., 1] < delta) & (top[..., 0] != 0)).sum())


def unambiguous_input(model, shape, gen, tries=20):
    """A random input (drawn from `gen`) on which no max pool of `model` (in training mode, in float64)
    has a near-tie (pool_near_ties), so that the step's gradient is the same function of the input
    at either rounding. Returns (input, redraws); after `tries` draws, the one with fewest ties.
    ReLU's kink has the same problem where an input is within rounding of 0; it is not avoided
    here, since deep nets (ResNet-50) have such an element in nearly every draw. The CPU tests keep
    their first draw, on which their rounding and PyTorch's agree; GPU builds, which sum in another
    order (block reductions), use this."""
    m64 = copy.deepcopy(model).double().train()
    pools = [m for m in m64.modules() if isinstance(m, torch.nn.MaxPool2d)]
    best = None
    for i in range(tries):
        x = torch.randn(shape, generator=gen)
        if not pools:
            return x, 0, 0
        ties = []
        hooks = [m.register_forward_hook(lambda m, inp, out: ties.append(pool_near_ties(inp[0], m))) for m in pools]
        with torch.no_grad():
            m64(x.double())
        for h in hooks:
            h.remove()
        if sum(ties) == 0:
            return x, i, 0
        if best is None or sum(ties) < best[1]:
            best = (x, sum(ties))
    return best[0], tries - 1, best[1]


class EdgeDecisions:
    """While active, F.relu and F.hardtanh (nn.ReLU, nn.ReLU6 and the functional calls of
    torchvision's models all go through them) follow cnnc's decision for inputs within EDGE_BAND of
    an edge where float64 decides otherwise, and F.max_pool2d follows cnnc's choice of maximum in
    windows whose two largest inputs are within EDGE_BAND of each other. cnnc's decisions come from
    its dumped outputs (`dump_dir`, every call of one step) that match the call's values: a ReLU's
    output, and a max pool's input (cnnc's float32 values decide which element is the largest)."""

    def __init__(self, dump_dir):
        self.dumps = {}
        for name in os.listdir(dump_dir):
            a = np.fromfile(os.path.join(dump_dir, name), np.float32)
            self.dumps.setdefault(a.size, []).append(a)
        self.taken, self.calls = 0, 0

    def cnnc_tensor(self, out):
        """cnnc's dump that matches `out` (a float64 tensor of this step), or None."""
        want = out.detach().reshape(-1).numpy()
        best = None
        for a in self.dumps.get(want.size, []):
            d = max_abs_diff(a, want)
            if best is None or d < best[0]:
                best = (d, a)
        if best is None or best[0] > DUMP_MATCH_TOL * (1 + float(np.max(np.abs(want)))):
            return None
        return torch.from_numpy(best[1].astype(np.float64)).view_as(out)

    def follow(self, x, out, lo, hi):
        """`out` = clamp(x, lo, hi) (hi None: ReLU) with cnnc's decisions near lo and hi."""
        if x.dtype != torch.float64 or not x.numel():
            return out
        band = EDGE_BAND * float(x.detach().abs().max())
        near = (x.detach() - lo).abs() <= band
        if hi is not None:
            near |= (x.detach() - hi).abs() <= band
        if not bool(near.any()):
            return out
        y = self.cnnc_tensor(out)
        if y is None:
            return out
        self.calls += 1
        inside = lambda t: (t > lo) & (t < hi) if hi is not None else t > lo
        # Passed by cnnc: strictly inside the edges. An element's value is then x (gradient 1),
        # else cnnc's own output there, the edge it was clamped to (a constant: gradient 0).
        passed = inside(y)
        flip = near & (passed != inside(x.detach()))
        n = int(flip.sum())
        if not n:
            return out
        self.taken += n
        return torch.where(flip, torch.where(passed, x, y), out)

    def max_pool(self, x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
        """F.max_pool2d whose near-tie windows take the element cnnc's own values make the largest."""
        out, idx = MAX_POOL2D(x, kernel_size, stride, padding, dilation, ceil_mode=ceil_mode, return_indices=True)
        k, s, p, d = pool_params(kernel_size, stride, padding, dilation)
        if x.dtype != torch.float64 or x.dim() != 4 or k[0] * k[1] < 2:
            return (out, idx) if return_indices else out
        top = pool_top2(x.detach(), k, s, p, d, ceil_mode)
        near = (top[..., 0] - top[..., 1] <= EDGE_BAND * float(x.detach().abs().max())).view_as(idx)
        xc = self.cnnc_tensor(x) if bool(near.any()) else None
        if xc is not None:
            self.calls += 1
            _, theirs = MAX_POOL2D(xc, kernel_size, stride, padding, dilation, ceil_mode=ceil_mode, return_indices=True)
            flip = near & (theirs != idx)
            n = int(flip.sum())
            if n:
                self.taken += n
                idx = torch.where(flip, theirs, idx)
                out = x.flatten(2).gather(2, idx.flatten(2)).view_as(out)
        return (out, idx) if return_indices else out

    def __enter__(self):
        self.saved = relu, relu6, hardtanh = F.relu, F.relu6, F.hardtanh
        F.max_pool2d = self.max_pool
        F.relu = lambda x, inplace=False: self.follow(x, relu(x), 0.0, None)
        F.relu6 = lambda x, inplace=False: self.follow(x, relu6(x), 0.0, 6.0)
        F.hardtanh = lambda x, min_val=-1.0, max_val=1.0, inplace=False: self.follow(x, hardtanh(x, min_val, max_val), min_val, max_val)
        return self

    def __exit__(self, *exc):
        F.relu, F.relu6, F.hardtanh = self.saved
        F.max_pool2d = MAX_POOL2D


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--exe", required=True)
    ap.add_argument("--net", required=True)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--runner", default="", help="command that runs the executable, e.g. qemu-aarch64 for an aarch64 build")
    ap.add_argument("--shape", default="")
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--label-smoothing", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=5, help="dropout seed of the step")
    ap.add_argument("--avoid-pool-ties", action="store_true",
                    help="redraw the input until no max-pool window has a near-tie (for GPU builds, whose sums run in another order)")
    ap.add_argument("--ranks", type=int, default=1, help="run the step under mpirun with this many ranks")
    ap.add_argument("--sync-bn", action="store_true", help="with --ranks: batch norm over the whole batch")
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    gen = torch.Generator().manual_seed(99)
    model = reference_models.build(args.net, meta=False)
    parity.randomize(model, gen, bn_shift=0.5)
    shape = tuple(int(v) for v in args.shape.split(",")) if args.shape else reference_models.input_shape(args.net)
    replace_dropout(model, args.seed, shape)
    model.train()
    if args.avoid_pool_ties:
        x, redraws, ties = unambiguous_input(model, (args.batch,) + shape, gen)
    else:
        x, redraws, ties = torch.randn((args.batch,) + shape, generator=gen), 0, 0
    if ties:
        print(f"note: every one of {redraws + 1} inputs drawn had a max-pool near-tie; using one with {ties}")
    elif redraws:
        print(f"note: input drawn {redraws + 1} times, until no max-pool window had a near-tie")
    with torch.no_grad():
        out_shape = model.eval()(x[:1]).shape
    model.train()
    k = out_shape[1]
    # A label per image, or per pixel for a segmentation net's [N,K,H,W] scores.
    labels = torch.randint(0, k, (args.batch,) + tuple(out_shape[2:]), generator=gen)
    ok = True
    with tempfile.TemporaryDirectory() as d:
        st.save(f"{d}/w.safetensors", model.state_dict())
        st.save(f"{d}/in.safetensors", {"input": x})
        st.save(f"{d}/labels.safetensors", {"labels": labels})
        mpi = ["mpirun", "--oversubscribe", "-np", str(args.ranks)] if args.ranks > 1 else []
        env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_btl="self,vader,tcp")
        dump = f"{d}/dump" if args.ranks == 1 else ""
        if dump:
            os.mkdir(dump)
            env["CNNC_DUMP_DIR"] = dump
        r = subprocess.run(mpi + ([args.runner] if args.runner else []) + [args.exe, "step", "--weights", f"{d}/w.safetensors", "--input", f"{d}/in.safetensors", "--labels",
                            f"{d}/labels.safetensors", "--lr", str(args.lr), "--label-smoothing", str(args.label_smoothing), "--seed", str(args.seed),
                            "--output", f"{d}/out.safetensors"] + (["--sync-bn"] if args.sync_bn else []), capture_output=True, text=True, env=env)
        if r.returncode != 0:
            print(f"FAIL {args.net}: step exited {r.returncode}\n{r.stderr}")
            print("0 passed, 1 failed")
            return 1
        got = st.load(f"{d}/out.safetensors")
        edges = EdgeDecisions(dump) if dump else None

    def reference(m, xx, replicas=1):
        # replicas > 1: PyTorch DDP, replica k steps on slice k, gradients are averaged and rank 0's
        # (m's) buffers are kept. One replica is one model on the whole batch.
        reps = [m] + [copy.deepcopy(m) for _ in range(replicas - 1)]
        n = args.batch // replicas
        losses = []
        for k, mk in enumerate(reps):
            out = torch.nn.functional.cross_entropy(mk(xx[k * n:(k + 1) * n]), labels[k * n:(k + 1) * n], label_smoothing=args.label_smoothing)
            out.backward()
            losses.append(out.detach())
        if replicas > 1:
            params = [dict(mk.named_parameters()) for mk in reps]
            for name, p in m.named_parameters():
                p.grad = sum(pk[name].grad for pk in params) / replicas
        # Arrays share the tensors' memory (no copies: VGG's classifier is 0.4 GB in float32): each
        # gradient tensor stays as backward left it, and the update replaces the parameters' values.
        r = {"loss": (sum(losses) / len(losses)).double().numpy()}
        for name, p in m.named_parameters():
            r["grad." + name] = p.grad.numpy()
        with torch.no_grad():
            for p in m.parameters():
                p.sub_(args.lr * p.grad)
        for name, t in m.state_dict().items():
            r[name] = t.numpy()
        return r

    replicas = 1 if args.sync_bn else args.ranks
    model64 = copy.deepcopy(model).double()
    ref32 = reference(model, x, replicas)
    with edges or contextlib.nullcontext():
        ref = reference(model64, x.double(), replicas)
    if edges and edges.taken:
        print(f"note: the float64 reference took cnnc's decision for {edges.taken} ReLU element(s) or max-pool window(s) within "
              f"{EDGE_BAND:g} x max |input| of an edge or a tie (in {edges.calls} call(s) with such elements)")
    cmp_ok, closest = compare(got, ref, ref32, lr=args.lr)
    ok &= cmp_ok
    how = f", {args.ranks} ranks" + (" with --sync-bn" if args.sync_bn else " (DDP semantics)") if args.ranks > 1 else ""
    print(f"{'ok' if ok else 'FAIL'} {args.net} step, batch {args.batch}{how}: loss {float(got['loss']):.6f} (torch {float(ref['loss']):.6f}); "
          f"{len(ref)} tensors compared, closest to its bound: {closest}")
    print("1 passed, 0 failed" if ok else "0 passed, 1 failed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
