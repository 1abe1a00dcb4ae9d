"""Tests of ``s2kan-dyn simulate`` and ``s2kan-dyn systems``."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy.integrate import solve_ivp

import systems
from s2kan_dyn.cli import main
from s2kan_dyn.io import load_trajectories


def _lorenz(t, state, sigma=10.0, rho=28.0, beta=8.0 / 3.0):
    x, y, z = state
    return [sigma * (y - x), x * (rho - z) - y, x * y - beta * z]


def test_simulate_lorenz_matches_independent_solve(out_dir):
    assert main(["simulate", "lorenz", "--out", "lorenz.csv"]) == 0
    [traj] = load_trajectories(out_dir / "lorenz.csv")

    # Textbook Lorenz (1963) at the usual defaults: dt 0.01 up to t = 20 from (-8, 7, 27),
    # solved with the tolerances simulate documents (rtol 1e-10, atol 1e-12).
    times = 0.01 * np.arange(2001)
    same = solve_ivp(_lorenz, (0, 20), [-8.0, 7.0, 27.0], method="DOP853", t_eval=times, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(traj.t, times, rtol=1e-12)
    assert traj.state_names == ("x", "y", "z")
    scale = np.max(np.abs(same.y))
    assert np.max(np.abs(traj.x - same.y.T)) / scale < 1e-6

    # Against a tighter solve the difference grows like exp(0.9 t) on the attractor,
    # so compare only up to t = 5 (about 4.5 Lyapunov times).
    tight = solve_ivp(_lorenz, (0, 5), [-8.0, 7.0, 27.0], method="DOP853", t_eval=times[:501], rtol=1e-13, atol=1e-14)
    assert np.max(np.abs(traj.x[:501] - tight.y.T)) / scale < 1e-6


def test_simulate_npz_several_trajectories(out_dir):
    code = main(
        ["simulate", "van_der_pol", "--out", "vdp.npz", "--n-trajectories", "3", "--t-end", "2",
         "--seed", "4", "--x0", "1.5,-0.5"]
    )
    assert code == 0
    trajs = load_trajectories(out_dir / "vdp.npz")
    expected = systems.get("van_der_pol").simulate(t_end=2, n_trajectories=3, seed=4, x0=[1.5, -0.5])
    assert len(trajs) == 3
    for back, direct in zip(trajs, expected):
        np.testing.assert_array_equal(back.x, direct.x)


def test_simulate_param_and_noise(out_dir):
    args = ["simulate", "lorenz", "--t-end", "1", "--param", "rho=35", "--param", "sigma=12", "--noise", "0.05"]
    assert main(args + ["--out", "a.csv"]) == 0
    [traj] = load_trajectories(out_dir / "a.csv")
    [expected] = systems.get("lorenz", rho=35, sigma=12).simulate(t_end=1, noise=0.05)
    np.testing.assert_allclose(traj.x, expected.x, rtol=1e-15)


def test_simulate_method_lsoda(out_dir):
    assert main(["simulate", "hopf", "--out", "h.csv", "--t-end", "1", "--method", "LSODA"]) == 0
    [traj] = load_trajectories(out_dir / "h.csv")
    [reference] = systems.get("hopf").simulate(t_end=1)
    np.testing.assert_allclose(traj.x, reference.x, rtol=1e-6, atol=1e-8)


def test_simulate_refuses_overwrite(out_dir, capsys):
    (out_dir / "taken.csv").write_text("keep me")
    assert main(["simulate", "hopf", "--out", "taken.csv", "--t-end", "1"]) == 2
    assert (out_dir / "taken.csv").read_text() == "keep me"
    assert "--force" in capsys.readouterr().err


def test_simulate_force_overwrites(out_dir):
    (out_dir / "taken.csv").write_text("old")
    assert main(["simulate", "hopf", "--out", "taken.csv", "--t-end", "1", "--force"]) == 0
    assert load_trajectories(out_dir / "taken.csv")[0].n_samples == 101


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["lorenzz"], "Did you mean 'lorenz'?"),
        (["lorenz", "--dt", "0"], "--dt 0.0 is invalid"),
        (["lorenz", "--dt", "-0.1"], "--dt -0.1 is invalid"),
        (["lorenz", "--t-end", "0.001"], "shorter than --dt"),
        (["lorenz", "--noise", "-1"], "--noise -1.0 is invalid"),
        (["lorenz", "--x0", "1,2"], "--x0 '1,2' has 2 values"),
        (["lorenz", "--x0", "1,a,2"], "--x0 '1,a,2' is invalid"),
        (["lorenz", "--param", "rho"], "write KEY=VALUE"),
        (["lorenz", "--param", "rho=abc"], "is not a number"),
        (["lorenz", "--param", "rho=nan"], "--param rho=nan is invalid"),
        (["lorenz", "--param", "rh=3"], "--param rh=3: lorenz has no parameter 'rh'"),
        (["lorenz", "--param", "rho=1", "--param", "rho=2"], "given twice"),
        (["lorenz", "--method", "RK5"], "Did you mean 'RK45'?"),
        (["lorenz", "--n-trajectories", "0"], "--n-trajectories 0 is invalid"),
        (["lorenz", "--seed", "-3"], "--seed -3 is invalid"),
        (["lorenz96", "--param", "n=2"], "--param n=2 is invalid"),
        (["duffing", "--param", "alpha=1", "--param", "beta=-1", "--x0", "3,0"], "diverged"),
    ],
)
def test_simulate_bad_input_one_line(out_dir, capsys, args, message):
    code = main(["simulate", *args, "--out", "bad.csv"])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
    assert not (out_dir / "bad.csv").exists()


def test_simulate_folder_as_output(out_dir, capsys):
    (out_dir / "folder.csv").mkdir()
    assert main(["simulate", "hopf", "--out", "folder.csv", "--force"]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_simulate_bad_suffix(out_dir, capsys):
    assert main(["simulate", "lorenz", "--out", "bad.txt"]) == 2
    assert "use .csv or .npz" in capsys.readouterr().err
    assert not (out_dir / "bad.txt").exists()


def test_simulate_subprocess_usage_error(out_dir):
    result = subprocess.run(
        [sys.executable, "-m", "s2kan_dyn", "simulate", "lorenz", "--out", "x.csv", "--t-end", "soon"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "invalid float value: 'soon'" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_systems_lists_catalog(capsys):
    assert main(["systems"]) == 0
    out = capsys.readouterr().out
    for name in systems.names():
        assert name in out
    assert "x' = -10*x + 10*y" in out
    assert "trigonometric" in out


def test_systems_markdown(capsys):
    assert main(["systems", "--markdown", "--parameters"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("| name | dim | class |")
    assert lines[1].startswith("|---|")
    assert len(lines) == 2 + len(systems.names())
    assert any(line.startswith("| lorenz |") and "rho=28" in line for line in lines)
