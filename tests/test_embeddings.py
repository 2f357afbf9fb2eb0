"""Reading the embedding CSVs: by header, every bad input gives one clear error, the cache is invalidated."""

import os
import time
from pathlib import Path

import numpy as np
import pytest

from gafnet.embeddings import ParseCache, align_rows, read_embedding_csv, write_embedding_csv
from gafnet.errors import InputError


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_reads_appearance_format_with_index_column(tmp_path):
    f = write(tmp_path / "q.csv", "index,feat_0,feat_1,person_id,camera_id\n0,0.5,1.5,7,1\n1,2.0,-1.0,9,1\n")
    t = read_embedding_csv(f)
    assert t.dropped_index_column
    np.testing.assert_array_equal(t.features, [[0.5, 1.5], [2.0, -1.0]])
    np.testing.assert_array_equal(t.pids, [7, 9])
    np.testing.assert_array_equal(t.camids, [1, 1])


def test_reads_pandas_unnamed_index_and_integer_header(tmp_path):
    f = write(tmp_path / "a.csv", ",feat_0,feat_1,person_id,camera_id\n0,1,2,3,2\n")
    assert read_embedding_csv(f).dropped_index_column
    g = write(tmp_path / "g.csv", "0,1,2,0,1\n0.1,0.2,0.3,12,2\n")  # the original extractor's header
    t = read_embedding_csv(g)
    assert not t.dropped_index_column and t.dim == 3
    assert t.pids[0] == 12 and t.camids[0] == 2


def test_round_trip_with_writer(tmp_path):
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(5, 7)).astype(np.float32)
    for kwargs in ({"index_column": True}, {"header": "pandas"}, {}):
        p = tmp_path / f"x{len(kwargs)}{kwargs.get('header', '')}.csv"
        write_embedding_csv(p, feats, [1, 2, 3, 4, 5], [2] * 5, **kwargs)
        t = read_embedding_csv(p)
        np.testing.assert_allclose(t.features, feats, rtol=1e-6)
        np.testing.assert_array_equal(t.pids, [1, 2, 3, 4, 5])


@pytest.mark.parametrize("content, message", [
    ("", "the file is empty"),
    ("feat_0,feat_1,person_id,camera_id\n", "header but no data rows"),
    ("feat_0,feat_1,person_id,camera_id\n1,2,3,1\n1,2,3\n", "line 3: expected 4 values"),
    ("feat_0,feat_1,person_id,camera_id\n1,2,3,1\n1,abc,3,1\n", "line 3, column 2 \\('feat_1'\\): 'abc' is not a number"),
    ("feat_0,feat_1,person_id,camera_id\n1,,3,1\n", "line 2, column 2 \\('feat_1'\\): empty cell"),
    ("feat_0,feat_1,person_id,camera_id\n1,nan,3,1\n", "line 2, column 2 .*NaN or inf"),
    ("feat_0,feat_1,person_id,camera_id\n1,inf,3,1\n", "line 2, column 2 .*NaN or inf"),
    ("feat_0,feat_1,person_id,camera_id\n1,2,3.5,1\n", "line 2, column 3 .*not an integer id"),
    ("feat_0,feat_1,person_id,camera_id\n1,2,3,1\n0,0,4,1\n", "line 3: all 2 feature values are zero"),
    ("person_id,camera_id\n3,1\n", "expected features followed by"),
    ("\n1,2,3\n", "header row is empty"),
])
def test_bad_input_names_file_and_line(tmp_path, content, message):
    f = write(tmp_path / "bad.csv", content)
    before = f.read_bytes()
    with pytest.raises(InputError, match=message) as info:
        read_embedding_csv(f)
    assert str(f) in str(info.value)
    assert f.read_bytes() == before  # input never modified


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        read_embedding_csv(tmp_path / "nope.csv")


def test_cache_is_used_and_invalidated_when_csv_changes(tmp_path):
    cache = ParseCache(tmp_path / "cache")
    f = write(tmp_path / "q.csv", "feat_0,person_id,camera_id\n1.0,3,1\n")
    assert read_embedding_csv(f, cache).features[0, 0] == 1.0
    entries = list((tmp_path / "cache").rglob("*.npy"))
    assert len(entries) == 1
    # a cached read does not parse: prove it by changing the cache entry's feature value
    data = np.load(entries[0])
    data[0, 0] = 42.0
    np.save(entries[0], data)
    assert read_embedding_csv(f, cache).features[0, 0] == 42.0
    time.sleep(0.01)
    write(f, "feat_0,person_id,camera_id\n2.0,3,1\n")
    os.utime(f, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert read_embedding_csv(f, cache).features[0, 0] == 2.0  # the change was seen
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 1  # the stale entry was removed


def test_cache_never_written_into_data_tree_by_default(tmp_path, monkeypatch):
    monkeypatch.setenv("GAFNET_CACHE_DIR", str(tmp_path / "elsewhere"))
    data = tmp_path / "data"
    data.mkdir()
    f = write(data / "q.csv", "feat_0,person_id,camera_id\n1.0,3,1\n")
    read_embedding_csv(f, ParseCache())
    assert sorted(p.name for p in data.iterdir()) == ["q.csv"]
    assert list((tmp_path / "elsewhere").rglob("*.npy"))


def table(tmp_path, name, pids, cams, feats=None):
    feats = np.arange(1, len(pids) + 1, dtype=float)[:, None] * np.ones((1, 2)) if feats is None else feats
    p = tmp_path / name
    write_embedding_csv(p, feats, pids, cams)
    return read_embedding_csv(p)


def test_align_reorders_on_ids_not_row_order(tmp_path):
    app = table(tmp_path, "a.csv", [1, 2, 3], [1, 1, 1])
    gait = table(tmp_path, "g.csv", [3, 1, 2], [1, 1, 1])
    aligned, moved = align_rows(app, gait)
    assert moved and "reordered" in aligned.notes[-1]
    np.testing.assert_array_equal(aligned.pids, [1, 2, 3])
    np.testing.assert_array_equal(aligned.features[:, 0], [2, 3, 1])  # rows moved with their ids


def test_align_fails_naming_the_offending_ids(tmp_path):
    app = table(tmp_path, "a.csv", [1, 2, 3], [1, 1, 1])
    gait = table(tmp_path, "g.csv", [1, 2, 4], [1, 1, 1])
    with pytest.raises(InputError, match=r"\(3, 1\).*\(4, 1\)"):
        align_rows(app, gait)


def test_duplicate_ids_are_rejected(tmp_path):
    app = table(tmp_path, "a.csv", [1, 1], [1, 1])
    gait = table(tmp_path, "g.csv", [1, 2], [1, 1])
    with pytest.raises(InputError, match="appears 2 times"):
        align_rows(app, gait)
