#!/usr/bin/env python3
"""Finite-difference gradient checks of every backward kernel, independent of PyTorch.

For each op, a tiny network around it is compiled with cnnc. `X step --lr 0` gives the loss and the
analytic gradients; the loss at w +/- h for sampled weights gives central differences. Caffe's
rule, as GradientChecker applies it: |analytic - numeric| <= 1e-2 * max(|analytic|, |numeric|, 0.1).
Float32 losses carry ~1e-7 relative noise, so h = 1e-3 keeps the numeric estimate good to ~1e-3
of the 0.1 floor, and a step that small rarely crosses a kink of relu or max pooling.
Networks keep away from kinks (smooth activations where the op allows) so that the difference
quotient is a derivative.

Usage: gradcheck.py CNNC KERNEL_CACHE
"""
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "torch"))
import st  # noqa: E402

# Caffe's GradientChecker threshold: |analytic - numeric| <= REL_TOL * max(|analytic|, |numeric|, SCALE_FLOOR).
REL_TOL = 1e-2
# Caffe's floor on that scale, so gradients near zero are judged against 0.1, not their own noise.
SCALE_FLOOR = 0.1
# Central-difference step: big enough that float32 loss noise (~1e-7) stays ~1e-3 of the floor, small enough to rarely cross a kink.
FD_STEP = 1e-3
# Weights sampled per parameter tensor: a wrong gradient kernel is wrong at almost every element
# (a wrong index, a missing term), so three points find it; each costs two launches.
SAMPLES = 3

CASES = {
    "conv_strided_padded": ("input(3, 9, 7)", "c: conv(4, 3, stride=2, padding=1); tanh; flatten; fc: linear(5)"),
    # Strided convs after a first layer, so their input gradients (split by phase) are checked too:
    # channel-vector phases with odd sizes, vectors along x, mixed strides with a phase no tap
    # reaches, and a 1x1 stride-2 conv whose odd pixels get no gradient.
    "conv_strided_mid_chanvec": ("input(2, 9, 7)", "a: conv(16, 1); tanh; c: conv(4, 3, stride=2, padding=1); tanh; flatten; fc: linear(5)"),
    "conv_strided_mid_wide": ("input(2, 6, 17)", "a: conv(3, 1); tanh; c: conv(4, 3, stride=2, padding=1); tanh; flatten; fc: linear(5)"),
    "conv_stride3_rect_mid": ("input(2, 11, 10)", "a: conv(3, 1); tanh; c: conv(4, [2, 4], stride=[3, 2], padding=[1, 0]); tanh; flatten; fc: linear(5)"),
    "conv_1x1_stride2_mid": ("input(2, 7, 6)", "a: conv(3, 1); tanh; c: conv(4, 1, stride=2); tanh; flatten; fc: linear(4)"),
    "conv_grouped_dilated": ("input(4, 9, 9)", "c: conv(6, 3, dilation=2, groups=2, padding=2); sigmoid; flatten; fc: linear(5)"),
    "conv_rect_kernel": ("input(2, 8, 10)", "c: conv(3, [3, 1], stride=[1, 2], padding=[1, 0]); tanh; flatten; fc: linear(4)"),
    "linear_tanh": ("input(12)", "a: linear(7); tanh; b: linear(5)"),
    "batchnorm_2d": ("input(3, 6, 6)", "c: conv(4, 3); bn: batchnorm; tanh; flatten; fc: linear(5)"),
    "batchnorm_1d": ("input(10)", "a: linear(8); bn: batchnorm; sigmoid; b: linear(4)"),
    "maxpool_tiled": ("input(2, 6, 8)", "c: conv(3, 1); tanh; maxpool(2); flatten; fc: linear(4)"),
    "maxpool_tiled_rect": ("input(2, 4, 6)", "c: conv(3, 1); tanh; maxpool([2, 3]); flatten; fc: linear(4)"),
    # A 2x2 max pool behind BN + ReLU folds into the BN's backward kernels (batchnormForward).
    "bn_relu_maxpool_folded": ("input(2, 6, 8)", "c: conv(3, 1); bn: batchnorm; relu; maxpool(2); flatten; fc: linear(4)"),
    "maxpool_ceil": ("input(2, 7, 7)", "c: conv(3, 1); maxpool(3, stride=2, ceil=true); flatten; fc: linear(4)"),
    "avgpool_pad": ("input(2, 8, 8)", "c: conv(3, 1); avgpool(3, stride=2, padding=1, count_include_pad=false); flatten; fc: linear(4)"),
    "adaptive_avgpool": ("input(2, 7, 5)", "c: conv(3, 1); adaptiveavgpool([3, 2]); flatten; fc: linear(4)"),
    "residual": ("input(3, 5, 5)", "c: conv(3, 3, padding=1); residual { d: conv(3, 3, padding=1); tanh }; sigmoid; flatten; fc: linear(4)"),
    "relu": ("input(8)", "a: linear(6); relu; b: linear(4)"),
    "concat": ("input(2, 5, 5)", "concat { a: conv(2, 1); b: conv(3, 3, padding=1) }; tanh; flatten; fc: linear(4)"),
    "dropout": ("input(10)", "a: linear(8); tanh; dropout(0.5); b: linear(4)"),
    "softmax_layer": ("input(6)", "a: linear(5); softmax; b: linear(4)"),
    "lrn_odd_window": ("input(2, 5, 6)", "c: conv(7, 3, padding=1); tanh; lrn(3, alpha=2.0, beta=0.75, k=1.0); flatten; fc: linear(4)"),
    "lrn_even_window": ("input(2, 4, 5)", "c: conv(5, 1); tanh; lrn(4, alpha=1.5, beta=0.6, k=0.5); flatten; fc: linear(4)"),
    # New cases go last: each case draws from one random stream, so a case inserted earlier changes
    # the points every later case is checked at.
    # leakyrelu: fused after a linear and a batch norm (derivative from y), and with a negative
    # slope on its own (derivative from x: y's sign no longer tells x's).
    "leakyrelu_fused": ("input(8)", "a: linear(6); leakyrelu(0.1); b: linear(4)"),
    "bn_leakyrelu": ("input(3, 6, 6)", "c: conv(4, 3); bn: batchnorm; leakyrelu(0.2); flatten; fc: linear(5)"),
    "leakyrelu_negative_slope": ("input(2, 5, 5)", "c: conv(3, 3, padding=1); leakyrelu(slope=-0.5); flatten; fc: linear(4)"),
    # The other activations: fused where their gradient reads y (relu6, hardtanh, hardsigmoid after a
    # batch norm), kernels of their own where it reads x (hardswish, elu, silu).
    "relu6_hardtanh": ("input(8)", "a: linear(6, bias=false); relu6; b: linear(6); hardtanh(-0.8, 0.9); c: linear(4)"),
    "bn_hardsigmoid": ("input(3, 6, 6)", "c: conv(4, 3); bn: batchnorm; hardsigmoid; flatten; fc: linear(5)"),
    "hardswish_elu_silu": ("input(2, 5, 5)", "c: conv(3, 3, padding=1); hardswish; d: conv(3, 1); elu(0.7); flatten; fc: linear(6); silu; g: linear(4)"),
    # gelu (erf form and tanh approximation) and mish: smooth, gradients from x.
    "gelu_mish": ("input(2, 5, 6)", "c: conv(3, 3, padding=1); gelu; d: conv(3, 1); mish; flatten; fc: linear(6); gelu(approximate=\"tanh\"); g: linear(4)"),
    # A weight gradient of the Winograd form (64 channels in and out, 3x3 stride 1 on a 17x16 plane
    # on AVX-512: schedule.cpp), with an odd height, so the last row of tiles is half zeros.
    "conv_winograd_weight": ("input(64, 17, 16)", "c: conv(64, 3, padding=1); tanh; flatten; fc: linear(4)"),
    # Broadcasting: a squeeze-and-excitation gate [C,1,1] times a [C,H,W] tensor; a product of two
    # full tensors; an add whose second operand [C,1,W] repeats over the height.
    "se_gate": ("input(3, 6, 7)", "c: conv(4, 3, padding=1); tanh; mul { identity; seq { globalavgpool; g: conv(4, 1); sigmoid } }; flatten; fc: linear(4)"),
    "mul_full_add_rows": ("input(2, 5, 6)", "mul { a: conv(3, 1); b: conv(3, 3, padding=1) }; add { identity; seq { avgpool([5, 1]); d: conv(3, 1) } }; flatten; fc: linear(4)"),
    # Learned per-channel parameters: prelu (per channel, single, flat) and scale (images, flat).
    "prelu_scale": ("input(2, 5, 5)", "c: conv(3, 3, padding=1); p: prelu(3); s: scale(0.7); d: conv(3, 1); q: prelu; flatten; fc: linear(6); r: prelu(6); t: scale; g: linear(4)"),
    # ShuffleNetV2's unit: half the channels pass, half are transformed, then shuffled; and a split
    # into three with a shuffle of 3 groups (channel permutations and their inverses).
    "split_shuffle": ("input(3, 5, 6)", "c: conv(8, 1); tanh; split { identity; b: seq { conv(4, 3, padding=1); tanh } }; channelshuffle(2); d: conv(3, 1); flatten; fc: linear(4)"),
    "split3_shuffle3": ("input(2, 4, 5)", "c: conv(6, 1); tanh; split { e: conv(2, 1); identity; f: conv(2, 1) }; channelshuffle(3); flatten; fc: linear(4)"),
    # Masks per channel (dropout2d) and per image (droppath on a residual branch, stochastic depth).
    "dropout2d_droppath": ("input(3, 5, 6)", "c: conv(4, 3, padding=1); tanh; dropout2d(0.5); residual { d: conv(4, 1); droppath(0.5) }; flatten; fc: linear(4)"),
    # Max pools sized by their input: adaptive to 3x2 (windows 2x2), then global.
    "adaptive_global_maxpool": ("input(2, 6, 4)", "c: conv(3, 1); tanh; adaptivemaxpool([3, 2]); d: conv(3, 1); globalmaxpool; flatten; fc: linear(4)"),
    # Long skips: a kept tensor concatenated after two convs and added after one more (two uses).
    "long_skip": ("input(2, 5, 6)", "c: conv(3, 3, padding=1); tanh; keep a; d: conv(3, 3, padding=1); tanh; concat { identity; from a }; e: conv(3, 1); add { identity; from a }; flatten; fc: linear(4)"),
    # Resampling: nearest by 2, bilinear down to a size that is no multiple, bilinear with
    # align_corners by 1.5 (each input gradient gathers the outputs that read it).
    "upsample_modes": ("input(2, 5, 6)", "c: conv(3, 1); tanh; upsample(2); d: conv(3, 3, stride=2); tanh; upsample(size=[7, 5], mode=\"bilinear\"); upsample(1.5, mode=\"bilinear\", align_corners=true); flatten; fc: linear(4)"),
    # Transposed convs (output_padding and groups; dilation and a rectangular kernel) and a pad.
    "convtranspose_pad": ("input(2, 4, 5)", "c: conv(4, 1); tanh; t: convtranspose(4, 3, stride=2, padding=1, output_padding=1, groups=2); tanh; pad([1, 0, 2, 1]); u: convtranspose(3, [2, 3], dilation=2); flatten; fc: linear(4)"),
    # Per-side conv padding: "same" with an even kernel, and four explicit sides with a stride.
    "conv_padding_sides": ("input(2, 5, 6)", "c: conv(3, 4, padding=\"same\"); tanh; d: conv(3, 3, stride=2, padding=[1, 0, 2, 1]); flatten; fc: linear(4)"),
    # Per-image normalisation: groups of 2 channels, instance norm with affine parameters, and a
    # layer norm on a flat tensor (statistics of each image's own group; no running statistics).
    "group_instance_layer_norm": ("input(2, 5, 6)", "c: conv(4, 3, padding=1); g: groupnorm(2); tanh; d: conv(3, 1); i: instancenorm(affine=true); sigmoid; flatten; fc: linear(6); l: layernorm; tanh; e: linear(4)"),
    # Layer norm over each pixel's channels (ConvNeXt's LayerNorm2d).
    "layernorm_channels": ("input(2, 5, 6)", "c: conv(5, 3, padding=1); l: layernorm(eps=1e-6); tanh; d: conv(3, 1); flatten; fc: linear(4)"),
    # ConvNeXt's block body: per-pixel linears (1x1 convs with Linear's [out, C] weight) around a
    # GELU, scaled per channel, on a residual.
    # Batch norm without affine parameters, after a conv (folded in inference) and on a flat tensor.
    "batchnorm_no_affine": ("input(3, 5, 6)", "c: conv(4, 3, padding=1, bias=false); b: batchnorm(affine=false); tanh; flatten; fc: linear(6); bf: batchnorm(affine=false); tanh; e: linear(4)"),
    "convnext_block": ("input(3, 5, 6)", "c: conv(4, 3, padding=1); residual { d: conv(4, 3, padding=1, groups=4); l: layernorm(eps=1e-6); p: linear(8, per_pixel=true); gelu; q: linear(4, per_pixel=true); s: scale(0.5) }; flatten; fc: linear(4)"),
    # Adaptive max pools whose windows overlap: 7x5 to 3x4 (windows of 3 rows and 2 columns), then
    # 3x4 to 5x2 (more rows out than in: each row is in two windows, and gets both gradients).
    "adaptive_maxpool_overlap": ("input(2, 7, 5)", "c: conv(3, 1); tanh; adaptivemaxpool([3, 4]); d: conv(3, 1); tanh; adaptivemaxpool([5, 2]); flatten; fc: linear(4)"),
    # Depthwise convs on rows shorter than a vector, walked as flat planes: dilated, "same" with an
    # even kernel (one more column at the end), and one ending a residual branch; then a grouped conv
    # (2 input channels per group, 3 outputs), whose weight gradient takes the same flat walk.
    "depthwise_flat": ("input(3, 5, 7)", "c: conv(4, 1); tanh; d: conv(4, 3, padding=2, dilation=2, groups=4); tanh; e: conv(4, 4, padding=\"same\", groups=4); tanh; residual { f: conv(4, 3, padding=1, groups=4) }; g: conv(6, 3, padding=1, groups=2); tanh; flatten; fc: linear(4)"),
    # Grouped and depthwise weight gradients of strided convs (x split into stride x stride phases,
    # each walked flat): stride 2 on an odd width, a [2, 3] kernel of stride [2, 1], and a stride-1
    # conv without padding (rows narrower than the input's).
    "grouped_strided_weightgrad": ("input(4, 13, 11)", "c: conv(6, 1); tanh; d: conv(6, 3, stride=2, padding=1, groups=6); tanh; e: conv(6, [2, 3], stride=[2, 1], groups=3); tanh; f: conv(6, 3, groups=2); flatten; fc: linear(4)"),
    # Vector tails of one lane (extents 17, 9 and 49 = 3 x 16 + 1) in front of activations that read
    # their input twice (hardswish, silu): Halide 14 dropped the guard of such a tail store in one
    # schedule and wrote 15 floats past the output (CNNC_CHECK_WRITES, set by ctest, catches it).
    # One-row images, a depthwise conv on a 7x7 plane, and flat tensors of 17 features.
    "row_tails": ("input(2, 1, 17)", "c: conv(4, [1, 3], padding=[0, 1]); hardswish; d: conv(4, [1, 3], padding=[0, 1], groups=4); hardswish; e: conv(4, [1, 9]); silu; f: conv(4, [1, 3], padding=[0, 1], groups=4); hardswish; flatten; fc: linear(17); hardswish; fc2: linear(4)"),
    "plane_tails": ("input(2, 7, 7)", "c: conv(4, 1); hardswish; d: conv(4, 5, padding=2, groups=4); hardswish; e: conv(4, 3, padding=1, groups=4); silu; flatten; fc: linear(4)"),
    # Winograd with channel vectors (128 or more channels in and out, rows of 14 to 27 on AVX-512:
    # schedule.cpp) for both convs' forward and d's input gradient, and the weight gradients' form
    # whose tasks are the 16 products (16 x 160 x 160 sums past 1 MiB); 8 rows of tiles over 15
    # rows (the last half zeros), 7 tiles per row of 14.
    "conv_winograd_channels": ("input(160, 15, 14)", "c: conv(160, 3, padding=1); tanh; d: conv(160, 3, padding=1); tanh; flatten; fc: linear(4)"),
}


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(" ".join(cmd) + "\n" + r.stderr)
    return r


def main():
    cnnc, cache = sys.argv[1], sys.argv[2]
    rng = np.random.default_rng(0)
    failures = 0
    with tempfile.TemporaryDirectory() as d:
        for name, (inp, body) in CASES.items():
            src = f"{d}/{name}.cnn"
            with open(src, "w") as f:
                f.write(f"network t_{name} {{\n  {inp}\n  {body}\n}}\n")
            exe = f"{d}/{name}"
            run([cnnc, src, "-o", exe, "--cache-dir", cache])
            w0 = f"{d}/{name}.w"
            run([exe, "export-weights", w0, "--seed", "1"])
            weights = st.load(w0)
            shape = [int(v) for v in inp[inp.index("(") + 1:-1].split(",")]
            x = rng.standard_normal([3] + shape).astype(np.float32)
            st.save(f"{d}/x", {"input": x})
            k = weights[[n for n in weights if n.endswith(".weight")][-1]].shape[0]
            # The inference kernels too (activations fused into convs), under ctest's
            # CNNC_CHECK_WRITES: a kernel that stores outside its output fails the run.
            run([exe, "infer", "--weights", w0, "--input", f"{d}/x", "--output", f"{d}/io"])
            logits = st.load(f"{d}/io")["output"]
            if logits.shape != (3, k) or not np.isfinite(logits).all():
                failures += 1
                print(f"FAIL {name}: inference gave {logits.shape} logits, finite: {np.isfinite(logits).all()}")
            st.save(f"{d}/y", {"labels": rng.integers(0, k, 3)})

            def loss(wts):
                st.save(f"{d}/wp", wts)
                run([exe, "step", "--weights", f"{d}/wp", "--input", f"{d}/x", "--labels", f"{d}/y", "--lr", "0", "--output", f"{d}/o", "--seed", "3"])
                return st.load(f"{d}/o")

            base = loss(weights)
            worst = 0.0
            checked = 0
            for pname, arr in weights.items():
                if "grad." + pname not in base:
                    continue
                flat = arr.reshape(-1)
                for i in rng.choice(flat.size, size=min(SAMPLES, flat.size), replace=False):
                    h = FD_STEP
                    plus, minus = dict(weights), dict(weights)
                    p, m = flat.copy(), flat.copy()
                    p[i] += h
                    m[i] -= h
                    plus[pname], minus[pname] = p.reshape(arr.shape), m.reshape(arr.shape)
                    numeric = (float(loss(plus)["loss"]) - float(loss(minus)["loss"])) / (2 * h)
                    analytic = float(base["grad." + pname].reshape(-1)[i])
                    scale = max(abs(analytic), abs(numeric), SCALE_FLOOR)
                    ratio = abs(analytic - numeric) / (REL_TOL * scale)
                    worst = max(worst, ratio)
                    checked += 1
                    if ratio > 1:
                        failures += 1
                        print(f"FAIL {name} {pname}[{i}]: analytic {analytic:.6g} numeric {numeric:.6g}")
            print(f"{'ok  ' if worst <= 1 else 'FAIL'} {name}: {checked} weights, worst error {worst:.2f} of the allowed")
    print(f"{len(CASES) if failures == 0 else 0} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
