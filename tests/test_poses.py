"""Pose CSV reading: grouping, every kind of bad row, short sequences, normalisation, cache, Dataset."""

from __future__ import annotations

import math
import os
import re

import numpy as np
import pytest

from gafnet.errors import InputError
from gafnet.gait import poses as P
from gafnet.gait.poses import DATASETS, PoseDataset, get_format, load_poses, parse_pose_file

HEADER = P.CSV_HEADER


@pytest.fixture(autouse=True, params=["auto", "slow"])
def path(request, monkeypatch):
    """Every test here runs twice: as the reader runs (Arrow for clean pieces), and with every piece read by
    the plain Python pass (the slow path), which must give the same result."""
    if request.param == "slow":
        monkeypatch.setattr(P, "_read_clean_piece", lambda *args: None)
    return request.param


def row(name: str, values) -> str:
    return name + "," + ",".join(str(v) for v in values)


def pose_values(seed: int) -> list[float]:
    """51 distinct, exactly representable values (multiples of 1/8) identifying a row."""
    return [seed + j / 8 for j in range(51)]


def write(tmp_path, lines, name="poses.csv", newline="\n"):
    path = tmp_path / name
    path.write_bytes((newline.join(lines) + newline).encode())
    return path


# --------------------------------------------------------------------------------------------------
# registry and names

def test_lookup_is_lenient_about_case_and_aliases():
    assert get_format("ilids").name == "iLIDS"
    assert get_format("iLIDS-VID").name == "iLIDS"
    assert get_format("MARS").name == "mars"
    assert get_format("CASIA-B").name == "casia-b"
    assert get_format("casiab").name == "casia-b"


def test_unknown_dataset_lists_the_valid_names():
    with pytest.raises(InputError) as err:
        get_format("market1501")
    for name in DATASETS:
        assert name in str(err.value)


@pytest.mark.parametrize("dataset,name,expected", [
    ("iLIDS", "cam1_person001_00319.png", ((1, 1), 319)),
    ("iLIDS", "some/dir/cam2_person300_00001.png", ((300, 2), 1)),
    ("mars", "0065C1T0002F016.jpg", ((65, 1, 2), 16)),
    ("mars", "0000C6T0011F001.jpg", ((0, 6, 11), 1)),
    ("mars", "00-1C2T0003F004.jpg", ((-1, 2, 3), 4)),
    ("casia-b", "frames/001-nm-01-090/000042.jpg", ((1, 0, 1, 90), 42)),
    ("casia-b", "frames/124-bg-02-180/000001.jpg", ((124, 1, 2, 180), 1)),
    ("casia-b", "075-cl-01-000/000100.jpg", ((75, 2, 1, 0), 100)),
])
def test_names_parse_to_targets(dataset, name, expected):
    assert DATASETS[dataset].parse_name(name) == expected


@pytest.mark.parametrize("dataset,name", [
    ("iLIDS", "cam3_person001_00319.png"),
    ("iLIDS", "cam1_person001_00319.jpg"),
    ("iLIDS", "cam1_person001.png"),
    ("mars", "0065C1T0002.jpg"),
    ("casia-b", "frames/001-xx-01-090/000042.jpg"),
    ("casia-b", "frames/001-nm-01-090.jpg"),
])
def test_names_that_do_not_match(dataset, name):
    assert DATASETS[dataset].parse_name(name) is None


# --------------------------------------------------------------------------------------------------
# good files

def test_ilids_rows_group_by_person_and_camera_in_first_appearance_order(tmp_path):
    names = ["cam2_person005_00010.png", "cam1_person001_00001.png", "cam2_person005_00011.png",
             "cam1_person001_00002.png", "cam1_person005_00007.png", "cam2_person005_00003.png"]
    path = write(tmp_path, [HEADER] + [row(n, pose_values(i)) for i, n in enumerate(names)])
    result = parse_pose_file(path, "ilids")
    assert result.target_list() == [(5, 2), (1, 1), (5, 1)]
    assert result.target_fields == ("person", "camera")
    assert result.lengths.tolist() == [3, 2, 1]
    # frames keep file order: rows 0, 2, 5 for (5, 2)
    expected = np.array([pose_values(i) for i in (0, 2, 5)], np.float32).reshape(3, 17, 3)
    np.testing.assert_array_equal(result.sequence(0), expected)
    np.testing.assert_array_equal(result.sequence(2)[0], np.array(pose_values(4), np.float32).reshape(17, 3))
    assert result.poses.dtype == np.float32
    assert result.report.rows_read == 6 and result.report.rows_used == 6 and result.report.bad_rows == 0
    np.testing.assert_array_equal(result.column("person"), [5, 1, 5])


def test_mars_junk_is_skipped_and_counted_distractors_are_kept(tmp_path):
    lines = [HEADER,
             row("0065C1T0002F001.jpg", pose_values(1)),
             row("00-1C1T0001F001.jpg", pose_values(2)),
             row("0000C3T0004F001.jpg", pose_values(3)),
             row("00-1C1T0001F002.jpg", ["x"] * 51),  # junk wins over bad values, as the original
             row("00-1C1T0001F003.jpg", [1] * 10),  # and over a wrong column count
             row("0065C1T0002F002.jpg", pose_values(4))]
    result = parse_pose_file(write(tmp_path, lines), "mars")
    assert result.target_list() == [(65, 1, 2), (0, 3, 4)]
    assert result.lengths.tolist() == [2, 1]
    assert result.report.junk_rows == 3
    assert result.report.bad_rows == 0
    assert result.report.rows_read == 6


def test_casia_b_conditions_map_to_integers(tmp_path):
    lines = [HEADER] + [row(f"frames/002-{c}-0{s}-036/00000{f}.jpg", pose_values(f))
                        for c, s in (("nm", 5), ("bg", 2), ("cl", 1)) for f in range(2)]
    result = parse_pose_file(write(tmp_path, lines), "casia-b")
    assert result.target_list() == [(2, 0, 5, 36), (2, 1, 2, 36), (2, 2, 1, 36)]


def test_the_same_target_under_different_directories_is_one_sequence(tmp_path):
    lines = [HEADER, row("a/cam1_person001_00001.png", pose_values(0)), row("b/cam1_person001_00002.png", pose_values(1))]
    result = parse_pose_file(write(tmp_path, lines), "ilids")
    assert result.target_list() == [(1, 1)] and result.lengths.tolist() == [2]


# --------------------------------------------------------------------------------------------------
# bad rows: every kind is counted, listed with its file line number, and never crashes

def bad_file(tmp_path, newline="\n"):
    lines = [HEADER,                                                       # line 1
             row("cam1_person001_00001.png", pose_values(1)),              # 2 good
             row("cam1_person001_00002.png", pose_values(2)[:40]),         # 3 too few values
             row("cam1_person001_00003.png", pose_values(3) + [7.0]),      # 4 too many values
             "",                                                           # 5 empty line
             row("cam1_person001_00004.png", ["abc"] + pose_values(4)[1:]),  # 6 non-numeric
             row("cam1_person001_00005.png", pose_values(5)[:7] + ["nan"] + pose_values(5)[8:]),  # 7 NaN
             row("cam1_person001_00006.png", pose_values(6)[:50] + ["inf"]),   # 8 infinite
             row("cam1_person001_00007.png", [""] + pose_values(7)[1:]),       # 9 empty cell
             row("cam9_person001_00008.png", pose_values(8)),              # 10 bad name
             row("cam1_person001_00009.png", pose_values(9))]              # 11 good
    return write(tmp_path, lines, newline=newline)


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_every_kind_of_bad_row_is_reported_with_its_line_number(tmp_path, newline):
    result = parse_pose_file(bad_file(tmp_path, newline), "ilids")
    report = result.report
    assert [ln for ln, _ in report.bad_lines] == [3, 4, 6, 7, 8, 9, 10]
    reasons = dict(report.bad_lines)
    assert reasons[3] == "41 columns, expected 52"
    assert reasons[4] == "53 columns, expected 52"
    assert reasons[6] == "non-numeric value"
    assert reasons[7] == reasons[8] == reasons[9] == "missing, NaN or infinite value"
    assert reasons[10] == "unparsable image name"
    assert report.bad_rows == 7
    assert report.bad_by_reason == {"wrong number of columns": 2, "non-numeric value": 1,
                                    "missing, NaN or infinite value": 3, "unparsable image name": 1}
    assert report.rows_read == 9 and report.rows_used == 2 and report.empty_lines == 1
    np.testing.assert_array_equal(result.poses.reshape(2, 51), np.array([pose_values(1), pose_values(9)], np.float32))
    assert "line 3" in report.summary()


def test_non_numeric_cells_in_many_columns(tmp_path):
    lines = [HEADER]
    for i in range(12):
        values = pose_values(i)
        if i % 2:
            values[i] = "x1"  # a different column each time: more columns than the retry budget
        lines.append(row(f"cam1_person002_{i:05d}.png", values))
    result = parse_pose_file(write(tmp_path, lines), "ilids")
    assert [ln for ln, _ in result.report.bad_lines] == [i + 2 for i in range(12) if i % 2]
    assert {r for _, r in result.report.bad_lines} == {"non-numeric value"}
    np.testing.assert_array_equal(result.poses.reshape(-1, 51),
                                  np.array([pose_values(i) for i in range(12) if i % 2 == 0], np.float32))


def test_bad_line_list_is_capped_but_counts_are_complete(tmp_path):
    lines = [HEADER] + [row(f"cam1_person001_{i:05d}.png", ["x"] + pose_values(i)[1:]) for i in range(30)]
    result = parse_pose_file(write(tmp_path, lines), "ilids", max_listed=5)
    assert result.report.bad_rows == 30 and len(result.report.bad_lines) == 5
    assert len(result) == 0 and result.poses.shape == (0, 17, 3)
    assert "and 25 more" in result.report.summary()


def test_unparsable_names_are_one_line_of_the_summary(tmp_path):
    lines = [HEADER] + [row(f"bad{i}.png", pose_values(i)) for i in range(30)]
    result = parse_pose_file(write(tmp_path, lines), "ilids", max_listed=5)
    assert result.report.bad_rows == 30 and len(result.report.bad_lines) == 5  # the data keep every reason
    summary = result.report.summary().splitlines()
    assert len(summary) == 2 and "first bad rows" not in summary[1]
    assert summary[1] == ("  image names: no image name matches the iLIDS-VID format (expected names like "
                          "'cam1_person001_00319.png'; line 2 has 'bad0.png')")


def test_empty_file_is_an_input_error(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        load_poses(path, "ilids")


def test_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_poses(tmp_path / "nope.csv", "ilids")


@pytest.mark.parametrize("content", [HEADER, HEADER + "\n", HEADER + "\n\n\r\n"])
def test_header_only_gives_an_empty_set(tmp_path, content):
    path = tmp_path / "header.csv"
    path.write_text(content)
    result = load_poses(path, "ilids")
    assert len(result) == 0 and result.poses.shape == (0, 17, 3)
    assert result.report.rows_read == 0 and result.report.bad_rows == 0


def test_file_without_final_newline(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text(HEADER + "\n" + row("cam1_person001_00001.png", pose_values(1)) + "\n"
                    + row("cam1_person001_00002.png", pose_values(2)[:3]))
    result = parse_pose_file(path, "ilids")
    assert result.report.bad_lines == [(3, "4 columns, expected 52")]  # name + 3 values
    assert len(result) == 1


# --------------------------------------------------------------------------------------------------
# brute force: a random file against a plain Python reading of the same rules

NAME_RE = re.compile(DATASETS["iLIDS"].pattern)


def reference_read(lines: list[str]):
    """The rules, one row at a time: junk, column count, non-numeric, non-finite, name; then grouping."""
    sequences: dict = {}
    bad = []
    junk = 0
    for number, line in enumerate(lines[1:], start=2):
        if line == "":
            continue
        cells = line.split(",")
        if cells[0].startswith("00-1"):
            junk += 1
            continue
        if len(cells) != 52:
            bad.append((number, f"{len(cells)} columns, expected 52"))
            continue
        values = []
        reason = None
        for cell in cells[1:]:
            if cell.strip().lower() in ("", "nan"):
                values.append(math.nan)
                continue
            try:
                values.append(float(cell))
            except ValueError:
                reason = "non-numeric value"
        if reason is None and not all(math.isfinite(v) for v in values):
            reason = "missing, NaN or infinite value"
        match = NAME_RE.match(cells[0])
        if reason is None and match is None:
            reason = "unparsable image name"
        if reason:
            bad.append((number, reason))
            continue
        target = (int(match.group("person")), int(match.group("camera")))
        sequences.setdefault(target, []).append(values)
    return sequences, bad, junk


def test_random_file_matches_a_row_by_row_reading(tmp_path):
    rng = np.random.default_rng(7)
    lines = [HEADER]
    for i in range(3000):
        person, camera = int(rng.integers(1, 40)), int(rng.integers(1, 3))
        name = f"cam{camera}_person{person:03d}_{i:05d}.png"
        values = [f"{v:.3f}" for v in rng.uniform(-50, 300, 51)]
        kind = rng.random()
        if kind < 0.02:
            values = values[: int(rng.integers(0, 60))] if rng.random() < 0.5 else values + ["1.0"] * int(rng.integers(1, 3))
        elif kind < 0.04:
            values[int(rng.integers(0, 51))] = str(rng.choice(["abc", "1.2.3", "--1", "x"]))
        elif kind < 0.06:
            values[int(rng.integers(0, 51))] = str(rng.choice(["nan", "inf", "-inf", ""]))
        elif kind < 0.08:
            name = str(rng.choice(["cam3_person001_00001.png", "person.png", "cam1_personX_1.png"]))
        elif kind < 0.09:
            name = "00-1" + name
        elif kind < 0.10:
            lines.append("")
        lines.append(name + ("," + ",".join(values) if values else ""))
    path = write(tmp_path, lines)
    sequences, bad, junk = reference_read(lines)
    result = parse_pose_file(path, "ilids", max_listed=10_000)
    assert result.report.bad_lines == bad
    assert result.report.junk_rows == junk
    assert result.target_list() == list(sequences)
    for i, target in enumerate(sequences):
        np.testing.assert_array_equal(result.sequence(i).reshape(-1, 51), np.array(sequences[target], np.float32))


# --------------------------------------------------------------------------------------------------
# short sequences, normalisation

@pytest.mark.parametrize("length,target", [(1, 5), (2, 7), (3, 4), (4, 9), (5, 30), (7, 61), (60, 61), (10, 10)])
def test_reflect_indices_equal_numpy_reflect_padding(length, target):
    pad = max(0, target - length)
    frames = np.arange(length)
    expected = np.pad(frames, (pad // 2, pad - pad // 2), mode="reflect") if length > 1 else np.zeros(max(target, 1), int)
    np.testing.assert_array_equal(P.reflect_indices(length, target), expected)


def test_reflect_indices_by_hand():
    assert P.reflect_indices(4, 9).tolist() == [2, 1, 0, 1, 2, 3, 2, 1, 0]


def short_file(tmp_path):
    lines = [HEADER]
    lines += [row(f"cam1_person001_{f:05d}.png", pose_values(f)) for f in range(6)]
    lines += [row(f"cam2_person001_{f:05d}.png", pose_values(100 + f)) for f in range(3)]
    return write(tmp_path, lines)


def test_short_sequences_are_padded_by_default_and_reported(tmp_path):
    result = load_poses(short_file(tmp_path), "ilids", sequence_length=4)  # needs 5 frames
    assert result.lengths.tolist() == [6, 5]
    assert result.source_lengths.tolist() == [6, 3]
    short = result.sequence(1).reshape(5, 51)[:, 0]
    assert short.tolist() == [101, 100, 101, 102, 101]  # 1 | 0 1 2 | 1
    report = result.report
    assert report.short_sequences == 1 and report.padded_frames == 2
    assert report.short_targets == [((1, 2), 3)]
    assert "padded" in report.short_action and "padded" in report.summary()


def test_drop_short_restores_the_original(tmp_path):
    result = load_poses(short_file(tmp_path), "ilids", sequence_length=4, drop_short=True)
    assert result.target_list() == [(1, 1)]
    assert result.report.short_sequences == 1 and "dropped" in result.report.short_action
    # the original's threshold is sequence_length + 1: 6 frames survive sequence_length=5, not 6
    assert len(load_poses(short_file(tmp_path), "ilids", sequence_length=5, drop_short=True)) == 1
    assert len(load_poses(short_file(tmp_path), "ilids", sequence_length=6, drop_short=True)) == 0


def test_no_sequence_length_keeps_every_length(tmp_path):
    result = load_poses(short_file(tmp_path), "ilids", sequence_length=None)
    assert result.lengths.tolist() == [6, 3] and result.report.short_sequences == 0


def test_normalize_centres_on_the_hips_and_scales_by_median_height():
    frames = np.zeros((3, 17, 3), np.float32)
    frames[:, :, 2] = 0.5
    for t, (shift, height) in enumerate([(10, 100), (20, 120), (30, 80)]):
        frames[t, :, 0] = shift
        frames[t, :, 1] = np.linspace(0, height, 17)
        frames[t, 11, :2] = (shift - 5, height / 2)
        frames[t, 12, :2] = (shift + 5, height / 2)
    out = P.normalize_poses(frames, np.array([0, 3]))
    # hip midpoint at (0, 0) in every frame, scale 100 (the median of 100, 120, 80)
    np.testing.assert_allclose((out[:, 11, :2] + out[:, 12, :2]) / 2, 0, atol=1e-6)
    np.testing.assert_allclose(out[1, 16, 1], (120 - 60) / 100, rtol=1e-6)
    np.testing.assert_array_equal(out[:, :, 2], 0.5)  # confidence untouched
    per_frame = P.normalize_poses(frames, np.array([0, 3]), mode="frame")
    np.testing.assert_allclose(per_frame[1, 16, 1], 0.5, rtol=1e-6)


def test_segment_median_by_brute_force():
    rng = np.random.default_rng(0)
    lengths = rng.integers(0, 9, 50)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    values = rng.normal(size=offsets[-1])
    expected = [np.median(values[a:b]) if b > a else 0 for a, b in zip(offsets[:-1], offsets[1:])]
    np.testing.assert_allclose(P.segment_median(values, offsets), expected)


def test_load_with_normalize(tmp_path):
    raw = load_poses(short_file(tmp_path), "ilids", sequence_length=None)
    norm = load_poses(short_file(tmp_path), "ilids", sequence_length=None, normalize=True)
    np.testing.assert_allclose(norm.poses, P.normalize_poses(raw.poses, raw.offsets))
    assert norm.report.normalized == "sequence"


# --------------------------------------------------------------------------------------------------
# cache

def test_cache_round_trip_and_invalidation(tmp_path):
    path = bad_file(tmp_path)
    cache = tmp_path / "cache"
    first = load_poses(path, "ilids", sequence_length=None, cache_dir=cache)
    assert not first.report.from_cache and len(list(cache.glob("poses/*.npz"))) == 1
    second = load_poses(path, "ilids", sequence_length=None, cache_dir=cache)
    assert second.report.from_cache
    np.testing.assert_array_equal(second.poses, first.poses)
    np.testing.assert_array_equal(second.offsets, first.offsets)
    assert second.target_list() == first.target_list()
    assert second.report.bad_lines == first.report.bad_lines
    # changing the file changes the key: parsed again
    with open(path, "a") as fh:
        fh.write(row("cam2_person003_00001.png", pose_values(3)) + "\n")
    os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 10**9))
    third = load_poses(path, "ilids", sequence_length=None, cache_dir=cache)
    assert not third.report.from_cache and (3, 2) in third.target_list()


def test_unreadable_cache_is_ignored(tmp_path):
    path = short_file(tmp_path)
    cache = tmp_path / "cache"
    load_poses(path, "ilids", cache_dir=cache)
    for f in cache.glob("poses/*.npz"):
        f.write_bytes(b"not an npz")
    result = load_poses(path, "ilids", cache_dir=cache)
    assert not result.report.from_cache and len(result) == 2


# --------------------------------------------------------------------------------------------------
# writer and Dataset

def test_writer_and_reader_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    poses = rng.uniform(0, 100, (5, 17, 3)).round(2)
    names = [f"cam1_person007_{i:05d}.png" for i in range(5)]
    path = tmp_path / "w.csv"
    P.write_pose_csv(path, names, poses)
    result = parse_pose_file(path, "ilids")
    np.testing.assert_allclose(result.poses, poses, atol=1e-4)


def test_dataset_returns_copies_and_targets(tmp_path):
    poses = load_poses(short_file(tmp_path), "ilids", sequence_length=None)
    dataset = PoseDataset(poses)
    data, target = dataset[1]
    assert target == (1, 2) and data.shape == (3, 17, 3)
    data[:] = 0
    assert poses.sequence(1).sum() != 0


def test_dataset_randomness_is_reproducible_per_seed_epoch_index(tmp_path):
    poses = load_poses(short_file(tmp_path), "ilids", sequence_length=None)

    def noisy(data, rng):
        return data + rng.normal(size=data.shape)

    a, b = PoseDataset(poses, noisy, seed=3), PoseDataset(poses, noisy, seed=3)
    np.testing.assert_array_equal(a[0][0], b[0][0])
    before = a[0][0]
    a.set_epoch(1)
    assert not np.array_equal(a[0][0], before)
    assert not np.array_equal(PoseDataset(poses, noisy, seed=4)[0][0], before)


def test_a_data_row_on_line_1_is_still_the_header_but_noted(tmp_path):
    lines = [row("cam1_person001_00001.png", pose_values(0)), row("cam1_person001_00002.png", pose_values(1))]
    result = parse_pose_file(write(tmp_path, lines), "ilids")
    assert result.report.rows_read == 1
    assert any("looks like a data row" in note for note in result.report.notes)


def test_dataset_works_with_a_torch_dataloader(tmp_path):
    import torch

    from gafnet.gait.augment import train_transform

    lines = [HEADER] + [row(f"cam{c}_person{p:03d}_{f:05d}.png", pose_values(f))
                        for p in (1, 2) for c in (1, 2) for f in range(30)]
    poses = load_poses(write(tmp_path, lines), "ilids", sequence_length=20)
    loader = torch.utils.data.DataLoader(PoseDataset(poses, train_transform(20), seed=0), batch_size=4)
    data, (person, camera) = next(iter(loader))
    assert data.shape == (4, 1, 3, 20, 17) and data.dtype == torch.float32
    assert person.tolist() == [1, 1, 2, 2] and camera.tolist() == [1, 2, 1, 2]


def test_many_ragged_rows(tmp_path):
    lines = [HEADER] + [row(f"cam1_person001_{i:05d}.png", pose_values(i)[: i % 40]) for i in range(400)]
    result = parse_pose_file(write(tmp_path, lines), "ilids", max_listed=1000)
    assert result.report.bad_rows == 400
    # a row with no value still has the comma after its name: 2 columns
    assert result.report.bad_lines == [(i + 2, f"{max(i % 40 + 1, 2)} columns, expected 52") for i in range(400)]


# --------------------------------------------------------------------------------------------------
# the cache is keyed by the file that was read (issue 10, item 1)

def big_file(tmp_path, rows=7000):
    """A pose file over 2 MiB (so that its middle is outside its first and last MiB)."""
    lines = [HEADER] + [row(f"cam1_person{1 + i // 100:03d}_{i:05d}.png", pose_values(i % 100)) for i in range(rows)]
    path = write(tmp_path, lines, name="big.csv")
    assert path.stat().st_size > (2 << 20) + 100_000
    return path


def rewrite_middle_keeping_size_and_mtime(path):
    """Change a value in the middle of the file in place: same size, same modification time."""
    before = os.stat(path)
    data = path.read_bytes()
    middle = data.index(b"\n", len(data) // 2) + 1
    old = data[middle:data.index(b"\n", middle)]
    name, values = old.split(b",", 1)
    new = name + b"," + values.replace(b"1", b"7", 1)
    assert len(new) == len(old) and new != old
    with open(path, "r+b") as fh:
        fh.seek(middle)
        fh.write(new)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(path).st_size == before.st_size and os.stat(path).st_mtime_ns == before.st_mtime_ns


def test_a_file_rewritten_while_it_is_parsed_is_not_cached(tmp_path, monkeypatch):
    """The parse reads the old bytes; the file is then rewritten (same size, same mtime, same first and last
    MiB). The parse must not be cached under a key that the new file also has: a later load sees the new
    values. (The previous cache key, path + size + mtime + first/last MiB, failed this.)"""
    path = big_file(tmp_path)
    cache = tmp_path / "cache"
    parse = P.parse_pose_bytes

    def parse_then_rewrite(*args, **kwargs):
        result = parse(*args, **kwargs)
        rewrite_middle_keeping_size_and_mtime(path)
        return result

    monkeypatch.setattr(P, "parse_pose_bytes", parse_then_rewrite)
    first = load_poses(path, "ilids", sequence_length=None, cache_dir=cache)
    monkeypatch.setattr(P, "parse_pose_bytes", parse)
    assert not list(cache.glob("poses/*.npz"))  # nothing stored: the file changed while it was read
    later = load_poses(path, "ilids", sequence_length=None, cache_dir=cache)
    now = parse_pose_file(path, "ilids")
    assert not later.report.from_cache
    np.testing.assert_array_equal(later.poses, now.poses)
    assert not np.array_equal(first.poses, now.poses)
    assert load_poses(path, "ilids", sequence_length=None, cache_dir=cache).report.from_cache  # stored this time


def test_an_in_place_edit_that_keeps_size_and_mtime_is_seen(tmp_path):
    path = big_file(tmp_path)
    cache = tmp_path / "cache"
    before = load_poses(path, "ilids", sequence_length=None, cache_dir=cache)
    rewrite_middle_keeping_size_and_mtime(path)
    after = load_poses(path, "ilids", sequence_length=None, cache_dir=cache)
    assert not after.report.from_cache and not np.array_equal(before.poses, after.poses)
    assert len(list(cache.glob("poses/*.npz"))) == 1  # the entry of the old version was pruned


def test_cache_entries_live_in_the_poses_folder_of_the_cache_directory(tmp_path):
    path = short_file(tmp_path)
    load_poses(path, "ilids", cache_dir=tmp_path / "root")
    assert [p.parent.name for p in (tmp_path / "root").rglob("*.npz")] == ["poses"]
    assert not list(tmp_path.glob("root/*.npz"))


def test_no_cache_directory_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("GAFNET_CACHE_DIR", str(tmp_path / "env-cache"))
    load_poses(short_file(tmp_path), "ilids")
    assert not (tmp_path / "env-cache").exists()


def test_a_cache_directory_that_cannot_be_written_is_skipped(tmp_path):
    (tmp_path / "afile").write_text("not a directory")
    result = load_poses(short_file(tmp_path), "ilids", cache_dir=tmp_path / "afile")
    assert len(result) == 2 and not result.report.from_cache


def test_a_cache_entry_per_dataset_and_list_length(tmp_path):
    path = bad_file(tmp_path)
    cache = tmp_path / "cache"
    short_list = load_poses(path, "ilids", sequence_length=None, cache_dir=cache, max_listed=2)
    long_list = load_poses(path, "ilids", sequence_length=None, cache_dir=cache, max_listed=20)
    assert len(short_list.report.bad_lines) == 2 and len(long_list.report.bad_lines) == 7
    assert not long_list.report.from_cache


def test_a_fifo_is_refused_before_it_is_opened(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    fifo = tmp_path / "poses.csv"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        load_poses(fifo, "ilids")


# --------------------------------------------------------------------------------------------------
# names of another format (issue 9, item 16)

def test_a_file_of_another_format_is_named_in_one_line(tmp_path):
    lines = [HEADER] + [row(f"cam{c}_person{p:03d}_{f:05d}.png", pose_values(f)) for p in (1, 2) for c in (1, 2)
                        for f in range(10)]
    path = write(tmp_path, lines)
    report = load_poses(path, "casia-b").report
    assert report.bad_rows == 40 and report.rows_used == 0
    assert report.bad_name_note == ("no image name matches the CASIA-B format (expected names like "
                                    "'frames/001-nm-01-090/000042.jpg'; line 2 has 'cam1_person001_00000.png'); "
                                    "they look like iLIDS-VID names (use dataset iLIDS)")
    assert sum("unparsable" in line or "image names" in line for line in report.summary().splitlines()) == 1
    assert len(load_poses(path, "casia-b")) == 0  # the scripts then stop: "no usable pose sequence"


def test_a_few_bad_names_are_counted_without_a_format_hint(tmp_path):
    lines = [HEADER] + [row(f"cam1_person001_{f:05d}.png", pose_values(f)) for f in range(20)]
    lines[5] = row("frames/001-nm-01-090/000004.jpg", pose_values(4))  # a CASIA-B name among iLIDS names
    lines[9] = row("cam1_person001_00008.jpg", pose_values(8))
    report = parse_pose_file(write(tmp_path, lines), "ilids").report
    assert report.bad_name_note.startswith("2 of 20 image names do not match the iLIDS-VID format")
    assert "line 6 has 'frames/001-nm-01-090/000004.jpg'" in report.bad_name_note
    assert "look like" not in report.bad_name_note  # one of two is not the majority


def test_almost_all_names_bad_says_so(tmp_path):
    lines = [HEADER] + [row(f"{p:04d}C1T0001F{f:03d}.jpg", pose_values(f)) for p in (1, 2) for f in range(1, 20)]
    lines.append(row("cam1_person001_00001.png", pose_values(1)))
    report = parse_pose_file(write(tmp_path, lines), "ilids").report
    assert report.bad_name_note.startswith("38 of 39 image names (almost all) do not match the iLIDS-VID format")
    assert report.bad_name_note.endswith("they look like MARS names (use dataset mars)")
