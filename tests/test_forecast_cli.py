"""``s2kan-dyn forecast``: rollouts of saved models, output files, divergence."""

import time

import numpy as np
import pytest
import sympy as sp

from s2kan_dyn.cli import main
from s2kan_dyn.discovery import SymbolicODE
from s2kan_dyn.io import load_trajectories
from test_save_load import built_model


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "model.s2kan"
    built_model().save(path)
    return path


def blowup_model() -> SymbolicODE:
    """x' = x**2, whose solution from x = 1 is 1 / (1 - t): it diverges at t = 1."""
    x = sp.Symbol("x")
    model = SymbolicODE(progress=False)
    model.state_names_ = ("x",)
    model.equations_ = {"x": x**2}
    model.dense_terms_ = []
    model.network_ = None
    model.report_ = {}
    return model


def _run(capsys, *argv):
    code = main(["forecast", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.err


def test_forecast_csv_matches_simulate(tmp_path, model_file, capsys):
    out = tmp_path / "f.csv"
    code, err = _run(capsys, model_file, "--x0", "10,5", "--t-end", "2", "--dt", "0.1", "--out", out)
    assert code == 0, err
    [trajectory] = load_trajectories(out)
    assert trajectory.state_names == ("x", "y")
    assert trajectory.n_samples == 21
    assert trajectory.t[-1] == 2.0
    expected = SymbolicODE.load(model_file).simulate([10.0, 5.0], trajectory.t)
    assert np.array_equal(trajectory.x, expected)


def test_forecast_npz_by_suffix(tmp_path, model_file, capsys):
    out = tmp_path / "f.npz"
    code, err = _run(capsys, model_file, "--x0", "10,5", "--t-end", "1", "--out", out)
    assert code == 0, err
    [trajectory] = load_trajectories(out)
    assert trajectory.n_samples == 1001
    assert np.array_equal(trajectory.x[0], [10.0, 5.0])


def test_forecast_start_time(tmp_path, model_file, capsys):
    out = tmp_path / "f.csv"
    code, err = _run(capsys, model_file, "--x0", "10,5", "--t0", "3", "--t-end", "4", "--dt", "0.25", "--out", out)
    assert code == 0, err
    [trajectory] = load_trajectories(out)
    assert np.allclose(trajectory.t, [3.0, 3.25, 3.5, 3.75, 4.0])


def test_forecast_use_network(tmp_path, model_file, capsys):
    out = tmp_path / "f.csv"
    code, err = _run(capsys, model_file, "--x0", "1,0.5", "--t-end", "0.5", "--dt", "0.05", "--use-network", "--out", out)
    assert code == 0, err
    [trajectory] = load_trajectories(out)
    expected = SymbolicODE.load(model_file).simulate([1.0, 0.5], trajectory.t, use_network=True)
    assert np.array_equal(trajectory.x, expected[: trajectory.n_samples])


def test_forecast_no_overwrite(tmp_path, model_file, capsys):
    out = tmp_path / "f.csv"
    out.write_text("keep me\n")
    code, err = _run(capsys, model_file, "--x0", "10,5", "--t-end", "1", "--out", out)
    assert code == 2
    assert "--force" in err
    assert out.read_text() == "keep me\n"


def test_forecast_force_overwrites(tmp_path, model_file, capsys):
    out = tmp_path / "f.csv"
    out.write_text("old\n")
    code, err = _run(capsys, model_file, "--x0", "10,5", "--t-end", "1", "--out", out, "--force")
    assert code == 0, err
    assert load_trajectories(out)[0].n_samples == 1001


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--x0", "1,2,3", "--t-end", "1"], "has 3 values but the model has 2 states"),
        (["--x0", "1,abc", "--t-end", "1"], "--x0 '1,abc' is invalid"),
        (["--x0", "1,nan", "--t-end", "1"], "NaN or infinite"),
        (["--x0", "1,2", "--t-end", "-1"], "--t-end -1 is invalid"),
        (["--x0", "1,2", "--t-end", "1", "--dt", "0"], "--dt 0 is invalid"),
        (["--x0", "1,2", "--t-end", "1", "--dt", "0.5"], "gives 3 samples"),
        (["--x0", "1,2", "--t-end", "1e9", "--dt", "1e-3"], "more than"),
    ],
)
def test_forecast_bad_arguments(tmp_path, model_file, capsys, argv, message):
    out = tmp_path / "f.csv"
    code, err = _run(capsys, model_file, *argv, "--out", out)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_forecast_states_not_alphabetical(tmp_path, capsys):
    """A pendulum model (states theta, omega) loads and rolls out in its own state order."""
    theta, omega = sp.symbols("theta omega")
    model = SymbolicODE(progress=False)
    model.state_names_ = ("theta", "omega")
    model.equations_ = {"theta": omega, "omega": -sp.sin(theta)}
    model.dense_terms_ = []
    model.network_ = None
    model.report_ = {}
    model.save(tmp_path / "pendulum.s2kan")
    out = tmp_path / "f.csv"
    code, err = _run(capsys, tmp_path / "pendulum.s2kan", "--x0", "0.5,0", "--t-end", "1", "--dt", "0.01", "--out", out)
    assert code == 0, err
    [trajectory] = load_trajectories(out)
    assert trajectory.state_names == ("theta", "omega")
    assert trajectory.x[0].tolist() == [0.5, 0.0]
    assert trajectory.x[1, 1] < 0


def test_forecast_missing_model(tmp_path, capsys):
    code, err = _run(capsys, tmp_path / "absent.s2kan", "--x0", "1", "--t-end", "1", "--out", tmp_path / "f.csv")
    assert code == 2
    assert "model file not found" in err


def test_forecast_bad_suffix(tmp_path, model_file, capsys):
    code, err = _run(capsys, model_file, "--x0", "1,2", "--t-end", "1", "--out", tmp_path / "f.txt")
    assert code == 2
    assert "unsupported suffix" in err


def test_forecast_divergence_truncates(tmp_path, capsys, caplog):
    path = tmp_path / "blowup.s2kan"
    blowup_model().save(path)
    out = tmp_path / "f.csv"
    code, err = _run(capsys, path, "--x0", "1", "--t-end", "2", "--dt", "0.01", "--out", out)
    assert code == 0, err
    [trajectory] = load_trajectories(out)
    assert trajectory.t[-1] < 1.0
    assert trajectory.t[-1] > 0.9
    assert "(diverged)" in err
    assert "stopped before t=" in err


def test_long_forecast_not_cut_short(tmp_path, capsys):
    # A bounded oscillator over 8,000 time units takes about 25,000 solver
    # steps, more than the 20,000 that a rollout allows by default.
    x, y = sp.symbols("x y")
    model = SymbolicODE(progress=False)
    model.state_names_ = ("x", "y")
    model.equations_ = {"x": y, "y": -x}
    model.dense_terms_ = []
    model.network_ = None
    model.report_ = {}
    path = tmp_path / "oscillator.s2kan"
    model.save(path)
    out = tmp_path / "f.csv"
    code, err = _run(capsys, path, "--x0", "1,0", "--t-end", "8000", "--dt", "1", "--out", out)
    assert code == 0, err
    [trajectory] = load_trajectories(out)
    assert trajectory.t[-1] == 8000
    assert "stopped" not in err
    assert np.allclose(trajectory.x[:, 0], np.cos(trajectory.t), atol=1e-5)


def test_forecast_too_short_writes_nothing(tmp_path, capsys):
    path = tmp_path / "blowup.s2kan"
    blowup_model().save(path)
    out = tmp_path / "f.csv"
    code, err = _run(capsys, path, "--x0", "1e200", "--t-end", "2", "--dt", "0.01", "--out", out)
    assert code == 2
    assert "nothing was written" in err
    assert "writing the" not in err
    assert not out.exists()


def test_simulate_blowup_returns_divergence():
    model = blowup_model()
    t = np.linspace(0.0, 2.0, 201)
    started = time.perf_counter()
    states = model.simulate([1.0], t)
    seconds = time.perf_counter() - started
    finite = np.isfinite(states[:, 0])
    first_nan = t[np.argmin(finite)]
    assert not finite.all()
    assert 0.99 <= first_nan <= 1.01
    assert np.allclose(states[finite, 0], 1.0 / (1.0 - t[finite]), rtol=1e-6)
    # A generous limit: it catches a rollout that keeps stepping towards the
    # singularity, not a slow machine.
    assert seconds < 10.0
