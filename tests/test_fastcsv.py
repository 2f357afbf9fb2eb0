"""The C pose parser (gafnet/gait/_posecsv.c via gafnet.gait.fastcsv): numbers, line ends, pieces, fallback.

Both parsers also run every test of test_poses.py (its autouse ``engine`` fixture).
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

from gafnet.errors import InputError
from gafnet.gait import fastcsv
from gafnet.gait import poses as P
from gafnet.gait.poses import parse_pose_file

pytestmark = pytest.mark.skipif(shutil.which(fastcsv.compiler()[0]) is None,
                                reason="no C compiler: the C parser is not built (Arrow is used)")

HEADER = P.CSV_HEADER


def parse_text(text: str, num_values: int = 3):
    """Run the C parser on ``text``: (values, status, columns, names as str)."""
    raw = np.frombuffer(text.encode("utf-8", "surrogateescape"), np.uint8)
    n = fastcsv.count_lines(raw, 0, len(raw))
    values = np.full((n, num_values), -7.0, np.float32)
    status = np.empty(n, np.int8)
    columns = np.empty(n, np.int32)
    (offsets, data), _ = fastcsv.parse_lines(raw, 0, len(raw), values, status, columns)
    names = [bytes(data[offsets[i]:offsets[i + 1]]).decode("utf-8", "surrogateescape") for i in range(n)]
    return values, status, columns, names


FLOAT_RE = re.compile(P._FLOAT_RE, re.ASCII)  # as Arrow's RE2: \d is an ASCII digit
NULL_RE = re.compile(P._NULL_RE, re.ASCII)


def expected_value(token: str):
    """The rules by hand: (status, value) with value = float32 of the correctly rounded double."""
    text = token.strip()  # Python's white space (str.isspace), as float() and the original
    if FLOAT_RE.match(text):
        with np.errstate(over="ignore"):
            value = np.float32(float(text))
        return (fastcsv.ROW_OK if np.isfinite(value) else fastcsv.ROW_NOT_FINITE), value
    if NULL_RE.match(text):
        return fastcsv.ROW_NOT_FINITE, np.float32("nan")
    return fastcsv.ROW_NON_NUMERIC, None


TOKENS = ["0", "-0", "+0", "1", "-1", "12.5", "255.829", "0.7505", ".5", "5.", "-.5", "+.5", "1e3", "1E-3",
          "2.5e+2", "-2.5e-2", "1e39", "-1e39", "1e-50", "3.4028235e38", "3.4028236e38", "0.1", "0.3",
          "123456789012345678901234567890", "0.000000000000000000000000000001234567890123456789",
          "1.00000000000000000000000000000000000000001", "9007199254740993", "179.99999999999999999",
          "  7.25", "7.25  ", "\t7.25\t", "inf", "-inf", "+Infinity", "INF", "nan", "NaN", "-nan", "+NAN", "",
          "  ", "NA", "n/a", "NULL", "None", "#N/A", "-1.#IND", "1.#QNAN", "abc", "1.2.3", "--1", "1e", "1e+",
          ".", "-", "+", "e5", "1_000", "0x10", "1,5", "nanx", "infinit", "1 2", "١٢",
          "\u00a01.5", "1.5\u3000", "\u20281.5\u2029", "\x1c1.5\x1f", "\u20001.5\u200a", "\u0085-2\u202f",
          "\u205f3\u1680", "\u200b1.5", "1.5\ufeff", "\u00a0", "\u3000nan", "1e99999", "-1e-99999"]


@pytest.mark.parametrize("token", [t for t in TOKENS if "," not in t])
def test_each_token_is_read_by_the_rules(token):
    values, status, columns, names = parse_text(f"name,{token},1.5,2\n")
    expected_status, expected = expected_value(token)
    assert status.tolist() == [expected_status] and columns.tolist() == [4] and names == ["name"]
    if expected is not None:
        got = values[0, 0]
        assert (math.isnan(got) and math.isnan(expected)) or got.tobytes() == expected.tobytes(), (token, got, expected)


@pytest.mark.parametrize("token", TOKENS)
def test_both_parsers_apply_the_same_rules_to_each_token(tmp_path, token):
    """A file whose second row holds ``token``: the same rows, values and bad-row report either way."""
    good = ",".join(["1.5"] * 51)
    cells = ",".join([token] + ["2.5"] * 50)
    path = tmp_path / "p.csv"
    path.write_bytes(f"{HEADER}\ncam1_person001_00001.png,{good}\ncam1_person001_00002.png,{cells}\n".encode())
    c, arrow = (parse_pose_file(path, "ilids", engine=e, max_listed=10) for e in ("c", "arrow"))
    assert c.report.bad_lines == arrow.report.bad_lines
    assert c.report.rows_used == arrow.report.rows_used
    np.testing.assert_array_equal(c.poses, arrow.poses)


def test_a_huge_exponent_after_many_zeros_is_not_finite():
    tiny = "0." + "0" * 99_999 + "1"  # 1e-100000
    _, status, _, _ = parse_text(f"n,{tiny}e1000000,1,2\n")  # 1e900000: inf, not 1.0
    assert status.tolist() == [fastcsv.ROW_NOT_FINITE]
    values, status, _, _ = parse_text(f"n,{tiny}e-1000038,{tiny}e100001,{tiny}e100000\n")
    assert status.tolist() == [fastcsv.ROW_OK] and values[0].tolist() == [0, 10, 1]


def test_numbers_do_not_depend_on_the_process_locale(tmp_path):
    """strtod follows LC_NUMERIC: under a German locale it would read "1.5e30" as 1. The parser must not."""
    if shutil.which("localedef") is None:
        pytest.skip("localedef is not installed: cannot make a locale with a decimal comma")
    made = subprocess.run(["localedef", "-i", "de_DE", "-f", "UTF-8", str(tmp_path / "de_DE.UTF-8")],
                          capture_output=True, text=True)
    if not (tmp_path / "de_DE.UTF-8").is_dir():
        pytest.skip(f"localedef could not make de_DE.UTF-8 here: {made.stderr.strip()[:200]}")
    path = tmp_path / "p.csv"
    values = ["1.5e30", "0.12345678901234567890123", "-2.5e-40"] + ["2.5"] * 48
    path.write_text(HEADER + "\ncam1_person001_00001.png," + ",".join(values) + "\n")
    code = ("import locale, sys; locale.setlocale(locale.LC_ALL, 'de_DE.UTF-8'); "
            "assert locale.localeconv()['decimal_point'] == ','; "
            "from gafnet.gait.poses import parse_pose_file; "
            "print(parse_pose_file(sys.argv[1], 'ilids', engine='c').poses[0, 0].tolist())")
    env = dict(os.environ, LOCPATH=str(tmp_path), PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    expected = np.array([float(v) for v in values[:3]]).astype(np.float32).tolist()
    assert [float(v) for v in done.stdout.strip("[]\n").split(",")] == expected


def test_random_decimals_equal_python_float_then_float32():
    """The float32 of the correctly rounded double, bit for bit: what np.array(strings, float32) gives."""
    rng = np.random.default_rng(3)
    tokens = []
    for _ in range(20000):
        digits = int(rng.integers(1, 25))
        mantissa = "".join(rng.choice(list("0123456789"), digits))
        point = int(rng.integers(0, digits + 1))
        token = mantissa[:point] + "." + mantissa[point:] if rng.random() < 0.8 else mantissa
        if rng.random() < 0.3:
            token += f"e{int(rng.integers(-45, 45))}"
        if rng.random() < 0.3:
            token = "-" + token
        tokens.append(token if token not in (".", "-.") else "0")
    values, status, _, _ = parse_text("".join(f"n,{t}\n" for t in tokens), num_values=1)
    with np.errstate(over="ignore"):
        expected = np.array([float(t) for t in tokens]).astype(np.float32)
        numpy_cast = np.array(tokens, dtype=str).astype(np.float32)
    finite = np.isfinite(expected)
    assert np.array_equal(status == fastcsv.ROW_OK, finite)
    assert np.array_equal(values[finite, 0].view(np.uint32), expected[finite].view(np.uint32))
    assert np.array_equal(numpy_cast[finite].view(np.uint32),
                          expected[finite].view(np.uint32))


NAMES = {  # valid names of each format, with directories, and names that only look alike
    "iLIDS": ["cam1_person001_00319.png", "a/b/cam2_person300_1.png", "x.y/cam1_person002_0001.png",
              "cam1_person001_00319.jpg", "cam1_person001_.png", "cam1_person001_00319", "cam1_person001_00319.png.png"],
    "mars": ["0065C1T0002F016.jpg", "bbox_test/00-1C1T0001F001.jpg", "d/0000C6T0001F999.jpg", "0065C1T0002F016.png",
             "0065C1T0002F.jpg", "0065C1T0002F0160000000000.jpg", "dir/00-1C1T0001F001.txt"],
    "casia-b": ["frames/001-nm-01-090/000042.jpg", "a\\001-bg-02-180\\7.png", "x/124-cl-02-000/000001.png",
                "001-nm-01-090/000042.jpg", "frames/001-nm-01-090_000042.jpg", "frames/001-nm-01-090/000042.gif",
                "frames/001-xx-01-090/000042.jpg"],
}


@pytest.mark.parametrize("dataset", sorted(NAMES))
def test_the_c_cut_of_the_frame_part_equals_the_regex_cut(dataset):
    """For every name that matches a format, the C parser's prefix is the regex's (PoseFormat.simple_frame)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    fmt = P.get_format(dataset)
    assert fmt.simple_frame
    raw = np.frombuffer("".join(f"{name},1\n" for name in NAMES[dataset]).encode(), np.uint8)
    n = fastcsv.count_lines(raw, 0, len(raw))
    _, (offsets, data) = fastcsv.parse_lines(raw, 0, len(raw), np.empty((n, 1), np.float32), np.empty(n, np.int8),
                                             np.empty(n, np.int32))
    c_cut = [bytes(data[offsets[i]:offsets[i + 1]]).decode() for i in range(n)]
    regex_cut = pc.replace_substring_regex(pa.array(NAMES[dataset]), f"{fmt.frame_pattern}$", "").to_pylist()
    matched = [re.match(fmt.pattern, name) is not None for name in NAMES[dataset]]
    assert sum(matched) >= 3
    for name, ok, a, b in zip(NAMES[dataset], matched, c_cut, regex_cut):
        if ok:
            assert a == b, name


@pytest.mark.parametrize("dataset", sorted(NAMES))
def test_both_parsers_group_and_reject_the_same_names(tmp_path, dataset):
    good = ",".join(["1.5"] * 51)
    path = tmp_path / "names.csv"
    path.write_text(HEADER + "\n" + "".join(f"{name},{good}\n" for name in NAMES[dataset] * 2))
    c, arrow = (parse_pose_file(path, dataset, engine=e, max_listed=100) for e in ("c", "arrow"))
    assert c.report.bad_lines == arrow.report.bad_lines and c.report.junk_rows == arrow.report.junk_rows
    assert c.target_list() == arrow.target_list() and len(c) >= 2
    np.testing.assert_array_equal(c.offsets, arrow.offsets)


def test_double_rounding_as_the_original_and_arrow_differ_by_one_ulp(tmp_path):
    """Next to a float32 midpoint the original (text → double → float32) and Arrow (text → float32) differ;
    the C parser gives the original's value (the README documents this)."""
    token = "1.000000059604644775390625000001"  # just above the midpoint of 1.0 and the next float32
    assert np.float32(float(token)) == 1.0 and np.array([token]).astype(np.float32)[0] == 1.0
    path = tmp_path / "p.csv"
    path.write_text(HEADER + "\ncam1_person001_00001.png," + ",".join([token] * 51) + "\n")
    assert parse_pose_file(path, "ilids", engine="c").poses[0, 0, 0] == np.float32(1.0)
    assert parse_pose_file(path, "ilids", engine="arrow").poses[0, 0, 0] == np.nextafter(np.float32(1), np.float32(2))


def test_line_ends_columns_and_names():
    text = "a,1,2,3\r\nb,1,2\n\rc,1,2,3,4\r\r\nd,x,2,3\ne,nan,2,3\n,1,2,3\nf"
    values, status, columns, names = parse_text(text)
    assert names == ["a", "b", "", "c", "", "d", "e", "", "f"]
    assert columns.tolist() == [4, 3, 0, 5, 0, 4, 4, 4, 1]
    S = fastcsv
    assert status.tolist() == [S.ROW_OK, S.ROW_WRONG_COUNT, S.ROW_EMPTY, S.ROW_WRONG_COUNT, S.ROW_EMPTY,
                               S.ROW_NON_NUMERIC, S.ROW_NOT_FINITE, S.ROW_OK, S.ROW_WRONG_COUNT]
    np.testing.assert_array_equal(values[0], [1, 2, 3])


@pytest.mark.parametrize("text", ["", "\n", "\r", "\r\n", "a", "a\n", "a\r", "a\r\n\r\n", "\n\n\r\r\n", "a\rb\nc"])
def test_line_count_is_exact(text):
    raw = np.frombuffer(text.encode(), np.uint8)
    expected = len(re.findall(r"\r\n|\r|\n", text)) + (1 if text and text[-1] not in "\r\n" else 0)
    assert fastcsv.count_lines(raw, 0, len(raw)) == expected
    assert len(parse_text(text)[1]) == expected


def test_names_that_are_not_utf8_are_left_empty():
    raw = b"caf\xc3\xa9,1,2,3\ncaf\xe9,1,2,3\n\xed\xa0\x80,1,2,3\n\xf0\x9f\x98\x80,1,2,3\n"
    arr = np.frombuffer(raw, np.uint8)
    n = fastcsv.count_lines(arr, 0, len(arr))
    values, status, columns = np.empty((n, 3), np.float32), np.empty(n, np.int8), np.empty(n, np.int32)
    (offsets, data), _ = fastcsv.parse_lines(arr, 0, len(arr), values, status, columns)
    names = [bytes(data[offsets[i]:offsets[i + 1]]) for i in range(n)]
    assert names == ["café".encode(), b"", b"", "😀".encode()]  # latin-1 and a UTF-16 surrogate are not UTF-8
    assert status.tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize("engine", ["c", "arrow"])
def test_lone_cr_files_get_exact_line_numbers(tmp_path, engine):
    good = ",".join(["1.5"] * 51)
    lines = [HEADER, f"cam1_person001_00001.png,{good}", "", "cam1_person001_00002.png,1,2",
             f"cam1_person001_00003.png,{good}", "x,1", f"cam1_person001_00004.png,{good}"]
    path = tmp_path / "cr.csv"
    path.write_bytes(("\r".join(lines[:4]) + "\r\n" + "\r".join(lines[4:])).encode())  # one CRLF among them
    result = parse_pose_file(path, "ilids", engine=engine)
    assert result.report.bad_lines == [(4, "3 columns, expected 52"), (6, "2 columns, expected 52")]
    assert result.report.empty_lines == 1 and not result.report.notes
    assert result.report.rows_used == 3


@pytest.mark.parametrize("engine", ["c", "arrow"])
def test_lone_cr_file_with_a_ragged_row_and_an_empty_line_at_the_end(tmp_path, engine):
    good = ",".join(["1.5"] * 51)
    lines = [HEADER, f"cam1_person001_00001.png,{good}", "cam1_person001_00002.png,1,2",
             f"cam1_person001_00003.png,{good}", "", ""]
    path = tmp_path / "cr.csv"
    path.write_bytes("\r".join(lines).encode())
    report = parse_pose_file(path, "ilids", engine=engine).report
    assert report.bad_lines == [(3, "3 columns, expected 52")] and report.bad_rows == 1
    assert report.empty_lines == 1 and not report.notes and report.rows_used == 2


GOOD = ",".join(["1.5"] * 51)


@pytest.mark.parametrize("engine", ["c", "arrow"])
@pytest.mark.parametrize("second_row,reason", [
    (f"cam1_person001_0000\xe9.png,{GOOD}", "unparsable image name"),  # a name that is not UTF-8
    ("cam1_person001_00002.png,1\xe9," + ",".join(["2"] * 50), "non-numeric value"),  # a value that is not
])
def test_bytes_that_are_not_utf8(tmp_path, engine, second_row, reason):
    path = tmp_path / "latin1.csv"
    path.write_bytes(f"{HEADER}\ncam1_person001_00001.png,{GOOD}\n".encode() + f"{second_row}\n".encode("latin-1"))
    result = parse_pose_file(path, "ilids", engine=engine)
    assert result.report.bad_lines == [(3, reason)] and result.report.rows_used == 1


@pytest.mark.parametrize("engine", ["c", "arrow"])
def test_a_line_longer_than_arrow_blocks(tmp_path, engine):
    good = ",".join(["1.5"] * 51)
    path = tmp_path / "long.csv"
    path.write_text(f"{HEADER}\ncam1_person001_00001.png,{good}\n{'x' * (3 << 20)},{good}\n"
                    f"cam1_person001_00002.png,{good}\n")
    result = parse_pose_file(path, "ilids", engine=engine)
    assert result.report.bad_lines == [(3, "unparsable image name")] and result.report.rows_used == 2


@pytest.mark.parametrize("engine", ["c", "arrow"])
def test_inf_and_minus_inf_in_one_row_warn_nothing(tmp_path, engine):
    path = tmp_path / "inf.csv"
    path.write_text(HEADER + "\ncam1_person001_00001.png," + ",".join(["inf", "-inf"] + ["1"] * 49) + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = parse_pose_file(path, "ilids", engine=engine)
    assert result.report.bad_lines == [(2, "missing, NaN or infinite value")]


def test_pieces_in_threads_give_the_same_result_as_one_piece(tmp_path, monkeypatch):
    """Tiny pieces and many threads: line numbers, groups spanning pieces and bad rows all stay the same."""
    rng = np.random.default_rng(11)
    lines = [HEADER]
    for i in range(2000):
        person = 1 + i // 150  # sequences run across piece boundaries
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
        lines.append(f"cam{1 + i % 2}_person{person:03d}_{i:05d}.png," + ",".join(values))
    path = tmp_path / "p.csv"
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    one = parse_pose_file(path, "ilids", engine="c", max_listed=10_000)
    monkeypatch.setattr(P, "_workers", lambda: 7)
    monkeypatch.setattr(P, "_MIN_PIECE", 1)
    assert len(P._pieces(np.frombuffer(path.read_bytes(), np.uint8), 0, path.stat().st_size, 7, 1)) == 7
    many = parse_pose_file(path, "ilids", engine="c", max_listed=10_000)
    arrow = parse_pose_file(path, "ilids", engine="arrow", max_listed=10_000)
    for other in (many, arrow):
        assert other.report.bad_lines == one.report.bad_lines and one.report.bad_rows > 0
        assert other.target_list() == one.target_list()
        np.testing.assert_array_equal(other.offsets, one.offsets)
        np.testing.assert_array_equal(other.poses, one.poses)
    assert many.report.empty_lines == arrow.report.empty_lines == one.report.empty_lines > 0


def test_pieces_end_after_a_newline():
    raw = np.frombuffer(b"h\n" + b"".join(b"row%d,1\n" % i for i in range(100)), np.uint8)
    pieces = P._pieces(raw, 2, len(raw), 4, min_size=1)
    assert pieces[0][0] == 2 and pieces[-1][1] == len(raw) and len(pieces) == 4
    for (a, b), (c, _) in zip(pieces, pieces[1:]):
        assert b == c and raw[b - 1] == 10


def test_without_a_compiler_arrow_is_used(tmp_path, monkeypatch):
    monkeypatch.setattr(fastcsv, "_library", None)
    monkeypatch.setattr(fastcsv, "_build_error", None)
    monkeypatch.setenv("GAFNET_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    assert fastcsv.get_library() is None and "no C compiler" in fastcsv.build_error()
    assert fastcsv.choose_engine(None) == "arrow"
    path = tmp_path / "p.csv"
    path.write_text(HEADER + "\ncam1_person001_00001.png," + ",".join(["2"] * 51) + "\n")
    report = parse_pose_file(path, "ilids").report
    assert report.rows_used == 1 and "could not be built: no C compiler" in report.summary()
    with pytest.raises(InputError, match="cannot be built: no C compiler"):
        parse_pose_file(path, "ilids", engine="c")


def test_a_failing_compiler_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(fastcsv, "_library", None)
    monkeypatch.setattr(fastcsv, "_build_error", None)
    monkeypatch.setenv("GAFNET_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CC", "false")
    assert fastcsv.get_library() is None and "failed" in fastcsv.build_error()
    assert not any((tmp_path / "cache").rglob("*.so"))  # no half-built library left behind


def test_an_unusable_cache_directory_builds_elsewhere(tmp_path, monkeypatch):
    monkeypatch.setattr(fastcsv, "_library", None)
    monkeypatch.setattr(fastcsv, "_build_error", None)
    (tmp_path / "afile").write_text("not a directory")
    monkeypatch.setenv("GAFNET_CACHE_DIR", str(tmp_path / "afile" / "sub"))
    lib = fastcsv.get_library()
    assert lib is not None and fastcsv.build_error() is None and "gafnet_build_" in lib._name


@pytest.mark.skipif(os.name != "posix", reason="file ownership and modes are POSIX")
def test_a_library_writable_by_others_is_not_loaded(tmp_path, monkeypatch):
    monkeypatch.setattr(fastcsv, "_library", None)
    monkeypatch.setattr(fastcsv, "_build_error", None)
    monkeypatch.setenv("GAFNET_CACHE_DIR", str(tmp_path / "cache"))
    planted = fastcsv.library_path()
    planted.parent.mkdir(parents=True)
    planted.write_bytes(b"not a library")
    planted.chmod(0o666)
    lib = fastcsv.get_library()
    assert lib is not None and Path(lib._name) != planted and "gafnet_build_" in lib._name


def test_a_fresh_build_loads_and_is_reused(tmp_path, monkeypatch):
    monkeypatch.setattr(fastcsv, "_library", None)
    monkeypatch.setattr(fastcsv, "_build_error", None)
    monkeypatch.setenv("GAFNET_CACHE_DIR", str(tmp_path / "cache"))
    assert fastcsv.get_library() is not None
    built = list((tmp_path / "cache" / "build").iterdir())
    assert len(built) == 1 and built[0] == fastcsv.library_path()
    assert parse_text("n,1.25,2,3\n")[0][0].tolist() == [1.25, 2, 3]


def test_unknown_engine_is_an_input_error(tmp_path, monkeypatch):
    path = tmp_path / "p.csv"
    path.write_text(HEADER + "\n")
    monkeypatch.setenv("GAFNET_POSE_PARSER", "fast")
    with pytest.raises(InputError, match="unknown pose parser 'fast'.*auto, c, arrow"):
        parse_pose_file(path, "ilids")


def test_the_build_command_says_where_the_parser_is(capsys):
    assert fastcsv.main() == 0
    assert str(fastcsv.library_path()) in capsys.readouterr().out
