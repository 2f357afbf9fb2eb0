"""Supervised contrastive loss (Khosla et al., "Supervised Contrastive Learning", NeurIPS 2020).

The loss GaitGraph trains with (the original GaitGraph code: SupConLoss): features (B, V, D) hold V views of each
of B samples; every one of the B·V views is an anchor ('all') or only view 0 is ('one'); the contrast set is
all B·V views except the anchor itself; positives are views with the same label (with no labels: the other
views of the same sample);

    loss = −(temperature / base_temperature) · mean over anchors of
           mean over the anchor's positives p of log( exp(s_ap / τ) / Σ_{c ≠ a} exp(s_ac / τ) ).

Equal to the original up to float rounding, with two differences, both where the original fails:
- the denominator is a log-sum-exp over the non-self entries, so the loss stays finite for tiny temperatures
  or unnormalised features (the original subtracts the row maximum including the self-similarity, and its
  denominator can underflow to 0 → inf/NaN);
- an anchor without any positive raises ValueError (the original silently returns NaN, 0/0).
"""

from __future__ import annotations

import torch
from torch import nn

CONTRAST_MODES = ("all", "one")


class SupConLoss(nn.Module):
    """SupConLoss(temperature=0.07, contrast_mode='all', base_temperature=0.07).

    forward(features (B, V, D), labels (B,) | None, mask (B, B) | None) → scalar loss.
    ``mask[i, j] = 1`` marks sample j as a positive of sample i (labels and mask are mutually exclusive).
    Features are used as given (GaitGraph's model output is already L2-normalised).
    """

    def __init__(self, temperature: float = 0.07, contrast_mode: str = "all", base_temperature: float = 0.07):
        super().__init__()
        if contrast_mode not in CONTRAST_MODES:
            raise ValueError(f"contrast_mode must be one of {CONTRAST_MODES}, got {contrast_mode!r}")
        if not temperature > 0 or not base_temperature > 0:
            raise ValueError(f"temperatures must be positive, got {temperature} and {base_temperature}")
        self.temperature = float(temperature)
        self.contrast_mode = contrast_mode
        self.base_temperature = float(base_temperature)

    def extra_repr(self) -> str:
        return (f"temperature={self.temperature}, contrast_mode={self.contrast_mode!r}, "
                f"base_temperature={self.base_temperature}")

    def forward(self, features: torch.Tensor, labels: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        if features.dim() < 3:
            raise ValueError(f"features must be (batch, views, dim), got shape {tuple(features.shape)}")
        if features.dim() > 3:
            features = features.flatten(2)
        B, V, _ = features.shape
        device = features.device
        if labels is not None and mask is not None:
            raise ValueError("give labels or mask, not both")
        if labels is not None:
            labels = labels.reshape(-1)
            if labels.numel() != B:
                raise ValueError(f"{labels.numel()} labels for a batch of {B} samples")
            positive = labels.view(-1, 1) == labels.view(1, -1)  # (B, B)
        elif mask is not None:
            if tuple(mask.shape) != (B, B):
                raise ValueError(f"mask must be ({B}, {B}), got {tuple(mask.shape)}")
            positive = mask.to(device=device, dtype=torch.bool)
        else:
            positive = torch.eye(B, dtype=torch.bool, device=device)  # only the other views of the same sample

        contrast = features.transpose(0, 1).reshape(V * B, -1)  # (V·B, D), view-major: [view 0 of all; view 1 …]
        if self.contrast_mode == "one":
            anchor, anchor_views = features[:, 0], 1  # (B, D)
        else:
            anchor, anchor_views = contrast, V  # (V·B, D)
        num_anchors = anchor_views * B

        logits = anchor @ contrast.t() / self.temperature  # (A, V·B)
        is_self = torch.zeros_like(logits, dtype=torch.bool)
        is_self[:, :num_anchors].fill_diagonal_(True)  # anchor a is contrast column a
        positive = positive.repeat(anchor_views, V) & ~is_self  # (A, V·B)

        num_positive = positive.sum(dim=1)  # (A,)
        if bool((num_positive == 0).any()):
            raise ValueError(
                f"{int((num_positive == 0).sum())} of {num_anchors} anchors have no positive: every label needs "
                "a second view or a second sample (use V >= 2 views per sample)"
            )
        log_denominator = torch.logsumexp(logits.masked_fill(is_self, float("-inf")), dim=1, keepdim=True)  # (A, 1)
        log_prob = logits - log_denominator  # (A, V·B)
        mean_log_prob_pos = (log_prob * positive).sum(dim=1) / num_positive  # (A,)
        return -(self.temperature / self.base_temperature) * mean_log_prob_pos.mean()
