"""``s2kan-dyn discover`` end to end: output folder, report, plots, errors."""

import json

import numpy as np
import pytest
import sympy as sp

import systems
from s2kan_dyn.cli import main
from s2kan_dyn.io import save_trajectories


@pytest.fixture
def lotka_file(out_dir):
    [traj] = systems.get("lotka_volterra").simulate(t_end=12.0, dt=0.05)
    path = out_dir / "lv.csv"
    save_trajectories(path, [traj])
    return path


def png_description(path) -> str:
    """Return the ``Description`` text field of a PNG file."""
    from PIL import Image

    with Image.open(path) as image:
        return image.text["Description"]


def test_open_terms_follow_equations(tmp_path):
    from s2kan_dyn.plots import plot_open_terms

    x, y = sp.symbols("x y")
    equations = {"x": 1.1 * x - 0.4 * x * y, "y": 0.1 * x * y - 0.4 * y}
    states = np.column_stack([np.linspace(1, 3, 50), np.linspace(2, 0.5, 50)])
    path = plot_open_terms(tmp_path / "terms.png", equations, ["x", "y"], x=states, title="lotka")
    assert path == tmp_path / "terms.png"
    assert path.stat().st_size > 1000
    assert png_description(path) == "x': x, x*y\ny': y, x*y"


def test_open_terms_dense_and_zero(tmp_path):
    from s2kan_dyn.plots import plot_open_terms

    x, y = sp.symbols("x y")
    dense = sp.Function("dense_l0_1_0")(x)
    equations = {"x": 2 + sp.sin(y) - x**2, "y": 0.5 * dense - x, "z": sp.Integer(0)}
    path = plot_open_terms(tmp_path / "terms.png", equations, ["x", "y", "z"], x=np.ones((10, 3)))
    lines = png_description(path).splitlines()
    assert lines[0] == "x': 1, x^2, sin(y)"
    assert lines[1] == "y': x, dense_l0_1_0(x)"
    assert lines[2] == "z': "


def test_forecast_plot_marks_valid_time(tmp_path):
    from s2kan_dyn.plots import plot_forecast

    t = np.linspace(0.0, 4.0, 41)
    observed = np.column_stack([np.sin(t), np.cos(t)])
    path = plot_forecast(tmp_path / "forecast.png", t, observed, observed[:30] + 0.01, ["x", "y"], valid_until=2.5)
    assert path.stat().st_size > 1000
    assert png_description(path) == "forecast valid until t = 2.5"
    whole = plot_forecast(tmp_path / "whole.png", t, observed, observed + 0.01, ["x", "y"], valid_until=4.0)
    assert png_description(whole) == "forecast valid to the end of the test, t = 4"


@pytest.mark.slow
def test_discover_file_writes_report(lotka_file, out_dir, capsys):
    code = main(["-q", "discover", "--data", str(lotka_file), "--stages", "derivative", "--out", "run"])
    assert code == 0
    report = json.loads((out_dir / "run" / "report.json").read_text())
    assert report["states"] == ["x", "y"]
    assert report["truth"] is None
    assert report["stages"]["derivative"]["ran"]
    assert report["stages"]["trajectory"]["reason"] == "not requested"
    assert report["metrics"]["forecast"]["vpt"] > 0
    assert report["seed"] == 0
    assert "torch" in report["versions"]
    found = sp.sympify(report["equations"]["x"])
    assert {str(s) for s in found.free_symbols} <= {"x", "y"}
    for name in ("forecast.png", "phase_portrait.png", "open_terms.png"):
        assert (out_dir / "run" / name).stat().st_size > 1000
    assert png_description(out_dir / "run" / "forecast.png").startswith("forecast valid ")
    drawn = png_description(out_dir / "run" / "open_terms.png").splitlines()
    for line, (state, rhs) in zip(drawn, report["equations"].items()):
        terms = sp.expand(sp.sympify(rhs)).as_coefficients_dict()
        assert line.startswith(f"{state}': ")
        assert len(line.split(": ")[1].split(", ")) == len(terms)
    printed = capsys.readouterr().out
    assert printed.startswith("x' = ")
    assert "valid prediction time" in printed.splitlines()[-1]


@pytest.mark.slow
def test_discover_catalog_beside_truth(out_dir, capsys):
    code = main(["-q", "discover", "lotka_volterra", "--t-end", "12", "--dt", "0.05", "--stages", "derivative",
                 "--report", "copy.json"])
    assert code == 0
    report = json.loads((out_dir / "s2kan-dyn-out" / "lotka_volterra" / "report.json").read_text())
    assert report["metrics"]["equations"]["exact"]
    assert report["truth"]["y"] == "x*y/10 - 2*y/5"
    assert json.loads((out_dir / "copy.json").read_text())["equations"] == report["equations"]
    assert "(true: " in capsys.readouterr().out


def test_non_empty_folder_rejected(lotka_file, out_dir, capsys):
    (out_dir / "run").mkdir()
    (out_dir / "run" / "old.txt").write_text("keep")
    code = main(["discover", "--data", str(lotka_file), "--out", "run"])
    message = capsys.readouterr().err
    assert code == 2
    assert "not empty" in message
    assert "--force" in message
    assert (out_dir / "run" / "old.txt").read_text() == "keep"


def test_name_and_data_rejected(lotka_file, out_dir, capsys):
    assert main(["discover", "lorenz", "--data", str(lotka_file)]) == 2
    assert "either NAME" in capsys.readouterr().err


def test_unknown_name_suggests(out_dir, capsys):
    assert main(["discover", "lorenzz"]) == 2
    message = capsys.readouterr().err
    assert "'lorenz'" in message
    assert "Traceback" not in message


def test_missing_file_rejected(out_dir, capsys):
    assert main(["discover", "--data", "missing.csv"]) == 2
    assert "file not found" in capsys.readouterr().err
    assert not (out_dir / "s2kan-dyn-out").exists()


def test_bad_test_fraction_rejected(lotka_file, out_dir, capsys):
    assert main(["discover", "--data", str(lotka_file), "--test-fraction", "1.5"]) == 2
    assert "--test-fraction" in capsys.readouterr().err


def test_nan_data_rejected(out_dir, capsys):
    path = out_dir / "bad.csv"
    rows = ["t,a,b"] + [f"{0.1 * k},{np.sin(k)},{'nan' if k == 7 else np.cos(k)}" for k in range(30)]
    path.write_text("\n".join(rows) + "\n")
    assert main(["discover", "--data", str(path)]) == 2
    message = capsys.readouterr().err
    assert "non-finite" in message
    assert "'b'" in message


@pytest.mark.slow
def test_chaotic_system_scored_from_ten_starts(out_dir, capsys):
    code = main(["-q", "discover", "lorenz", "--t-end", "4", "--stages", "derivative", "--out", "run"])
    assert code == 0
    report = json.loads((out_dir / "run" / "report.json").read_text())
    starts = report["metrics"]["forecast_starts"]
    assert starts["n_starts"] == 10
    assert len(starts["vpt"]) == 10
    assert starts["vpt_mean"] == pytest.approx(np.mean(starts["vpt"]))
    assert starts["vpt_lyapunov_mean"] > 1.0


def test_non_chaotic_system_has_one_start(out_dir, capsys):
    code = main(["-q", "discover", "lotka_volterra", "--t-end", "12", "--dt", "0.05", "--stages", "derivative",
                 "--out", "run"])
    assert code == 0
    report = json.loads((out_dir / "run" / "report.json").read_text())
    assert "forecast_starts" not in report["metrics"]
