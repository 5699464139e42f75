"""PyTorch reference models for cnnc's nets/*.cnn.

Run with Debian's /usr/bin/python3 (torch 1.13, torchvision 0.14).

    build(name)            -> torch.nn.Module (parameters on the 'meta' device: names, shapes and dtypes
                              only, no memory and no random init; use build(name, meta=False) for real
                              tensors)
    input_shape(name)      -> (C, H, W)
    count_macs(model, shape) -> multiply-accumulates per image (Conv2d and Linear only)
    state_lines(model)     -> ["NAME DTYPE [d0,d1,...]", ...] in state_dict order (cnnc --emit=params format)
    EXPECTED[name]         -> totals from /work/shared/REFERENCE.md (params, bn_buffers, macs_m where given)
    NETS                   -> every name build() accepts

Command line: reference_models.py [NAME ...] prints params, BN buffers, MACs and build time per net.
"""

import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torch.overrides import TorchFunctionMode


# --------------------------------------------------------------------------------------------------
# Lesson networks (seed/000_6366b64f9fe8a508.txt), written out here.

class LeNet5(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, kernel_size=5)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5)
        self.pool = nn.AvgPool2d(2)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x):
        x = self.pool(torch.tanh(self.conv1(x)))
        x = self.pool(torch.tanh(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = torch.tanh(self.fc1(x))
        x = torch.tanh(self.fc2(x))
        return self.fc3(x)


class VGGBlock(nn.Module):
    def __init__(self, in_c, out_c):
        super().__init__()
        self.conv1 = nn.Conv2d(in_c, out_c, kernel_size=3, padding=1)
        self.bn1 = nn.BatchNorm2d(out_c)
        self.conv2 = nn.Conv2d(out_c, out_c, kernel_size=3, padding=1)
        self.bn2 = nn.BatchNorm2d(out_c)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return self.pool(x)


class MiniVGG(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.stack = nn.Sequential(VGGBlock(3, 32), VGGBlock(32, 64), VGGBlock(64, 128))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, num_classes))

    def forward(self, x):
        return self.head(self.stack(x))


class BasicBlock(nn.Module):
    def __init__(self, in_c, out_c, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_c, out_c, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_c)
        self.conv2 = nn.Conv2d(out_c, out_c, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_c)
        if stride != 1 or in_c != out_c:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_c, out_c, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_c),
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = out + self.shortcut(x)
        return F.relu(out)


class PlainBlock(nn.Module):
    """Exercise 3: BasicBlock with the skip connection removed (no shortcut module, no add)."""

    def __init__(self, in_c, out_c, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_c, out_c, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_c)
        self.conv2 = nn.Conv2d(out_c, out_c, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_c)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out)


class Bottleneck(nn.Module):
    """Exercise 2: 1x1 -> 3x3 (stride) -> 1x1 (x4), projection shortcut named `shortcut` like BasicBlock."""
    expansion = 4

    def __init__(self, in_c, planes, stride=1):
        super().__init__()
        out_c = planes * self.expansion
        self.conv1 = nn.Conv2d(in_c, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_c, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_c)
        if stride != 1 or in_c != out_c:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_c, out_c, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_c),
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


class TinyResNet(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 32, kernel_size=3, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(32),
            nn.ReLU(inplace=True),
        )
        self.layer1 = self._make_group(32, 32, num_blocks=2, stride=1)
        self.layer2 = self._make_group(32, 64, num_blocks=2, stride=2)
        self.layer3 = self._make_group(64, 128, num_blocks=2, stride=2)
        self.layer4 = self._make_group(128, 256, num_blocks=2, stride=2)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(256, num_classes))

    def _make_group(self, in_c, out_c, num_blocks, stride):
        blocks = [BasicBlock(in_c, out_c, stride=stride)]
        for _ in range(num_blocks - 1):
            blocks.append(BasicBlock(out_c, out_c, stride=1))
        return nn.Sequential(*blocks)

    def forward(self, x):
        x = self.stem(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        return self.head(x)


class CifarResNet(nn.Module):
    """Exercises 2 and 3: CIFAR-style ResNet (3x3 stride-1 stem, no max pool) of `block` units.

    block(in_c, planes, stride) with attribute `expansion` (1 when absent)."""

    def __init__(self, block, num_blocks, planes=(64, 128, 256, 512), num_classes=10):
        super().__init__()
        expansion = getattr(block, "expansion", 1)
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
        )
        in_c = 64
        for i, (p, n) in enumerate(zip(planes, num_blocks)):
            stride = 1 if i == 0 else 2
            blocks = []
            for j in range(n):
                blocks.append(block(in_c, p, stride if j == 0 else 1))
                in_c = p * expansion
            setattr(self, "layer%d" % (i + 1), nn.Sequential(*blocks))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_c, num_classes))

    def forward(self, x):
        x = self.stem(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        return self.head(x)


class LrnNet(nn.Module):
    """tests/torch/lrn_net.cnn (not a net of nets/): conv, relu, LocalResponseNorm, max pool, linear."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 20, kernel_size=3, padding=1)
        self.lrn = nn.LocalResponseNorm(5, alpha=1.0, beta=0.75, k=2.0)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(20 * 7 * 6, num_classes)

    def forward(self, x):
        x = self.pool(self.lrn(F.relu(self.conv1(x))))
        return self.fc(torch.flatten(x, 1))


class WideNet(nn.Module):
    """tests/torch/wide_net.cnn (not a net of nets/): convs of inputs past 1 MiB per image."""

    def __init__(self, num_classes=5):
        super().__init__()
        self.c1 = nn.Conv2d(300, 40, kernel_size=3, padding=1)
        self.c2 = nn.Conv2d(40, 300, kernel_size=1)
        self.c3 = nn.Conv2d(300, 20, kernel_size=1)
        self.fc = nn.Linear(20, num_classes)

    def forward(self, x):
        x = F.relu(self.c3(F.relu(self.c2(F.relu(self.c1(x))))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class OddTileNet(nn.Module):
    """tests/torch/odd_tile_net.cnn (not a net of nets/): channel-vector tiles that do not divide
    11 x 17 images."""

    def __init__(self, num_classes=5):
        super().__init__()
        self.c0 = nn.Conv2d(16, 32, kernel_size=3, padding=1)
        self.c1 = nn.Conv2d(32, 48, kernel_size=3, padding=1)
        self.c3 = nn.Conv2d(48, 48, kernel_size=1)
        self.c2 = nn.Conv2d(48, 32, kernel_size=3, stride=2, padding=1)
        self.fc = nn.Linear(32, num_classes)

    def forward(self, x):
        x = F.relu(self.c3(F.relu(self.c1(F.relu(self.c0(x))))))
        x = F.relu(self.c2(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class BigWinogradNet(nn.Module):
    """tests/torch/big_winograd_net.cnn (not a net of nets/): a 3x3 conv at 33 columns whose Winograd
    weights would be past 1 MiB (channel vectors instead), then one that keeps Winograd."""

    def __init__(self, num_classes=4):
        super().__init__()
        self.c0 = nn.Conv2d(8, 80, kernel_size=3, padding=1)
        self.c1 = nn.Conv2d(80, 256, kernel_size=3, padding=1)
        self.c2 = nn.Conv2d(256, 20, kernel_size=3, padding=1)
        self.fc = nn.Linear(20, num_classes)

    def forward(self, x):
        x = F.relu(self.c2(F.relu(self.c1(F.relu(self.c0(x))))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class Strided1x1Net(nn.Module):
    """tests/torch/strided_1x1_net.cnn (not a net of nets/): a strided 1x1 conv whose input is past
    2 MiB per image (its forward reads a subsampled copy)."""

    def __init__(self, num_classes=4):
        super().__init__()
        self.c0 = nn.Conv2d(3, 160, kernel_size=3, padding=1)
        self.down = nn.Conv2d(160, 64, kernel_size=1, stride=2)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = F.relu(self.down(F.relu(self.c0(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class GroupedNet(nn.Module):
    """tests/torch/grouped_net.cnn (not a net of nets/): grouped convs that are not depthwise, with
    groups of 3, 5 and 4 channels (register tiles span group boundaries), strided, with batch norm;
    and two depthwise convs of the direct form (d0 with a residual add, d1 strided)."""

    def __init__(self, num_classes=5):
        super().__init__()
        self.d0 = nn.Conv2d(6, 6, kernel_size=3, padding=1, groups=6)
        self.c1 = nn.Conv2d(6, 12, kernel_size=3, padding=1, groups=3)
        self.d1 = nn.Conv2d(12, 12, kernel_size=3, stride=2, padding=1, groups=12)
        self.c2 = nn.Conv2d(12, 20, kernel_size=3, stride=2, padding=1, groups=4, bias=False)
        self.b2 = nn.BatchNorm2d(20)
        self.c3 = nn.Conv2d(20, 20, kernel_size=3, padding=1, groups=5)
        self.c4 = nn.Conv2d(20, 32, kernel_size=(3, 5), stride=(1, 2), padding=(1, 2), groups=4)
        self.fc = nn.Linear(32, num_classes)

    def forward(self, x):
        x = x + self.d0(x)
        x = F.relu6(self.d1(F.relu(self.c1(x))))
        x = F.relu(self.b2(self.c2(x)))
        x = F.relu(self.c4(F.relu(self.c3(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class LeakyNet(nn.Module):
    """tests/torch/leaky_net.cnn (not a net of nets/): leaky ReLU fused into a conv, a batch norm and a
    linear, and with a negative slope on its own."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(8, 12, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(12)
        self.pool = nn.MaxPool2d(2)
        self.conv3 = nn.Conv2d(12, 12, kernel_size=1)
        self.fc1 = nn.Linear(12 * 6 * 5, 32)
        self.fc2 = nn.Linear(32, num_classes)

    def forward(self, x):
        x = F.leaky_relu(self.conv1(x), 0.1)
        x = self.pool(F.leaky_relu(self.bn2(self.conv2(x)), 0.01))
        x = F.leaky_relu(self.conv3(x), -0.5)
        x = F.leaky_relu(self.fc1(torch.flatten(x, 1)), 0.2)
        return self.fc2(x)


class ActivationsNet(nn.Module):
    """tests/torch/activations_net.cnn (not a net of nets/): relu6, hardtanh, hardsigmoid after a batch
    norm, hardswish, elu, silu, swish (SiLU again), gelu, gelu(approximate="tanh") and mish."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, kernel_size=3, padding=1)
        self.c2 = nn.Conv2d(8, 8, kernel_size=3, padding=1)
        self.c3 = nn.Conv2d(8, 8, kernel_size=1)
        self.bn3 = nn.BatchNorm2d(8)
        self.c4 = nn.Conv2d(8, 8, kernel_size=1)
        self.pool = nn.MaxPool2d(2)
        self.c5 = nn.Conv2d(8, 8, kernel_size=1)
        self.c6 = nn.Conv2d(8, 8, kernel_size=1)
        self.c7 = nn.Conv2d(8, 8, kernel_size=1)
        self.c8 = nn.Conv2d(8, 8, kernel_size=1)
        self.c9 = nn.Conv2d(8, 8, kernel_size=1)
        self.fc1 = nn.Linear(8 * 5 * 4, 16)
        self.fc2 = nn.Linear(16, num_classes)

    def forward(self, x):
        x = F.relu6(self.c1(x))
        x = F.hardtanh(self.c2(x), -0.5, 0.5)
        x = F.hardsigmoid(self.bn3(self.c3(x)))
        x = self.pool(F.hardswish(self.c4(x)))
        x = F.elu(self.c5(x), alpha=0.7)
        x = F.silu(self.c6(x))
        x = F.gelu(self.c7(x))
        x = F.gelu(self.c8(x), approximate="tanh")
        x = F.mish(self.c9(x))
        x = F.silu(self.fc1(torch.flatten(x, 1)))
        return self.fc2(x)


class _SE(nn.Module):
    """The gate of gating_net's mul: torchvision's SqueezeExcitation with a hardsigmoid."""

    def __init__(self, c, squeeze):
        super().__init__()
        self.fc1 = nn.Conv2d(c, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, c, 1)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        return F.hardsigmoid(self.fc2(F.relu(self.fc1(s))))


class _Proj(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.proj = nn.Conv2d(c, c, 1)
        self.drop_path = torchvision.ops.StochasticDepth(0.5, "row")

    def forward(self, x):
        return self.drop_path(self.proj(F.adaptive_avg_pool2d(x, 1)))


class GatingNet(nn.Module):
    """tests/torch/gating_net.cnn (not a net of nets/): squeeze-and-excitation (x * gate, the gate
    [C,1,1]), an add with a broadcast [C,1,1] operand, PReLU (per channel, single, flat) and layer
    scale parameters (ConvNeXt's [C,1,1] `layer_scale`, and a flat one), Dropout2d, StochasticDepth, and
    depthwise convs on narrow rows (dilated; "same" with an even kernel)."""

    def __init__(self, num_classes=5):
        super().__init__()
        self.c1 = nn.Conv2d(3, 16, 3, padding=1)
        self.act1 = nn.PReLU(16)
        self.se = _SE(16, 4)
        self.drop2d = nn.Dropout2d(0.3)
        self.dw1 = nn.Conv2d(16, 16, 3, padding=2, dilation=2, groups=16)
        self.dw2 = nn.Conv2d(16, 16, 4, padding="same", groups=16)
        self.c2 = nn.Conv2d(16, 8, 3, stride=2)
        self.a2 = nn.PReLU()
        self.layer_scale = nn.Parameter(torch.full((8, 1, 1), 0.5))
        self.add_module("10", _Proj(8))  # gating_net.cnn's unlabeled seq, named by its position
        self.fc1 = nn.Linear(160, 12)
        self.p3 = nn.PReLU(12, init=0.1)
        self.s3 = nn.Parameter(torch.full((12,), 2.0))
        self.fc2 = nn.Linear(12, num_classes)

    def forward(self, x):
        x = self.act1(self.c1(x))
        x = self.drop2d(x * self.se(x))
        x = F.relu6(self.dw2(self.dw1(x)))
        x = self.a2(self.c2(x)) * self.layer_scale
        x = x + getattr(self, "10")(x)
        x = self.p3(self.fc1(torch.flatten(x, 1))) * self.s3
        return self.fc2(x)


class LongSkipNet(nn.Module):
    """tests/torch/longskip_net.cnn (not a net of nets/): a U-Net-style concat of features from two
    convs earlier, and an FPN-style add of a pooled earlier tensor."""

    def __init__(self, num_classes=5):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 8, 3, padding=1)
        self.c3 = nn.Conv2d(8, 8, 3, padding=1)
        self.c4 = nn.Conv2d(16, 8, 1)
        self.c5 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 5 * 4, num_classes)

    def forward(self, x):
        e1 = F.relu(self.c1(x))
        x = F.relu(self.c3(F.relu(self.c2(e1))))
        e2 = F.relu(self.c4(torch.cat([x, e1], 1)))
        x = self.c5(F.max_pool2d(e2, 2))
        x = F.relu(x + F.max_pool2d(e2, 2))
        return self.fc(torch.flatten(x, 1))


class ResampleNet(nn.Module):
    """tests/torch/resample_net.cnn (not a net of nets/): upsample (nearest and bilinear, by a scale
    and to a size, align_corners), convtranspose (output_padding, dilation, groups), F.pad, and
    convs with per-side and "same" padding (even kernel), and max pools whose windows overlap (5x5
    stride 3 over nearest-upsampled ties, and an adaptive one)."""

    def __init__(self, num_classes=5):
        super().__init__()
        self.c1 = nn.Conv2d(3, 6, 3, padding=1)
        self.c2 = nn.Conv2d(6, 6, 4, padding="same")
        self.c3 = nn.Conv2d(6, 8, 3, stride=2)
        self.up = nn.ConvTranspose2d(8, 6, 3, stride=2, padding=1, output_padding=1)
        self.d = nn.ConvTranspose2d(6, 4, (2, 3), stride=(1, 2), dilation=2, groups=2, bias=False)
        self.fc = nn.Linear(4 * 5 * 7, num_classes)

    def forward(self, x):
        x = F.relu(self.c1(x))
        x = F.max_pool2d(F.interpolate(x, scale_factor=6, mode="nearest"), 5, stride=3, padding=2)
        x = F.relu(self.c2(x))
        x = F.interpolate(x, size=(11, 9), mode="bilinear", align_corners=False)
        x = F.relu(self.c3(F.pad(x, (2, 1, 1, 0))))  # F.pad's order: left, right, top, bottom
        x = F.relu(self.up(x))
        x = F.pad(x, (2, 1, 1, 0))
        x = F.interpolate(x, scale_factor=1.5, mode="bilinear", align_corners=True)
        x = F.adaptive_max_pool2d(self.d(x), (4, 9))
        x = F.interpolate(x, size=(5, 7), mode="nearest")
        return self.fc(torch.flatten(x, 1))


class NormNet(nn.Module):
    """tests/torch/norm_net.cnn (not a net of nets/): GroupNorm, InstanceNorm2d (affine off and on),
    GroupNorm(1), torchvision's LayerNorm2d (ConvNeXt), LayerNorm on a flat tensor, and BatchNorm2d
    and BatchNorm1d without affine parameters."""

    def __init__(self, num_classes=5):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.gn = nn.GroupNorm(4, 8)
        self.c2 = nn.Conv2d(8, 6, 3, padding=1)
        self.inorm = nn.InstanceNorm2d(6)
        self.c3 = nn.Conv2d(6, 6, 3, padding=1)
        self.in2 = nn.InstanceNorm2d(6, affine=True)
        self.c4 = nn.Conv2d(6, 6, 1, bias=False)
        self.bn = nn.BatchNorm2d(6, affine=False)
        self.gn1 = nn.GroupNorm(1, 6, eps=1e-3)
        self.ln2d = torchvision.models.convnext.LayerNorm2d(6, eps=1e-6)
        self.fc = nn.Linear(6 * 9 * 7, 16)
        self.bnf = nn.BatchNorm1d(16, affine=False, momentum=0.2)
        self.ln = nn.LayerNorm(16)
        self.fc2 = nn.Linear(16, num_classes)

    def forward(self, x):
        x = F.relu(self.gn(self.c1(x)))
        x = torch.tanh(self.inorm(self.c2(x)))
        x = F.silu(self.in2(self.c3(x)))
        x = F.relu(self.bn(self.c4(x)))
        x = self.ln2d(self.gn1(x))
        x = F.gelu(self.ln(self.bnf(self.fc(torch.flatten(x, 1)))))
        return self.fc2(x)


class _DoubleConv(nn.Module):
    def __init__(self, cin, cout, mid=None):
        super().__init__()
        mid = mid or cout
        self.double_conv = nn.Sequential(
            nn.Conv2d(cin, mid, 3, padding=1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
            nn.Conv2d(mid, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    def forward(self, x):
        return self.double_conv(x)


class _Down(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.maxpool_conv = nn.Sequential(nn.MaxPool2d(2), _DoubleConv(cin, cout))

    def forward(self, x):
        return self.maxpool_conv(x)


class _Up(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
        self.conv = _DoubleConv(cin, cout, cin // 2)

    def forward(self, x1, x2):
        x1 = self.up(x1)
        dy, dx = x2.size(2) - x1.size(2), x2.size(3) - x1.size(3)
        x1 = F.pad(x1, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return self.conv(torch.cat([x2, x1], dim=1))


class _OutConv(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1)

    def forward(self, x):
        return self.conv(x)


class UNet(nn.Module):
    """milesial/Pytorch-UNet's UNet(n_channels, n_classes, bilinear=True) (unet_model.py and
    unet_parts.py), written out here with its module names (Debian has no package of it)."""

    def __init__(self, n_channels=1, n_classes=2):
        super().__init__()
        self.inc = _DoubleConv(n_channels, 64)
        self.down1 = _Down(64, 128)
        self.down2 = _Down(128, 256)
        self.down3 = _Down(256, 512)
        self.down4 = _Down(512, 1024 // 2)
        self.up1 = _Up(1024, 512 // 2)
        self.up2 = _Up(512, 256 // 2)
        self.up3 = _Up(256, 128 // 2)
        self.up4 = _Up(128, 64)
        self.outc = _OutConv(64, n_classes)

    def forward(self, x):
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        x5 = self.down4(x4)
        x = self.up1(x5, x4)
        x = self.up2(x, x3)
        x = self.up3(x, x2)
        x = self.up4(x, x1)
        return self.outc(x)


# --------------------------------------------------------------------------------------------------
# Registry.

def _resnet18_transfer():
    m = torchvision.models.resnet18()
    m.fc = nn.Linear(512, 10)
    return m


_TV = torchvision.models
_BUILDERS = {
    "lenet5": LeNet5,
    "minivgg": MiniVGG,
    "tinyresnet": TinyResNet,
    "alexnet": _TV.alexnet,
    "vgg11": _TV.vgg11,
    "vgg16": _TV.vgg16,
    "vgg19": _TV.vgg19,
    "googlenet": lambda: _TV.googlenet(aux_logits=False, init_weights=False),
    "resnet18": _TV.resnet18,
    "resnet34": _TV.resnet34,
    "resnet50": _TV.resnet50,
    "resnet101": _TV.resnet101,
    "resnet152": _TV.resnet152,
    "resnet18_transfer": _resnet18_transfer,
    "mobilenet_v2": _TV.mobilenet_v2,
    "mobilenet_v3_small": _TV.mobilenet_v3_small,
    "mobilenet_v3_large": _TV.mobilenet_v3_large,
    "shufflenet_v2_x1_0": _TV.shufflenet_v2_x1_0,
    "squeezenet1_1": _TV.squeezenet1_1,
    "densenet121": _TV.densenet121,
    "regnet_y_400mf": _TV.regnet_y_400mf,
    "efficientnet_b0": _TV.efficientnet_b0,
    "convnext_tiny": _TV.convnext_tiny,
    "resnet34_cifar": lambda: CifarResNet(BasicBlock, [3, 4, 6, 3]),
    "plain34": lambda: CifarResNet(PlainBlock, [3, 4, 6, 3]),
    "resnet50_cifar": lambda: CifarResNet(Bottleneck, [3, 4, 6, 3]),
    "lrn_net": LrnNet,
    "leaky_net": LeakyNet,
    "activations_net": ActivationsNet,
    "gating_net": GatingNet,
    "longskip_net": LongSkipNet,
    "resample_net": ResampleNet,
    "unet": UNet,
    "norm_net": NormNet,
    "wide_net": WideNet,
    "big_winograd_net": BigWinogradNet,
    "odd_tile_net": OddTileNet,
    "strided_1x1_net": Strided1x1Net,
    "grouped_net": GroupedNet,
}
NETS = list(_BUILDERS)

_INPUT = {"lenet5": (1, 32, 32), "lrn_net": (3, 14, 13), "leaky_net": (3, 12, 11), "activations_net": (3, 10, 9), "gating_net": (3, 11, 9), "longskip_net": (3, 10, 9), "resample_net": (3, 9, 7), "unet": (1, 256, 256), "norm_net": (3, 9, 7), "wide_net": (300, 30, 31), "big_winograd_net": (8, 9, 33), "odd_tile_net": (16, 11, 17), "strided_1x1_net": (3, 57, 59), "grouped_net": (6, 37, 67)}
for _n in ("minivgg", "tinyresnet", "resnet34_cifar", "plain34", "resnet50_cifar"):
    _INPUT[_n] = (3, 32, 32)

# /work/shared/REFERENCE.md, "Parameter counts and MACs" (params exact; MACs in millions, 2 decimals).
EXPECTED = {
    "lenet5":     {"params": 61_706,      "bn_buffers": 0,       "macs_m": 0.42},
    "minivgg":    {"params": 289_194,     "bn_buffers": 896,     "macs_m": 38.63},
    "tinyresnet": {"params": 2_797_610,   "bn_buffers": 4_800,   "macs_m": 139.30},
    "alexnet":    {"params": 61_100_840,  "bn_buffers": 0,       "macs_m": 714.19},
    "vgg11":      {"params": 132_863_336, "bn_buffers": 0},
    "vgg16":      {"params": 138_357_544, "bn_buffers": 0,       "macs_m": 15_470.26},
    "vgg19":      {"params": 143_667_240, "bn_buffers": 0},
    "googlenet":  {"params": 6_624_904,   "bn_buffers": 14_560,  "macs_m": 1_498.38},
    "resnet18":   {"params": 11_689_512,  "bn_buffers": 9_600,   "macs_m": 1_814.07},
    "resnet34":   {"params": 21_797_672,  "bn_buffers": 17_024,  "macs_m": 3_663.76},
    "resnet50":   {"params": 25_557_032,  "bn_buffers": 53_120,  "macs_m": 4_089.18},
    "resnet101":  {"params": 44_549_160,  "bn_buffers": 105_344},
    "resnet152":  {"params": 60_192_808,  "bn_buffers": 151_424},
}


def input_shape(name):
    """(C, H, W) of one image for net `name`."""
    if name not in _BUILDERS:
        raise KeyError("unknown net %r (known: %s)" % (name, ", ".join(NETS)))
    return _INPUT.get(name, (3, 224, 224))


# Factory functions that allocate a parameter's or buffer's storage; under _MetaMode they land on the
# meta device (torch 1.13 has no `with torch.device('meta')`; this is what torch 2.0's DeviceContext does).
_FACTORIES = {torch.empty, torch.zeros, torch.ones, torch.full, torch.tensor, torch.rand, torch.randn,
              torch.arange, torch.eye}


class _MetaMode(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func in _FACTORIES and kwargs.get("device") is None:
            kwargs["device"] = "meta"
        return func(*args, **kwargs)


# torchvision's RegNet derives its widths from tensors (BlockParams.from_init_params calls .item()),
# which meta tensors cannot give; it is small enough to build with storage.
_NOT_ON_META = {"regnet_y_400mf"}


def build(name, meta=True):
    """The reference module for `name`, in eval mode.

    meta=True (default): every parameter and buffer lives on the meta device (no storage, init is a
    no-op), which takes milliseconds even for VGG-19; state_dict names, shapes and dtypes and a shape-only
    forward pass (count_macs) work as usual. meta=False builds ordinary randomly initialised CPU tensors."""
    if name not in _BUILDERS:
        raise KeyError("unknown net %r (known: %s)" % (name, ", ".join(NETS)))
    if meta and name not in _NOT_ON_META:
        with _MetaMode():
            m = _BUILDERS[name]()
    else:
        m = _BUILDERS[name]()
    return m.eval()


def count_macs(model, shape):
    """Multiply-accumulates for one image of shape (C, H, W): forward hooks on Conv2d,
    ConvTranspose2d and Linear.

    conv: output elements * in_channels/groups * kh * kw; transposed conv: input elements *
    out_channels/groups * kh * kw (each input pixel meets every tap once); linear: in_features *
    out_features per row."""
    total = [0]

    def conv_hook(mod, inp, out):
        kh, kw = mod.kernel_size
        total[0] += out.numel() * (mod.in_channels // mod.groups) * kh * kw

    def convt_hook(mod, inp, out):
        kh, kw = mod.kernel_size
        total[0] += inp[0][0].numel() * (mod.out_channels // mod.groups) * kh * kw

    def linear_hook(mod, inp, out):
        total[0] += (out.numel() // mod.out_features) * mod.in_features * mod.out_features

    handles = []
    for mod in model.modules():
        if isinstance(mod, nn.Conv2d):
            handles.append(mod.register_forward_hook(conv_hook))
        elif isinstance(mod, nn.ConvTranspose2d):
            handles.append(mod.register_forward_hook(convt_hook))
        elif isinstance(mod, nn.Linear):
            handles.append(mod.register_forward_hook(linear_hook))
    try:
        p = next(iter(model.parameters()), None)
        device = p.device if p is not None else torch.device("cpu")
        with torch.no_grad():
            model(torch.zeros((1,) + tuple(shape), device=device))
    finally:
        for h in handles:
            h.remove()
    return total[0]


_DTYPES = {torch.float32: "f32", torch.int64: "i64", torch.float64: "f64", torch.float16: "f16",
           torch.int32: "i32"}


def dtype_name(dt):
    return _DTYPES.get(dt, str(dt).replace("torch.", ""))


def state_entries(model):
    """[(name, dtype_str, [dims])] in state_dict order."""
    return [(k, dtype_name(v.dtype), list(v.shape)) for k, v in model.state_dict().items()]


def format_entry(name, dtype, shape):
    return "%s %s [%s]" % (name, dtype, ",".join(str(d) for d in shape))


def state_lines(model):
    return [format_entry(*e) for e in state_entries(model)]


def param_count(model):
    return sum(p.numel() for p in model.parameters())


def bn_buffer_count(model):
    """Running mean + running var elements (num_batches_tracked excluded), as REFERENCE.md counts them."""
    return sum(b.numel() for n, b in model.named_buffers()
               if n.endswith("running_mean") or n.endswith("running_var"))


def main(argv):
    names = argv or NETS
    torch.set_num_threads(2)
    print("%-18s %13s %10s %18s %12s %7s" % ("net", "params", "BN buf", "MACs", "MACs (M)", "time"))
    for n in names:
        t = time.time()
        m = build(n)
        macs = count_macs(m, input_shape(n))
        dt = time.time() - t
        print("%-18s %13s %10s %18s %12s %6.2fs" % (n, "{:,}".format(param_count(m)),
              "{:,}".format(bn_buffer_count(m)), "{:,}".format(macs), "{:,.2f}".format(macs / 1e6), dt))


if __name__ == "__main__":
    main(sys.argv[1:])
