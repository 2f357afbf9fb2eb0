"""Reading the embedding CSVs: by header, every bad input gives one clear error, the cache is invalidated."""

import os
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
    entries = list((tmp_path / "cache" / "embeddings").glob("*.npy"))
    assert len(entries) == 1
    # a cached read does not parse: prove it by changing the cache entry's feature value
    with open(entries[0], "rb") as fh:
        parts = [np.load(fh) for _ in range(3)]
    parts[0][0, 0] = 42.0
    with open(entries[0], "wb") as fh:
        for part in parts:
            np.save(fh, part)
    assert read_embedding_csv(f, cache).features[0, 0] == 42.0
    write(f, "feat_0,person_id,camera_id\n2.0,3,1\n")  # same size; a new ctime even if the mtime were kept
    assert read_embedding_csv(f, cache).features[0, 0] == 2.0  # the change was seen
    assert len(list((tmp_path / "cache" / "embeddings").glob("*.npy"))) == 1  # the stale entry was removed


def test_a_file_replaced_while_it_is_parsed_is_not_cached_under_the_new_files_key(tmp_path, monkeypatch):
    """Issue 10.1: the entry must describe the bytes parsed, never the file found at the path afterwards."""
    import gafnet.embeddings as E

    cache = ParseCache(tmp_path / "cache")
    f = write(tmp_path / "q.csv", "feat_0,person_id,camera_id\n1.0,3,1\n")
    real = E.parse_embedding_bytes

    def parse_then_replace(path, raw):
        table = real(path, raw)
        new = tmp_path / "new.csv"
        new.write_text("feat_0,person_id,camera_id\n7.0,3,1\n")
        os.replace(new, f)  # another process replaces the file while this one parses
        return table

    monkeypatch.setattr(E, "parse_embedding_bytes", parse_then_replace)
    assert read_embedding_csv(f, cache).features[0, 0] == 1.0  # what was read
    monkeypatch.setattr(E, "parse_embedding_bytes", real)
    assert read_embedding_csv(f, cache).features[0, 0] == 7.0  # the new file, not the cached old parse
    assert read_embedding_csv(f, cache, digest=True).features[0, 0] == 7.0


def test_a_file_rewritten_in_place_while_it_is_parsed_is_not_cached(tmp_path, monkeypatch):
    import gafnet.embeddings as E

    cache = ParseCache(tmp_path / "cache")
    f = write(tmp_path / "q.csv", "feat_0,person_id,camera_id\n1.0,3,1\n")
    real = E.parse_embedding_bytes

    def parse_then_rewrite(path, raw):
        table = real(path, raw)
        f.write_text("feat_0,person_id,camera_id\n8.0,3,1\n")  # same inode, new content
        return table

    monkeypatch.setattr(E, "parse_embedding_bytes", parse_then_rewrite)
    read_embedding_csv(f, cache)
    assert not list((tmp_path / "cache").rglob("*.npy"))
    monkeypatch.setattr(E, "parse_embedding_bytes", real)
    assert read_embedding_csv(f, cache).features[0, 0] == 8.0


def test_cache_never_written_into_data_tree_by_default(tmp_path, monkeypatch):
    monkeypatch.setenv("GAFNET_CACHE_DIR", str(tmp_path / "elsewhere"))
    data = tmp_path / "data"
    data.mkdir()
    f = write(data / "q.csv", "feat_0,person_id,camera_id\n1.0,3,1\n")
    read_embedding_csv(f, ParseCache())
    assert sorted(p.name for p in data.iterdir()) == ["q.csv"]
    assert list((tmp_path / "elsewhere" / "embeddings").glob("*.npy"))


@pytest.mark.parametrize("bom", [b"\xef\xbb\xbf", b""])
def test_a_utf8_bom_does_not_turn_the_index_column_into_a_feature(tmp_path, bom):
    """Issue 10.2: '\\ufeffindex' must be recognised as the index column."""
    f = tmp_path / "q.csv"
    f.write_bytes(bom + b"index,feat_0,feat_1,person_id,camera_id\n0,0.5,1.5,7,1\n1,2.0,-1.0,9,1\n")
    t = read_embedding_csv(f)
    assert t.dropped_index_column and t.dim == 2
    np.testing.assert_array_equal(t.features, [[0.5, 1.5], [2.0, -1.0]])


def test_crlf_line_ends_and_blank_lines(tmp_path):
    f = tmp_path / "q.csv"
    f.write_bytes(b"feat_0,feat_1,person_id,camera_id\r\n1,2,3,1\r\n\r\n4,5,6,1\r\n")
    t = read_embedding_csv(f)
    np.testing.assert_array_equal(t.features, [[1, 2], [4, 5]])
    np.testing.assert_array_equal(t.pids, [3, 6])


def test_white_space_around_numbers_is_read_as_numpy_reads_it(tmp_path):
    f = write(tmp_path / "q.csv", "feat_0,feat_1,person_id,camera_id\n 1.5 , 2,3 ,1\n")
    t = read_embedding_csv(f)
    np.testing.assert_array_equal(t.features, [[1.5, 2.0]])
    assert t.pids[0] == 3


def test_values_are_the_correctly_rounded_doubles_of_the_text(tmp_path):
    rng = np.random.default_rng(3)
    texts = [f"{m:.17g}" for m in rng.normal(scale=10.0 ** rng.integers(-8, 8, size=400), size=400)]
    texts += ["1e-320", "2.2250738585072011e-308", "9007199254740993", "0.1", "-0.0", "1.7976931348623157e308"]
    texts = [t for t in texts if float(t) != 0.0] + ["1"] * (-len(texts) % 4)
    rows = [texts[i:i + 4] for i in range(0, len(texts) - len(texts) % 4, 4)]
    f = write(tmp_path / "q.csv", "a,b,c,d,person_id,camera_id\n" + "".join(",".join(r) + f",{i},1\n"
                                                                         for i, r in enumerate(rows)))
    t = read_embedding_csv(f)
    expected = np.array([[float(v) for v in r] for r in rows])
    assert np.array_equal(t.features, expected)  # bit for bit, as float() (and np.loadtxt) give them


@pytest.mark.parametrize("content, message", [
    (b"feat_0,person_id,camera_id\n1,3,1\n\xff\xfe,4,1\n", r"line 3, column 1 .*not UTF-8"),
    (b"feat_0,person_\xffid,camera_id\n1,3,1\n", r"line 1: byte 0xff .*not UTF-8"),
    (b"feat_0,person_id,camera_id\n" + b"7" * 200_000 + b"x,3,1\n", r"line 2, column 1 .*is not a number"),
    (b"f" * 200_000 + b",person_id,camera_id\n1,3,1\n", None),  # a long header name is just a name
])
def test_non_utf8_bytes_and_huge_cells_give_one_clear_line(tmp_path, content, message):
    f = tmp_path / "q.csv"
    f.write_bytes(content)
    if message is None:
        assert read_embedding_csv(f).dim == 1
        return
    with pytest.raises(InputError, match=message) as info:
        read_embedding_csv(f)
    assert str(f) in str(info.value) and len(str(info.value)) < 400


def test_ids_beyond_a_double_are_exact_and_ids_beyond_int64_are_refused(tmp_path):
    big = 2**62 + 1  # not representable as a double
    f = write(tmp_path / "q.csv", f"feat_0,person_id,camera_id\n1,{big},1\n2,{big + 2},1\n")
    t = read_embedding_csv(f)
    assert t.pids.tolist() == [big, big + 2]
    g = write(tmp_path / "g.csv", f"feat_0,person_id,camera_id\n1,{2**63},1\n")
    with pytest.raises(InputError, match=r"line 2, column 2 .*does not fit a 64-bit integer"):
        read_embedding_csv(g)


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


def test_pairs_are_matched_on_the_pair_itself_not_on_a_combined_number(tmp_path):
    """Issue 10.3: with pid * 1000003 + cam, (P - 1, 1000004) and (P, 1) were the same key."""
    app = table(tmp_path, "a.csv", [5, 6], [1, 1])
    gait = table(tmp_path, "g.csv", [4, 6], [1_000_004, 1])
    with pytest.raises(InputError, match=r"\(5, 1\).*\(4, 1000004\)"):
        align_rows(app, gait)


def test_reorder_note_names_the_folders(tmp_path):
    (tmp_path / "pit").mkdir()
    (tmp_path / "gait1").mkdir()
    app = table(tmp_path / "pit", "gallery_split0.csv", [1, 2], [2, 2])
    gait = table(tmp_path / "gait1", "gallery_split0.csv", [2, 1], [2, 2])
    aligned, moved = align_rows(app, gait)
    assert moved
    assert "gait1/gallery_split0.csv: rows reordered to match pit/gallery_split0.csv" in aligned.notes[-1]


def pair(tmp_path, **kwargs):
    from gafnet.embeddings import write_embedding_pair

    rng = np.random.default_rng(0)
    q = (rng.normal(size=(3, 4)), [1, 2, 3], [1, 1, 1])
    g = (rng.normal(size=(3, 4)), [1, 2, 3], [2, 2, 2])
    return write_embedding_pair(tmp_path, 0, q, g, provenance={"checkpoint": "x.pt"}, **kwargs)


def read_pair(qp, gp):
    from gafnet.embeddings import check_pair

    q, g = read_embedding_csv(qp, digest=True), read_embedding_csv(gp, digest=True)
    check_pair(q, g)
    return q, g


def test_a_pair_written_together_is_accepted(tmp_path):
    qp, gp = pair(tmp_path)
    q, g = read_pair(qp, gp)
    assert len(q) == 3 and (tmp_path / "manifest_split0.json").is_file()


def test_a_pair_mixing_two_runs_is_refused(tmp_path):
    """Issue 10.5: a kill between the two writes of a second run leaves its query beside the first run's gallery."""
    qp, gp = pair(tmp_path)
    before = gp.read_bytes()
    write_embedding_csv(qp, np.ones((3, 4)), [1, 2, 3], [1, 1, 1])  # the second run got this far
    with pytest.raises(InputError, match="query_split0.csv is not the file that manifest_split0.json lists"):
        read_pair(qp, gp)
    assert gp.read_bytes() == before


def test_an_unfinished_pair_is_refused(tmp_path, monkeypatch):
    import gafnet.embeddings as E

    real = E.write_embedding_csv
    calls = []

    def fail_second(path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            raise InputError(f"cannot write {path}: No space left on device; nothing was written")
        real(path, *args, **kwargs)

    pair(tmp_path)  # a complete first run
    monkeypatch.setattr(E, "write_embedding_csv", fail_second)
    with pytest.raises(InputError, match="No space left"):
        pair(tmp_path)
    monkeypatch.setattr(E, "write_embedding_csv", real)
    with pytest.raises(InputError, match="did not finish"):
        read_pair(tmp_path / "query_split0.csv", tmp_path / "gallery_split0.csv")


def test_a_damaged_manifest_is_named(tmp_path):
    qp, gp = pair(tmp_path)
    (tmp_path / "manifest_split0.json").write_text("{not json")
    with pytest.raises(InputError, match="manifest_split0.json: not a manifest"):
        read_pair(qp, gp)


def test_files_without_a_manifest_are_read_as_they_are(tmp_path):
    qp, gp = pair(tmp_path)
    (tmp_path / "manifest_split0.json").unlink()
    write_embedding_csv(qp, np.ones((3, 4)), [1, 2, 3], [1, 1, 1])
    q, _ = read_pair(qp, gp)  # the released data has no manifests
    assert q.features[0, 0] == 1.0


def test_a_cache_that_cannot_be_written_is_skipped_silently(tmp_path, small_disk):
    disk = small_disk("16k")
    f = write(tmp_path / "q.csv", "feat_0,feat_1,person_id,camera_id\n" + "".join(f"{i}.5,2,{i},1\n" for i in range(1, 2000)))
    cache = ParseCache(disk)
    (disk / "filler").write_bytes(b"\0" * 12_000)
    t = read_embedding_csv(f, cache)  # the entry does not fit: the parse is still returned
    assert len(t) == 1999
    assert not list((disk / "embeddings").glob("*.npy"))
