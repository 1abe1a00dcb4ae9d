import csv
import math

import numpy as np
import pytest

from s2kan_dyn.benchmark import SuiteOptions, build_case, evaluate, run_benchmark, system_names
from s2kan_dyn.benchmark.odebench import get as odebench_get
from s2kan_dyn.benchmark.odebench import held_out_initial_condition
from s2kan_dyn.benchmark.results import COLUMNS, read_results, write_results
from s2kan_dyn.benchmark.runner import BenchmarkInterrupted
from s2kan_dyn.benchmark.summary import summary_markdown
from s2kan_dyn.errors import OutputExistsError, S2KANDynError, UnknownNameError


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_odebench_copy_has_63_systems():
    names = system_names("odebench")
    assert len(names) == 63
    assert names[0] == "odebench_01"


def test_odebench_system_sampling():
    system = odebench_get("odebench_28")
    [traj] = system.simulate()
    assert traj.x.shape == (512, 2)
    assert traj.t[-1] == pytest.approx(10.0)
    assert held_out_initial_condition("odebench_28") == [0.3, 0.8]


def test_odebench_case_tests_second_start():
    case = build_case("odebench", "odebench_02", 0.0, "default", 0)
    assert np.allclose(case.train[0].x[0], [4.78])
    assert np.allclose(case.tests[0].x[0], [0.87])
    assert case.truth is not None


def test_coarse_case_step():
    case = build_case("core", "lotka_volterra", 0.0, "coarse", 0)
    assert np.diff(case.train[0].t)[0] == pytest.approx(5 * 0.02)


@pytest.mark.slow
def test_chaotic_case_ten_starts():
    case = build_case("core", "lorenz", 0.0, "default", 0)
    assert len(case.tests) == 10
    assert case.lyapunov_time is not None


def test_unknown_suite():
    with pytest.raises(UnknownNameError, match="odebench"):
        system_names("odebenc")


def test_dysts_without_path():
    with pytest.raises(S2KANDynError, match=r"s2kan-dyn\[dysts\]"):
        system_names("dysts")


def test_evaluate_sindy_metrics():
    case = build_case("core", "lotka_volterra", 0.0, "default", 0)
    result = evaluate(case, "sindy")
    m = result.metrics
    assert m["exact"] is True
    assert m["r2"] > 0.999
    assert m["vpt"] == pytest.approx(case.tests[0].t[-1])
    assert m["rollout_status"] == "ok"
    assert set(m["equations"]) == {"x", "y"}


def test_results_roundtrip(tmp_path):
    path = tmp_path / "results.csv"
    row = {"suite": "core", "system": "x", "noise": 0.05, "sampling": "default", "seed": 0, "method": "sindy",
           "status": "ok", "rmse": math.inf, "exact": True, "equations": {"x": "-x"}, "vpt_lyapunov": None}
    write_results(path, [row])
    [back] = read_results(path)
    assert list(back) == list(COLUMNS)
    assert back["noise"] == "0.05"
    assert back["rmse"] == "inf"
    assert back["exact"] == "true"
    assert back["vpt_lyapunov"] == ""
    assert back["equations"] == '{"x": "-x"}'


def test_summary_rates():
    rows = [
        {"suite": "s", "system": "a", "noise": "0.0", "sampling": "default", "seed": "0", "method": "sindy",
         "status": "ok", "exact": "true", "r2": "0.999", "coef_error": "0.01", "vpt": "5", "vpt_lyapunov": "",
         "fit_seconds": "0.1"},
        {"suite": "s", "system": "b", "noise": "0.0", "sampling": "default", "seed": "0", "method": "sindy",
         "status": "timed out"},
    ]
    text = summary_markdown("s", rows)
    assert "1/2 (50 %)" in text
    assert "| sindy | 0.0 | default | 2 | 1 | 1 | 0 |" in text


@pytest.mark.slow
def test_benchmark_resume_skips_rows(tmp_path):
    out = tmp_path / "bench"
    first = run_benchmark("core", out, noises=[0.0], methods=["sindy"], systems=["lotka_volterra"],
                          timeout=120, progress=False)
    assert first["ran"] == 1
    rows = _rows(out / "results.csv")
    assert len(rows) == 1
    assert rows[0]["status"] == "ok"
    assert rows[0]["exact"] == "true"
    assert rows[0]["pysindy_version"] != ""
    stamp = rows[0]["finished_at"]

    second = run_benchmark("core", out, noises=[0.0, 0.05], methods=["sindy"], systems=["lotka_volterra"],
                           timeout=120, progress=False)
    assert second["skipped"] == 1
    assert second["ran"] == 1
    rows = _rows(out / "results.csv")
    assert len(rows) == 2
    assert rows[0]["finished_at"] == stamp
    assert (out / "summary_core.md").exists()
    assert (out / "success_vs_noise_core.png").stat().st_size > 0
    assert (out / "vpt_per_system_core.png").stat().st_size > 0


@pytest.mark.slow
def test_benchmark_timeout_row(tmp_path):
    out = tmp_path / "bench"
    result = run_benchmark("core", out, noises=[0.0], methods=["sindy"], systems=["lorenz"],
                           timeout=0.05, progress=False)
    rows = _rows(out / "results.csv")
    assert result["counts"]["timed out"] == 1
    assert [r["status"] for r in rows] == ["timed out"]
    assert "timed out after 0.05 s" in rows[0]["message"]


def test_benchmark_rejects_foreign_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="--force"):
        run_benchmark("core", tmp_path, methods=["sindy"], systems=["hopf"], progress=False)


def test_benchmark_missing_parent_folder(tmp_path):
    out = tmp_path / "typo" / "bench"
    with pytest.raises(S2KANDynError, match="does not exist"):
        run_benchmark("core", out, methods=["sindy"], systems=["hopf"], progress=False)
    assert not (tmp_path / "typo").exists()


def test_benchmark_unknown_system(tmp_path):
    with pytest.raises(S2KANDynError, match="lorenzz"):
        run_benchmark("core", tmp_path / "b", methods=["sindy"], systems=["lorenzz"], progress=False)


def test_options_odebench_path_missing(tmp_path):
    with pytest.raises(S2KANDynError, match="not found"):
        system_names("odebench", SuiteOptions(odebench_path=str(tmp_path / "none.json")))


def test_ray_executor_needs_extra(tmp_path):
    try:
        import ray  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("ray is installed; the missing-extra message cannot be shown")
    out = tmp_path / "bench"
    with pytest.raises(S2KANDynError, match=r"s2kan-dyn\[ray\]"):
        run_benchmark("core", out, methods=["sindy"], systems=["hopf"], executor="ray", progress=False)
    assert not out.exists()


@pytest.mark.slow
def test_evaluate_s2kan_linear_growth():
    case = build_case("odebench", "odebench_02", 0.0, "default", 0)
    result = evaluate(case, "s2kan", time_budget=60.0)
    assert result.metrics["exact"] is True
    assert result.metrics["coef_error"] < 1e-6
    assert result.metrics["rollout_status"] == "ok"
    assert result.fitted.details["equations"]["x0"]


def test_odebench_reference_layout(tmp_path):
    import json

    from s2kan_dyn.benchmark import odebench

    entry = {"id": 7, "name": "decay", "dim": 1, "equations": ["- c_0 * x_0^2"], "constants": {"c_0": 0.5},
             "init_conditions": [[1.0], [2.0]], "t_span": [0, 10], "n_points": 101, "rhs_class": "polynomial",
             "chaotic": False, "source": "made up"}
    path = tmp_path / "ref.json"
    path.write_text(json.dumps({"systems": [entry]}))
    assert odebench.names(str(path)) == ["odebench_07"]
    system = odebench.get("odebench_07", str(path))
    assert str(system.equations()["x0"]) == "-0.5*x0**2"
    assert odebench.held_out_initial_condition("odebench_07", str(path)) == [2.0]


def test_odebench_invalid_entry(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"systems": [{"id": 1}]}')
    with pytest.raises(S2KANDynError, match="invalid"):
        system_names("odebench", SuiteOptions(odebench_path=str(path)))


def test_interrupted_before_any_row(tmp_path):
    path = tmp_path / "results.csv"
    message = str(BenchmarkInterrupted(0, 2, path))
    assert "nothing was written" in message
    assert "saved in" not in message


def test_interrupted_after_rows(tmp_path):
    message = str(BenchmarkInterrupted(1, 2, tmp_path / "results.csv"))
    assert "1 of 2 runs done and saved in" in message
