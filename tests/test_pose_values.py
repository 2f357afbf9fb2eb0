"""The pose reader's rules for cells, names, line ends and BOMs, and that its two paths agree on them.

The fast path (Arrow's CSV reader on a clean piece) and the slow path (a plain Python pass over the lines)
must give the same rows, bit-identical values and the same bad-row report; ``slow`` forces the slow path.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from gafnet.gait import poses as P
from gafnet.gait.poses import cell_value, parse_pose_bytes, parse_pose_file

HEADER = P.CSV_HEADER
GOOD = ",".join(["1.5"] * 51)


@pytest.fixture
def slow(monkeypatch):
    """Every piece goes to the slow path."""
    monkeypatch.setattr(P, "_read_clean_piece", lambda *args: None)


def both(data: bytes, dataset: str = "ilids", max_listed: int = 1000):
    """(parse as the reader does it, parse with every piece read slowly), with the slow path's own counter."""
    fast = parse_pose_bytes(data, dataset, max_listed=max_listed)
    original = P._read_clean_piece
    P._read_clean_piece = lambda *args: None
    try:
        slow = parse_pose_bytes(data, dataset, max_listed=max_listed)
    finally:
        P._read_clean_piece = original
    return fast, slow


def assert_same(a, b):
    assert a.report.bad_lines == b.report.bad_lines
    assert a.report.bad_by_reason == b.report.bad_by_reason
    assert (a.report.rows_read, a.report.rows_used, a.report.junk_rows, a.report.empty_lines) == \
        (b.report.rows_read, b.report.rows_used, b.report.junk_rows, b.report.empty_lines)
    assert a.target_list() == b.target_list()
    np.testing.assert_array_equal(a.offsets, b.offsets)
    assert a.poses.tobytes() == b.poses.tobytes()  # bit for bit (NaN never reaches the poses)


# --------------------------------------------------------------------------------------------------
# the rules for one value cell, written out by hand

NUMBER = re.compile(r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|(?i:inf|infinity))")
NULL_LIKE = re.compile(r"(?i:|[+-]?nan|na|n/a|null|none|#n/a|-1\.#ind|1\.#qnan)")
OK, NOT_FINITE, NON_NUMERIC = "ok", "not finite", "non-numeric"


def expected(token: str):
    """(status, float32 value): Python's white space stripped (str.isspace), float() then float32."""
    text = token.strip()
    if NUMBER.fullmatch(text):
        with np.errstate(over="ignore"):
            value = np.float32(float(text))
        return (OK if np.isfinite(value) else NOT_FINITE), value
    if NULL_LIKE.fullmatch(text):
        return NOT_FINITE, np.float32("nan")
    return NON_NUMERIC, None


TOKENS = ["0", "-0", "+0", "1", "-1", "12.5", "255.829", "0.7505", ".5", "5.", "-.5", "+.5", "1e3", "1E-3",
          "2.5e+2", "-2.5e-2", "1e39", "-1e39", "1e-50", "3.4028235e38", "3.4028236e38", "0.1", "0.3",
          "123456789012345678901234567890", "0.000000000000000000000000000001234567890123456789",
          "1.00000000000000000000000000000000000000001", "9007199254740993", "179.99999999999999999",
          "  7.25", "7.25  ", "\t7.25\t", "\x0b7.25\x0c", "inf", "-inf", "+Infinity", "INF", "nan", "NaN", "-nan",
          "+NAN", "", "  ", "NA", "n/a", "NULL", "None", "#N/A", "-1.#IND", "1.#QNAN", "abc", "1.2.3", "--1", "1e",
          "1e+", ".", "-", "+", "e5", "1_000", "1__0", "_1", "0x10", "nanx", "nan(1)", "snan", "infinit", "infinityy",
          "1 2", "١٢", "１２", "\u00a01.5", "1.5\u3000", "\u20281.5\u2029", "\x1c1.5\x1f", "\u20001.5\u200a",
          "\u0085-2\u202f", "\u205f3\u1680", "\u200b1.5", "1.5\ufeff", "\ufeff1.5", "\u00a0", "\u3000nan",
          "1e99999", "-1e-99999", "1.5\x00", "\"1.5\"", "'1.5'", "1,5"]


@pytest.mark.parametrize("token", [t for t in TOKENS if "," not in t])
def test_cell_value_follows_the_rules(token):
    status, value = expected(token)
    got = cell_value(token.encode())
    if status == NON_NUMERIC:
        assert got is None
    elif math.isnan(value):
        assert math.isnan(got)
    else:
        with np.errstate(over="ignore"):
            assert np.float32(got).tobytes() == value.tobytes()


@pytest.mark.parametrize("token", TOKENS)
def test_both_paths_read_each_token_by_the_rules(token):
    """A file whose second row holds ``token``: the rules' reason and value, and the same result either way."""
    cells = ",".join([token] + ["2.5"] * 50)
    data = f"{HEADER}\ncam1_person001_00001.png,{GOOD}\ncam1_person001_00002.png,{cells}\n".encode()
    fast, slow = both(data)
    assert_same(fast, slow)
    if "," in token:
        assert fast.report.bad_lines == [(3, "53 columns, expected 52")]
        return
    status, value = expected(token)
    if status == OK:
        assert fast.report.bad_rows == 0 and fast.poses[1, 0, 0].tobytes() == value.tobytes()
    else:
        reason = "non-numeric value" if status == NON_NUMERIC else "missing, NaN or infinite value"
        assert fast.report.bad_lines == [(3, reason)]


def test_float_of_bytes_agrees_with_the_rules_wherever_it_accepts_a_cell():
    """The slow path first tries float() on a row's cells as bytes (fast); it keeps that result only when it
    succeeds and the cells hold no "_". Brute force: then cell_value gives the same number."""
    rng = np.random.default_rng(5)
    alphabet = list("0123456789.eE+-_ x") + ["\t", "\x0b", "\x0c", "\x1c", "\xa0", "\u3000", "inf", "nan", "NaN",
                                              "Infinity", "١"]
    tokens = TOKENS + ["".join(rng.choice(alphabet, int(rng.integers(0, 7)))) for _ in range(20000)]
    accepted = 0
    for token in tokens:
        cell = token.encode()
        try:
            value = float(cell)
        except ValueError:
            continue
        if b"_" in cell:
            continue
        accepted += 1
        rule = cell_value(cell)
        assert rule is not None and (math.isnan(rule) if math.isnan(value) else rule == value), token
    assert accepted > 2000


def test_a_non_numeric_cell_outranks_a_missing_one_in_the_same_row():
    data = f"{HEADER}\ncam1_person001_00001.png,nan,x,{','.join(['1'] * 49)}\n".encode()
    for result in both(data):
        assert result.report.bad_lines == [(2, "non-numeric value")]


def test_a_huge_exponent_after_many_zeros_is_not_finite():
    tiny = "0." + "0" * 99_999 + "1"  # 1e-100000
    rest = ",".join(["1"] * 48)
    data = f"{HEADER}\ncam1_person001_00001.png,{tiny}e1000000,1,2,{rest}\n"  # 1e900000: inf, not 1.0
    data += f"cam1_person001_00002.png,{tiny}e-1000038,{tiny}e100001,{tiny}e100000,{rest}\n"
    fast, slow = both(data.encode())
    assert_same(fast, slow)
    assert fast.report.bad_lines == [(2, "missing, NaN or infinite value")]
    assert fast.poses[0, 0].tolist() == [0, 10, 1]


def test_random_decimals_equal_python_float_then_float32():
    """The float32 of the correctly rounded double, bit for bit, on both paths: what the original's
    np.array(strings, float32) gives."""
    rng = np.random.default_rng(3)
    tokens = []
    for _ in range(51 * 400):
        digits = int(rng.integers(1, 25))
        mantissa = "".join(rng.choice(list("0123456789"), digits))
        point = int(rng.integers(0, digits + 1))
        token = mantissa[:point] + "." + mantissa[point:] if rng.random() < 0.8 else mantissa
        if rng.random() < 0.3:
            token += f"e{int(rng.integers(-50, 12))}"
        if rng.random() < 0.3:
            token = "-" + token
        tokens.append(token if token not in (".", "-.") else "0")
    rows = [f"cam1_person001_{i:05d}.png," + ",".join(tokens[i * 51:(i + 1) * 51]) for i in range(400)]
    fast, slow = both((HEADER + "\n" + "\n".join(rows) + "\n").encode())
    assert_same(fast, slow)
    with np.errstate(over="ignore"):
        wanted = np.array([float(t) for t in tokens]).astype(np.float32).reshape(400, 51)
        numpy_cast = np.array(tokens, dtype=str).astype(np.float32).reshape(400, 51)
    finite = np.isfinite(wanted).all(axis=1)
    assert fast.report.rows_used == int(finite.sum()) == 400
    assert fast.poses.reshape(-1, 51).tobytes() == wanted[finite].tobytes()
    assert numpy_cast[finite].tobytes() == wanted[finite].tobytes()


def test_double_rounding_is_the_originals():
    """Next to a float32 midpoint, text → double → float32 (the original) and text → float32 differ: the
    reader gives the original's value on both paths."""
    token = "1.000000059604644775390625000001"  # just above the midpoint of 1.0 and the next float32
    assert np.float32(float(token)) == 1.0 and np.array([token]).astype(np.float32)[0] == 1.0
    data = (HEADER + "\ncam1_person001_00001.png," + ",".join([token] * 51) + "\n").encode()
    for result in both(data):
        assert result.poses[0, 0, 0] == np.float32(1.0)


def test_numbers_do_not_depend_on_the_process_locale(tmp_path):
    """A C library's strtod follows LC_NUMERIC (a German locale reads "1.5e30" as 1); the reader must not."""
    if shutil.which("localedef") is None:
        pytest.skip("localedef is not installed: cannot make a locale with a decimal comma")
    made = subprocess.run(["localedef", "-i", "de_DE", "-f", "UTF-8", str(tmp_path / "de_DE.UTF-8")],
                          capture_output=True, text=True)
    if not (tmp_path / "de_DE.UTF-8").is_dir():
        pytest.skip(f"localedef could not make de_DE.UTF-8 here: {made.stderr.strip()[:200]}")
    path = tmp_path / "p.csv"
    values = ["1.5e30", "0.12345678901234567890123", "-2.5e-40"] + ["2.5"] * 48
    path.write_text(HEADER + "\ncam1_person001_00001.png," + ",".join(values) + "\n"
                    + "cam1_person001_00002.png," + ",".join(values[:50] + ["x"]) + "\n")  # a bad row: slow path too
    code = ("import locale, sys; locale.setlocale(locale.LC_ALL, 'de_DE.UTF-8'); "
            "assert locale.localeconv()['decimal_point'] == ','; "
            "from gafnet.gait.poses import parse_pose_file; "
            "print(parse_pose_file(sys.argv[1], 'ilids').poses[0, 0].tolist())")
    env = dict(os.environ, LOCPATH=str(tmp_path), PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    wanted = np.array([float(v) for v in values[:3]]).astype(np.float32).tolist()
    assert [float(v) for v in done.stdout.strip("[]\n").split(",")] == wanted


# --------------------------------------------------------------------------------------------------
# names

NAMES = {  # valid names of each format, with directories, and names that only look alike
    "iLIDS": ["cam1_person001_00319.png", "a/b/cam2_person300_1.png", "x.y/cam1_person002_0001.png",
              "cam1_person001_00319.jpg", "cam1_person001_.png", "cam1_person001_00319", "cam1_person001_00319.png.png",
              "cam1_person001", "cam1_person001_0000000000319.png", "cam1_person001_0_1.png", "cam1_person٠٠١_00001.png",
              "cam1_person001_00001.png ", " cam1_person001_00001.png", "dir\\cam1_person003_7.png", "cam1_person1_2.png"],
    "mars": ["0065C1T0002F016.jpg", "bbox_test/00-1C1T0001F001.jpg", "d/0000C6T0001F999.jpg", "0065C1T0002F016.png",
             "0065C1T0002F.jpg", "0065C1T0002F0160000000000.jpg", "dir/00-1C1T0001F001.txt", "0065C1T0002",
             "0065C1T0002F016F017.jpg", "0065C1T0002FF016.jpg"],
    "casia-b": ["frames/001-nm-01-090/000042.jpg", "a\\001-bg-02-180\\7.png", "x/124-cl-02-000/000001.png",
                "001-nm-01-090/000042.jpg", "frames/001-nm-01-090_000042.jpg", "frames/001-nm-01-090/000042.gif",
                "frames/001-xx-01-090/000042.jpg", "frames/001-nm-01-090", "frames/001-nm-01-090/000042/000043.jpg",
                "frames/001-nm-01-090//000042.jpg"],
}


@pytest.mark.parametrize("dataset", sorted(NAMES))
def test_name_matching_is_the_whole_name_regex(dataset):
    """Cutting the frame part off and matching the rest once per distinct prefix = re.fullmatch of the whole."""
    import pyarrow as pa

    fmt = P.get_format(dataset)
    names = NAMES[dataset]
    codes = P._name_codes(pa.chunked_array([pa.array(names[:3]), pa.array(names[3:])]), fmt)
    wanted = [re.fullmatch(fmt.key_pattern + fmt.frame_pattern, name, re.ASCII) is not None for name in names]
    assert codes.matched.tolist() == wanted and 3 <= sum(wanted) < len(names)
    for name, ok, code in zip(names, wanted, codes.codes):
        if ok:
            assert tuple(codes.key_table[code]) == fmt.parse_name(name)[0]


@pytest.mark.parametrize("dataset", sorted(NAMES))
def test_both_paths_group_and_reject_the_same_names(dataset):
    data = (HEADER + "\n" + "".join(f"{name},{GOOD}\n" for name in NAMES[dataset] * 2)).encode()
    fast, slow = both(data, dataset)
    assert_same(fast, slow)
    assert len(fast) >= 2 and fast.report.bad_rows > 0


@pytest.mark.parametrize("second_row,reason", [
    (f"cam1_person001_0000\xe9.png,{GOOD}", "unparsable image name"),  # a name that is not UTF-8
    ("cam1_person001_00002.png,1\xe9," + ",".join(["2"] * 50), "non-numeric value"),  # a value that is not
    (f"cam1_person001_00002.png\xff,{GOOD},1", "53 columns, expected 52"),  # a ragged row that is not
    (f"00-1\xe9C1T0001F001.jpg,{GOOD}", "unparsable image name"),  # not UTF-8, so not recognisably junk
])
def test_bytes_that_are_not_utf8(second_row, reason):
    data = f"{HEADER}\ncam1_person001_00001.png,{GOOD}\n".encode() + f"{second_row}\n".encode("latin-1")
    fast, slow = both(data)
    assert_same(fast, slow)
    assert fast.report.bad_lines == [(3, reason)] and fast.report.rows_used == 1


def test_non_utf8_bytes_in_the_header_are_ignored():
    data = b"image_name\xff\xfe," + HEADER.split(",", 1)[1].encode() + f"\ncam1_person001_00001.png,{GOOD}\n".encode()
    for result in both(data):
        assert result.report.rows_used == 1 and result.report.bad_rows == 0


# --------------------------------------------------------------------------------------------------
# line ends, empty lines, pieces

def test_line_ends_columns_and_empty_lines():
    """\\n, \\r\\n and lone \\r end lines (as bytes.splitlines); \\x0b, \\x0c, \\x1c and U+2028 do not."""
    lines = [f"cam1_person001_00001.png,{GOOD}\r\n", "cam1_person001_00002.png,1,2\n", "\r",
             f"cam1_person001_00003.png,{GOOD},4\r\r\n", f"cam1_person001_00004.png,x{GOOD[3:]}\n",
             f"cam1_person001_00005.png,nan{GOOD[3:]}\n", f",{GOOD}\n", f"cam1_person\x0b001_00006.png,{GOOD}\x0c\n",
             f"cam1_person001_00007.png\u2028,{GOOD}\n", f"cam1_person001_00008.png,{GOOD}"]
    data = (HEADER + "\n" + "".join(lines)).encode()
    fast, slow = both(data)
    assert_same(fast, slow)
    assert fast.report.bad_lines == [(3, "3 columns, expected 52"), (5, "53 columns, expected 52"),
                                     (7, "non-numeric value"), (8, "missing, NaN or infinite value"),
                                     (9, "unparsable image name"), (10, "unparsable image name"),
                                     (11, "unparsable image name")]
    assert fast.report.empty_lines == 2 and fast.report.rows_used == 2
    assert fast.report.rows_read == 9


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
@pytest.mark.parametrize("ending", ["", "final newline", "empty lines at the end"])
def test_line_numbers_with_every_line_end(newline, ending):
    body = [f"cam1_person001_{i:05d}.png,{GOOD}" for i in range(6)]
    body[3] = "cam1_person001_00003.png,1,2"
    text = newline.join([HEADER] + body) + {"": "", "final newline": newline, "empty lines at the end": newline * 3}[ending]
    fast, slow = both(text.encode())
    assert_same(fast, slow)
    assert fast.report.bad_lines == [(5, "3 columns, expected 52")] and fast.report.rows_used == 5
    assert fast.report.empty_lines == (2 if ending == "empty lines at the end" else 0)


@pytest.mark.parametrize("text", ["", "\n", "\r", "\r\n", "\n\n\r\r\n", "\ufeff", "\ufeff\n\ufeff\n"])
def test_files_without_data_rows(text):
    data = (HEADER + "\n" + text).encode()
    for result in both(data):
        assert len(result) == 0 and result.report.rows_read == 0 and result.report.bad_rows == 0


def test_tiny_pieces_give_the_same_result_as_one_piece(monkeypatch):
    """Pieces of one line or so: line numbers, sequences spanning pieces and bad rows all stay the same,
    whichever pieces are clean."""
    rng = np.random.default_rng(11)
    lines = [HEADER]
    for i in range(600):
        person = 1 + i // 60  # sequences run across piece boundaries
        values = [f"{v:.3f}" for v in rng.uniform(0, 300, 51)]
        kind = rng.random()
        if kind < 0.03:
            values = values[:10]
        elif kind < 0.05:
            values[3] = "x"
        elif kind < 0.07:
            values[5] = "nan"
        elif kind < 0.08:
            lines.append("")
        elif kind < 0.09:
            lines.append("\ufeff" + f"cam{1 + i % 2}_person{person:03d}_{i:05d}.png," + ",".join(values))
            continue
        lines.append(f"cam{1 + i % 2}_person{person:03d}_{i:05d}.png," + ",".join(values))
    data = ("\r\n".join(lines) + "\r\n").encode()
    one, slow = both(data, max_listed=10_000)
    assert_same(one, slow)
    assert one.report.bad_rows > 0 and one.report.empty_lines > 0
    for size in (1, 700, 5000):
        monkeypatch.setattr(P, "PIECE_BYTES", size)
        assert len(P._piece_bounds(data, P._header_end(data))) > 1
        assert_same(parse_pose_bytes(data, "ilids", max_listed=10_000), one)


def test_pieces_end_after_a_newline():
    data = b"h\n" + b"".join(b"row%d,1\r\n" % i for i in range(100))
    pieces = P._piece_bounds(data, 2, size=50)
    assert pieces[0][0] == 2 and pieces[-1][1] == len(data) and len(pieces) > 5
    for (a, b), (c, _) in zip(pieces, pieces[1:]):
        assert b == c and data[b - 1:b] == b"\n"
    assert P._piece_bounds(b"h\ra,1\rb,2\r", 2, size=1) == [(2, 10)]  # no \n: one piece


def test_arrow_behaviours_the_fast_path_relies_on():
    """An empty line, a ragged row, quotes, a BOM inside a piece and a line longer than Arrow's block: the
    fast path must say "not clean" (None) or read every line as one row."""
    import pyarrow as pa

    def clean(text: bytes):
        return P._read_clean_piece(pa.py_buffer(text), 0, len(text), 2, P._ValueRows(len(text)))

    row = f"cam1_person001_00001.png,{GOOD}"
    assert clean(f"{row}\n{row}\r\n{row}\r{row}".encode()).lines.tolist() == [2, 3, 4, 5]
    for bad in [f"{row}\n\n{row}\n", f"{row}\n\r\n", "\n", f"{row},1\n", f"{row}\n\ufeff{row}\n",
                f"{row}\n{row.replace('1.5', 'nan', 1)}\n", f"{row.replace('1.5', '1e39', 1)}\n",
                f"{row}\n{'x' * (2 << 20)},{GOOD}\n", f"\"{row}\"\n"]:
        assert clean(bad.encode()) is None, bad[:60]
    assert clean(f"{row}\n".encode("utf-8") + b"caf\xe9" + f",{GOOD}\n".encode()) is None


# --------------------------------------------------------------------------------------------------
# BOMs, long cells

@pytest.mark.parametrize("with_header", [True, False])
def test_a_bom_never_makes_a_row_bad_or_goes_into_a_name(with_header):
    rows = [f"cam1_person001_{i:05d}.png,{GOOD}" for i in range(3)]
    lines = ([HEADER] if with_header else []) + rows
    data = "\ufeff".encode() + ("\n".join(lines) + "\n").encode()
    fast, slow = both(data)
    assert_same(fast, slow)
    assert fast.report.rows_used == (3 if with_header else 2) and fast.report.bad_rows == 0
    if not with_header:  # line 1 is the header whatever it holds; the BOM does not hide that it looks like data
        assert any("looks like a data row" in note for note in fast.report.notes)


def test_a_bom_at_the_start_of_a_data_line_is_dropped():
    """E.g. two files concatenated: the second file's BOM does not spoil its first row, nor the junk test."""
    data = (f"{HEADER}\n0065C1T0002F001.jpg,{GOOD}\n\ufeff0065C1T0002F002.jpg,{GOOD}\n"
            f"\ufeff00-1C1T0001F001.jpg,{GOOD}\n\ufeff\n").encode()
    fast, slow = both(data, "mars")
    assert_same(fast, slow)
    assert fast.report.rows_used == 2 and fast.report.junk_rows == 1 and fast.report.bad_rows == 0
    assert fast.report.empty_lines == 1 and fast.lengths.tolist() == [2]


@pytest.mark.parametrize("where", ["header", "name", "value", "ragged row"])
def test_cells_over_128_kb_are_read_or_reported(where):
    """The csv module's field limit is 128 KB; the reader has none: a long header is still the header, a long
    cell is a bad row, never a traceback."""
    huge = "x" * (200 << 10)
    good = f"cam1_person001_00001.png,{GOOD}"
    line = {"header": good, "name": f"{huge}.png,{GOOD}", "value": f"cam1_person001_00002.png,{huge}{GOOD[3:]}",
            "ragged row": f"cam1_person001_00002.png,{huge}"}[where]
    header = HEADER + huge if where == "header" else HEADER
    fast, slow = both(f"{header}\n{good}\n{line}\n{good}\n".encode())
    assert_same(fast, slow)
    reason = {"header": None, "name": "unparsable image name", "value": "non-numeric value",
              "ragged row": "2 columns, expected 52"}[where]
    assert fast.report.bad_lines == ([] if reason is None else [(3, reason)])
    assert len(fast.report.bad_name_note) < 400  # a long name is shortened in the message


def test_inf_and_minus_inf_in_one_row_warn_nothing():
    data = (HEADER + "\ncam1_person001_00001.png," + ",".join(["inf", "-inf"] + ["1"] * 49) + "\n").encode()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for result in both(data):
            assert result.report.bad_lines == [(2, "missing, NaN or infinite value")]


def test_parse_pose_file_reads_the_file(tmp_path, slow):
    path = tmp_path / "p.csv"
    path.write_bytes(f"{HEADER}\ncam1_person001_00001.png,{GOOD}\n".encode())
    assert parse_pose_file(path, "ilids").report.rows_used == 1


# --------------------------------------------------------------------------------------------------
# a file truncated while it is read (issue 10, item 7)

CHILD = """
import os, sys, time
from gafnet.errors import user_errors
from gafnet.gait.poses import load_poses
path, stop = sys.argv[1], sys.argv[2]
print("ready", flush=True)
with user_errors("child"):
    while not os.path.exists(stop):
        load_poses(path, "ilids", sequence_length=None)
"""


def test_truncating_the_file_while_it_is_read_never_kills_the_process(tmp_path):
    """The bytes are read into memory (no memory map): a file that shrinks meanwhile gives a short read, not
    SIGBUS. The reading process keeps going (exit 0) or stops with a one-line error (exit 2)."""
    import time

    line = f"cam1_person001_00001.png,{GOOD}\n"
    content = (HEADER + "\n" + line * 60_000).encode()  # about 25 MB
    path, stop = tmp_path / "p.csv", tmp_path / "stop"
    path.write_bytes(content)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(stop)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 1.5
        rng = np.random.default_rng(0)
        while time.monotonic() < deadline and child.poll() is None:
            with open(path, "r+b") as fh:  # the same file (same inode) shrinks and grows again
                fh.truncate(int(rng.integers(len(HEADER) + 2, len(content) // 4)))
            time.sleep(float(rng.uniform(0, 0.01)))
            with open(path, "r+b") as fh:
                fh.seek(0)
                fh.write(content)
            time.sleep(float(rng.uniform(0, 0.01)))
        stop.touch()
        _, stderr = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode in (0, 2), f"exit status {child.returncode} (a negative one is a signal): {stderr[-2000:]}"
    assert "Traceback" not in stderr


def test_nul_bytes_are_ordinary_characters():
    data = (f"{HEADER}\ncam1_person001_00001.png,{GOOD}\ncam1_person001_00002.png\x00,{GOOD}\n"
            f"cam1_person001_00003.png,1.5\x00{GOOD[3:]}\n").encode()
    fast, slow = both(data)
    assert_same(fast, slow)
    assert fast.report.bad_lines == [(3, "unparsable image name"), (4, "non-numeric value")]
