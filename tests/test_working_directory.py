"""Commands write only where the user points them: an empty working directory stays empty."""

import subprocess
import sys

import pytest

RUN_CLI = "import sys; from s2kan_dyn.cli import main; sys.exit(main(sys.argv[1:]))"


def _run_in(cwd, *argv):
    return subprocess.run(
        [sys.executable, "-c", RUN_CLI, *argv], cwd=cwd, capture_output=True, text=True, timeout=600
    )


def _listing(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_simulate_leaves_cwd_empty(tmp_path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    out = tmp_path / "elsewhere" / "lorenz.csv"
    out.parent.mkdir()
    done = _run_in(cwd, "simulate", "lorenz", "--t-end", "1", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert out.is_file()
    assert _listing(cwd) == []
    assert _listing(out.parent) == ["lorenz.csv"]


@pytest.mark.slow
def test_discover_leaves_cwd_empty(tmp_path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    out = tmp_path / "elsewhere" / "run"
    out.parent.mkdir()
    done = _run_in(cwd, "-q", "discover", "lotka_volterra", "--t-end", "5", "--stages", "derivative", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert _listing(cwd) == []
    written = _listing(out)
    assert "report.json" in written
    assert "model.s2kan" in written
    assert not any(name.endswith(".part") for name in written)
    assert "checkpoint.s2kan" not in written


def test_discover_failure_leaves_cwd_empty(tmp_path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    bad = tmp_path / "bad.csv"
    bad.write_text("t,x\n0,1\n0,2\n")
    done = _run_in(cwd, "discover", "--data", str(bad), "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert _listing(cwd) == []
    assert not (tmp_path / "out").exists()


def test_discover_existing_folder_kept(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    done = _run_in(tmp_path, "discover", "lotka_volterra", "--out", str(out))
    assert done.returncode == 2
    assert "--force" in done.stderr
    assert _listing(out) == ["mine.txt"]
    assert (out / "mine.txt").read_text() == "keep"
