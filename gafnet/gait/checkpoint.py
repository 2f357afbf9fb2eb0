"""The one checkpoint format of this project (:class:`Checkpoint`), and loading of the original GaitGraph checkpoints.

Ours (``format`` = "gafnet"): a plain dict written atomically with ``torch.save`` that loads with
``torch.load(path, weights_only=True)``: ``format``, ``format_version``, ``torch_version`` and the stored fields
of :class:`Checkpoint` (model arguments and state, run arguments, epoch, best metric, optimizer / scheduler /
scaler / RNG states, ``extra`` with the preprocessing). The model describes itself:
:func:`build_model_from_checkpoint` rebuilds it with no flag to get wrong.

The original GaitGraph checkpoint is ``torch.save({"opt": argparse.Namespace, "model": state_dict, "optimizer",
"scheduler", "scaler", "epoch"})``. :func:`load_checkpoint` reads it with weights_only=True, allow-listing
argparse.Namespace and nothing else, maps CUDA tensors to the CPU, infers the model arguments from the
state_dict shapes (network name from ``opt.network_name``) and returns a :class:`Checkpoint` too (without
optimizer state: only our checkpoints resume). A bare state_dict (``torch.save(model.state_dict())``) is read
the same way.

Hostile input. A checkpoint path that is not a regular file (a FIFO, a device) is refused before it is
opened; the bytes are read once (their sha256 identifies the checkpoint in the outputs' provenance) and
unpickled with ``weights_only=True``; every field is checked for type and bounds before it is used (model
arguments within :data:`gafnet.gait.resgcn.MODEL_ARG_LIMITS`, so that no checkpoint can make the loader build
100,000 branches or a 100 GB head). :func:`check_state_like` checks optimizer, scheduler and scaler states
against the structure of fresh ones before they are loaded for a resume.
"""

from __future__ import annotations

import argparse
import enum
import hashlib
import io
import math
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
from ..cache import SourceFile
from ..errors import InputError
from .resgcn import DEFAULT_NETWORK, build_model, parse_network_name
from .resgcn import check_model_args as check_resgcn_args

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


def check_rng_state(state, where: str) -> None:
    """InputError unless ``state`` has the structure :func:`get_rng_state` gives (checked before restoring)."""
    template = get_rng_state()
    template.pop("cuda", None)
    template["python"]["gauss_next"] = None  # None or a float
    check_state_like(template, {k: v for k, v in (state or {}).items() if k != "cuda"} if isinstance(state, dict)
                     else state, f"{where} (RNG state)")
    if state["numpy"]["bit_generator"] != "MT19937" or not 0 <= state["numpy"]["pos"] <= 624:
        raise InputError(f"{where}: the numpy RNG state is not an MT19937 state; the checkpoint is damaged")
    cuda = state.get("cuda")
    if cuda is not None and (not isinstance(cuda, list) or not all(isinstance(t, torch.Tensor) for t in cuda)):
        raise InputError(f"{where}: the CUDA RNG state is not a list of tensors; the checkpoint is damaged")


def set_rng_state(state: dict) -> None:
    """Restore what :func:`get_rng_state` returned (CUDA states only where this machine has the devices).
    Check a state read from a file with :func:`check_rng_state` first."""
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
# The checkpoint


@dataclass
class Checkpoint:
    """One checkpoint: what :meth:`save` stores (ours) and what :func:`load_checkpoint` returns (any format).

    Stored fields (besides ``format``, ``format_version`` and ``torch_version``): ``model_args`` (what
    :func:`gafnet.gait.resgcn.build_model` takes), ``model_state``, ``run_args`` (e.g. vars(args)), ``epoch``,
    ``best_metric``, the optimizer / scheduler / scaler / RNG states (None when absent) and ``extra`` (e.g.
    ``{"preprocessing": {...}}``). Read-time fields, never stored: ``format`` ("gafnet", "original" or
    "state_dict"), ``path``, ``sha256`` (of the bytes read), ``notes`` (what was assumed) and ``torch_version``.
    """

    model_args: dict
    model_state: dict
    run_args: dict = field(default_factory=dict)
    epoch: int | None = None
    best_metric: float | None = None
    optimizer_state: dict | None = None
    scheduler_state: dict | None = None
    scaler_state: dict | None = None
    rng_state: dict | None = None
    extra: dict = field(default_factory=dict)
    format: str = FORMAT
    path: str = ""
    sha256: str = ""
    notes: list = field(default_factory=list)
    torch_version: str | None = None

    @property
    def preprocessing(self) -> dict:
        return dict(self.extra.get("preprocessing") or {})

    def save(self, path) -> Path:
        """Write this checkpoint in our format, atomically (temp file + rename); returns the path.

        Raises TypeError for a value that ``torch.load(weights_only=True)`` could not read back and
        ValueError for model arguments that would not rebuild the model; a write failure (full disk...) is an
        InputError saying that the previous file was left as it was.
        """
        missing = [key for key in MODEL_ARG_KEYS if key not in (self.model_args or {})]
        if missing:
            raise ValueError(f"model_args lacks {missing}; it needs {list(MODEL_ARG_KEYS)} to rebuild the model")
        parse_network_name(self.model_args["network_name"])
        state = self.model_state.state_dict() if isinstance(self.model_state, nn.Module) else self.model_state
        stored = {"format": FORMAT, "format_version": FORMAT_VERSION, "torch_version": str(torch.__version__)}
        for name in STORED_FIELDS:
            value = getattr(self, name)
            if name == "model_state":
                stored[name] = {key: tensor.detach() for key, tensor in state.items()}
            elif name == "epoch":
                stored[name] = None if value is None else int(value)
            elif name == "best_metric":
                stored[name] = None if value is None else float(value)
            else:
                stored[name] = _plain(value, name)
        with atomic_path(path, suffix=".pt") as tmp, open(tmp, "wb") as fh:
            torch.save(stored, fh)  # our file object: closed even when torch.save fails (it leaks its own)
        return Path(path)


STORED_FIELDS = ("model_args", "model_state", "run_args", "epoch", "best_metric", "optimizer_state",
                 "scheduler_state", "scaler_state", "rng_state", "extra")


def save_checkpoint(path, **fields) -> Path:
    """``Checkpoint(**fields).save(path)``: see :class:`Checkpoint`."""
    return Checkpoint(**fields).save(path)


# ----------------------------------------------------------------------------------------------------------------
# Load


def load_weights_only(file, map_location="cpu", allowed=(argparse.Namespace,)):
    """torch.load(file, weights_only=True) with the classes ``allowed`` allow-listed (here: the original
    GaitGraph's ``opt``, an argparse.Namespace; torchreid's numpy scalars in gafnet.pixels.appearance).

    torch ≥ 2.5 scopes the allow-list (``safe_globals``); torch 2.4 has only the process-wide
    ``add_safe_globals`` (harmless classes only: attribute values are still restricted to plain types); older
    torch cannot allow-list anything, so files that need it are refused there (plain state dicts load).
    """
    serialization = torch.serialization
    if hasattr(serialization, "safe_globals"):
        with serialization.safe_globals(list(allowed)):
            return torch.load(file, map_location=map_location, weights_only=True)
    if hasattr(serialization, "add_safe_globals"):
        serialization.add_safe_globals(list(allowed))
    return torch.load(file, map_location=map_location, weights_only=True)


def _load_bytes(data: bytes, map_location):
    return load_weights_only(io.BytesIO(data), map_location)


def _read(path: Path, map_location):
    """(object, sha256) of a checkpoint file; anything but a readable regular torch file → InputError."""
    with SourceFile(path, "checkpoint") as source:  # a FIFO or a device is refused before it is opened
        data = source.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    try:
        return _load_bytes(data, map_location), digest
    except pickle.UnpicklingError as exc:
        text = str(exc)
        found = re.search(r"GLOBAL ([\w.]+)", text)
        if found and found.group(1) == "argparse.Namespace":
            raise InputError(f"{path} is in the original GaitGraph format, whose argparse.Namespace this torch "
                             f"{torch.__version__} cannot allow-list (torch >= 2.4 can); upgrade torch, or re-save "
                             "its state_dict with torch.save(checkpoint['model'], path) on a newer one") from None
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


def check_model_args(model_args, where: str) -> dict:
    """The four model arguments of a checkpoint, checked for type and bounds before anything is built."""
    if not isinstance(model_args, dict):
        raise InputError(f"{where}: model_args is a {type(model_args).__name__}, expected a dict with "
                         f"{', '.join(MODEL_ARG_KEYS)}")
    missing = [key for key in MODEL_ARG_KEYS if key not in model_args]
    if missing:
        raise InputError(f"{where}: model_args lacks {', '.join(missing)}; it needs {', '.join(MODEL_ARG_KEYS)} "
                         "to rebuild the model (is the checkpoint damaged?)")
    args = {key: model_args[key] for key in MODEL_ARG_KEYS}
    check_resgcn_args(**args, where=where)
    return args


def _check_stored(obj: dict, path: Path) -> None:
    """Types of the fields of our format, so that no later step meets a value it cannot use."""
    version = obj.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InputError(f"{path}: checkpoint format_version is {version!r}, expected a positive integer; "
                         "the file is damaged or was not written by this project")
    if version > FORMAT_VERSION:
        raise InputError(f"{path} was written by a newer version of this project (checkpoint format {version}, "
                         f"this code reads ≤ {FORMAT_VERSION}); update the code")
    check_model_args(obj.get("model_args"), str(path))
    state = obj.get("model_state")
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise InputError(f"{path}: model_state is not a state_dict (names → tensors); the file is damaged")
    epoch = obj.get("epoch")
    if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0):
        raise InputError(f"{path}: epoch is {epoch!r}, expected a non-negative integer or nothing")
    best = obj.get("best_metric")
    if best is not None and (isinstance(best, bool) or not isinstance(best, (int, float)) or math.isnan(best)):
        raise InputError(f"{path}: best_metric is {best!r}, expected a number or nothing")
    for name in ("run_args", "extra", "optimizer_state", "scheduler_state", "scaler_state", "rng_state"):
        if obj.get(name) is not None and not isinstance(obj.get(name), dict):
            raise InputError(f"{path}: {name} is a {type(obj.get(name)).__name__}, expected a dict or nothing")


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
    first_bn, head = state.get("input_branches.0.bn.weight"), state.get("fcn.weight")
    if not branches or first_bn is None or head is None or first_bn.dim() != 1 or head.dim() != 2:
        raise InputError(f"{where} holds a state_dict that is not a ResGCN's (no input_branches.<i>.bn.weight "
                         "or fcn.weight); use a GaitGraph / GAF-Net gait checkpoint")
    if network_name is None:
        network_name = DEFAULT_NETWORK
        notes.append(f"the checkpoint does not name its network; assuming {DEFAULT_NETWORK}")
    model_args = {
        "network_name": network_name,
        "num_input_branches": len(branches),
        "num_channels": int(first_bn.shape[0]),
        "embedding_size": int(head.shape[0]),
    }
    check_model_args(model_args, where)
    return model_args, notes


def load_checkpoint(path, map_location="cpu") -> Checkpoint:
    """Load ours or the original GaitGraph checkpoint (or a bare state_dict) into a :class:`Checkpoint`.

    Every field is checked for type and bounds (model arguments within
    :data:`gafnet.gait.resgcn.MODEL_ARG_LIMITS`, a state_dict of tensors, integer epoch...): a missing, foreign,
    damaged or hostile file raises InputError naming it; nothing is built or unpickled beyond plain values.
    """
    path = Path(path)
    obj, digest = _read(path, map_location)
    read = {"path": str(path), "sha256": digest}
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        _check_stored(obj, path)
        fields_read = {name: obj.get(name) for name in STORED_FIELDS}
        fields_read["run_args"] = fields_read["run_args"] or {}
        fields_read["extra"] = fields_read["extra"] or {}
        return Checkpoint(**fields_read, format=FORMAT, torch_version=obj.get("torch_version"), **read)
    if isinstance(obj, dict) and "model" in obj and _is_state_dict(obj["model"]):
        opt = obj.get("opt")
        run_args = _plain(opt, "opt") if isinstance(opt, (argparse.Namespace, dict)) else {}
        state = _strip_module_prefix(obj["model"])
        model_args, notes = infer_model_args(state, run_args.get("network_name"), str(path))
        if "network_name" not in run_args:
            notes.append("no opt.network_name in the original checkpoint")
        epoch = obj.get("epoch")
        return Checkpoint(model_args=model_args, model_state=state, run_args=run_args,
                          epoch=epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None,
                          format="original", notes=notes, **read)
    if _is_state_dict(obj):
        state = _strip_module_prefix(obj)
        model_args, notes = infer_model_args(state, None, str(path))
        return Checkpoint(model_args=model_args, model_state=state, format="state_dict", notes=notes, **read)
    kind = type(obj).__name__
    keys = f" with keys {sorted(map(str, obj))[:8]}" if isinstance(obj, dict) else ""
    raise InputError(f"{path} is a PyTorch file but not a gait checkpoint (found a {kind}{keys}); expected this "
                     "project's checkpoint, the original GaitGraph's {'opt', 'model', ...} or a model state_dict")


def build_model_from_checkpoint(ckpt: Checkpoint) -> nn.Module:
    """The model a loaded checkpoint describes, with its weights (strict), in eval mode, on the CPU."""
    args = check_model_args(ckpt.model_args, ckpt.path or "checkpoint")
    model = build_model(**args)
    report = compare_state(model.state_dict(), ckpt.model_state)
    if report.missing or report.unexpected or report.shape_mismatch:
        raise InputError(f"{ckpt.path or 'checkpoint'} does not fit {args}: {report.differences()}"
                         + ("; " + "; ".join(ckpt.notes) if ckpt.notes else ""))
    model.load_state_dict(ckpt.model_state, strict=True)
    return model.eval()


def load_model_state(model: nn.Module, ckpt: Checkpoint) -> None:
    """Load ``ckpt``'s weights into ``model`` (strict); InputError listing the differences if they do not fit."""
    report = compare_state(model.state_dict(), ckpt.model_state)
    if report.missing or report.unexpected or report.shape_mismatch:
        raise InputError(f"{ckpt.path or 'checkpoint'} does not fit this model: {report.differences()}")
    model.load_state_dict(ckpt.model_state, strict=True)


def check_state_like(template, value, where: str, exact_keys: bool = True) -> None:
    """InputError unless ``value`` has the structure of ``template`` (e.g. a fresh scheduler's state_dict).

    Dicts hold the template's keys (exactly, with ``exact_keys``: a scheduler's load_state_dict sets every key
    as an attribute); lists and tuples have its length; numbers are finite numbers, booleans booleans, text
    text, tensors tensors of the same shape; a None in the template accepts any plain scalar.
    """
    def fail(detail):
        raise InputError(f"{where}: {detail}; the checkpoint is damaged or from another kind of run")

    def walk(t, v, at):
        if isinstance(t, dict):
            if not isinstance(v, dict):
                fail(f"{at} is a {type(v).__name__}, expected a dict")
            missing = [k for k in t if k not in v]
            extra = [k for k in v if k not in t] if exact_keys else []
            if missing or extra:
                fail(f"{at} " + "; ".join(part for part in (
                    f"lacks {', '.join(map(str, missing))}" if missing else "",
                    f"has unexpected {', '.join(map(str, extra))}" if extra else "") if part))
            for k in t:
                walk(t[k], v[k], f"{at}[{k!r}]")
        elif isinstance(t, (list, tuple)):
            if not isinstance(v, (list, tuple)) or len(v) != len(t):
                fail(f"{at} should be a list of {len(t)}, got {v!r:.60}")
            for i, (ti, vi) in enumerate(zip(t, v)):
                walk(ti, vi, f"{at}[{i}]")
        elif isinstance(t, bool):
            if not isinstance(v, bool):
                fail(f"{at} should be true or false, got {v!r:.60}")
        elif isinstance(t, (int, float)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                fail(f"{at} should be a finite number, got {v!r:.60}")
        elif isinstance(t, str):
            if not isinstance(v, str):
                fail(f"{at} should be text, got {v!r:.60}")
        elif isinstance(t, torch.Tensor):
            if not isinstance(v, torch.Tensor) or tuple(v.shape) != tuple(t.shape):
                fail(f"{at} should be a tensor of shape {list(t.shape)}, got "
                     f"{list(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__}")
        elif t is None:
            if v is not None and not isinstance(v, (bool, int, float, str)):
                fail(f"{at} should be a plain value, got a {type(v).__name__}")

    walk(template, value, "state")


def check_optimizer_state(optimizer: torch.optim.Optimizer, state, where: str) -> None:
    """InputError unless ``state`` is a state_dict this optimizer can load and step with (checked first)."""
    fresh = optimizer.state_dict()
    if not isinstance(state, dict) or set(state) != {"state", "param_groups"}:
        raise InputError(f"{where}: the optimizer state is not an optimizer state_dict; the checkpoint is damaged")
    groups = [{k: v for k, v in group.items()} for group in fresh["param_groups"]]
    check_state_like(groups, state["param_groups"], f"{where} (optimizer)", exact_keys=False)
    params = {index: p for group, fresh_group in zip(optimizer.param_groups, fresh["param_groups"])
              for index, p in zip(fresh_group["params"], group["params"])}
    for group, fresh_group in zip(state["param_groups"], fresh["param_groups"]):
        if list(group["params"]) != list(fresh_group["params"]):
            raise InputError(f"{where}: the optimizer state is for other parameters; the checkpoint is damaged")
    if not isinstance(state["state"], dict):
        raise InputError(f"{where}: the optimizer's per-parameter state is not a dict; the checkpoint is damaged")
    for index, entry in state["state"].items():
        if index not in params or not isinstance(entry, dict):
            raise InputError(f"{where}: optimizer state for an unknown parameter {index!r}; the checkpoint is damaged")
        for key, value in entry.items():
            if key == "step":
                ok = (isinstance(value, torch.Tensor) and value.numel() == 1) or (
                    isinstance(value, (int, float)) and not isinstance(value, bool))
            else:
                ok = isinstance(value, torch.Tensor) and value.shape == params[index].shape \
                    and value.is_floating_point()
            if not ok:
                raise InputError(f"{where}: optimizer state {key!r} of parameter {index} does not fit the model "
                                 "(wrong type or shape); the checkpoint is damaged")


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
    source = ckpt.model_state
    report = compare_state(model.state_dict(), source, str(path), ckpt.format)
    learned = [key for key in report.loaded if not _is_constant(key) and not _is_head(key)]
    backbone_problems = ([k for k in report.missing if not _is_head(k)]
                         + [k for k in report.unexpected if not _is_head(k)]
                         + [k for k, _, _ in report.shape_mismatch if not _is_head(k)])
    if not learned:
        raise InputError(f"{path}: nothing but the head would load into this model "
                         f"({report.differences()}); is it a checkpoint of a different network?")
    if backbone_problems and not allow_partial:
        raise InputError(f"{path} ({ckpt.format} format, {ckpt.model_args}) does not fit this model: "
                         f"{report.differences()}. Use a checkpoint of the same network, number of input branches "
                         "and channels (only the fcn head may differ)")
    with torch.no_grad():
        target = model.state_dict()
        for key in report.loaded:
            target[key].copy_(source[key].to(dtype=target[key].dtype))
    return report
