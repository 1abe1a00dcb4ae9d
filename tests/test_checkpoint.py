"""Checkpoints at stage boundaries, Ctrl-C during ``discover``, and ``--resume``."""

import json
import signal
import subprocess
import sys

import numpy as np
import pytest
import sympy as sp

from s2kan_dyn.discovery.checkpoint import (
    CHECKPOINT_NAME,
    CheckpointError,
    data_digest,
    read_checkpoint,
    write_checkpoint,
)
from s2kan_dyn.discovery.persist import settings_to_json
from s2kan_dyn.errors import ModelFileError
from s2kan_dyn.readout.terms import TermLibrary, polynomial_terms
from s2kan_dyn.trajectory import Trajectory
from test_determinism import comparable, differences
from test_save_load import built_model

SETTINGS = settings_to_json(built_model().get_params())


def derivative_result():
    model = built_model()
    library = TermLibrary(polynomial_terms(["x", "y"], 2), ["x", "y"])
    coefficients = np.arange(12, dtype=float).reshape(6, 2) / 7.0
    active = coefficients > 0.5
    x, y = sp.symbols("x y", real=True)
    equations = {"x": sp.Float(1 / 7) * x * y, "y": 2 * sp.Function("dense_l0_1_0")(x)}
    return {
        "library": library, "coefficients": coefficients, "active": active, "equations": equations,
        "network": model.network_, "report": {"ran": True, "noise": float("nan")},
    }


def trajectories(shift=0.0):
    t = np.linspace(0, 1, 11)
    return [Trajectory(t, np.column_stack([np.sin(t) + shift, np.cos(t)]), ("x", "y"))]


def test_checkpoint_round_trip(tmp_path):
    path = tmp_path / CHECKPOINT_NAME
    stage = derivative_result()
    digest = data_digest(trajectories())
    write_checkpoint(path, SETTINGS, digest, stage)
    back = read_checkpoint(path, SETTINGS, digest)
    assert back["library"].terms == stage["library"].terms
    assert np.array_equal(back["coefficients"], stage["coefficients"])
    assert np.array_equal(back["active"], stage["active"])
    assert back["equations"] == stage["equations"]
    assert np.isnan(back["report"]["noise"])
    for name, value in back["network"].state_dict().items():
        original = stage["network"].state_dict()[name]
        assert np.array_equal(value.numpy(), original.numpy(), equal_nan=True), name


def test_checkpoint_without_stage(tmp_path):
    path = tmp_path / CHECKPOINT_NAME
    digest = data_digest(trajectories())
    write_checkpoint(path, SETTINGS, digest, None)
    assert read_checkpoint(path, SETTINGS, digest) is None


def test_checkpoint_missing(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        read_checkpoint(tmp_path / CHECKPOINT_NAME, SETTINGS, "0" * 64)


def test_checkpoint_other_settings(tmp_path):
    path = tmp_path / CHECKPOINT_NAME
    digest = data_digest(trajectories())
    write_checkpoint(path, SETTINGS, digest, None)
    with pytest.raises(CheckpointError, match="changed: random_state"):
        read_checkpoint(path, {**SETTINGS, "random_state": 4}, digest)


def test_checkpoint_other_data(tmp_path):
    path = tmp_path / CHECKPOINT_NAME
    write_checkpoint(path, SETTINGS, data_digest(trajectories()), None)
    with pytest.raises(CheckpointError, match="other training data"):
        read_checkpoint(path, SETTINGS, data_digest(trajectories(shift=1e-12)))


def test_checkpoint_model_file_rejected(tmp_path):
    path = tmp_path / "model.s2kan"
    built_model().save(path)
    with pytest.raises(ModelFileError, match="SymbolicODECheckpoint"):
        read_checkpoint(path, SETTINGS, "0" * 64)


# Small, fast discover run: clean Lotka-Volterra data, where the first
# dictionary reaches the noise floor.
DISCOVER = ["-q", "discover", "lotka_volterra", "--t-end", "10", "--seed", "1"]

# The child interrupts itself with a real SIGINT right after the derivative
# stage has returned (and written its checkpoint), as Ctrl-C at that moment would.
# Python ignores SIGINT when started from a background job; restore its handler.
INTERRUPT_AFTER_DERIVATIVE = """
import os, signal, sys
from s2kan_dyn.cli import main
from s2kan_dyn.discovery.checkpoint import CheckpointedSymbolicODE

signal.signal(signal.SIGINT, signal.default_int_handler)

original = CheckpointedSymbolicODE._derivative_stage

def interrupt_after(self, *args):
    result = original(self, *args)
    os.kill(os.getpid(), signal.SIGINT)
    return result

CheckpointedSymbolicODE._derivative_stage = interrupt_after
sys.exit(main(sys.argv[1:]))
"""


RUN_CLI = "import sys; from s2kan_dyn.cli import main; sys.exit(main(sys.argv[1:]))"


def _discover(*argv, script=RUN_CLI):
    command = [sys.executable, "-c", script, *argv]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


def _default_sigint():
    # A child of a background job inherits an ignored SIGINT, and Python then
    # installs no KeyboardInterrupt handler; an interactive shell would not ignore it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("plain") / "out"
    done = _discover(*DISCOVER, "--out", str(out))
    assert done.returncode == 0, done.stderr
    return json.loads((out / "report.json").read_text())


@pytest.mark.slow
def test_interrupt_after_derivative_resumes(tmp_path, uninterrupted):
    out = tmp_path / "out"
    first = _discover(*DISCOVER, "--out", str(out), script=INTERRUPT_AFTER_DERIVATIVE)
    assert first.returncode == 130, first.stderr
    assert "--resume" in first.stderr
    assert "Traceback" not in first.stderr
    assert (out / CHECKPOINT_NAME).is_file()
    assert not (out / "report.json").exists()

    second = _discover(*DISCOVER, "--out", str(out), "--resume")
    assert second.returncode == 0, second.stderr
    assert not (out / CHECKPOINT_NAME).exists()
    resumed = json.loads((out / "report.json").read_text())
    assert resumed["equations"] == uninterrupted["equations"]
    assert differences(resumed, uninterrupted) == []


@pytest.mark.slow
def test_ctrl_c_during_derivative_resumes(tmp_path, uninterrupted):
    out = tmp_path / "out"
    command = [sys.executable, "-c", RUN_CLI, *DISCOVER[1:], "--out", str(out)]
    process = subprocess.Popen(
        command, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, preexec_fn=_default_sigint
    )
    # The first stage line of the first dictionary's fit: the derivative stage is under way.
    for line in process.stderr:
        if line.startswith("warmup:"):
            process.send_signal(signal.SIGINT)
            break
    _, rest = process.communicate(timeout=600)
    assert process.returncode == 130, rest
    assert "--resume" in rest
    assert "Traceback" not in rest
    assert (out / CHECKPOINT_NAME).is_file()

    resumed = _discover(*DISCOVER, "--out", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["equations"] == uninterrupted["equations"]
    assert differences(report, uninterrupted) == []


def test_resume_without_checkpoint(tmp_path, capsys):
    from s2kan_dyn.cli import main

    out = tmp_path / "out"
    out.mkdir()
    code = main([*DISCOVER, "--out", str(out), "--resume"])
    err = capsys.readouterr().err
    assert code == 2
    assert "no checkpoint" in err
    assert not (out / "report.json").exists()


def test_resume_without_checkpoint_creates_nothing(tmp_path, capsys):
    from s2kan_dyn.cli import main

    out = tmp_path / "out"
    code = main([*DISCOVER, "--out", str(out), "--resume"])
    err = capsys.readouterr().err
    assert code == 2
    assert "no checkpoint" in err
    assert "without --resume" in err
    assert not out.exists()


def test_resume_other_seed_names_option(tmp_path, capsys):
    from s2kan_dyn.cli import main
    from s2kan_dyn.discovery import SymbolicODE
    from s2kan_dyn.discovery.checkpoint import DISPLAY_SETTINGS

    out = tmp_path / "out"
    out.mkdir()
    # The settings discover uses with --seed 2, while DISCOVER passes --seed 1.
    params = SymbolicODE(stages=("derivative", "trajectory"), device="cpu", random_state=2).get_params()
    settings = settings_to_json({k: v for k, v in params.items() if k not in DISPLAY_SETTINGS})
    write_checkpoint(out / CHECKPOINT_NAME, settings, "0" * 64, None)
    code = main([*DISCOVER, "--out", str(out), "--resume"])
    err = capsys.readouterr().err
    assert code == 2
    assert "(changed: --seed)" in err
    assert "random_state" not in err
    assert "resume=False" not in err


def test_rerun_over_checkpoint_mentions_resume(tmp_path, capsys):
    from s2kan_dyn.cli import main

    out = tmp_path / "out"
    out.mkdir()
    write_checkpoint(out / CHECKPOINT_NAME, SETTINGS, "0" * 64, None)
    code = main([*DISCOVER, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert "pass --resume" in err
    assert (out / CHECKPOINT_NAME).is_file()
