"""The benchmark's ``ray`` executor: same rows as the local process pool, time limits, errors."""

import csv
import select
import socket
import subprocess
import sys

import pytest

from s2kan_dyn.benchmark import run_benchmark
from s2kan_dyn.cli import main
from s2kan_dyn.errors import S2KANDynError

# Columns that differ between two runs of the same job whatever the executor.
RUN_DEPENDENT = {"fit_seconds", "peak_memory_mb", "finished_at"}
SWEEP = ["-q", "benchmark", "--suite", "core", "--systems", "hopf,van_der_pol", "--methods", "sindy",
         "--noise", "0", "--seeds", "1", "--jobs", "2", "--timeout", "300"]
# A driver that starts a local Ray instance, prints its address and keeps it up until stdin closes.
RAY_HEAD = (
    "import sys, ray; ray.init(address='local', num_cpus=2, include_dashboard=False); "
    "print(ray.get_runtime_context().gcs_address, flush=True); sys.stdin.read(); ray.shutdown()"
)


@pytest.fixture
def ray():
    return pytest.importorskip("ray")


def _rows(path):
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return sorted(rows, key=lambda row: row["system"])


def _listing(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.slow
def test_ray_rows_match_local(ray, tmp_path, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    local_out = tmp_path / "local"
    ray_out = tmp_path / "ray"

    assert main([*SWEEP, "--executor", "local", "--out", str(local_out)]) == 0
    assert main([*SWEEP, "--executor", "ray", "--out", str(ray_out)]) == 0

    local_rows = _rows(local_out / "results.csv")
    ray_rows = _rows(ray_out / "results.csv")
    assert [r["system"] for r in ray_rows] == ["hopf", "van_der_pol"]
    assert [r["status"] for r in ray_rows] == ["ok", "ok"]
    assert list(ray_rows[0]) == list(local_rows[0])
    for local_row, ray_row in zip(local_rows, ray_rows):
        for column in local_row:
            if column in RUN_DEPENDENT:
                continue
            assert ray_row[column] == local_row[column], f"{ray_row['system']}: column {column}"
    assert not ray.is_initialized()
    assert _listing(cwd) == []
    assert "summary_core.md" in _listing(ray_out)


@pytest.mark.slow
def test_ray_timeout_row(ray, tmp_path):
    out = tmp_path / "bench"
    result = run_benchmark("core", out, noises=[0.0], methods=["sindy"], systems=["lorenz"], executor="ray",
                           timeout=0.05, progress=False)
    [row] = _rows(out / "results.csv")
    assert result["counts"]["timed out"] == 1
    assert row["status"] == "timed out"
    assert row["message"] == "timed out after 0.05 s"
    assert not ray.is_initialized()


@pytest.mark.slow
def test_ray_address_joins_cluster(ray, tmp_path):
    head = subprocess.Popen([sys.executable, "-c", RAY_HEAD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        readable, _, _ = select.select([head.stdout], [], [], 300)
        address = head.stdout.readline().strip() if readable else ""
        assert address, "the Ray head process printed no address within 300 s"
        out = tmp_path / "bench"
        result = run_benchmark("core", out, noises=[0.0], methods=["sindy"], systems=["hopf"], executor="ray",
                               ray_address=address, timeout=300, progress=False)
        assert result["counts"]["ok"] == 1
        assert not ray.is_initialized()
        assert head.poll() is None, "the cluster stopped when the sweep disconnected"
    finally:
        head.stdin.close()
        try:
            head.wait(60)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait()


def test_ray_missing_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    out = tmp_path / "bench"
    with pytest.raises(S2KANDynError, match=r"pip install 's2kan-dyn\[ray\]'"):
        run_benchmark("core", out, methods=["sindy"], systems=["hopf"], executor="ray", progress=False)
    assert not out.exists()


def test_ray_address_needs_ray_executor(tmp_path):
    out = tmp_path / "bench"
    with pytest.raises(S2KANDynError, match="--executor ray"):
        run_benchmark("core", out, methods=["sindy"], systems=["hopf"], ray_address="auto", progress=False)
    assert not out.exists()


def test_ray_address_unreachable(ray, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = tmp_path / "bench"
    with pytest.raises(S2KANDynError, match=f"no Ray cluster found at --ray-address 127.0.0.1:{port}"):
        run_benchmark("core", out, methods=["sindy"], systems=["hopf"], executor="ray",
                      ray_address=f"127.0.0.1:{port}", progress=False)
    assert not ray.is_initialized()
    assert not out.exists()
