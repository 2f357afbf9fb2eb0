"""Layout checks of the data trees (gafnet.data.verify): present, missing, malformed, and the message."""

from __future__ import annotations

import argparse
import builtins
import json
import os
import pickle
import zipfile
from pathlib import Path

import pytest
import torch

from gafnet.data import verify
from gafnet.data.verify import (
    MANIFEST_NAME,
    check_casia_b,
    check_embeddings,
    check_gafnet,
    check_poses,
    check_weights,
    csv_problem,
    torch_file_problem,
)
from gafnet.errors import InputError
from gafnet.layout import (
    embedding_csv,
    expected_embedding_files,
    expected_pose_files,
    pose_csv,
)

GOOD_CSV = "index,feat_0,feat_1,person_id,camera_id\n0,0.1,0.2,1,1\n"


def write_release_tree(root: Path) -> None:
    """A tiny but complete released tree: 100 embedding CSVs and 40 pose CSVs."""
    for path in expected_embedding_files(root / "embeddings") + expected_pose_files(root / "poses"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(GOOD_CSV)


def test_a_complete_tree_is_ok(tmp_path):
    write_release_tree(tmp_path)
    embeddings, poses = check_gafnet(tmp_path)
    assert embeddings.ok and poses.ok
    assert len(embeddings.present) == 100 and len(poses.present) == 40
    assert "OK, 100 files" in embeddings.summary()
    embeddings.raise_if_incomplete()  # no exception


def test_a_missing_tree_says_where_and_how_to_get_it(tmp_path):
    report = check_embeddings(tmp_path / "embeddings")
    assert not report.ok and len(report.missing) == 100
    text = report.summary()
    assert "0 of 100 files present, 100 missing" in text
    assert "python -m gafnet.data download gafnet" in text
    assert "--from-zip" in text


def test_a_folder_missing_entirely_is_one_line(tmp_path):
    write_release_tree(tmp_path)
    for path in (tmp_path / "embeddings" / "ilids" / "gait2").iterdir():
        path.unlink()
    report = check_embeddings(tmp_path / "embeddings")
    assert len(report.missing) == 20
    lines = [line for line in report.summary().splitlines() if "missing:" in line]
    assert lines == [f"  missing: {tmp_path / 'embeddings' / 'ilids' / 'gait2'}/ (all 20 files)"]


def test_a_single_missing_file_is_named(tmp_path):
    write_release_tree(tmp_path)
    gone = embedding_csv(tmp_path / "embeddings", "osnet", "gallery", 7)
    gone.unlink()
    report = check_embeddings(tmp_path / "embeddings")
    assert report.missing == [gone]
    assert f"missing: {gone}" in report.summary()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty file"),
        (b"index,feat_0,person_id,camera_id\n", "header only"),
        (b"index,feat_0,person_id,camera_id", "header only"),
        (b"index,feat_0,person_id,camera_id\n\n  \n", "header only"),
        (b"\x00\x01\x02binary,\n1,2\n", "binary"),
        (b"\xff\xfe,not utf8\n1,2\n", "not UTF-8"),
        (b"<!DOCTYPE html>\n<html><title>Quota exceeded</title>\n", "HTML page"),
        (b"just one column\nvalue\n", "no comma"),
    ],
)
def test_malformed_files_are_reported_with_a_reason(tmp_path, content, reason):
    write_release_tree(tmp_path)
    bad = pose_csv(tmp_path / "poses", "splits_mgh", "test", 3)
    bad.write_bytes(content)
    report = check_poses(tmp_path / "poses")
    assert not report.ok and not report.missing
    assert [m.path for m in report.malformed] == [bad]
    assert reason in report.malformed[0].reason
    assert bad not in report.present
    assert f"malformed: {bad}: " in report.summary()


def test_a_directory_where_a_file_belongs_is_malformed(tmp_path):
    write_release_tree(tmp_path)
    path = pose_csv(tmp_path / "poses", "splits_pit", "train", 0)
    path.unlink()
    path.mkdir()
    report = check_poses(tmp_path / "poses")
    assert report.malformed[0].reason == "not a regular file"


def test_a_long_header_is_fine(tmp_path):
    """A 9216-d appearance header is ~80 kB on one line: that is a normal CSV."""
    path = tmp_path / "wide.csv"
    header = ",".join(["index", *(f"feat_{i}" for i in range(9216)), "person_id", "camera_id"])
    path.write_text(header + "\n" + ",".join("0" for _ in range(9219)) + "\n")
    assert csv_problem(path) is None


def test_summary_caps_the_number_of_lines(tmp_path):
    write_release_tree(tmp_path)
    for path in expected_embedding_files(tmp_path / "embeddings")[::2]:
        path.write_bytes(b"")
    report = check_embeddings(tmp_path / "embeddings")
    assert len(report.malformed) == 50
    text = report.summary(max_lines=5)
    assert text.count("malformed: ") == 5
    assert "... and 45 more" in text


def test_raise_if_incomplete_gives_the_summary_as_an_input_error(tmp_path):
    report = check_embeddings(tmp_path / "embeddings", folders=("pit", "gait1"))
    with pytest.raises(InputError) as info:
        report.raise_if_incomplete()
    assert str(info.value) == report.summary()
    assert len(report.missing) == 40


def test_only_the_requested_folders_and_splits_are_checked(tmp_path):
    for split in (0, 1):
        for kind in ("query", "gallery"):
            for folder in ("pit", "gait1"):
                path = embedding_csv(tmp_path, folder, kind, split)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(GOOD_CSV)
    assert check_embeddings(tmp_path, folders=("pit", "gait1"), splits=[0, 1]).ok
    assert not check_embeddings(tmp_path, folders=("pit", "mgh"), splits=[0, 1]).ok


def test_passing_the_repository_root_instead_of_embeddings_is_explained(tmp_path):
    write_release_tree(tmp_path)
    report = check_embeddings(tmp_path)
    assert not report.ok
    assert f"pass {tmp_path / 'embeddings'} as the embeddings root" in report.summary()


def test_a_full_check_reads_only_the_first_lines(tmp_path, monkeypatch):
    """What makes the check take milliseconds on a 400 MB tree: per file, the first line and 4 kB more are
    read, never the body (here 1 MB of rows behind a realistic ~80 kB header). Counted, not timed: timing
    belongs in benchmarks, and the cores are shared."""
    header = ",".join(["index", *(f"feat_{i}" for i in range(9216))]) + "\n"
    body = "0," * 9215 + "0\n"
    files = expected_embedding_files(tmp_path / "embeddings") + expected_pose_files(tmp_path / "poses")
    for path in files:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(header + body * 55)  # ~1 MB
    read: dict[str, int] = {}

    class Counting:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def readline(self, *args):
            line = self.handle.readline(*args)
            read[self.handle.name] = read.get(self.handle.name, 0) + len(line)
            return line

        def read(self, *args):
            data = self.handle.read(*args)
            read[self.handle.name] = read.get(self.handle.name, 0) + len(data)
            return data

    monkeypatch.setattr(verify, "open", lambda path, mode="r": Counting(builtins.open(path, mode)), raising=False)
    assert all(r.ok for r in check_gafnet(tmp_path))
    assert sorted(read) == sorted(str(p) for p in files)
    assert max(read.values()) <= len(header) + 4096


def test_casia_b_without_manifest_is_checked_generically(tmp_path):
    root = tmp_path / "casia-b"
    assert not check_casia_b(root).ok  # no directory at all
    root.mkdir()
    report = check_casia_b(root)
    assert not report.ok and report.missing == [root / "*.csv"]
    (root / "casia-b_pose_test.csv").write_text("image_name,x0,y0,c0\nframes/001-nm-01-090/000042.jpg,1,2,0.9\n")
    report = check_casia_b(root)
    assert report.ok
    notes = " ".join(report.notes)
    assert "unpacked by hand" in notes and "casia-b_pose_train_valid.csv" in notes


def test_casia_b_with_manifest_needs_every_file_at_its_size(tmp_path):
    root = tmp_path / "casia-b"
    root.mkdir()
    content = "image_name,x0\nframes/001-nm-01-090/000042.jpg,1\n"
    for name in ("casia-b_pose_train_valid.csv", "casia-b_pose_test.csv"):
        (root / name).write_text(content)
    files = {"casia-b_pose_train_valid.csv": len(content), "casia-b_pose_test.csv": len(content),
             "readme.txt": 3}
    (root / MANIFEST_NAME).write_text(json.dumps({"source": "data.zip", "files": files}))
    report = check_casia_b(root)
    assert report.missing == [root / "readme.txt"]
    (root / "readme.txt").write_text("abcd")
    report = check_casia_b(root)
    assert [m.path for m in report.malformed] == [root / "readme.txt"]
    assert "size 4 bytes, the archive had 3" in report.malformed[0].reason
    (root / "readme.txt").write_text("abc")
    assert check_casia_b(root).ok and not check_casia_b(root).notes


@pytest.mark.parametrize(
    ("content", "ok", "reason"),
    [
        (b"PK\x03\x04rest of a torch zip", False, "truncated or corrupt zip container"),
        (b"\x80\x02legacy pickle", False, "pickle stream ends early"),
        (b"", False, "empty"),
        (b"<!DOCTYPE html><html>Not Found</html>", False, "HTML page"),
        (b"garbage", False, "not a PyTorch checkpoint"),
    ],
)
def test_weights_check(tmp_path, content, ok, reason):
    path = tmp_path / "weights" / "w.pth"
    assert check_weights(path).missing == [path]
    path.parent.mkdir()
    path.write_bytes(content)
    report = check_weights(path)
    assert report.ok is ok
    if reason:
        assert reason in report.malformed[0].reason


# --------------------------------------------------------------------------------------------------
# A checkpoint must be a complete torch.save file (issue 10: a truncated .pth was reported OK)


def gaitgraph_like_checkpoint() -> dict:
    """The shape of GaitGraph's released file: {"opt": Namespace, "model": state_dict, "optimizer": state}."""
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3), torch.nn.BatchNorm2d(16), torch.nn.Linear(16, 128))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    model[2](torch.randn(2, 16)).sum().backward()
    optimizer.step()
    return {"opt": argparse.Namespace(network_name="resgcn-n39-r8", sequence_length=60),
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": 500,
            "half": torch.ones(3, dtype=torch.float16), "index": torch.arange(5)}


@pytest.fixture(scope="module", params=["zip", "legacy"])
def torch_file(request, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / f"{request.param}.pth"
    torch.save(gaitgraph_like_checkpoint(), path, _use_new_zipfile_serialization=request.param == "zip")
    return path


def cut_points(size: int) -> list[int]:
    """Start, inside the pickles, inside the tensor data, and every one of the last 40 bytes (the zip
    directory, the last storage)."""
    return sorted({1, 2, 8, 64, 200, 1000, size // 4, size // 3, size // 2, (3 * size) // 4,
                   *range(size - 40, size)})


def test_a_complete_torch_file_is_ok(torch_file):
    assert check_weights(torch_file).ok
    assert torch_file_problem(torch_file) is None


def test_a_truncated_torch_file_is_malformed_at_every_cut_point(torch_file, tmp_path):
    data = torch_file.read_bytes()
    passed = []
    for cut in cut_points(len(data)):
        half = tmp_path / "half.pth"
        half.write_bytes(data[:cut])
        report = check_weights(half)
        if report.ok or "truncated" not in report.malformed[0].reason:
            passed.append(cut)
    assert passed == []


def test_a_zip_container_missing_a_tensor_is_malformed(tmp_path):
    source = tmp_path / "full.pth"
    torch.save({"w": torch.ones(10), "b": torch.zeros(4)}, source)
    with zipfile.ZipFile(source) as full, zipfile.ZipFile(tmp_path / "gap.pth", "w") as gap:
        for info in full.infolist():
            if not info.filename.endswith("/data/1"):
                gap.writestr(info, full.read(info))
    assert "tensor data full/data/1 is missing" in torch_file_problem(tmp_path / "gap.pth")  # torch names it "full"


def test_a_zip_that_is_not_a_torch_file_is_malformed(tmp_path):
    path = tmp_path / "w.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    assert "without data.pkl" in torch_file_problem(path)


@pytest.mark.parametrize("container", ["legacy", "zip"])
def test_checking_a_malicious_pickle_runs_none_of_it(tmp_path, container):
    """The check reads a pickle's structure only: an os.system payload is never called."""
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    path = tmp_path / "evil.pth"
    if container == "legacy":
        path.write_bytes(pickle.dumps(Payload(), protocol=2))
    else:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("archive/data.pkl", pickle.dumps({"model": Payload()}, protocol=2))
    torch_file_problem(path)
    assert not marker.exists()
    assert check_weights(path).ok is (container == "zip")  # a complete container; loading it is checkpoint.py's job


def test_summary_with_no_problem_lines_allowed_counts_right(tmp_path):
    text = check_embeddings(tmp_path / "embeddings").summary(max_lines=-3)
    assert "... and 1 more" in text  # one grouped "does not exist" line, none shown


def test_forged_checkpoints_are_reported_not_raised(tmp_path):
    """A legacy file whose storage length is negative, and a zip whose data.pkl claims 300 MB."""
    legacy = tmp_path / "legacy.pth"
    torch.save({"w": torch.ones(4)}, legacy, _use_new_zipfile_serialization=False)
    raw = bytearray(legacy.read_bytes())
    raw[-(8 + 16):-16] = (-1).to_bytes(8, "little", signed=True)  # the element count of the one storage
    legacy.write_bytes(raw)
    assert "negative length" in torch_file_problem(legacy)
    bomb = tmp_path / "bomb.pth"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({}, protocol=2))
    raw = bytearray(bomb.read_bytes())
    central = raw.index(b"PK\x01\x02")
    raw[central + 24:central + 28] = (300 * 1024**2).to_bytes(4, "little")  # declares 300 MB: never read
    bomb.write_bytes(raw)
    assert "declares 314572800 bytes: not a checkpoint's pickle" in torch_file_problem(bomb)
