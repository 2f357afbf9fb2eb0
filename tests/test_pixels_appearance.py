"""Appearance embeddings: torchreid preprocessing, the safe weights loader, mean pooling, the weight-free colour
descriptor, the released CSV layout and fusion with gait embeddings. No weights are downloaded: small torchreid
models are built untrained and their state dicts saved by the tests."""

import contextlib
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from gafnet.errors import InputError

cv2 = pytest.importorskip("cv2")
pytest.importorskip("torchreid")

from gafnet.pixels import appearance  # noqa: E402
from pixels_shared import run_in_process  # noqa: E402
from gafnet.pixels.datasets import read_dataset  # noqa: E402
from gafnet.pixels.tracklet import Tracklet  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
VTEST = ROOT.parent / "shared" / "realdata" / "vtest_tracklets"
needs_real = pytest.mark.skipif(not VTEST.is_dir(), reason="../shared/realdata is absent")
SMALL = "osnet_x0_25"


def torchreid_checkpoint(path, state, numpy1_names=False):
    """A file shaped like a torchreid model-zoo checkpoint: state_dict with DataParallel prefixes, numpy scalars."""
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 60,
                "rank1": np.float64(0.943), "optimizer": None}, path)
    if numpy1_names:  # as written by numpy 1.x (the model zoo's files): numpy.core instead of numpy._core
        with zipfile.ZipFile(path) as z:
            items = {n: z.read(n) for n in z.namelist()}
        pkl = next(n for n in items if n.endswith("data.pkl"))
        assert b"numpy._core.multiarray" in items[pkl]
        items[pkl] = items[pkl].replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
        with zipfile.ZipFile(path, "w") as z:
            for n, data in items.items():
                z.writestr(n, data)
    return path


@pytest.fixture(scope="module")
def small_model_weights(tmp_path_factory):
    torch.manual_seed(0)
    model = appearance.build_torchreid_model(SMALL)
    path = tmp_path_factory.mktemp("w") / "osnet_x0_25_market.pth"
    return torchreid_checkpoint(path, model.state_dict(), numpy1_names=True), model.state_dict()


def test_safe_loader_reads_model_zoo_checkpoints_and_drops_the_classifier(small_model_weights):
    path, state = small_model_weights
    model = appearance.build_torchreid_model(SMALL)
    report = appearance.load_torchreid_weights(model, path, SMALL)
    assert report.fits and report.classifier_dropped == ["classifier.weight", "classifier.bias"]
    learned = [k for k in state if not k.endswith("num_batches_tracked")]
    assert len(report.matched) == len(learned) - 2 and not report.missing
    for key, value in model.state_dict().items():
        if not key.startswith("classifier"):
            assert torch.equal(value, state[key]), key


def test_model_zoo_checkpoints_load_with_the_torch_2_4_api(small_model_weights, monkeypatch):
    """torch 2.4 has add_safe_globals but no safe_globals (requirements.txt allows torch >= 2.4)."""
    path, state = small_model_weights
    saved = torch.serialization.get_safe_globals()
    clear, add = torch.serialization.clear_safe_globals, torch.serialization.add_safe_globals
    monkeypatch.delattr(torch.serialization, "safe_globals")
    try:
        loaded = appearance.read_torchreid_state(path)
        assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)
    finally:
        clear()  # add_safe_globals is process-wide: undo it
        add(saved)


def test_weights_of_another_architecture_are_refused_where_torchreid_says_successfully_loaded(small_model_weights):
    from torchreid.reid.utils import load_pretrained_weights

    path, _ = small_model_weights
    other = appearance.build_torchreid_model("osnet_x0_5")
    before = {k: v.clone() for k, v in other.state_dict().items()}
    plain = path.with_name("plain.pth")
    torch.save({"state_dict": torch.load(path, weights_only=False)["state_dict"]}, plain)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        load_pretrained_weights(other, str(plain))
    assert "Successfully loaded" in out.getvalue()  # ... while (nearly) every learned layer was discarded:
    learned = [k for k in before if not k.endswith("num_batches_tracked")]
    loaded = [k for k in learned if not torch.equal(before[k], other.state_dict()[k])]
    assert len(loaded) < 0.05 * len(learned), loaded
    with pytest.raises(InputError, match=r"does not fit --model osnet_x0_5: \d+ tensors match.*480 of the wrong shape.*another architecture"):
        appearance.load_torchreid_weights(other, path, "osnet_x0_5")


def test_unsafe_or_foreign_files_are_refused(tmp_path):
    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": {"a": torch.zeros(1)}, "hook": print}, evil)
    with pytest.raises(InputError, match="evil.pth: not a PyTorch checkpoint that loads safely"):
        appearance.read_torchreid_state(evil)
    text = tmp_path / "notes.pth"
    text.write_text("hello")
    with pytest.raises(InputError, match="notes.pth"):
        appearance.read_torchreid_state(text)
    with pytest.raises(InputError, match="needs --weights"):
        appearance.build_extractor(SMALL, None)
    with pytest.raises(InputError, match="unknown --model"):
        appearance.build_torchreid_model("osnet_x9")


@needs_real
def test_preprocessing_is_torchreids_test_transform_exactly():
    from PIL import Image
    from torchreid.reid.data.transforms import build_transforms

    _, transform_te = build_transforms(256, 128, transforms=None)
    path = VTEST / "T02" / "T02_f0255.jpg"
    theirs = transform_te(Image.open(path).convert("RGB"))
    t = Tracklet("T02", [path], ["a"], [0])
    ours = appearance.torchreid_transform()(appearance.pil_frame(t, 0))
    assert ours.shape == (3, 256, 128) and torch.equal(ours, theirs)


@needs_real
def test_tracklet_feature_is_the_mean_of_frame_features_and_seq_len_subsamples(small_model_weights):
    path, _ = small_model_weights
    files = sorted((VTEST / "T05").glob("*.jpg"))[:5]
    t = Tracklet("T05", files, [f.name for f in files], range(5))
    ext = appearance.TorchreidExtractor(SMALL, path, device="cpu", batch_size=3)
    feats = ext.features([t, t], seq_len=0)
    with torch.inference_mode():
        x = torch.stack([ext.transform(appearance.pil_frame(t, i)) for i in range(5)])
        per_frame = ext.model(x).numpy()
    np.testing.assert_allclose(feats[0], per_frame.mean(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(feats[1], feats[0], rtol=1e-5)
    sub = ext.features([t], seq_len=2)  # frames 0 and 4
    np.testing.assert_allclose(sub[0], per_frame[[0, 4]].mean(0), rtol=1e-4, atol=1e-5)


def test_colour_descriptor_is_unit_norm_and_sees_colour_per_stripe():
    red_top = np.zeros((128, 64, 3), np.uint8)
    red_top[:64] = (0, 0, 255)
    red_bottom = red_top[::-1].copy()
    a, b = appearance.colour_histogram(red_top), appearance.colour_histogram(red_bottom)
    assert a.shape == (8 * 32,) and abs(np.linalg.norm(a) - 1) < 1e-6
    assert np.linalg.norm(a - appearance.colour_histogram(red_top)) == 0
    assert np.linalg.norm(a - b) > 0.5  # the same colours in other stripes are another person


@needs_real
def test_colour_descriptor_re_identifies_real_vtest_tracklets():
    """First 16 frames of each real tracklet as query, last 16 as gallery (the track is the identity)."""
    from gafnet.metrics import rank_features

    tracklets = read_dataset("folders", VTEST)
    assert len(tracklets) == 11
    q = [Tracklet(t.name, t.frames[:16], t.row_names[:16], range(16)) for t in tracklets]
    g = [Tracklet(t.name, t.frames[-16:], t.row_names[-16:], range(16)) for t in tracklets]
    ext = appearance.ColourExtractor()
    result = rank_features(ext.features(q, seq_len=8), ext.features(g, seq_len=8), np.arange(11), np.arange(11),
                           np.zeros(11), np.ones(11), max_rank=5)
    assert result.cmc[0] >= 0.8  # measured 10/11 with all frames


def make_ilids_tree(root, persons=4, frames=3):
    rng = np.random.default_rng(1)
    for p in range(1, persons + 1):
        colour = rng.integers(0, 255, 3)
        for cam in (1, 2):
            folder = root / f"cam{cam}" / f"person{p:03d}"
            folder.mkdir(parents=True)
            for f in range(frames):
                img = np.clip(colour + rng.integers(-10, 10, (128, 64, 3)), 0, 255).astype(np.uint8)
                cv2.imwrite(str(folder / f"cam{cam}_person{p:03d}_{f:05d}.png"), img)
    return root


def run_tool(*args):
    return subprocess.run([sys.executable, str(ROOT / "tools" / "extract_appearance.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=600)


def run_main(capsys, *args):
    """tools/extract_appearance.py's main() in this process (torchreid is imported once)."""
    from gafnet.pixels.appearance_cli import main

    return run_in_process(main, capsys, *args)


def test_cli_writes_the_released_layout_per_split_and_fuses_with_gait(tmp_path):
    import scipy.io

    from gafnet.embeddings import read_embedding_csv, write_embedding_pair
    from gafnet.fusion import evaluate_lambdas, load_split

    seq = make_ilids_tree(tmp_path / "sequences")
    mat = tmp_path / "splits.mat"
    scipy.io.savemat(mat, {"ls_set": np.array([[1, 2, 3, 4], [3, 4, 1, 2]])})
    out = tmp_path / "embeddings" / "ilids" / "colour"
    r = run_tool("ilids-vid", seq, "--splits", mat, "--model", "colour", "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    assert "WEIGHT-FREE" in r.stdout
    q = read_embedding_csv(out / "query_split1.csv")
    g = read_embedding_csv(out / "gallery_split1.csv")
    assert q.pids.tolist() == [3, 4] and q.camids.tolist() == [1, 1] and g.camids.tolist() == [2, 2]
    header = (out / "query_split0.csv").read_text().splitlines()[0].split(",")
    assert header[0] == "index" and header[1] == "feat_0" and header[-2:] == ["person_id", "camera_id"]
    manifest = json.loads((out / "manifest_split0.json").read_text())
    assert manifest["complete"] and manifest["provenance"]["weight_free"] is True
    # gait embeddings for the same tracklets; the root evaluate.py's library fuses them
    rng = np.random.default_rng(0)
    for split, ids in ((0, [1, 2]), (1, [3, 4])):
        write_embedding_pair(tmp_path / "embeddings" / "ilids" / "gait", split,
                             (rng.normal(size=(2, 8)), ids, [1, 1]), (rng.normal(size=(2, 8)), ids[::-1], [2, 2]))
    data = load_split(tmp_path / "embeddings", "colour", "gait", 1)
    results = evaluate_lambdas(data, [0.0, 0.74])
    assert results[0].cmc[0] == 1.0  # appearance alone: distinct colours per person


def test_cli_bad_inputs_exit_2_and_write_nothing(tmp_path, small_model_weights, capsys):
    seq = make_ilids_tree(tmp_path / "sequences", persons=2, frames=2)
    out = tmp_path / "out"
    for args, message in [
        (("ilids-vid", seq, "--model", "osnet_x0_5", "--weights", small_model_weights[0]), "does not fit --model osnet_x0_5"),
        (("ilids-vid", seq, "--model", SMALL), "needs --weights"),
        (("mars", seq, "--model", "colour"), "mars layout"),
        (("prid2011", seq, "--model", "colour", "--splits", "x.mat"), "--splits is for ilids-vid"),
        (("ilids-vid", seq, "--model", "colour", "--splits", tmp_path / "none.mat"), "none.mat: file not found"),
    ]:
        code, _, err = run_main(capsys, *args, "--out", out, "--quiet")
        assert code == 2 and message in err and "Traceback" not in err, (args, err)
        assert not out.exists()


def test_cli_with_a_torchreid_model_on_prid_layout(tmp_path, small_model_weights, capsys):
    root = tmp_path / "multi_shot"
    for cam in ("cam_a", "cam_b"):
        for p in (1, 2):
            folder = root / cam / f"person_{p:04d}"
            folder.mkdir(parents=True)
            for f in (1, 2):
                cv2.imwrite(str(folder / f"{f:04d}.png"), np.full((128, 64, 3), 40 * p, np.uint8))
    out = tmp_path / "emb"
    code, stdout, err = run_main(capsys, "prid2011", root, "--model", SMALL, "--weights", small_model_weights[0],
                                 "--out", out, "--quiet", "--device", "cpu", "--seq_len", "1")
    assert code == 0, err
    assert "tensors matched" in stdout
    from gafnet.embeddings import read_embedding_csv

    q = read_embedding_csv(out / "query.csv")
    assert q.features.shape == (2, 512) and q.camids.tolist() == [1, 1]
