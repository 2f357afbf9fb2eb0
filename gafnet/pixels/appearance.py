"""Appearance embeddings of tracklets: torchreid models with a safe weights loader, and a weight-free descriptor.

torchreid (Zhou & Xiang, "Torchreid: a library for deep learning person re-identification in PyTorch", 2019).
Models are built with ``torchreid.reid.models.build_model(name, num_classes=1, pretrained=False)`` (the PyPI
0.2.5 layout) and get their weights from a local file only (:func:`load_torchreid_weights`):

- ``torch.load(weights_only=True)`` with the smallest allow-list a torchreid model-zoo checkpoint needs
  (numpy scalars and their dtypes, under their numpy 1 and numpy 2 names) — no code runs while loading;
- ``{"state_dict": …}`` or a bare state dict; ``module.`` prefixes (DataParallel) removed;
- classifier keys (``classifier.*``, trained for the training identities) dropped: only features are used;
- a report of matched / missing / unexpected / wrong-shape keys, and a refusal when anything but the
  classifier does not fit: torchreid's own ``load_pretrained_weights`` prints "Successfully loaded" even when it
  drops every layer, leaving a random network.

Preprocessing is torchreid's test transform exactly: PIL image (RGB) → ``Resize((256, 128))`` (bilinear) →
``ToTensor`` → ``Normalize`` with ImageNet's mean/std. The tracklet feature is the mean of the frame features
(torchreid's video ``pooling_method="avg"``); ``seq_len`` frames spread over the tracklet may be used instead of
all. Batches of frames run on the GPU when there is one.

``colour``: a WEIGHT-FREE descriptor for machines without weights: HSV colour histograms over horizontal stripes,
the classical re-ID baseline (Gray & Tao, "Viewpoint invariant pedestrian recognition with an ensemble of
localized features", ECCV 2008; the stripe layout as in Liao et al.'s LOMO, CVPR 2015, without its texture
part). Per stripe, one histogram per channel (H 16, S 8, V 8 bins), each normalised to sum 1 and square-rooted
(Hellinger), then the frame vector is L2-normalised; the tracklet feature is the mean over frames. It is always
labelled as weight-free in outputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from .tracklet import Tracklet, sample_indices

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INPUT_SIZE = (256, 128)  # (height, width), torchreid's default for person re-ID
COLOUR_NAMES = ("colour", "color")
WEIGHT_FREE_LABEL = "WEIGHT-FREE colour histograms (not a trained network)"
CLASSIFIER_PREFIXES = ("classifier.",)


def is_colour(name: str) -> bool:
    return str(name).lower() in COLOUR_NAMES


# ------------------------------------------------------------------------------------------ weights loading
def _allowed_globals() -> list:
    """What a torchreid model-zoo checkpoint pickles besides tensors: numpy scalars (``rank1``) and dtypes."""
    import numpy

    try:
        scalar = numpy._core.multiarray.scalar  # numpy 2
    except AttributeError:  # pragma: no cover - numpy 1
        scalar = numpy.core.multiarray.scalar
    allowed = [(scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar"), numpy.dtype]
    for kind in ("Float64DType", "Float32DType", "Int64DType", "Int32DType"):
        if hasattr(numpy, "dtypes") and hasattr(numpy.dtypes, kind):
            allowed.append(getattr(numpy.dtypes, kind))
    return allowed


def read_torchreid_state(path) -> dict:
    """The state dict of a torchreid checkpoint file, loaded safely; ``module.`` prefixes removed."""
    import torch

    from ..cache import check_regular_file
    from ..gait.checkpoint import load_weights_only

    path = check_regular_file(path, "--weights")
    try:
        obj = load_weights_only(path, "cpu", _allowed_globals())
    except Exception as exc:
        text = str(exc).strip()
        hint = ""
        if "Unsupported global" in text:
            start = text.find("Unsupported global")
            hint = f" ({text[start:start + 120].splitlines()[0]})"
        raise InputError(f"--weights {path}: not a PyTorch checkpoint that loads safely with weights_only=True"
                         f"{hint or ' (' + (text.splitlines()[0][:150] if text else type(exc).__name__) + ')'}; "
                         "give a torchreid model-zoo .pth or a state dict") from None
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else obj
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        keys = sorted(map(str, obj))[:6] if isinstance(obj, dict) else type(obj).__name__
        raise InputError(f"--weights {path}: holds no state dict of tensors (found {keys}); give a torchreid "
                         "checkpoint ({'state_dict': ...}) or a state dict")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}


@dataclass
class WeightsReport:
    path: str
    model: str
    matched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    wrong_shape: list[str] = field(default_factory=list)
    classifier_dropped: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return bool(self.matched) and not (self.missing or self.unexpected or self.wrong_shape)

    def summary(self) -> str:
        return (f"{self.path} → {self.model}: {len(self.matched)} tensors matched, {len(self.missing)} missing, "
                f"{len(self.unexpected)} unexpected, {len(self.wrong_shape)} of the wrong shape; "
                f"{len(self.classifier_dropped)} classifier tensors dropped (not used for features)")

    def as_dict(self) -> dict:
        return {"path": self.path, "model": self.model, "matched": len(self.matched), "missing": self.missing[:20],
                "unexpected": self.unexpected[:20], "wrong_shape": self.wrong_shape[:20],
                "classifier_dropped": self.classifier_dropped}


def compare_weights(model_state: dict, state: dict, path: str, model_name: str) -> WeightsReport:
    report = WeightsReport(str(path), model_name)
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            continue  # BatchNorm step counters: no learned information, never counted as a match
        if key.startswith(CLASSIFIER_PREFIXES):
            report.classifier_dropped.append(key)
        elif key not in model_state:
            report.unexpected.append(key)
        elif tuple(model_state[key].shape) != tuple(value.shape):
            report.wrong_shape.append(f"{key} {tuple(value.shape)} vs {tuple(model_state[key].shape)}")
        else:
            report.matched.append(key)
    report.missing = [k for k in model_state if k not in state and not k.startswith(CLASSIFIER_PREFIXES)
                      and not k.endswith("num_batches_tracked")]
    return report


def load_torchreid_weights(model, path, model_name: str) -> WeightsReport:
    """Load a checkpoint into ``model`` (classifier excluded) or refuse, naming both; returns the report."""
    state = read_torchreid_state(path)
    report = compare_weights(model.state_dict(), state, path, model_name)
    if not report.fits:
        examples = (report.missing[:2] + report.unexpected[:2] + report.wrong_shape[:1])
        raise InputError(f"--weights {path} does not fit --model {model_name}: {len(report.matched)} tensors match, "
                         f"{len(report.missing)} missing, {len(report.unexpected)} unexpected, "
                         f"{len(report.wrong_shape)} of the wrong shape (e.g. {'; '.join(examples)}); these are "
                         "weights for another architecture: pass the --model they were trained with")
    model.load_state_dict({k: state[k] for k in report.matched}, strict=False)
    return report


def build_torchreid_model(name: str):
    """``torchreid.reid.models.build_model(name, num_classes=1, pretrained=False)``, in eval mode."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torchreid warns that its Cython ranking is not compiled
            from torchreid.reid import models
    except ImportError as exc:
        raise InputError(f"torchreid cannot be imported ({exc}); pip install -r requirements.txt") from None
    names = sorted(models.__model_factory.keys()) if hasattr(models, "__model_factory") else []
    if names and name not in names:
        raise InputError(f"unknown --model {name!r}; torchreid has {', '.join(names)}, or use --model colour "
                         "(weight-free)")
    try:
        model = models.build_model(name=name, num_classes=1, pretrained=False)
    except KeyError:
        raise InputError(f"unknown --model {name!r}; use a torchreid model name (osnet_x1_0, resnet50, ...) or "
                         "colour") from None
    return model.eval()


# -------------------------------------------------------------------------------------------- preprocessing
def torchreid_transform():
    """torchreid's test transform (``build_transforms(256, 128)``'s second element), built with torchvision."""
    import torchvision.transforms as T

    return T.Compose([T.Resize(INPUT_SIZE), T.ToTensor(), T.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD)])


def pil_frame(tracklet: Tracklet, index: int):
    """Frame ``index`` as a PIL RGB image, read as torchreid reads it (``Image.open(path).convert('RGB')``)."""
    from PIL import Image

    frame = tracklet.frames[index]
    if isinstance(frame, np.ndarray):
        return Image.fromarray(np.ascontiguousarray(frame[:, :, ::-1]))
    tracklet.images([index])  # the same checks (and messages) as every other reader: bad file, mixed sizes
    with Image.open(frame) as img:
        return img.convert("RGB")


# ---------------------------------------------------------------------------------------------- extractors
class TorchreidExtractor:
    """Tracklet features of a torchreid model: batched frames, mean over frames."""

    weight_free = False

    def __init__(self, name: str, weights, device="auto", batch_size: int = 64):
        import torch

        from ..device import choose_device

        if not weights:
            raise InputError(f"--model {name} needs --weights FILE (a torchreid model-zoo checkpoint); without "
                             "weights the network is random. Use --model colour for a weight-free descriptor")
        self.name = name
        self.model = build_torchreid_model(name)
        self.report = load_torchreid_weights(self.model, weights, name)
        self.weights = str(weights)
        self.device = choose_device(device)
        self.model.to(self.device)
        self.batch_size = int(batch_size)
        self.transform = torchreid_transform()
        self._torch = torch

    def describe(self) -> dict:
        return {"model": self.name, "weights": self.weights, "weight_free": False,
                "preprocessing": "torchreid test transform: Resize(256, 128), ToTensor, ImageNet Normalize",
                "pooling": "mean over frames", "weights_report": self.report.as_dict()}

    def features(self, tracklets: list[Tracklet], seq_len: int = 0, progress: bool = False) -> np.ndarray:
        torch = self._torch
        jobs = [(t_index, f) for t_index, t in enumerate(tracklets) for f in sample_indices(len(t), seq_len)]
        sums, counts = None, np.zeros(len(tracklets), dtype=np.int64)
        batches = range(0, len(jobs), self.batch_size)
        if progress:
            from tqdm import tqdm

            batches = tqdm(batches, desc=f"{self.name} features", unit="batch", dynamic_ncols=True)
        with torch.inference_mode():
            for b in batches:
                chunk = jobs[b:b + self.batch_size]
                x = torch.stack([self.transform(pil_frame(tracklets[t], int(f))) for t, f in chunk]).to(self.device)
                out = self.model(x).float().cpu().numpy().astype(np.float64)
                if sums is None:
                    sums = np.zeros((len(tracklets), out.shape[1]))
                owners = np.asarray([t for t, _ in chunk])
                np.add.at(sums, owners, out)
                np.add.at(counts, owners, 1)
        if sums is None:
            return np.zeros((len(tracklets), 0), dtype=np.float32)
        return (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)


def colour_histogram(image: np.ndarray, stripes: int = 8, bins=(16, 8, 8)) -> np.ndarray:
    """The weight-free descriptor of one BGR crop (module docstring): (stripes × sum(bins),) float32, unit norm."""
    from .media import cv2_module

    cv2 = cv2_module()
    crop = cv2.resize(image, (INPUT_SIZE[1] // 2, INPUT_SIZE[0] // 2), interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(crop, cv2.COLOR_BGR2HSV)
    ranges = (180, 256, 256)
    edges = np.linspace(0, hsv.shape[0], stripes + 1).round().astype(int)
    parts = []
    for s in range(stripes):
        band = hsv[edges[s]:edges[s + 1]]
        for c, (n, top) in enumerate(zip(bins, ranges)):
            hist = np.bincount(((band[:, :, c].astype(np.int64) * n) // top).ravel(), minlength=n).astype(np.float64)
            parts.append(np.sqrt(hist / max(hist.sum(), 1.0)))
    vec = np.concatenate(parts)
    return (vec / np.linalg.norm(vec)).astype(np.float32)


class ColourExtractor:
    """The weight-free colour descriptor over tracklets (mean over frames)."""

    weight_free = True
    name = "colour"

    def __init__(self, stripes: int = 8):
        self.stripes = stripes

    def describe(self) -> dict:
        return {"model": "colour", "weights": None, "weight_free": True, "label": WEIGHT_FREE_LABEL,
                "description": f"HSV histograms (16/8/8 bins) over {self.stripes} horizontal stripes, Hellinger, "
                               "mean over frames (Gray & Tao 2008; Liao et al. 2015)"}

    def features(self, tracklets: list[Tracklet], seq_len: int = 0, progress: bool = False) -> np.ndarray:
        items = tracklets
        if progress:
            from tqdm import tqdm

            items = tqdm(tracklets, desc="colour histograms", unit="tracklet", dynamic_ncols=True)
        out = []
        for t in items:
            idx = sample_indices(len(t), seq_len)
            out.append(np.mean([colour_histogram(img, self.stripes) for img in t.images(idx)], axis=0))
        return np.asarray(out, dtype=np.float32).reshape(len(tracklets), -1)


def build_extractor(model: str, weights=None, device: str = "auto", batch_size: int = 64):
    """``colour`` (weight-free) or a torchreid model with ``weights``."""
    if is_colour(model):
        if weights:
            raise InputError("--weights is not used by --model colour (a weight-free descriptor)")
        return ColourExtractor()
    return TorchreidExtractor(model, weights, device=device, batch_size=batch_size)
