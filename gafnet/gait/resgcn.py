"""ResGCN, the graph convolutional network GaitGraph uses to embed pose sequences.

ResGCN: Song et al., "Stronger, Faster and More Explainable: A Graph Convolutional Baseline for Skeleton-based
Action Recognition", ACM MM 2020. GaitGraph: Teepe et al., "GaitGraph: Graph Convolutional Network for
Skeleton-based Gait Recognition", ICIP 2021.

The network computes the same function as the original GaitGraph code and has the same state_dict: keys,
shapes and dtypes, so the original checkpoints load with ``strict=True``. Only the way the arithmetic is laid
out differs, to make it faster on a CPU:

- activations are kept in channels-last memory (N, T, V, C in memory, (N, C, T, V) logically), where the 1×1
  convolutions and the graph products need no layout conversions;
- the spatial graph product Σ_k Σ_v y[n,k,c,t,v]·A[k,v,w] is one batched matmul over the joined (V·K) axis
  with A shared across the batch, instead of an einsum with a separate K axis (which copies y);
- when a graph convolution widens the channels (the first layer: 3 → 64·3 before the graph product), the two
  linear steps are swapped: the graph product runs on the narrow input (plus a constant-one channel that
  carries the bias), then a single 1×1 convolution produces the 64 channels;
- eval mode folds every BatchNorm into the convolution in front of it; training mode does the same for a
  BatchNorm after a widening 1×1 convolution (conv_up of every bottleneck, the first graph convolution):
  its batch mean and variance follow exactly from the mean and covariance of the narrow input, so the
  wide output is written once and never re-read for statistics, forward or backward (the result differs
  from Conv → BatchNorm only by float rounding; running statistics are updated the same way);
- ReLUs and residual additions run in place on fresh tensors; the pooling gradient is written channels-last;
- the pooled features are flattened, not ``squeeze()``-d, so a batch of one works (the original broke there).

Distributed training: :func:`use_global_batch_norm` turns every BatchNorm into a :class:`GlobalBatchNorm2d`,
whose training statistics (in the folded convolutions too) are those of the global batch of all processes.

Tensor layout: x is (N, I, C, T, V) = batch, input branches, channels, frames, joints; inside a branch (N, C, T, V).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from .graph import coco_adjacency

DEFAULT_NETWORK = "resgcn-n39-r8"

#: structure name → (layers per stage [s0, s1, s2, s3], block type)
STRUCTURES = {
    "b15": ((1, 2, 2, 2), "Basic"),
    "b19": ((1, 2, 3, 3), "Basic"),
    "b23": ((1, 3, 4, 3), "Basic"),
    "b29": ((1, 3, 6, 4), "Basic"),
    "n39": ((1, 2, 2, 2), "Bottleneck"),
    "n51": ((1, 2, 3, 3), "Bottleneck"),
    "n57": ((1, 3, 4, 3), "Bottleneck"),
    "n75": ((1, 3, 6, 4), "Bottleneck"),
}
REDUCTIONS = (1, 2, 4, 8)
TEMPORAL_WINDOW = 9
MAX_GRAPH_DISTANCE = 2  # → K = 3 spatial kernels (hop 0, 1, 2)


class UnknownNetworkError(InputError, ValueError):
    """A network name that is not one of :func:`valid_network_names` (both an InputError and a ValueError)."""


def valid_network_names() -> list[str]:
    """Every name :func:`build_model` accepts, e.g. ``resgcn-n39-r8`` (``-r1`` may be left out)."""
    return [f"resgcn-{s}-r{r}" for s in STRUCTURES for r in REDUCTIONS]


@dataclass(frozen=True)
class NetworkSpec:
    """A parsed network name: stage sizes, block type and bottleneck reduction."""

    name: str
    structure: tuple
    block: str
    reduction: int


def parse_network_name(name: str) -> NetworkSpec:
    """``resgcn-<structure>[-r<reduction>]`` → :class:`NetworkSpec`; anything else → UnknownNetworkError."""
    match = re.fullmatch(r"resgcn-([bn]\d+)(?:-r(\d+))?", str(name))
    if match and match.group(1) in STRUCTURES and int(match.group(2) or 1) in REDUCTIONS:
        structure, block = STRUCTURES[match.group(1)]
        return NetworkSpec(str(name), structure, block, int(match.group(2) or 1))
    hint = ""
    if re.fullmatch(r"[a-z]+-resgcn-.*", str(name)):
        hint = " (the attention variants '<att>-resgcn-…' are not implemented in this project)"
    raise UnknownNetworkError(
        f"unknown network name {name!r}{hint}; expected resgcn-<structure>[-r<reduction>] with structure in "
        f"{', '.join(STRUCTURES)} and reduction in {', '.join(map(str, REDUCTIONS))}, "
        f"e.g. {DEFAULT_NETWORK}. Valid names: {', '.join(valid_network_names())}"
    )


# --------------------------------------------------------------------------------------------------------------
# Functional helpers. Activations are (N, C, T, V) tensors in channels-last memory, i.e. [n][t][v][c]; their
# "rows" view (N·T·V, C) is free, and a 1×1 convolution on it is one matrix product.

#: Training mode: a BatchNorm after a 1×1 convolution whose input has at most out_channels / FOLD_RATIO
#: channels takes its batch statistics from the input's mean and covariance (see :func:`pointwise_conv_bn`).
FOLD_RATIO = 2


def _rows(x: torch.Tensor) -> torch.Tensor:
    """(N, C, T, V) → (N·T·V, C); a view when x is channels-last."""
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


def _unrows(rows: torch.Tensor, N: int, T: int, V: int) -> torch.Tensor:
    """(N·T·V, C) → (N, C, T, V) channels-last view."""
    return rows.view(N, T, V, rows.shape[1]).permute(0, 3, 1, 2)


def _folding(bn: nn.BatchNorm2d) -> bool:
    """True when ``bn`` normalises with its running statistics (eval mode), so it can be folded."""
    return not bn.training and bn.running_mean is not None


def _fold_bn(weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.BatchNorm2d):
    """Fold an eval-mode BatchNorm into the linear map (weight, bias) in front of it.

    Returns (scale·weight, scale, shift) with bn(W·x + b) = (scale·W)·x + shift, scale = γ / sqrt(var + eps),
    shift = β + (b − running_mean)·scale. ``weight`` may be None (then the first item is None).
    """
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)  # (C,)
    shift = bn.bias - bn.running_mean * scale
    if bias is not None:
        shift = shift + bias * scale
    scaled = None if weight is None else weight * scale.view(-1, *([1] * (weight.dim() - 1)))
    return scaled, scale, shift


class _BatchMoments(torch.autograd.Function):
    """Mean (Cin,) and biased covariance (Cin, Cin) of the rows of a (M, Cin) matrix, with a cheap backward.

    Forward centres the rows before the product (accurate when the mean is large); backward is a single
    matrix product: d/dx_m = (x_m − mean)·(G + Gᵀ)/M + g_mean/M.
    """

    @staticmethod
    def forward(ctx, rows):
        M = rows.shape[0]
        mean = rows.mean(dim=0)  # (Cin,)
        centred = rows - mean  # (M, Cin)
        cov = centred.t() @ centred / M  # (Cin, Cin)
        ctx.save_for_backward(rows, mean)
        return mean, cov

    @staticmethod
    def backward(ctx, grad_mean, grad_cov):
        rows, mean = ctx.saved_tensors
        M, Cin = rows.shape
        if grad_cov is None:
            grad_cov = rows.new_zeros(Cin, Cin)
        if grad_mean is None:
            grad_mean = rows.new_zeros(Cin)
        sym = (grad_cov + grad_cov.t()) / M  # (Cin, Cin)
        offset = grad_mean / M - mean @ sym  # (Cin,)
        return torch.addmm(offset, rows, sym)  # (M, Cin)


def _update_running_stats(bn: nn.BatchNorm2d, batch_mean: torch.Tensor, batch_var: torch.Tensor, count: int):
    """What nn.BatchNorm2d does in training: momentum (or cumulative) average, unbiased variance."""
    if not bn.track_running_stats or bn.running_mean is None:
        return
    with torch.no_grad():
        bn.num_batches_tracked.add_(1)
        factor = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
        bn.running_mean.mul_(1 - factor).add_(batch_mean.detach(), alpha=factor)
        unbiased = batch_var.detach() * (count / max(count - 1, 1))
        bn.running_var.mul_(1 - factor).add_(unbiased, alpha=factor)


# --------------------------------------------------------------------------------------------------------------
# Batch statistics of the global batch of several processes (distributed training, gafnet.gait.distributed)


def global_moments(rows: torch.Tensor, group, full: bool) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(mean (C,), biased covariance (C, C) if ``full`` else variance (C,), row count) of the rows of EVERY process
    of ``group``, as if they were one (M, C) matrix; differentiable.

    Each process contributes its count, mean and centred sum of squares, combined exactly (the parallel
    formula of Chan, Golub and LeVeque 1979): no large-mean cancellation, and a process with no rows counts
    for nothing. The all_gather carries gradients (torch.distributed.nn), so the statistics' gradient reaches
    every process's rows.
    """
    from torch.distributed.nn.functional import all_gather

    n, C = rows.shape
    mean = rows.sum(dim=0) / max(n, 1)
    centred = rows - mean
    m2 = centred.t() @ centred if full else (centred * centred).sum(dim=0)
    packed = torch.cat([rows.new_full((1,), float(n)), mean, m2.reshape(-1)])  # (1 + C + C² or 1 + 2C,)
    parts = torch.stack(all_gather(packed, group=group))  # (W, ·)
    counts = parts[:, 0].detach()
    total = counts.sum()
    means = parts[:, 1:1 + C]  # (W, C)
    g_mean = (counts[:, None] * means).sum(dim=0) / total
    d = means - g_mean  # (W, C)
    if full:
        g_m2 = parts[:, 1 + C:].sum(dim=0).view(C, C) + torch.einsum("w,wc,wd->cd", counts, d, d)
    else:
        g_m2 = parts[:, 1 + C:].sum(dim=0) + (counts[:, None] * d * d).sum(dim=0)
    return g_mean, g_m2 / total, int(total.item())


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training-mode statistics are those of the global batch of all processes of
    ``process_group`` (:func:`global_moments`), so that N processes normalise exactly as one process does on
    the whole batch (SyncBatchNorm; Ioffe and Szegedy 2015 for BatchNorm). Unlike ``nn.SyncBatchNorm`` it runs
    on the CPU (gloo) too, and ResGCN's folded convolutions use the same global statistics. Parameters,
    buffers and state_dict are BatchNorm2d's; with no group, or in eval mode, it is BatchNorm2d.
    Made by :func:`use_global_batch_norm`.
    """

    process_group = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.process_group is None:
            return super().forward(x)
        mean, var, count = global_moments(_rows(x), self.process_group, full=False)
        _update_running_stats(self, mean, var, count)
        scale = self.weight * torch.rsqrt(var + self.eps)
        shift = self.bias - mean * scale
        return x * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1)


def use_global_batch_norm(model: nn.Module, group) -> nn.Module:
    """Make every BatchNorm2d of ``model`` a :class:`GlobalBatchNorm2d` over ``group`` (in place: the same
    parameters and buffers, so optimizers and state_dicts are unaffected); returns ``model``."""
    for module in model.modules():
        if type(module) is nn.BatchNorm2d:
            module.__class__ = GlobalBatchNorm2d
        if isinstance(module, GlobalBatchNorm2d):
            module.process_group = group
    return model


def _sync_group(bn: nn.BatchNorm2d):
    return getattr(bn, "process_group", None) if bn.training else None


def _folded_pointwise(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.BatchNorm2d):
    """(W', shift) with bn(W·x + b) = W'·x + shift for a 1×1 convolution (weight (Cout, Cin)) on x.

    Eval mode: from the running statistics. Training mode: the batch statistics of y = W·x + b follow from
    those of x, mean_y = W·mean_x + b and var_y = diag(W·cov_x·Wᵀ); the running statistics are updated as
    nn.BatchNorm2d updates them.
    """
    if _folding(bn):
        folded, _, shift = _fold_bn(weight, bias, bn)
        return folded, shift
    group = _sync_group(bn)
    if group is None:
        mean_x, cov_x = _BatchMoments.apply(_rows(x))  # (Cin,), (Cin, Cin)
        count = x.numel() // weight.shape[1]
    else:  # the statistics of the global batch of all processes
        mean_x, cov_x, count = global_moments(_rows(x), group, full=True)
    mean_y = weight @ mean_x  # (Cout,)
    if bias is not None:
        mean_y = mean_y + bias
    var_y = ((weight @ cov_x) * weight).sum(dim=1).clamp(min=0)  # (Cout,) biased batch variance
    _update_running_stats(bn, mean_y, var_y, count)
    scale = bn.weight * torch.rsqrt(var_y + bn.eps)  # (Cout,)
    shift = bn.bias - mean_y * scale
    if bias is not None:
        shift = shift + bias * scale
    return weight * scale.unsqueeze(1), shift


def pointwise_conv_bn(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                      bn: nn.BatchNorm2d) -> torch.Tensor:
    """bn(Conv1×1(x)) for x (N, Cin, T, V) channels-last, weight (Cout, Cin) → (N, Cout, T, V), as ONE convolution.

    The BatchNorm is folded into the convolution (:func:`_folded_pointwise`), in training mode too, so no pass
    over the (wide) output is needed for its statistics, forward or backward. The result is the same function
    as Conv → BatchNorm (it differs only by float rounding), gradients included.
    """
    Cout, Cin = weight.shape
    if not bn.training and bn.running_mean is None:  # eval without running stats: plain batch statistics
        out = F.conv2d(x, weight.view(Cout, Cin, 1, 1), bias)
        return F.batch_norm(out, None, None, bn.weight, bn.bias, True, 0.0, bn.eps)
    folded, shift = _folded_pointwise(x, weight, bias, bn)
    return F.conv2d(x, folded.view(Cout, Cin, 1, 1), shift)  # (N, Cout, T, V)


def _foldable(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> bool:
    """True when bn(conv(·)) runs as one 1×1 convolution: eval mode, or a widening 1×1 conv in training."""
    pointwise = conv.kernel_size == (1, 1) and conv.stride == (1, 1) and conv.padding == (0, 0)
    if not pointwise or bn.running_mean is None and not bn.training:
        return False
    return _folding(bn) or conv.in_channels * FOLD_RATIO <= conv.out_channels


def pointwise_conv_bn_sum(pairs, relu: bool = False) -> torch.Tensor:
    """Σ_i bn_i(conv_i(x_i)) (then ReLU) for foldable 1×1 conv/BN pairs [(x_i, conv_i, bn_i)] on inputs with
    the same (N, T, V), as ONE convolution over the channel-concatenated inputs: the wide partial results are
    never written separately and added."""
    inputs, weights, shift = [], [], 0
    for x, conv, bn in pairs:
        folded, part_shift = _folded_pointwise(x, conv.weight.view(conv.out_channels, conv.in_channels), conv.bias, bn)
        inputs.append(x)
        weights.append(folded)
        shift = shift + part_shift
    weight = torch.cat(weights, dim=1)  # (Cout, Σ Cin_i)
    out = F.conv2d(torch.cat(inputs, dim=1), weight.view(*weight.shape, 1, 1), shift)  # (N, Cout, T, V)
    return out.relu_() if relu else out


def _add_residuals_relu(out: torch.Tensor, residuals, relu: bool) -> torch.Tensor:
    """out + Σ residuals, then ReLU, in place on ``out`` (a fresh tensor that is not an autograd view).
    A residual may be the int 0 (no residual)."""
    for res in residuals:
        if isinstance(res, torch.Tensor):
            out.add_(res)
    return out.relu_() if relu else out


def conv_bn(x: torch.Tensor, conv: nn.Conv2d, bn: nn.BatchNorm2d, residuals=(), relu: bool = False) -> torch.Tensor:
    """bn(conv(x)) + Σ residuals, then ReLU if ``relu``, for x (N, Cin, T, V) channels-last.

    Eval mode: one convolution with the BatchNorm folded in. Training mode: a widening 1×1 convolution
    (Cin · FOLD_RATIO ≤ Cout) goes through :func:`pointwise_conv_bn`; anything else is Conv then BatchNorm.
    The additions and the ReLU run in place on the fresh result (never on an autograd view).
    """
    if _folding(bn):
        weight, _, shift = _fold_bn(conv.weight, conv.bias, bn)
        out = F.conv2d(x, weight, shift, conv.stride, conv.padding)  # (N, Cout, T', V)
        return _add_residuals_relu(out, residuals, relu)
    if _foldable(conv, bn):
        weight = conv.weight.view(conv.out_channels, conv.in_channels)
        out = pointwise_conv_bn(x, weight, conv.bias, bn)  # (N, Cout, T, V)
        return _add_residuals_relu(out, residuals, relu)
    return _add_residuals_relu(bn(conv(x)), residuals, relu)


def graph_product(y: torch.Tensor, A: torch.Tensor, shift: torch.Tensor | None = None, relu: bool = False) -> torch.Tensor:
    """out[n,c,t,w] = Σ_k Σ_v y[n, k·C + c, t, v] · A[k, v, w] (+ shift[c], then ReLU if ``relu``) for
    y (N, K·C, T, V) channels-last.

    In channels-last memory y is [n][t][v][k][c], so the sum over (k, v) is one matrix product with the
    (W, V·K) matrix A2[w, v·K + k] = A[k, v, w], batched over (n, t) with A2 shared (no copies of y).
    """
    K, V, W = A.shape
    N, KC, T, _ = y.shape
    C = KC // K
    y_rows = y.permute(0, 2, 3, 1).reshape(N * T, V * K, C)  # (N·T, V·K, C), a view when channels-last
    A2 = A.permute(2, 1, 0).reshape(1, W, V * K).expand(N * T, W, V * K)  # (N·T, W, V·K), stride 0 on N·T
    if shift is None:
        out = torch.bmm(A2, y_rows)  # (N·T, W, C)
    else:
        out = torch.baddbmm(shift.view(1, 1, C).expand(N * T, W, C), A2, y_rows)  # (N·T, W, C)
    if relu:
        out.relu_()
    return out.view(N, T, W, C).permute(0, 3, 1, 2)  # (N, C, T, W) channels-last


def _graph_patches(x: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """Graph product first, on the narrow input plus a constant-one channel (it carries the 1×1 conv's bias).

    x (N, Cin, T, V), A (K, V, W) → rows (N·T·W, K·(Cin + 1)): for each (n, t, w) the values
    z[k, ci] = Σ_v x[n, ci, t, v]·A[k, v, w] (ci < Cin) and z[k, Cin] = Σ_v A[k, v, w].
    """
    K, V, W = A.shape
    N, Cin, T, _ = x.shape
    x_aug = x.new_ones(N, T, V, Cin + 1)  # (N, T, V, Cin + 1)
    x_aug[..., :Cin] = x.permute(0, 2, 3, 1)
    A_t = A.permute(2, 0, 1).reshape(1, W * K, V).expand(N * T, W * K, V)  # A_t[w·K + k, v] = A[k, v, w]
    z = torch.bmm(A_t, x_aug.view(N * T, V, Cin + 1))  # (N·T, W·K, Cin + 1)
    return z.view(N * T * W, K * (Cin + 1))


def _patch_weight(weight: torch.Tensor, bias: torch.Tensor, K: int) -> torch.Tensor:
    """The gcn 1×1 kernel (K·C, Cin, 1, 1) and bias (K·C,) as one (C, K·(Cin + 1)) matrix for the patches."""
    KC, Cin = weight.shape[:2]
    C = KC // K
    w = torch.cat([weight.view(K, C, Cin), bias.view(K, C, 1)], dim=2)  # (K, C, Cin + 1)
    return w.permute(1, 0, 2).reshape(C, K * (Cin + 1))


def graph_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """The spatial graph convolution: Conv1×1 (Cin → K·C) then the graph product over (k, v).

    x (N, Cin, T, V); weight (K·C, Cin, 1, 1); bias (K·C,); A (K, V, W) → (N, C, T, W) channels-last.
    When Cin < C (the first layer) the two linear steps are swapped: the graph product runs on the narrow
    input (:func:`_graph_patches`), then one (C × K·(Cin + 1)) matrix product does the convolution.
    """
    K, V, W = A.shape
    KC, Cin = weight.shape[:2]
    C = KC // K
    if Cin >= C:
        return graph_product(F.conv2d(x, weight, bias), A)  # (N, C, T, W)
    N, _, T, _ = x.shape
    out = _graph_patches(x, A) @ _patch_weight(weight, bias, K).t()  # (N·T·W, C)
    return _unrows(out, N, T, W)


def graph_conv_bn(x: torch.Tensor, sgc: "SpatialGraphConv", bn: nn.BatchNorm2d, A: torch.Tensor,
                  relu: bool = False) -> torch.Tensor:
    """bn(sgc(x, A)), then ReLU if ``relu`` → (N, C, T, W) channels-last.

    Widening (first layer): patches then :func:`pointwise_conv_bn`, the BatchNorm folded into that one product.
    Otherwise: eval mode folds the BatchNorm scale into the 1×1 kernel and adds its shift in the graph
    product; training mode is SGC then BatchNorm.
    """
    K = sgc.num_kernels
    A = A[:K]
    weight, bias = sgc.gcn.weight, sgc.gcn.bias
    Cin, C = weight.shape[1], weight.shape[0] // K
    if Cin < C:
        N, _, T, _ = x.shape
        patches = _unrows(_graph_patches(x, A), N, T, A.shape[2])  # (N, K·(Cin + 1), T, W) channels-last
        out = pointwise_conv_bn(patches, _patch_weight(weight, bias, K), None, bn)  # (N, C, T, W)
        return _add_residuals_relu(out, (), relu)
    if not _folding(bn):
        return _add_residuals_relu(bn(graph_product(F.conv2d(x, weight, bias), A)), (), relu)
    _, scale, shift = _fold_bn(None, None, bn)
    scale_k = scale.repeat(K)  # (K·C,)
    y = F.conv2d(x, weight * scale_k.view(-1, 1, 1, 1), bias * scale_k)  # (N, K·C, T, V)
    return graph_product(y, A, shift, relu)


class _GlobalAveragePool(torch.autograd.Function):
    """x (N, C, T, V) → (N, C) mean over (T, V); the backward writes the spread-out gradient in x's memory
    format (channels-last), instead of an expanded view that every later backward step would have to copy."""

    @staticmethod
    def forward(ctx, x):
        ctx.shape = x.shape
        ctx.memory_format = (torch.channels_last if x.is_contiguous(memory_format=torch.channels_last)
                             and not x.is_contiguous() else torch.contiguous_format)
        return x.mean(dim=(2, 3))

    @staticmethod
    def backward(ctx, grad):
        N, C, T, V = ctx.shape
        spread = (grad / (T * V)).view(N, C, 1, 1).expand(N, C, T, V)
        return spread.contiguous(memory_format=ctx.memory_format)


# --------------------------------------------------------------------------------------------------------------
# Modules. Names and registration order match the original so that state_dict keys (and their order) agree.


def _residual(enabled: bool, in_channels: int, out_channels: int, stride: int = 1):
    """Residual branch: None (adds 0) when disabled, nn.Identity when shapes allow, else Conv1×1 + BN."""
    if not enabled:
        return None
    if in_channels == out_channels and stride == 1:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=(stride, 1)), nn.BatchNorm2d(out_channels))


def _apply_residual(residual, x: torch.Tensor):
    """0, x, or bn(conv(x)) (folded in eval mode)."""
    if residual is None:
        return 0
    if isinstance(residual, nn.Identity):
        return x
    return conv_bn(x, residual[0], residual[1])


class SpatialGraphConv(nn.Module):
    """SGC(cin, cout): ``gcn`` = Conv2d(cin, cout·K, 1) followed by the graph product with the first K slices of A."""

    def __init__(self, in_channels: int, out_channels: int, max_graph_distance: int = MAX_GRAPH_DISTANCE):
        super().__init__()
        self.num_kernels = max_graph_distance + 1
        self.gcn = nn.Conv2d(in_channels, out_channels * self.num_kernels, 1)

    def forward(self, x: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
        return graph_conv(x, self.gcn.weight, self.gcn.bias, A[: self.num_kernels])  # (N, C, T, V)


class SpatialBasicBlock(nn.Module):
    """relu(bn(SGC(x)) + residual(x))."""

    def __init__(self, in_channels: int, out_channels: int, residual: bool = False, reduction: int = 1):
        super().__init__()
        self.residual = _residual(residual, in_channels, out_channels)
        self.conv = SpatialGraphConv(in_channels, out_channels)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
        if self.residual is None:
            return graph_conv_bn(x, self.conv, self.bn, A, relu=True)  # (N, C, T, V)
        res = _apply_residual(self.residual, x)
        return _add_residuals_relu(graph_conv_bn(x, self.conv, self.bn, A), (res,), True)


class TemporalBasicBlock(nn.Module):
    """relu(bn(Conv(9×1, stride)(x)) + residual(x) + module_residual)."""

    def __init__(self, channels: int, stride: int = 1, residual: bool = False, reduction: int = 1):
        super().__init__()
        pad = (TEMPORAL_WINDOW - 1) // 2
        self.residual = _residual(residual, channels, channels, stride)
        self.conv = nn.Conv2d(channels, channels, (TEMPORAL_WINDOW, 1), (stride, 1), (pad, 0))
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor, module_residual) -> torch.Tensor:
        res = _apply_residual(self.residual, x)
        return conv_bn(x, self.conv, self.bn, (res, module_residual), relu=True)  # (N, C, T', V)


class SpatialBottleneckBlock(nn.Module):
    """relu(bn_up(conv_up(relu(bn(SGC(relu(bn_down(conv_down(x)))))))) + residual(x)), inner width out // r."""

    def __init__(self, in_channels: int, out_channels: int, residual: bool = False, reduction: int = 1):
        super().__init__()
        inner = out_channels // reduction
        self.residual = _residual(residual, in_channels, out_channels)
        self.conv_down = nn.Conv2d(in_channels, inner, 1)
        self.bn_down = nn.BatchNorm2d(inner)
        self.conv = SpatialGraphConv(inner, inner)
        self.bn = nn.BatchNorm2d(inner)
        self.conv_up = nn.Conv2d(inner, out_channels, 1)
        self.bn_up = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
        merge = (isinstance(self.residual, nn.Sequential) and _foldable(self.conv_up, self.bn_up)
                 and _foldable(self.residual[0], self.residual[1]))
        res = 0 if merge else _apply_residual(self.residual, x)
        y = conv_bn(x, self.conv_down, self.bn_down, relu=True)  # (N, C/r, T, V)
        y = graph_conv_bn(y, self.conv, self.bn, A, relu=True)  # (N, C/r, T, V)
        if merge:  # bn_up(conv_up(y)) + bn_res(conv_res(x)) as one convolution over [y, x]
            pairs = [(y, self.conv_up, self.bn_up), (x, self.residual[0], self.residual[1])]
            return pointwise_conv_bn_sum(pairs, relu=True)  # (N, C, T, V)
        return conv_bn(y, self.conv_up, self.bn_up, (res,), relu=True)  # (N, C, T, V)


class TemporalBottleneckBlock(nn.Module):
    """relu(bn_up(conv_up(relu(bn(Conv9×1(relu(bn_down(conv_down(x)))))))) + residual(x) + module_residual)."""

    def __init__(self, channels: int, stride: int = 1, residual: bool = False, reduction: int = 1):
        super().__init__()
        inner = channels // reduction
        pad = (TEMPORAL_WINDOW - 1) // 2
        self.residual = _residual(residual, channels, channels, stride)
        self.conv_down = nn.Conv2d(channels, inner, 1)
        self.bn_down = nn.BatchNorm2d(inner)
        self.conv = nn.Conv2d(inner, inner, (TEMPORAL_WINDOW, 1), (stride, 1), (pad, 0))
        self.bn = nn.BatchNorm2d(inner)
        self.conv_up = nn.Conv2d(inner, channels, 1)
        self.bn_up = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor, module_residual) -> torch.Tensor:
        res = _apply_residual(self.residual, x)
        y = conv_bn(x, self.conv_down, self.bn_down, relu=True)  # (N, C/r, T, V)
        y = conv_bn(y, self.conv, self.bn, relu=True)  # (N, C/r, T', V)
        return conv_bn(y, self.conv_up, self.bn_up, (res, module_residual), relu=True)  # (N, C, T', V)


_BLOCKS = {
    "Basic": (SpatialBasicBlock, TemporalBasicBlock),
    "Bottleneck": (SpatialBottleneckBlock, TemporalBottleneckBlock),
}


class ResGCNModule(nn.Module):
    """One ResGCN layer: tcn(scn(x, A·edge), residual(x)), with a learnable ``edge`` importance mask."""

    def __init__(self, in_channels: int, out_channels: int, block: str, A: torch.Tensor,
                 initial: bool = False, stride: int = 1, reduction: int = 1):
        super().__init__()
        if initial:
            module_res, block_res = False, False
        elif block == "Basic":
            module_res, block_res = True, False
        else:
            module_res, block_res = False, True
        self.residual = _residual(module_res, in_channels, out_channels, stride)
        spatial, temporal = _BLOCKS[block]
        self.scn = spatial(in_channels, out_channels, block_res, reduction)
        self.tcn = temporal(out_channels, stride, block_res, reduction)
        self.edge = nn.Parameter(torch.ones_like(A))

    def forward(self, x: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
        module_res = _apply_residual(self.residual, x)
        return self.tcn(self.scn(x, A * self.edge), module_res)  # (N, C_out, T / stride, V)


class InputBranch(nn.Module):
    """One input branch: BatchNorm on the raw input, then the branch's ResGCN layers (C → 64 … → 32)."""

    def __init__(self, structure, block: str, num_channels: int, A: torch.Tensor, reduction: int):
        super().__init__()
        self.register_buffer("A", A.clone())
        self.bn = nn.BatchNorm2d(num_channels)
        layers = [ResGCNModule(num_channels, 64, "Basic", A, initial=True, reduction=reduction)]
        layers += [ResGCNModule(64, 64, "Basic", A, initial=True, reduction=reduction) for _ in range(structure[0] - 1)]
        layers += [ResGCNModule(64, 64, block, A, reduction=reduction) for _ in range(structure[1] - 1)]
        layers += [ResGCNModule(64, 32, block, A, reduction=reduction)]
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(x)  # (N, C, T, V)
        for layer in self.layers:
            x = layer(x, self.A)
        return x  # (N, 32, T, V) channels-last


class ResGCN(nn.Module):
    """ResGCN(structure, block, reduction, I, C, E, A): I input branches, a main stream, pooling and ``fcn``.

    forward: (N, I, C, T, V) float → (N, E) L2-normalised embeddings.
    """

    def __init__(self, structure, block: str, reduction: int, num_input_branches: int, num_channels: int,
                 embedding_size: int, A: torch.Tensor):
        super().__init__()
        self.register_buffer("A", A.clone())
        self.input_branches = nn.ModuleList(
            [InputBranch(structure, block, num_channels, A, reduction) for _ in range(num_input_branches)]
        )
        main = [ResGCNModule(32 * num_input_branches, 128, block, A, stride=2, reduction=reduction)]
        main += [ResGCNModule(128, 128, block, A, reduction=reduction) for _ in range(structure[2] - 1)]
        main += [ResGCNModule(128, 256, block, A, stride=2, reduction=reduction)]
        main += [ResGCNModule(256, 256, block, A, reduction=reduction) for _ in range(structure[3] - 1)]
        self.main_stream = nn.ModuleList(main)
        self.fcn = nn.Linear(256, embedding_size)
        _init_parameters(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or x.shape[1] != len(self.input_branches):
            raise ValueError(
                f"expected input of shape (N, I={len(self.input_branches)}, C, T, V), got {tuple(x.shape)}"
            )
        branches = [branch(x[:, i]) for i, branch in enumerate(self.input_branches)]  # I × (N, 32, T, V)
        x = branches[0] if len(branches) == 1 else torch.cat(branches, dim=1)  # (N, 32·I, T, V)
        for layer in self.main_stream:
            x = layer(x, self.A)  # ... → (N, 256, T/4, V)
        x = _GlobalAveragePool.apply(x)  # (N, 256) global average pool; no squeeze(), so N = 1 works
        x = self.fcn(x)  # (N, E)
        return F.normalize(x, dim=1, p=2)


def _init_parameters(model: nn.Module) -> None:
    """Initialisation of the original: kaiming-normal convs (fan_out, relu), unit BN, N(0, 0.001) linear,
    then zero ``bn_up`` weights in every Bottleneck block so each residual block starts as the identity."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.001)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    for m in model.modules():
        if isinstance(m, ResGCNModule):
            for block in (m.scn, m.tcn):
                if hasattr(block, "bn_up"):
                    nn.init.zeros_(block.bn_up.weight)


#: Sane bounds of the model arguments, checked before anything is built: GaitGraph uses 1 or 3 input branches
#: of 3 or 6 channels and 128-d (or 256-d) embeddings. A checkpoint asking for 100,000 branches or a 10⁸-d
#: embedding (a 100 GB head) is refused instead of hanging or exhausting memory.
MODEL_ARG_LIMITS = {"num_input_branches": (1, 8), "num_channels": (1, 64), "embedding_size": (1, 4096)}


def check_model_args(network_name, num_input_branches, num_channels, embedding_size, where: str = "") -> NetworkSpec:
    """The parsed network name if every model argument is of the right type and within MODEL_ARG_LIMITS;
    InputError (prefixed with ``where``) otherwise."""
    prefix = f"{where}: " if where else ""
    if not isinstance(network_name, str):
        raise InputError(f"{prefix}network_name must be a text such as {DEFAULT_NETWORK!r}, got {network_name!r}")
    try:
        spec = parse_network_name(network_name)
    except UnknownNetworkError as exc:
        raise UnknownNetworkError(f"{prefix}{exc}") from None
    for label, value in (("num_input_branches", num_input_branches), ("num_channels", num_channels),
                         ("embedding_size", embedding_size)):
        low, high = MODEL_ARG_LIMITS[label]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise InputError(f"{prefix}{label} must be an integer from {low} to {high}, got {value!r}")
    return spec


def build_model(network_name: str = DEFAULT_NETWORK, num_input_branches: int = 1, num_channels: int = 3,
                embedding_size: int = 128) -> ResGCN:
    """Build a ResGCN from its name, e.g. ``build_model("resgcn-n39-r8", 1, 3, 128)`` (the paper's model).

    The arguments are checked first (:func:`check_model_args`): InputError for a bad one."""
    spec = check_model_args(network_name, num_input_branches, num_channels, embedding_size)
    A = torch.from_numpy(coco_adjacency())  # (4, 17, 17)
    return ResGCN(spec.structure, spec.block, spec.reduction, int(num_input_branches), int(num_channels),
                  int(embedding_size), A)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (319,530 for resgcn-n39-r8 with I=1, C=3, E=128)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
