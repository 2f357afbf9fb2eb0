"""One device choice for every script: ``auto`` picks CUDA when available, else CPU."""

from __future__ import annotations

import torch

from .errors import InputError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def choose_device(name: str = "auto") -> torch.device:
    """Return the torch device for ``--device`` (auto|cpu|cuda|cuda:N)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError(f"--device {name} was requested but CUDA is not available; use --device cpu or auto")
        return torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    raise InputError(f"unknown device {name!r}; use one of {', '.join(DEVICE_CHOICES)} (or cuda:N)")
