"""A plain, readable ResGCN in the original GaitGraph code's structure: the independent implementation that
:mod:`gafnet.gait.resgcn` (the fast one) is tested and benchmarked against.

ResGCN: Song et al., "Stronger, Faster and More Explainable: A Graph Convolutional Baseline for Skeleton-based
Action Recognition", ACM MM 2020; as used by GaitGraph (Teepe et al., ICIP 2021).

It follows the original forward structure: the 1×1 ``gcn`` convolution to K·C channels, then
``einsum('nkctv,kvw->nctw')`` with ``A * edge`` recomputed on every call, a BatchNorm module after every
convolution, ReLUs and residual additions out of place, NCHW memory, global pooling followed by ``squeeze()``.
Module names and registration order are the original's, so the original state_dicts (and ours) load with
``strict=True``. Not used for training or extraction: it is the yardstick (``tests/test_resgcn.py``,
``benchmarks/bench_model.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .graph import coco_adjacency
from .resgcn import parse_network_name


def _no_residual(x):
    return 0


def _identity(x):
    return x


def _residual_branch(enabled: bool, cin: int, cout: int, stride: int = 1):
    if not enabled:
        return _no_residual
    if cin == cout and stride == 1:
        return _identity
    return nn.Sequential(nn.Conv2d(cin, cout, 1, (stride, 1)), nn.BatchNorm2d(cout))


class OriginalGraphConv(nn.Module):
    def __init__(self, cin: int, cout: int, num_kernels: int = 3):
        super().__init__()
        self.num_kernels = num_kernels
        self.gcn = nn.Conv2d(cin, cout * num_kernels, 1)

    def forward(self, x, A):
        x = self.gcn(x)
        n, kc, t, v = x.size()
        x = x.view(n, self.num_kernels, kc // self.num_kernels, t, v)
        return torch.einsum("nkctv,kvw->nctw", (x, A[: self.num_kernels])).contiguous()


class OriginalSpatialBasic(nn.Module):
    def __init__(self, cin, cout, residual, reduction):
        super().__init__()
        self.residual = _residual_branch(residual, cin, cout)
        self.conv = OriginalGraphConv(cin, cout)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x, A):
        res = self.residual(x)
        return F.relu(self.bn(self.conv(x, A)) + res)


class OriginalTemporalBasic(nn.Module):
    def __init__(self, channels, stride, residual, reduction):
        super().__init__()
        self.residual = _residual_branch(residual, channels, channels, stride)
        self.conv = nn.Conv2d(channels, channels, (9, 1), (stride, 1), (4, 0))
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x, res_module):
        res = self.residual(x)
        return F.relu(self.bn(self.conv(x)) + res + res_module)


class OriginalSpatialBottleneck(nn.Module):
    def __init__(self, cin, cout, residual, reduction):
        super().__init__()
        inner = cout // reduction
        self.residual = _residual_branch(residual, cin, cout)
        self.conv_down = nn.Conv2d(cin, inner, 1)
        self.bn_down = nn.BatchNorm2d(inner)
        self.conv = OriginalGraphConv(inner, inner)
        self.bn = nn.BatchNorm2d(inner)
        self.conv_up = nn.Conv2d(inner, cout, 1)
        self.bn_up = nn.BatchNorm2d(cout)

    def forward(self, x, A):
        res = self.residual(x)
        x = F.relu(self.bn_down(self.conv_down(x)))
        x = F.relu(self.bn(self.conv(x, A)))
        x = self.bn_up(self.conv_up(x))
        return F.relu(x + res)


class OriginalTemporalBottleneck(nn.Module):
    def __init__(self, channels, stride, residual, reduction):
        super().__init__()
        inner = channels // reduction
        self.residual = _residual_branch(residual, channels, channels, stride)
        self.conv_down = nn.Conv2d(channels, inner, 1)
        self.bn_down = nn.BatchNorm2d(inner)
        self.conv = nn.Conv2d(inner, inner, (9, 1), (stride, 1), (4, 0))
        self.bn = nn.BatchNorm2d(inner)
        self.conv_up = nn.Conv2d(inner, channels, 1)
        self.bn_up = nn.BatchNorm2d(channels)

    def forward(self, x, res_module):
        res = self.residual(x)
        x = F.relu(self.bn_down(self.conv_down(x)))
        x = F.relu(self.bn(self.conv(x)))
        x = self.bn_up(self.conv_up(x))
        return F.relu(x + res + res_module)


class OriginalModule(nn.Module):
    def __init__(self, cin, cout, block, A, reduction, initial=False, stride=1):
        super().__init__()
        if initial:
            module_res, block_res = False, False
        elif block == "Basic":
            module_res, block_res = True, False
        else:
            module_res, block_res = False, True
        self.residual = _residual_branch(module_res, cin, cout, stride)
        spatial, temporal = ((OriginalSpatialBasic, OriginalTemporalBasic) if block == "Basic"
                             else (OriginalSpatialBottleneck, OriginalTemporalBottleneck))
        self.scn = spatial(cin, cout, block_res, reduction)
        self.tcn = temporal(cout, stride, block_res, reduction)
        self.edge = nn.Parameter(torch.ones_like(A))

    def forward(self, x, A):
        return self.tcn(self.scn(x, A * self.edge), self.residual(x))


class OriginalBranch(nn.Module):
    def __init__(self, structure, block, num_channels, A, reduction):
        super().__init__()
        self.register_buffer("A", A.clone())
        self.bn = nn.BatchNorm2d(num_channels)
        layers = [OriginalModule(num_channels, 64, "Basic", A, reduction, initial=True)]
        layers += [OriginalModule(64, 64, "Basic", A, reduction, initial=True) for _ in range(structure[0] - 1)]
        layers += [OriginalModule(64, 64, block, A, reduction) for _ in range(structure[1] - 1)]
        layers += [OriginalModule(64, 32, block, A, reduction)]
        self.layers = nn.ModuleList(layers)

    def forward(self, x):
        x = self.bn(x)
        for layer in self.layers:
            x = layer(x, self.A)
        return x


class OriginalStyleResGCN(nn.Module):
    def __init__(self, structure, block, reduction, num_input_branches, num_channels, embedding_size, A):
        super().__init__()
        self.register_buffer("A", A.clone())
        self.input_branches = nn.ModuleList(
            [OriginalBranch(structure, block, num_channels, A, reduction) for _ in range(num_input_branches)]
        )
        main = [OriginalModule(32 * num_input_branches, 128, block, A, reduction, stride=2)]
        main += [OriginalModule(128, 128, block, A, reduction) for _ in range(structure[2] - 1)]
        main += [OriginalModule(128, 256, block, A, reduction, stride=2)]
        main += [OriginalModule(256, 256, block, A, reduction) for _ in range(structure[3] - 1)]
        self.main_stream = nn.ModuleList(main)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.fcn = nn.Linear(256, embedding_size)

    def forward(self, x):
        x_cat = [branch(x[:, i]) for i, branch in enumerate(self.input_branches)]
        x = torch.cat(x_cat, dim=1)
        for layer in self.main_stream:
            x = layer(x, self.A)
        x = self.global_pooling(x)
        x = self.fcn(x.squeeze())  # the original's bare squeeze(): a batch of one breaks here
        return F.normalize(x, dim=1, p=2)


def build_original_style(network_name="resgcn-n39-r8", num_input_branches=1, num_channels=3, embedding_size=128):
    """The original-style model for a network name (weights left at PyTorch's defaults; load a state_dict)."""
    spec = parse_network_name(network_name)
    A = torch.from_numpy(coco_adjacency())
    return OriginalStyleResGCN(spec.structure, spec.block, spec.reduction, num_input_branches, num_channels,
                               embedding_size, A)
