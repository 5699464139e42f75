"""A small ONNX interpreter for the tests: each node's op evaluated by its ONNX definition, on torch
tensors (float64 where given float64 inputs), so that an exported model can be run without an ONNX
runtime (Debian 12 packages none; onnx 1.12 has no reference evaluator).

It knows the ops cnnc's exporter writes and no others: an unknown op is an error, not a guess.
Semantics follow the ONNX operator docs (opsets 13-17); the attributes cnnc never writes (auto_pad,
asymmetric pads of convs and pools, Resize's cubic mode) are rejected.
"""
import math

import numpy as np
import torch
import torch.nn.functional as F
from onnx import numpy_helper


def _attrs(node):
    out = {}
    for a in node.attribute:
        if a.type == a.INT:
            out[a.name] = a.i
        elif a.type == a.FLOAT:
            out[a.name] = a.f
        elif a.type == a.INTS:
            out[a.name] = list(a.ints)
        elif a.type == a.STRING:
            out[a.name] = a.s.decode()
        else:
            raise ValueError(f"node {node.name}: attribute {a.name} of type {a.type} unsupported")
    return out


def _sym_pads(at, node):
    pads = at.get("pads", [0, 0, 0, 0])
    if pads[:2] != pads[2:]:
        raise ValueError(f"node {node.name}: asymmetric pads {pads}")
    if at.get("auto_pad", "NOTSET") != "NOTSET":
        raise ValueError(f"node {node.name}: auto_pad")
    return tuple(pads[:2])


def _resize_axis(n_in, n_out, scale, mode, coord, from_scales):
    """Source coordinate of every output index along one axis (ONNX Resize's formulas; with scales,
    align_corners divides by the unrounded size n_in x scale - 1, as ONNX's reference does)."""
    o = torch.arange(n_out, dtype=torch.float64)
    if coord == "asymmetric":
        return o / scale
    if coord == "align_corners":
        n_resized = n_in * scale if from_scales else n_out
        return o * (n_in - 1) / (n_resized - 1) if n_resized != 1 else torch.zeros_like(o)
    if coord == "pytorch_half_pixel":
        return (o + 0.5) / scale - 0.5 if n_out > 1 else torch.zeros_like(o)
    if coord == "half_pixel":
        return (o + 0.5) / scale - 0.5
    raise ValueError(f"coordinate_transformation_mode {coord}")


def _resize(x, scales, sizes, at):
    mode, coord = at.get("mode", "nearest"), at.get("coordinate_transformation_mode", "half_pixel")
    H, W = x.shape[2], x.shape[3]
    if sizes is not None:
        oh, ow = int(sizes[2]), int(sizes[3])
        sh, sw = oh / H, ow / W
    else:
        sh, sw = float(scales[2]), float(scales[3])
        oh, ow = int(math.floor(H * sh)), int(math.floor(W * sw))
    ys, xs = (_resize_axis(H, oh, sh, mode, coord, sizes is None), _resize_axis(W, ow, sw, mode, coord, sizes is None))
    if mode == "nearest":
        if at.get("nearest_mode", "round_prefer_floor") != "floor":
            raise ValueError("nearest_mode other than floor")
        yi = ys.floor().long().clamp(0, H - 1)
        xi = xs.floor().long().clamp(0, W - 1)
        return x[:, :, yi][:, :, :, xi]
    if mode != "linear":
        raise ValueError(f"Resize mode {mode}")
    ys, xs = ys.clamp(0, H - 1), xs.clamp(0, W - 1)
    y0, x0 = ys.floor().long(), xs.floor().long()
    y1, x1 = (y0 + 1).clamp(max=H - 1), (x0 + 1).clamp(max=W - 1)
    wy, wx = (ys - y0).to(x.dtype).view(-1, 1), (xs - x0).to(x.dtype).view(1, -1)
    top = x[:, :, y0][:, :, :, x0] * (1 - wx) + x[:, :, y0][:, :, :, x1] * wx
    bot = x[:, :, y1][:, :, :, x0] * (1 - wx) + x[:, :, y1][:, :, :, x1] * wx
    return top * (1 - wy) + bot * wy


def _reshape(x, shape):
    shape = [int(s) for s in shape]
    shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return x.reshape(shape)


def _slice(x, starts, ends, axes=None, steps=None):
    axes = list(range(len(starts))) if axes is None else [int(a) for a in axes]
    idx = [slice(None)] * x.dim()
    for i, a in enumerate(axes):
        step = 1 if steps is None else int(steps[i])
        idx[a] = slice(int(starts[i]), int(ends[i]), step)
    return x[tuple(idx)]


def _node(op, ins, at, node):
    x = ins[0] if ins else None
    if op == "Conv":
        pads = at.get("pads", [0, 0, 0, 0])  # [top, left, bottom, right]
        x = F.pad(x, [pads[1], pads[3], pads[0], pads[2]])
        return F.conv2d(x, ins[1], ins[2] if len(ins) > 2 else None, at.get("strides", [1, 1]), 0, at.get("dilations", [1, 1]), at.get("group", 1))
    if op == "ConvTranspose":
        return F.conv_transpose2d(x, ins[1], ins[2] if len(ins) > 2 else None, at.get("strides", [1, 1]), _sym_pads(at, node), at.get("output_padding", [0, 0]),
                                  at.get("group", 1), at.get("dilations", [1, 1]))
    if op == "Gemm":
        a = x.T if at.get("transA", 0) else x
        b = ins[1].T if at.get("transB", 0) else ins[1]
        y = at.get("alpha", 1.0) * (a @ b)
        return y + at.get("beta", 1.0) * ins[2] if len(ins) > 2 else y
    if op == "MatMul":
        return torch.matmul(x, ins[1])
    if op == "BatchNormalization":
        return F.batch_norm(x, ins[3], ins[4], ins[1], ins[2], training=False, eps=at.get("epsilon", 1e-5))
    if op == "InstanceNormalization":
        return F.instance_norm(x, weight=ins[1], bias=ins[2], eps=at.get("epsilon", 1e-5))
    unary = {"Relu": torch.relu, "Tanh": torch.tanh, "Sigmoid": torch.sigmoid, "Softplus": F.softplus, "Erf": torch.erf, "Sqrt": torch.sqrt,
             "Identity": lambda t: t}
    if op in unary:
        return unary[op](x)
    if op == "LeakyRelu":
        return torch.where(x >= 0, x, at.get("alpha", 0.01) * x)
    if op == "Elu":
        alpha = at.get("alpha", 1.0)
        return torch.where(x > 0, x, alpha * (torch.exp(x) - 1))
    if op == "HardSigmoid":
        return torch.clamp(at.get("alpha", 0.2) * x + at.get("beta", 0.5), 0, 1)
    if op == "HardSwish":
        return x * torch.clamp(x / 6 + 0.5, 0, 1)
    if op == "Clip":
        lo = ins[1] if len(ins) > 1 and ins[1] is not None else None
        hi = ins[2] if len(ins) > 2 and ins[2] is not None else None
        return torch.clamp(x, min=lo, max=hi)
    if op == "PRelu":
        return torch.where(x >= 0, x, ins[1] * x)
    binary = {"Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Div": torch.div}
    if op in binary:
        return binary[op](x, ins[1])
    if op == "ReduceMean":
        return x.mean(dim=at["axes"], keepdim=bool(at.get("keepdims", 1)))
    if op == "ReduceMax":
        return x.amax(dim=at["axes"], keepdim=bool(at.get("keepdims", 1)))
    if op == "Softmax":
        return torch.softmax(x, dim=at.get("axis", -1))
    if op == "MaxPool":
        return F.max_pool2d(x, at["kernel_shape"], at.get("strides", [1, 1]), _sym_pads(at, node), at.get("dilations", [1, 1]), bool(at.get("ceil_mode", 0)))
    if op == "AveragePool":
        return F.avg_pool2d(x, at["kernel_shape"], at.get("strides", [1, 1]), _sym_pads(at, node), bool(at.get("ceil_mode", 0)), bool(at.get("count_include_pad", 0)))
    if op == "GlobalAveragePool":
        return x.mean(dim=(2, 3), keepdim=True)
    if op == "GlobalMaxPool":
        return x.amax(dim=(2, 3), keepdim=True)
    if op == "LRN":
        return F.local_response_norm(x, at["size"], at.get("alpha", 1e-4), at.get("beta", 0.75), at.get("bias", 1.0))
    if op == "Flatten":
        axis = at.get("axis", 1)
        return x.reshape(int(np.prod(x.shape[:axis])), -1)
    if op == "Concat":
        return torch.cat(ins, dim=at["axis"])
    if op == "Reshape":
        return _reshape(x, ins[1])
    if op == "Transpose":
        return x.permute(*at["perm"])
    if op == "Slice":
        return _slice(x, *ins[1:])
    if op == "Shape":
        return torch.tensor(list(x.shape), dtype=torch.int64)
    if op == "Pad":
        if at.get("mode", "constant") != "constant":
            raise ValueError(f"node {node.name}: Pad mode {at['mode']}")
        p = [int(v) for v in ins[1]]
        n = len(p) // 2
        torch_pads = []
        for axis in reversed(range(n)):
            torch_pads += [p[axis], p[axis + n]]
        value = float(ins[2]) if len(ins) > 2 and ins[2] is not None else 0.0
        return F.pad(x, torch_pads, value=value)
    if op == "Resize":
        scales = ins[2] if len(ins) > 2 and ins[2] is not None and ins[2].numel() else None
        sizes = ins[3] if len(ins) > 3 and ins[3] is not None else None
        return _resize(x, scales, sizes, at)
    raise ValueError(f"node {node.name}: op {op} is not known to the test interpreter")


def run(model, inputs, dtype=torch.float64):
    """Evaluates the model's graph on `inputs` (name -> tensor); returns name -> tensor of its outputs."""
    env = {}
    for init in model.graph.initializer:
        t = torch.from_numpy(numpy_helper.to_array(init).copy())
        env[init.name] = t.to(dtype) if t.is_floating_point() else t
    for k, v in inputs.items():
        env[k] = v.to(dtype)
    env[""] = None
    for node in model.graph.node:
        ins = [env[i] for i in node.input]
        env[node.output[0]] = _node(node.op_type, ins, _attrs(node), node)
    return {o.name: env[o.name] for o in model.graph.output}
