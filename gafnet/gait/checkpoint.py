"""The one checkpoint format of this project, and loading of the original GaitGraph checkpoints.

Ours (``format`` = "gafnet"): a plain dict written atomically with ``torch.save`` that loads with
``torch.load(path, weights_only=True)``:

    {"format": "gafnet", "format_version": 1, "torch_version": str,
     "model_args": {"network_name", "num_input_branches", "num_channels", "embedding_size"},
     "model_state": state_dict, "run_args": dict, "epoch": int, "best_metric": float,
     "optimizer_state", "scheduler_state", "scaler_state": state dicts or None,
     "rng_state": get_rng_state() or None, "extra": dict (e.g. {"preprocessing": {...}})}

The model describes itself: :func:`build_model_from_checkpoint` rebuilds it with no flag to get wrong.

The original GaitGraph checkpoint is ``torch.save({"opt": argparse.Namespace, "model": state_dict, "optimizer",
"scheduler", "scaler", "epoch"})``. :func:`load_checkpoint` reads it with weights_only=True, allow-listing
argparse.Namespace and nothing else, maps CUDA tensors to the CPU, infers the model arguments from the
state_dict shapes (network name from ``opt.network_name``) and returns the same structure as for ours.
A bare state_dict (``torch.save(model.state_dict())``) is read the same way.
"""

from __future__ import annotations

import argparse
import enum
import pickle
import random
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePath

import numpy as np
import torch
from torch import nn

from ..atomic import atomic_path
from ..errors import InputError
from .resgcn import DEFAULT_NETWORK, UnknownNetworkError, build_model, parse_network_name

FORMAT = "gafnet"
FORMAT_VERSION = 1
MODEL_ARG_KEYS = ("network_name", "num_input_branches", "num_channels", "embedding_size")


# ----------------------------------------------------------------------------------------------------------------
# Plain values: everything stored must load with torch.load(weights_only=True).


def _plain(value, where: str):
    """``value`` as tensors / numbers / strings / None / lists / tuples / dicts only (Paths → str, numpy → torch)."""
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return value
    if isinstance(value, (PurePath, torch.device, torch.dtype)):
        return str(value)
    if isinstance(value, enum.Enum):
        return _plain(value.value, where)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, argparse.Namespace):
        value = vars(value)
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise TypeError(f"{where} has a key of type {type(key).__name__} ({key!r}); use str or int keys")
            out[key] = _plain(item, f"{where}[{key!r}]")
        return out
    if isinstance(value, (list, tuple)):
        items = [_plain(item, f"{where}[{i}]") for i, item in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, (set, frozenset)):
        return sorted((_plain(item, where) for item in value), key=repr)
    raise TypeError(f"{where} is a {type(value).__name__} ({value!r:.80}), which torch.load(weights_only=True) "
                    "cannot read; store it as a str, number, list, dict or tensor")


# ----------------------------------------------------------------------------------------------------------------
# RNG state


def get_rng_state() -> dict:
    """Every random generator a training run uses (torch CPU, CUDA if available, numpy, Python), as tensors and
    plain values so that it loads with weights_only=True. Restore with :func:`set_rng_state`."""
    np_state = np.random.get_state(legacy=False)
    py_version, py_internal, py_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "python": {"version": int(py_version), "internal": torch.tensor(py_internal, dtype=torch.int64),
                   "gauss_next": py_gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = [s.cpu() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`get_rng_state` returned (CUDA states only where this machine has the devices)."""
    if state.get("torch") is not None:
        torch.set_rng_state(state["torch"].cpu().to(torch.uint8))
    cuda_states = state.get("cuda")
    if cuda_states and torch.cuda.is_available():
        for device, cuda_state in enumerate(cuda_states[: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state.cpu().to(torch.uint8), device)
    numpy_state = state.get("numpy")
    if numpy_state is not None:
        np.random.set_state({
            "bit_generator": numpy_state["bit_generator"],
            "state": {"key": numpy_state["key"].numpy().astype(np.uint32), "pos": int(numpy_state["pos"])},
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        })
    python_state = state.get("python")
    if python_state is not None:
        internal = tuple(int(v) for v in python_state["internal"].tolist())
        random.setstate((int(python_state["version"]), internal, python_state["gauss_next"]))


# ----------------------------------------------------------------------------------------------------------------
# Save


def save_checkpoint(path, *, model_args: dict, model_state, run_args: dict, epoch, best_metric,
                    optimizer_state=None, scheduler_state=None, scaler_state=None, rng_state=None,
                    extra=None) -> Path:
    """Write our checkpoint atomically (temp file + rename); returns the path.

    model_args must hold network_name, num_input_branches, num_channels and embedding_size (what
    :func:`gafnet.gait.resgcn.build_model` takes); run_args (e.g. vars(args)) and extra (e.g. the
    preprocessing) are free-form plain values. Raises TypeError for a value weights_only loading can't read.
    """
    missing = [key for key in MODEL_ARG_KEYS if key not in (model_args or {})]
    if missing:
        raise ValueError(f"model_args lacks {missing}; it needs {list(MODEL_ARG_KEYS)} to rebuild the model")
    parse_network_name(model_args["network_name"])
    if isinstance(model_state, nn.Module):
        model_state = model_state.state_dict()
    checkpoint = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "torch_version": str(torch.__version__),
        "model_args": _plain(dict(model_args), "model_args"),
        "model_state": {key: value.detach() for key, value in model_state.items()},
        "run_args": _plain(dict(run_args or {}), "run_args"),
        "epoch": None if epoch is None else int(epoch),
        "best_metric": None if best_metric is None else float(best_metric),
        "optimizer_state": _plain(optimizer_state, "optimizer_state"),
        "scheduler_state": _plain(scheduler_state, "scheduler_state"),
        "scaler_state": _plain(scaler_state, "scaler_state"),
        "rng_state": _plain(rng_state, "rng_state"),
        "extra": _plain(dict(extra or {}), "extra"),
    }
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(checkpoint, tmp)
    return Path(path)


# ----------------------------------------------------------------------------------------------------------------
# Load


def _read(path: Path, map_location):
    """torch.load with weights_only=True, argparse.Namespace allow-listed; errors → InputError."""
    if not path.exists():
        raise InputError(f"checkpoint {path} does not exist; check the path (e.g. runs/<name>/best.pt)")
    if path.is_dir():
        raise InputError(f"checkpoint {path} is a directory; give the .pt/.pth file inside it (e.g. best.pt)")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        found = re.search(r"GLOBAL ([\w.]+)", text)
        if found or "Unsupported global" in text:
            what = f" ({found.group(1)})" if found else ""
            raise InputError(
                f"{path} contains Python objects{what} other than tensors, plain values and argparse.Namespace; "
                "refusing to unpickle it. Use a checkpoint written by this project or by the original GaitGraph "
                "train.py, or re-save its state_dict with torch.save(model.state_dict(), path)") from None
        detail = re.search(r"WeightsUnpickler error:\s*(.+)", text)
        detail = detail.group(1).strip() if detail else (text.splitlines() or [""])[0]
        raise InputError(f"{path} is not a PyTorch checkpoint or is damaged ({detail[:120]}); "
                         "use a .pt/.pth file written by torch.save") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, AttributeError, KeyError,
            IndexError, TypeError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:120]
        raise InputError(f"{path} is not a PyTorch checkpoint or is damaged ({first}); "
                         "use a .pt/.pth file written by torch.save (a truncated download gives this too)") from None


def _is_state_dict(obj) -> bool:
    return isinstance(obj, dict) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def _strip_module_prefix(state: dict) -> dict:
    """Remove the "module." prefix nn.DataParallel adds to every key."""
    if state and all(key.startswith("module.") for key in state):
        return {key[len("module."):]: value for key, value in state.items()}
    return dict(state)


def infer_model_args(state: dict, network_name: str | None = None, where: str = "checkpoint") -> tuple[dict, list]:
    """Model arguments from a ResGCN state_dict's shapes: (model_args, notes).

    num_input_branches = number of ``input_branches.<i>.bn.weight``; num_channels = that BatchNorm's size;
    embedding_size = rows of ``fcn.weight``. The structure can't be read reliably from the keys, so
    network_name comes from the caller (the original's opt.network_name) or falls back to the default.
    """
    notes = []
    branches = sorted(int(m.group(1)) for key in state
                      if (m := re.fullmatch(r"input_branches\.(\d+)\.bn\.weight", key)))
    if not branches or "fcn.weight" not in state:
        raise InputError(f"{where} holds a state_dict that is not a ResGCN's (no input_branches.<i>.bn.weight "
                         "or fcn.weight); use a GaitGraph / GAF-Net gait checkpoint")
    if network_name is None:
        network_name = DEFAULT_NETWORK
        notes.append(f"the checkpoint does not name its network; assuming {DEFAULT_NETWORK}")
    model_args = {
        "network_name": str(network_name),
        "num_input_branches": len(branches),
        "num_channels": int(state["input_branches.0.bn.weight"].shape[0]),
        "embedding_size": int(state["fcn.weight"].shape[0]),
    }
    return model_args, notes


def load_checkpoint(path, map_location="cpu") -> dict:
    """Load ours or the original GaitGraph checkpoint (or a bare state_dict) into one structure.

    Returns {"format": "gafnet" | "original" | "state_dict", "path", "model_args", "model_state", "run_args",
    "epoch", "best_metric", "optimizer_state", "scheduler_state", "scaler_state", "rng_state", "extra",
    "notes": [what was assumed]}. Missing, foreign or damaged files raise InputError naming the file.
    """
    path = Path(path)
    obj = _read(path, map_location)
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        if int(obj.get("format_version", 0)) > FORMAT_VERSION:
            raise InputError(f"{path} was written by a newer version of this project (checkpoint format "
                             f"{obj.get('format_version')}, this code reads ≤ {FORMAT_VERSION}); update the code")
        ckpt = {key: obj.get(key) for key in ("model_args", "model_state", "run_args", "epoch", "best_metric",
                                               "optimizer_state", "scheduler_state", "scaler_state", "rng_state")}
        ckpt.update(format=FORMAT, path=str(path), extra=obj.get("extra") or {}, notes=[],
                    torch_version=obj.get("torch_version"))
        return ckpt
    if isinstance(obj, dict) and "model" in obj and _is_state_dict(obj["model"]):
        opt = obj.get("opt")
        run_args = _plain(opt, "opt") if isinstance(opt, (argparse.Namespace, dict)) else {}
        state = _strip_module_prefix(obj["model"])
        model_args, notes = infer_model_args(state, run_args.get("network_name"), str(path))
        if "network_name" not in run_args:
            notes.append("no opt.network_name in the original checkpoint")
        return {"format": "original", "path": str(path), "model_args": model_args, "model_state": state,
                "run_args": run_args, "epoch": obj.get("epoch"), "best_metric": None,
                "optimizer_state": obj.get("optimizer"), "scheduler_state": obj.get("scheduler"),
                "scaler_state": obj.get("scaler"), "rng_state": None, "extra": {}, "notes": notes}
    if _is_state_dict(obj):
        state = _strip_module_prefix(obj)
        model_args, notes = infer_model_args(state, None, str(path))
        return {"format": "state_dict", "path": str(path), "model_args": model_args, "model_state": state,
                "run_args": {}, "epoch": None, "best_metric": None, "optimizer_state": None,
                "scheduler_state": None, "scaler_state": None, "rng_state": None, "extra": {}, "notes": notes}
    kind = type(obj).__name__
    keys = f" with keys {sorted(map(str, obj))[:8]}" if isinstance(obj, dict) else ""
    raise InputError(f"{path} is a PyTorch file but not a gait checkpoint (found a {kind}{keys}); expected this "
                     "project's checkpoint, the original GaitGraph's {'opt', 'model', ...} or a model state_dict")


def build_model_from_checkpoint(ckpt: dict) -> nn.Module:
    """The model a loaded checkpoint describes, with its weights (strict), in eval mode, on the CPU."""
    args = {key: ckpt["model_args"][key] for key in MODEL_ARG_KEYS}
    where = ckpt.get("path", "checkpoint")
    try:
        model = build_model(**args)
    except UnknownNetworkError as exc:
        raise InputError(f"{where}: {exc}") from None
    report = compare_state(model.state_dict(), ckpt["model_state"])
    if report.missing or report.unexpected or report.shape_mismatch:
        raise InputError(f"{where} does not fit {args}: {report.differences()}"
                         + ("; " + "; ".join(ckpt.get("notes") or []) if ckpt.get("notes") else ""))
    model.load_state_dict(ckpt["model_state"], strict=True)
    return model.eval()


# ----------------------------------------------------------------------------------------------------------------
# --weight_path: initialise a model from a checkpoint


def _is_constant(key: str) -> bool:
    """Keys that carry no learned information: the graph buffers and BatchNorm batch counters."""
    return key == "A" or key.endswith(".A") or key.endswith("num_batches_tracked")


def _is_head(key: str) -> bool:
    return key.startswith("fcn.")


@dataclass
class InitReport:
    """What :func:`initialise_from` loaded and what it left at the model's own initialisation."""

    path: str
    source_format: str = ""
    loaded: list = field(default_factory=list)
    missing: list = field(default_factory=list)  # in the model, not in the checkpoint
    unexpected: list = field(default_factory=list)  # in the checkpoint, not in the model
    shape_mismatch: list = field(default_factory=list)  # (key, checkpoint shape, model shape)

    @property
    def skipped(self) -> list:
        """Keys of the model left at their initialisation (missing or shape mismatch)."""
        return self.missing + [key for key, _, _ in self.shape_mismatch]

    def differences(self) -> str:
        parts = []
        if self.shape_mismatch:
            parts.append("skipped for shape mismatch: " + ", ".join(
                f"{key} (checkpoint {list(a)}, model {list(b)})" for key, a, b in self.shape_mismatch))
        if self.missing:
            parts.append(f"missing from the checkpoint: {', '.join(self.missing)}")
        if self.unexpected:
            parts.append(f"unexpected in the checkpoint: {', '.join(self.unexpected)}")
        return "; ".join(parts) or "none"

    def summary(self) -> str:
        total = len(self.loaded) + len(self.skipped)
        line = f"initialised {len(self.loaded)}/{total} tensors from {self.path} ({self.source_format} format)"
        return line if not (self.skipped or self.unexpected) else f"{line}; {self.differences()}"

    __str__ = summary


def compare_state(model_state: dict, source_state: dict, path: str = "", source_format: str = "") -> InitReport:
    """Which keys of ``source_state`` fit ``model_state`` (same key, same shape) and which don't."""
    report = InitReport(path=str(path), source_format=source_format)
    for key, value in model_state.items():
        if key not in source_state:
            report.missing.append(key)
        elif tuple(source_state[key].shape) != tuple(value.shape):
            report.shape_mismatch.append((key, tuple(source_state[key].shape), tuple(value.shape)))
        else:
            report.loaded.append(key)
    report.unexpected = [key for key in source_state if key not in model_state]
    return report


def initialise_from(model: nn.Module, path, allow_partial: bool = False) -> InitReport:
    """Copy the weights of the checkpoint at ``path`` (ours, the original's or a state_dict) into ``model``.

    Tensors with the same key and shape are loaded. Only the head (``fcn``, e.g. another embedding size)
    may be skipped, unless ``allow_partial``; otherwise — a different structure, reduction or number of
    input branches — InputError lists every missing, unexpected and mismatched key. Even with allow_partial,
    a checkpoint of which nothing but the head and the constant graph buffers would load is refused.
    """
    ckpt = load_checkpoint(path)
    source = ckpt["model_state"]
    report = compare_state(model.state_dict(), source, str(path), ckpt["format"])
    learned = [key for key in report.loaded if not _is_constant(key) and not _is_head(key)]
    backbone_problems = ([k for k in report.missing if not _is_head(k)]
                         + [k for k in report.unexpected if not _is_head(k)]
                         + [k for k, _, _ in report.shape_mismatch if not _is_head(k)])
    if not learned:
        raise InputError(f"{path}: nothing but the head would load into this model "
                         f"({report.differences()}); is it a checkpoint of a different network?")
    if backbone_problems and not allow_partial:
        raise InputError(f"{path} ({ckpt['format']} format, {ckpt['model_args']}) does not fit this model: "
                         f"{report.differences()}. Use a checkpoint of the same network, number of input branches "
                         "and channels (only the fcn head may differ)")
    with torch.no_grad():
        target = model.state_dict()
        for key in report.loaded:
            target[key].copy_(source[key].to(dtype=target[key].dtype))
    return report
