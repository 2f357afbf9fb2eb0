"""Small tools: holding out identities, and the end-to-end synthetic run (integration test)."""

import subprocess
import sys
from pathlib import Path

from gafnet.gait import synthetic_poses
from gafnet.gait.poses import load_poses

ROOT = Path(__file__).resolve().parents[1]


def test_holdout_keeps_every_row_and_separates_identities(tmp_path):
    synthetic_poses.write_ilids_pose_splits(tmp_path, num_ids=20, num_splits=1, seed=4)
    src = tmp_path / "train_split0.csv"
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "holdout_ids.py"), str(src), "--fraction", "0.3"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    fit, val = tmp_path / "train_split0.fit.csv", tmp_path / "train_split0.val.csv"
    n = lambda p: len(p.read_text().splitlines()) - 1  # noqa: E731
    assert n(fit) + n(val) == n(src)
    fit_ids = set(load_poses(fit, "iLIDS", sequence_length=None).column("person").tolist())
    val_ids = set(load_poses(val, "iLIDS", sequence_length=None).column("person").tolist())
    assert len(val_ids) == 3 and not fit_ids & val_ids
    again = subprocess.run([sys.executable, str(ROOT / "tools" / "holdout_ids.py"), str(src)], capture_output=True,
                           text=True)
    assert again.returncode == 2 and "exists" in again.stderr


def test_end_to_end_quick_run(tmp_path):
    """The whole method on tiny synthetic data: poses → GaitGraph → gait CSVs → fusion → table and plot."""
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "end_to_end.py"), "--quick", "--work_dir",
                        str(tmp_path / "e2e")], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "SYNTHETIC" in r.stdout and "fused R1" in r.stdout
    for name in ("pit", "mgh", "osnet"):
        assert any(line.startswith(name) for line in r.stdout.splitlines())
    assert (tmp_path / "e2e" / "lambda_sweep.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "e2e" / "embeddings" / "ilids" / "gait1" / "query_split0.csv").is_file()
    import json
    assert json.loads((tmp_path / "e2e" / "results.json").read_text())["synthetic"] is True
    summary = r.stdout.split("FINAL SUMMARY")[1]
    assert "✗" not in summary and "✓" not in summary and "SYNTHETIC" in summary
    assert "epoch 1/1" in r.stdout  # training progress is shown, not swallowed
    # a second run in the same directory replaces its own outputs and keeps the user's file
    (tmp_path / "e2e" / "notes.txt").write_text("mine")
    again = subprocess.run([sys.executable, str(ROOT / "tools" / "end_to_end.py"), "--quick", "--work_dir",
                            str(tmp_path / "e2e")], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert (tmp_path / "e2e" / "notes.txt").read_text() == "mine"


def test_end_to_end_refuses_a_directory_it_did_not_make(tmp_path):
    """Issue 9.1: the work directory used to be deleted whatever it held."""
    work = tmp_path / "mine"
    work.mkdir()
    (work / "thesis.tex").write_text("precious")
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "end_to_end.py"), "--quick", "--work_dir", str(work)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "not a run of this tool; nothing was deleted" in r.stderr
    assert "Traceback" not in r.stderr
    assert (work / "thesis.tex").read_text() == "precious" and sorted(p.name for p in work.iterdir()) == ["thesis.tex"]


SCRIPTS = {"evaluate.py": "evaluate.py", "gaitgraph/src/train.py": "train.py", "gaitgraph/src/evaluate.py": "evaluate.py",
           "reid.py": "reid.py", "tools/extract_poses.py": "extract_poses.py",
           "tools/extract_appearance.py": "extract_appearance.py"}


def test_ctrl_c_while_a_script_still_imports_is_one_line_and_130(tmp_path):
    """torch takes seconds to import: the thin scripts import their command inside the Ctrl-C handling."""
    import signal

    for script, prog in SCRIPTS.items():  # every thin script goes through gafnet.errors.script_main
        assert f'script_main("{prog}", ' in (ROOT / script).read_text(), script
    (tmp_path / "slow_module.py").write_text("import sys, time\nprint('importing', flush=True)\ntime.sleep(60)\n"
                                             "def main():\n    return 0\n")
    code = (f"import sys; sys.path[:0] = [{str(ROOT)!r}, {str(tmp_path)!r}]\n"
            "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"
            "from gafnet.errors import script_main\nsys.exit(script_main('train.py', 'slow_module'))\n")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline() == "importing\n"
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 130 and err == "train.py: interrupted\n", err
