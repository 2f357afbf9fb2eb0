"""Gait extraction (gaitgraph/src/evaluate.py): equals the original computation, writes what the fusion reads."""

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gafnet.embeddings import read_embedding_csv
from gafnet.gait import synthetic_poses
from gafnet.gait.checkpoint import save_checkpoint
from gafnet.gait.evaluate_cli import main as extract_main
from gafnet.gait.extraction import extract_embeddings, window_starts
from gafnet.gait.poses import load_poses, write_pose_csv
from gafnet.gait.resgcn import build_model

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"


def original_checkpoint(path: Path) -> dict:
    """An original-format GaitGraph checkpoint: {"opt": Namespace, "model": state_dict, ...}."""
    ref = np.load(DATA / "resgcn_n39_r8.npz")
    state = {k[3:]: torch.from_numpy(ref[k]) for k in ref.files if k.startswith("sd/")}
    opt = argparse.Namespace(network_name="resgcn-n39-r8", embedding_layer_size=128, sequence_length=60,
                             use_multi_branch=False, temp=0.01)
    torch.save({"opt": opt, "model": state, "optimizer": {}, "scheduler": {}, "scaler": {}, "epoch": 7}, path)
    return {"input": ref["input"], "output": ref["output"]}


def test_original_checkpoint_reproduces_the_original_embeddings(tmp_path):
    ref = original_checkpoint(tmp_path / "gaitgraph.pth")
    x = ref["input"]  # (4, 1, 3, 60, 17): the centre windows
    names, frames = [], []
    for i in range(4):
        seq = np.transpose(x[i, 0], (1, 2, 0))  # (60, 17, 3)
        seq = np.concatenate([seq[:1] + 5, seq, seq[-1:] - 5])  # one foreign frame each side: T = 62
        frames.append(seq)
        names += [f"cam{1 + i % 2}_person{i // 2 + 1:03d}_{f:05d}.png" for f in range(len(seq))]
    write_pose_csv(tmp_path / "test_split3.csv", names, np.concatenate(frames), xy_decimals=9, conf_decimals=9)
    assert extract_main(["iLIDS", str(tmp_path / "test_split3.csv"), "--weight_path", str(tmp_path / "gaitgraph.pth"),
                         "--output_dir", str(tmp_path / "out"), "--quiet", "--device", "cpu"]) == 0
    query = read_embedding_csv(tmp_path / "out" / "query_split3.csv")
    gallery = read_embedding_csv(tmp_path / "out" / "gallery_split3.csv")
    np.testing.assert_array_equal(query.camids, [1, 1])
    np.testing.assert_array_equal(gallery.camids, [2, 2])
    np.testing.assert_allclose(query.features, ref["output"][[0, 2]], atol=1e-5)
    np.testing.assert_allclose(gallery.features, ref["output"][[1, 3]], atol=1e-5)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    model = build_model("resgcn-n39-r8", 1, 3, 16)
    args = {"network_name": "resgcn-n39-r8", "num_input_branches": 1, "num_channels": 3, "embedding_size": 16}
    save_checkpoint(out / "tiny.pt", model_args=args, model_state=model.state_dict(), run_args={}, epoch=1,
                    best_metric=0.0, extra={"preprocessing": {"sequence_length": 12, "normalize_pose": "off",
                                                              "multi_branch": False, "all_angles": False}})
    return out / "tiny.pt", model


@pytest.fixture(scope="module")
def ilids_poses(tmp_path_factory):
    out = tmp_path_factory.mktemp("ilids")
    synthetic_poses.write_ilids_pose_splits(out, num_ids=10, num_splits=1, seed=2)
    return out / "test_split0.csv"


def test_every_tracklet_gets_an_embedding_and_the_fusion_reads_them(tiny_checkpoint, ilids_poses, tmp_path, capsys):
    ckpt, _ = tiny_checkpoint
    assert extract_main(["iLIDS", str(ilids_poses), "--weight_path", str(ckpt), "--output_dir", str(tmp_path),
                         "--batch_size", "1", "--quiet", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "gait only, split 0" in out and "Rank-1" in out and "mAP" in out
    q = read_embedding_csv(tmp_path / "query_split0.csv")
    g = read_embedding_csv(tmp_path / "gallery_split0.csv")
    assert len(q) == len(g) == 5 and q.dim == 16
    header = (tmp_path / "query_split0.csv").read_text().splitlines()[0].split(",")
    assert header[0] == "feat_0" and header[-2:] == ["person_id", "camera_id"]
    np.testing.assert_allclose(np.linalg.norm(q.features, axis=1), 1, atol=1e-5)


def test_batch_size_does_not_change_embeddings_and_tta_options_work(tiny_checkpoint, ilids_poses):
    _, model = tiny_checkpoint
    poses = load_poses(ilids_poses, "iLIDS", sequence_length=12)
    a = extract_embeddings(model, poses, sequence_length=12, batch_size=1)
    b = extract_embeddings(model, poses, sequence_length=12, batch_size=7)
    np.testing.assert_allclose(a, b, atol=1e-5)
    flip = extract_embeddings(model, poses, sequence_length=12, tta="time_flip")
    every = extract_embeddings(model, poses, sequence_length=12, windows="all")
    for e in (flip, every):
        np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1, atol=1e-5)
        assert not np.allclose(e, a)
    # brute force: time_flip = normalised mean of the window and its reverse
    seq = poses.sequence(0)
    start = window_starts(len(seq), 12)[0]
    w = seq[start:start + 12]
    with torch.inference_mode():
        outs = [model.eval()(torch.from_numpy(np.ascontiguousarray(v.transpose(2, 0, 1))[None, None].copy()))
                for v in (w, w[::-1])]
    mean = (outs[0] + outs[1]).numpy()[0] / 2
    np.testing.assert_allclose(flip[0], mean / np.linalg.norm(mean), atol=1e-5)


def test_sliding_windows_cover_the_tracklet():
    assert window_starts(100, 60, "center") == [20]
    assert window_starts(100, 60, "all") == [0, 30, 40]
    assert window_starts(60, 60, "all") == [0]


def run_script(*args, timeout=300):
    return subprocess.run([sys.executable, str(ROOT / "gaitgraph" / "src" / "evaluate.py"), *args],
                          capture_output=True, text=True, timeout=timeout)


def test_a_flag_that_disagrees_with_the_checkpoint_is_an_error(tiny_checkpoint, ilids_poses, tmp_path):
    ckpt, _ = tiny_checkpoint
    r = run_script("iLIDS", str(ilids_poses), "--weight_path", str(ckpt), "--embedding_layer_size", "128",
                   "--output_dir", str(tmp_path))
    assert r.returncode == 2 and "128" in r.stderr and "16" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "query_split0.csv").exists()


def test_split_number_must_be_known(tiny_checkpoint, ilids_poses, tmp_path):
    ckpt, _ = tiny_checkpoint
    renamed = tmp_path / "poses.csv"
    renamed.write_bytes(ilids_poses.read_bytes())
    r = run_script("iLIDS", str(renamed), "--weight_path", str(ckpt), "--output_dir", str(tmp_path))
    assert r.returncode == 2 and "--split" in r.stderr


def test_a_missing_pose_file_is_named_first(tiny_checkpoint, tmp_path, capsys):
    ckpt, _ = tiny_checkpoint
    with pytest.raises(SystemExit) as exited:
        extract_main(["iLIDS", str(tmp_path / "nope.csv"), "--weight_path", str(ckpt)])
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "data_path" in err[0] and "not found" in err[0] and "nope.csv" in err[0]


def test_casia_b_mode_writes_the_protocol_table(tiny_checkpoint, tmp_path, capsys):
    ckpt, _ = tiny_checkpoint
    synthetic_poses.write_casia_pose_csv(tmp_path / "casia.csv", subjects=range(75, 78), seed=1)
    assert extract_main(["casia-b", str(tmp_path / "casia.csv"), "--weight_path", str(ckpt), "--output_dir",
                         str(tmp_path), "--quiet", "--device", "cpu"]) == 0
    table = (tmp_path / "casia_b_table.csv").read_text().splitlines()
    assert table[0].startswith("condition,0,18") and [l.split(",")[0] for l in table[1:4]] == ["NM", "BG", "CL"]


def test_mars_mode_runs_both_protocols(tiny_checkpoint, tmp_path, capsys):
    ckpt, _ = tiny_checkpoint
    synthetic_poses.write_mars_pose_tree(tmp_path / "mars", num_ids=8, seed=1)
    test_csv = tmp_path / "mars" / "test.csv"
    poses = load_poses(test_csv, "mars", sequence_length=12)
    keys = poses.targets
    rows = [k for k in keys.tolist() if k[0] > 0]
    seen, queries = set(), []
    for person, cam, tracklet in rows:  # one query tracklet per person
        if person not in seen:
            seen.add(person)
            queries.append((person, cam, tracklet))
    qlist = tmp_path / "queries.csv"
    qlist.write_text("person_id,camera_id,tracklet\n" + "".join(f"{p},{c},{t}\n" for p, c, t in queries))
    for protocol in ("torchreid", "official"):
        assert extract_main(["mars", str(test_csv), "--weight_path", str(ckpt), "--query_list", str(qlist),
                             "--protocol", protocol, "--quiet", "--device", "cpu"]) == 0
        assert f"MARS ({protocol} protocol)" in capsys.readouterr().out


PSYMO = ROOT.parent / "shared" / "realdata" / "psymo_skeletons_excerpt" / "skeletons"


@pytest.mark.skipif(not PSYMO.is_dir(), reason="the PsyMo excerpt (../shared/realdata) is not present")
def test_real_psymo_walks_extract_without_dropping_anything(tiny_checkpoint, tmp_path, capsys):
    from gafnet.gait import psymo
    ckpt, _ = tiny_checkpoint
    written = psymo.convert_psymo(PSYMO, tmp_path / "csv")
    files = sorted((tmp_path / "csv").glob("*.csv"))
    assert files, written
    total = 0
    for i, f in enumerate(files):
        poses = load_poses(f, "iLIDS", sequence_length=60)
        assert poses.report.bad_rows == 0
        assert extract_main(["iLIDS", str(f), "--weight_path", str(ckpt), "--split", str(i), "--output_dir",
                             str(tmp_path / "emb"), "--quiet", "--device", "cpu", "--sequence_length", "12"]) == 0
        total += len(read_embedding_csv(tmp_path / "emb" / f"query_split{i}.csv")) + \
            len(read_embedding_csv(tmp_path / "emb" / f"gallery_split{i}.csv"))
    assert total == 40  # 10 subjects x 4 walks, none dropped



# ---------------------------------------------------------------------------------------------------------------
# Help, defaults, small galleries, collapse (issues 9 and 15)


def test_help_says_the_checkpoint_decides_and_where_the_output_goes():
    from gafnet.gait.evaluate_cli import build_parser

    text = " ".join(build_parser().format_help().split())
    for flag in ("--sequence_length", "--normalize_pose", "--network_name", "--embedding_layer_size",
                 "--use_multi_branch"):
        entry = text.split(flag, 2)[-1][:200]
        assert "default: from the checkpoint" in entry, flag
    assert "gait_embeddings/ at the repository root" in text
    assert build_parser().parse_args(["iLIDS", "x.csv", "--weight_path", "w"]).output_dir == str(ROOT / "gait_embeddings")


def test_a_five_identity_tree_extracts_end_to_end_with_only_the_ranks_it_has(tiny_checkpoint, ilids_poses, tmp_path,
                                                                             capsys):
    """5 test identities: a gallery of 5 tracklets has Rank-1 and Rank-5, no Rank-10 or Rank-20 (issue 15)."""
    ckpt, _ = tiny_checkpoint
    assert extract_main(["iLIDS", str(ilids_poses), "--weight_path", str(ckpt), "--output_dir", str(tmp_path),
                         "--quiet", "--device", "cpu"]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("gait only"))
    assert "Rank-1 " in line and "Rank-5 " in line and "Rank-10" not in line and "Rank-20" not in line
    assert "(5 of 5 queries with a valid match)" in line


def test_constant_embeddings_are_reported_as_collapsed(ilids_poses, tmp_path, capsys):
    torch.manual_seed(0)
    model = build_model("resgcn-n39-r8", 1, 3, 16)
    with torch.no_grad():
        model.fcn.weight.zero_()
        model.fcn.bias.copy_(torch.arange(16.0))  # every sequence gets the same embedding
    args = {"network_name": "resgcn-n39-r8", "num_input_branches": 1, "num_channels": 3, "embedding_size": 16}
    save_checkpoint(tmp_path / "flat.pt", model_args=args, model_state=model.state_dict(), run_args={}, epoch=1,
                    best_metric=0.0, extra={"preprocessing": {"sequence_length": 12, "normalize_pose": "off"}})
    assert extract_main(["iLIDS", str(ilids_poses), "--weight_path", str(tmp_path / "flat.pt"), "--output_dir",
                         str(tmp_path), "--quiet", "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "collapsed" in err and "mean cosine similarity between them 1.0000000" in err and str(ilids_poses) in err


# ---------------------------------------------------------------------------------------------------------------
# Hostile checkpoints and faults (issue 10)


@pytest.mark.parametrize("preprocessing, message", [
    ({"sequence_length": 10_000_000}, "sequence_length must be an integer from 1 to 1000"),
    ({"sequence_length": "60"}, "sequence_length must be an integer"),
    ({"sequence_length": 12, "normalize_pose": "weird"}, "normalize_pose must be one of off, sequence, frame"),
    ({"sequence_length": 12, "multi_branch": "yes"}, "multi_branch must be true or false"),
    ({"sequence_length": 12, "all_angles": 1}, "all_angles must be true or false"),
])
def test_bad_preprocessing_in_a_checkpoint_is_one_line(tiny_checkpoint, ilids_poses, tmp_path, capsys,
                                                       preprocessing, message):
    _, model = tiny_checkpoint
    args = {"network_name": "resgcn-n39-r8", "num_input_branches": 1, "num_channels": 3, "embedding_size": 16}
    save_checkpoint(tmp_path / "bad.pt", model_args=args, model_state=model.state_dict(), run_args={}, epoch=1,
                    best_metric=0.0, extra={"preprocessing": preprocessing})
    with pytest.raises(SystemExit) as info:
        extract_main(["iLIDS", str(ilids_poses), "--weight_path", str(tmp_path / "bad.pt"), "--output_dir",
                      str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and len(err) == 1 and message in err[0] and "bad.pt" in err[0]
    assert not (tmp_path / "out").exists()


def test_a_fifo_as_weights_or_poses_is_refused_without_hanging(tiny_checkpoint, ilids_poses, tmp_path, capsys):
    import os
    import threading

    class FifoWatchdog:  # opens the FIFO's write end after 20 s: releases (and records) a reader blocked in open()
        def __init__(self, path):
            self.path, self.released, self.timer = path, False, threading.Timer(20.0, self.release)

        def release(self):
            try:
                os.close(os.open(self.path, os.O_WRONLY | os.O_NONBLOCK))
                self.released = True
            except OSError:
                pass

        def __enter__(self):
            self.timer.start()
            return self

        def __exit__(self, *exc):
            self.timer.cancel()

    ckpt, _ = tiny_checkpoint
    os.mkfifo(tmp_path / "f.pt")
    os.mkfifo(tmp_path / "test_split0.csv")
    for data, weights, fifo in ((ilids_poses, tmp_path / "f.pt", tmp_path / "f.pt"),
                                (tmp_path / "test_split0.csv", ckpt, tmp_path / "test_split0.csv")):
        with FifoWatchdog(fifo) as watchdog, pytest.raises(SystemExit) as info:
            extract_main(["iLIDS", str(data), "--weight_path", str(weights), "--output_dir", str(tmp_path / "out")])
        assert not watchdog.released, f"blocked on the FIFO {fifo}"
        err = capsys.readouterr().err.strip().splitlines()
        assert info.value.code == 2 and len(err) == 1 and "not a regular file" in err[0]


def test_the_pair_carries_its_provenance(tiny_checkpoint, ilids_poses, tmp_path):
    import hashlib
    import json

    ckpt, _ = tiny_checkpoint
    assert extract_main(["iLIDS", str(ilids_poses), "--weight_path", str(ckpt), "--output_dir", str(tmp_path),
                         "--quiet", "--device", "cpu"]) == 0
    manifest = json.loads((tmp_path / "manifest_split0.json").read_text())
    assert manifest["complete"] is True
    prov = manifest["provenance"]
    assert prov["checkpoint"] == str(ckpt.resolve())
    assert prov["checkpoint_sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert prov["model_args"]["embedding_size"] == 16 and prov["preprocessing"]["sequence_length"] == 12
    for name in ("query_split0.csv", "gallery_split0.csv"):
        assert manifest["files"][name]["sha256"] == hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()


KILL_BEFORE_GALLERY = """
import os, signal, sys
import gafnet.embeddings as E
real = E.write_embedding_csv
def write(path, *a, **k):
    if "gallery" in str(path):
        os.kill(os.getpid(), signal.SIGKILL)  # killed between the two files
    return real(path, *a, **k)
E.write_embedding_csv = write
from gafnet.gait.evaluate_cli import main
sys.argv = ["evaluate.py"] + sys.argv[1:]
sys.exit(main())
"""


def test_a_kill_between_the_two_files_leaves_a_pair_the_fusion_refuses(tiny_checkpoint, ilids_poses, tmp_path):
    """Model A writes a complete pair; model B is killed after its query file: the folder holds B's query and A's
    gallery, and reading them as a pair is refused (it used to be fused without a word)."""
    from gafnet.embeddings import check_pair
    from gafnet.errors import InputError

    ckpt_a, model = tiny_checkpoint
    assert extract_main(["iLIDS", str(ilids_poses), "--weight_path", str(ckpt_a), "--output_dir", str(tmp_path),
                         "--quiet", "--device", "cpu"]) == 0
    torch.manual_seed(1)
    args = {"network_name": "resgcn-n39-r8", "num_input_branches": 1, "num_channels": 3, "embedding_size": 16}
    save_checkpoint(tmp_path / "b.pt", model_args=args, model_state=build_model("resgcn-n39-r8", 1, 3, 16).state_dict(),
                    run_args={}, epoch=1, best_metric=0.0, extra={"preprocessing": {"sequence_length": 12}})
    gallery_a = (tmp_path / "gallery_split0.csv").read_bytes()
    killed = subprocess.run([sys.executable, "-c", KILL_BEFORE_GALLERY, "iLIDS", str(ilids_poses), "--weight_path",
                             str(tmp_path / "b.pt"), "--output_dir", str(tmp_path), "--quiet", "--device", "cpu"],
                            env={**__import__("os").environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                            timeout=300)
    assert killed.returncode == -9, killed.stderr
    assert (tmp_path / "gallery_split0.csv").read_bytes() == gallery_a  # A's gallery, B's query
    query = read_embedding_csv(tmp_path / "query_split0.csv", digest=True)
    gallery = read_embedding_csv(tmp_path / "gallery_split0.csv", digest=True)
    with pytest.raises(InputError, match="did not finish"):
        check_pair(query, gallery)


def test_a_failed_write_is_one_line_and_the_pair_stays_marked_unfinished(tiny_checkpoint, ilids_poses, tmp_path,
                                                                          monkeypatch, capsys):
    """The gallery file cannot be written (e.g. a full disk): one line, exit 2, and the manifest still says the
    pair is unfinished, so the fusion refuses the lone query file."""
    import errno
    import json

    import gafnet.atomic as atomic

    ckpt, _ = tiny_checkpoint
    real_replace = atomic.os.replace

    def replace(src, dst):
        if "gallery" in str(dst):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace)
    with pytest.raises(SystemExit) as info:
        extract_main(["iLIDS", str(ilids_poses), "--weight_path", str(ckpt), "--output_dir", str(tmp_path),
                      "--quiet", "--device", "cpu"])
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("warning:")]
    assert info.value.code == 2 and len(err) == 1 and "No space left on device" in err[0], err
    assert "nothing was written" not in err[0] and "query_split0.csv was, so the pair in" in err[0], err[0]
    assert json.loads((tmp_path / "manifest_split0.json").read_text())["complete"] is False
    assert not (tmp_path / "gallery_split0.csv").exists() and not list(tmp_path.glob(".*.tmp"))


def test_a_really_full_disk_is_one_line(tiny_checkpoint, ilids_poses, small_disk, capsys):
    """A tmpfs with room for the manifest and the query file only (tests/conftest.py: skipped where a tmpfs cannot
    be mounted; fails if a file in it is left open)."""
    import os

    ckpt, _ = tiny_checkpoint
    mount = small_disk("256k")
    st = os.statvfs(mount)
    (mount / "filler").write_bytes(b"x" * (st.f_bavail * st.f_frsize - 2 * st.f_frsize))  # two pages left
    with pytest.raises(SystemExit) as info:
        extract_main(["iLIDS", str(ilids_poses), "--weight_path", str(ckpt), "--output_dir", str(mount / "out"),
                      "--quiet", "--device", "cpu"])
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("warning:")]
    assert info.value.code == 2 and len(err) == 1, err
    assert "cannot write" in err[0] and "No space left on device" in err[0]
    assert not list((mount / "out").glob(".*.tmp"))
