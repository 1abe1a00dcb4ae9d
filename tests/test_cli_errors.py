"""Bad inputs: one clear line and exit code 2 on the command line, the same ValueError in Python."""

import re
import subprocess
import sys

import numpy as np
import pytest

import systems
from s2kan_dyn.cli import main
from s2kan_dyn.discovery import SymbolicODE
from s2kan_dyn.errors import DataError, S2KANDynError, UnknownNameError
from s2kan_dyn.io import load_trajectories
from s2kan_dyn.trajectory import as_trajectories, warn_constant_states

GOOD_ROWS = [f"{0.1 * k:.1f},{1.0 + k},{2.0 - 0.1 * k}" for k in range(8)]


def csv_text(*rows, header="t,x,y"):
    return "\n".join([header, *rows]) + "\n"


def replaced(index, row):
    rows = list(GOOD_ROWS)
    rows[index] = row
    return csv_text(*rows)


# name, file text (None: no file), file suffix, extra discover options, load_trajectories keywords, message part
FILE_CASES = [
    ("nan", replaced(2, "0.2,nan,1.8"), ".csv", [], {}, "non-finite value nan in column 'x' at row 4"),
    ("inf", replaced(3, "0.3,4.0,inf"), ".csv", [], {}, "non-finite value inf in column 'y' at row 5"),
    ("repeated time", replaced(2, "0.1,3.0,1.8"), ".csv", [], {}, "repeated time 0.1 at rows 3 and 4"),
    ("decreasing time", replaced(3, "0.1,4.0,1.7"), ".csv", [], {}, "time decreases from 0.2 to 0.1 at row 5"),
    ("too few samples", csv_text(*GOOD_ROWS[:3]), ".csv", [], {}, "3 samples, fewer than the minimum of 5"),
    ("non-numeric", replaced(4, "0.4,abc,1.6"), ".csv", [], {}, "non-numeric cell 'abc' in column 'x' at row 6"),
    ("short row", replaced(5, "0.5,6.0"), ".csv", [], {}, "row 7 has 2 cells but the header has 3"),
    ("unknown state", csv_text(*GOOD_ROWS), ".csv", ["--states", "x,z"], {"states": ["x", "z"]},
     "state column(s) ['z'] not found"),
    ("unknown time column", csv_text(*GOOD_ROWS), ".csv", ["--time-column", "time"], {"time_column": "time"},
     "time column 'time' not found"),
    ("time column only", csv_text(*(r.split(",")[0] for r in GOOD_ROWS), header="t"), ".csv", [], {},
     "only a time column 't'"),
    ("empty file", "", ".csv", [], {}, "file is empty"),
    ("header only", "t,x,y\n", ".csv", [], {}, "header row only"),
    ("missing file", None, ".csv", [], {}, "file not found"),
    ("unsupported suffix", csv_text(*GOOD_ROWS), ".txt", [], {}, "unsupported file type '.txt'"),
    ("foreign npz", b"PK\x03\x04 not really a zip", ".npz", [], {}, "not a readable NPZ file"),
]


@pytest.fixture
def data_file(tmp_path, request):
    _, text, suffix, *_ = request.param
    path = tmp_path / f"data{suffix}"
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text)
    return path


def _cli(capsys, argv):
    code = main(argv)
    return code, capsys.readouterr().err


@pytest.mark.parametrize("data_file, case", [(c, c) for c in FILE_CASES], ids=[c[0] for c in FILE_CASES],
                         indirect=["data_file"])
def test_bad_file_cli_and_api(tmp_path, capsys, data_file, case):
    _, _, _, options, keywords, message = case
    out = tmp_path / "out"
    code, err = _cli(capsys, ["discover", "--data", str(data_file), *options, "--out", str(out)])
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert message in lines[0]
    assert str(data_file) in lines[0]
    assert not out.exists()

    with pytest.raises(ValueError) as raised:
        load_trajectories(data_file, **keywords)
    assert isinstance(raised.value, DataError)
    assert lines[0] == f"s2kan-dyn discover: error: {raised.value}"


def test_bad_file_subprocess_no_traceback(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(replaced(2, "0.2,nan,1.8"))
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from s2kan_dyn.cli import main; sys.exit(main(sys.argv[1:]))",
         "discover", "--data", str(path), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "non-finite value nan" in done.stderr


@pytest.mark.parametrize(
    "argv, message",
    [
        (["discover", "lorenzz"], "Did you mean 'lorenz'?"),
        (["simulate", "lorenzz", "--out", "{tmp}/x.csv"], "Did you mean 'lorenz'?"),
        (["discover"], "give either NAME"),
        (["discover", "--data", "{tmp}/few.csv", "--test-fraction", "0.5"], "leave 4 for training"),
        (["discover", "--data", "{tmp}/few.csv", "--test-fraction", "1.5"], "--test-fraction 1.5 is invalid"),
        (["forecast", "{tmp}/absent.s2kan", "--x0", "1", "--t-end", "1", "--out", "{tmp}/f.csv"], "model file not found"),
    ],
)
def test_bad_arguments_one_line(tmp_path, capsys, argv, message):
    (tmp_path / "few.csv").write_text(csv_text(*GOOD_ROWS))
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if argv[0] == "discover" and "--out" not in argv:
        argv += ["--out", str(tmp_path / "out")]
    code, err = _cli(capsys, argv)
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert message in err


# subcommand options, the option and value the message must name. {model} is a saved two-state model,
# {data} a CSV file of 8 samples of states x and y.
OPTION_CASES = [
    (["simulate", "lorenz", "--noise", "-0.1"], "--noise -0.1"),
    (["simulate", "lorenz", "--noise", "nan"], "--noise nan"),
    (["simulate", "lorenz", "--noise", "inf"], "--noise inf"),
    (["simulate", "lorenz", "--dt", "0"], "--dt 0"),
    (["simulate", "lorenz", "--dt", "-1"], "--dt -1"),
    (["simulate", "lorenz", "--dt", "1e-9"], "--dt 1e-09"),
    (["simulate", "lorenz", "--t-end", "0"], "--t-end 0"),
    (["simulate", "lorenz", "--t-end", "inf"], "--t-end inf"),
    (["simulate", "lorenz", "--t-end", "2", "--dt", "1"], "--t-end 2 with --dt 1"),
    (["simulate", "lorenz", "--seed", "-1"], "--seed -1"),
    (["simulate", "lorenz", "--n-trajectories", "0"], "--n-trajectories 0"),
    (["simulate", "lorenz", "--x0", "1,2"], "--x0 '1,2' has 2 values"),
    (["simulate", "lorenz", "--x0", "1,nan,3"], "--x0 '1,nan,3'"),
    (["simulate", "lorenz", "--method", "FOO"], "--method 'FOO'"),
    (["simulate", "lorenz", "--param", "rho=inf"], "--param rho=inf"),
    (["simulate", "lorenz", "--param", "foo=1"], "--param foo=1"),
    (["simulate", "lorenz96", "--param", "n=2"], "--param n=2"),
    (["discover", "lorenz", "--noise", "-0.1"], "--noise -0.1"),
    (["discover", "lorenz", "--dt", "0"], "--dt 0"),
    (["discover", "lorenz", "--t-end", "-3"], "--t-end -3"),
    (["discover", "lorenz", "--seed", "-1"], "--seed -1"),
    (["discover", "lorenz", "--n-trajectories", "0"], "--n-trajectories 0"),
    (["discover", "lorenz", "--stages", "foo"], "--stages foo"),
    (["discover", "lorenz", "--stages", ","], "--stages ','"),
    (["discover", "lorenz", "--stages", "derivative,derivative"], "--stages derivative,derivative"),
    (["discover", "lorenz", "--time-budget", "-5"], "--time-budget -5"),
    (["discover", "lorenz", "--time-budget", "nan"], "--time-budget nan"),
    (["discover", "lorenz", "--device", "foo"], "--device 'foo'"),
    (["discover", "lorenz", "--device", "meta"], "--device 'meta'"),
    (["discover", "--data", "{data}", "--states", ""], "--states ''"),
    (["discover", "--data", "{data}", "--states", "x,x"], "--states x,x"),
    (["discover", "--data", "{data}", "--noise", "0.1"], "--noise"),
    (["discover", "--data", "{data}", "--test-fraction", "0.01"], "--test-fraction 0.01 holds out 0 of 8"),
    (["compare", "--data", "{data}", "--states", ""], "--states ''"),
    (["compare", "--data", "{data}", "--test-fraction", "0.01"], "--test-fraction 0.01 holds out 0 of 8"),
    (["discover", "lorenz", "--test-fraction", "0.2"], "--test-fraction"),
    (["discover", "lorenz", "--states", "x,y"], "--states"),
    (["discover", "lynx_hare", "--noise", "0.1"], "--noise"),
    (["discover", "lynx_hare", "--test-fraction", "nan"], "--test-fraction nan"),
    (["discover", "lynx_hare", "--test-fraction", "1"], "--test-fraction 1"),
    (["compare", "lorenz", "--noise", "-0.1"], "--noise -0.1"),
    (["compare", "lorenz", "--seed", "-1"], "--seed -1"),
    (["compare", "lorenz", "--methods", "foo"], "--methods foo"),
    (["compare", "lorenz", "--methods", ","], "--methods ','"),
    (["compare", "lorenz", "--methods", "sindy,sindy"], "--methods sindy,sindy"),
    (["compare", "lorenz", "--time-budget", "0"], "--time-budget 0"),
    (["compare", "lynx_hare", "--coarse"], "--coarse"),
    (["compare", "lynx_hare", "--test-fraction", "2"], "--test-fraction 2"),
    (["forecast", "{model}", "--x0", "1,2", "--t-end", "1", "--t0", "nan"], "--t0 nan"),
    (["forecast", "{model}", "--x0", "1,2", "--t-end", "nan"], "--t-end nan"),
    (["forecast", "{model}", "--x0", "1,2", "--t-end", "1", "--dt", "inf"], "--dt inf"),
    (["forecast", "{model}", "--x0", "1,2", "--t-end", "1", "--dt", "0.5"], "--dt 0.5"),
    (["forecast", "{model}", "--x0", "1,2,3", "--t-end", "1"], "--x0 '1,2,3' has 3 values"),
    (["forecast", "{model}", "--x0", "1,inf", "--t-end", "1"], "--x0 '1,inf'"),
]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    from test_save_load import built_model

    path = tmp_path_factory.mktemp("model") / "model.s2kan"
    built_model().save(path)
    return path


@pytest.mark.parametrize("argv, named", OPTION_CASES, ids=[" ".join(c[0][:1] + c[0][2:]) for c in OPTION_CASES])
def test_bad_option_named(tmp_path, capsys, model_path, argv, named):
    (tmp_path / "data.csv").write_text(csv_text(*GOOD_ROWS))
    argv = [a.replace("{model}", str(model_path)).replace("{data}", str(tmp_path / "data.csv")) for a in argv]
    suffix = ".csv" if argv[0] in ("simulate", "forecast") else ""
    out = tmp_path / f"out{suffix}"
    code, err = _cli(capsys, [*argv, "--out", str(out)])
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert named in err
    # The message names a remedy.
    assert re.search(r"\b(give|drop|increase|Known)\b", err), err
    assert not out.exists()


def test_bad_option_subprocess(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "s2kan_dyn", "simulate", "lorenz", "--noise", "-0.1", "--out", str(tmp_path / "x.csv")],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip() == (
        "s2kan-dyn simulate: error: --noise -0.1 is invalid; give a finite non-negative number."
    )


@pytest.mark.parametrize(
    "keywords, message",
    [({"noise": -0.1}, "noise=-0.1 is invalid"), ({"dt": 0.0}, "dt=0.0 is invalid"),
     ({"t_end": 2.0, "dt": 1.0}, "t_end=2 with dt=1"), ({"x0": [1.0, 2.0]}, "x0 has 2 values")],
)
def test_api_names_arguments(keywords, message):
    with pytest.raises(S2KANDynError) as raised:
        systems.get("lorenz").simulate(**keywords)
    assert message in str(raised.value)
    assert "--" not in str(raised.value)


def test_api_stages_named():
    with pytest.raises(S2KANDynError, match=r"stages=\['foo'\] is invalid"):
        SymbolicODE(stages=("foo",), progress=False).fit(np.ones((6, 2)), np.arange(6.0))


def test_rename_whole_words():
    from s2kan_dyn.cli.options import rename_arguments

    message = rename_arguments("t_end=2 with dt=1; increase t_end, keep dt_max and --dt", {"t_end": "--t-end", "dt": "--dt"})
    assert message == "--t-end 2 with --dt 1; increase --t-end, keep dt_max and --dt"


def test_csv_rows_count_blank_lines(tmp_path):
    path = tmp_path / "gaps.csv"
    path.write_text("t,x\n0,1\n\n1,2\n2,3\n2,4\n3,5\n4,6\n")
    with pytest.raises(DataError, match="repeated time 2 at rows 5 and 6"):
        load_trajectories(path)


def test_csv_rows_in_second_trajectory(tmp_path):
    path = tmp_path / "two.csv"
    rows = [f"0,{k},{k}" for k in range(5)] + ["1,0,1", "1,1,nan"] + [f"1,{k},{k}" for k in range(2, 5)]
    path.write_text("trajectory,t,x\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError, match="non-finite value nan in column 'x' at row 8"):
        load_trajectories(path)


def test_unknown_system_api():
    with pytest.raises(UnknownNameError, match="Did you mean 'lorenz'"):
        systems.get("lorenzz")


@pytest.mark.parametrize(
    "x, t, message",
    [
        (np.array([[1.0, 2.0]] * 4 + [[np.nan, 1.0]] * 2), np.arange(6.0), "non-finite value nan in column 'x0' at row 5"),
        (np.ones((6, 2)), np.array([0.0, 1, 2, 2, 3, 4]), "repeated time 2 at rows 3 and 4"),
        (np.ones((6, 2)), np.array([0.0, 1, 3, 2, 4, 5]), "time decreases from 3 to 2 at row 4"),
        (np.ones((3, 2)), np.arange(3.0), "3 samples, fewer than the minimum of 5"),
        (np.array([["1", "a"]] * 6), np.arange(6.0), "states are not numeric"),
        (np.ones((6, 2)), np.arange(5.0), "5 times but 6 state rows"),
        ([np.ones((6, 2)), np.ones((7, 3))], [np.arange(6.0), np.arange(7.0)], "differ from"),
        (np.ones((6, 2)), 0.0, "time step t=0.0 must be positive"),
    ],
)
def test_bad_arrays_api(x, t, message):
    with pytest.raises(ValueError, match=None) as raised:
        as_trajectories(x, t)
    assert isinstance(raised.value, S2KANDynError)
    assert message in str(raised.value)
    with pytest.raises(ValueError) as through_fit:
        SymbolicODE(progress=False).fit(x, t)
    assert str(through_fit.value) == str(raised.value)


def test_constant_state_warns(caplog):
    t = np.linspace(0, 1, 20)
    trajectories = as_trajectories(np.column_stack([np.sin(t), np.full_like(t, 3.0)]), t, ["x", "c"])
    with caplog.at_level("WARNING", logger="s2kan_dyn.trajectory"):
        constant = warn_constant_states(trajectories)
    assert constant == ["c"]
    assert "['c'] are constant" in caplog.text


@pytest.mark.slow
def test_far_units_give_scaled_equations():
    """Lotka-Volterra with states times 1e4 and time times 1e-3: the fit scales internally and reports original units."""
    import sympy as sp

    from s2kan_dyn.model.train import GateSchedule
    from s2kan_dyn.trajectory import Trajectory

    [trajectory] = systems.get("lotka_volterra").simulate(t_end=10)
    scaled = Trajectory(trajectory.t * 1e-3, trajectory.x * 1e4, trajectory.state_names)
    model = SymbolicODE(
        stages=("derivative",), schedule=GateSchedule(20, 20, 20, 20), dictionary=(("x",),),
        self_check=False, progress=False,
    ).fit(scaled)
    x, y = sp.symbols("x y")
    # dX/dT = 1e7 f(X / 1e4): 1.1 x - 0.4 x y becomes 1100 X - 0.04 X Y, and so on.
    expected = {"x": {x: 1100.0, x * y: -0.04}, "y": {x * y: 0.01, y: -400.0}}
    for name, terms in expected.items():
        found = {term: float(c) for term, c in sp.expand(model.equations()[name]).as_coefficients_dict().items()}
        assert set(found) == set(terms), (name, found)
        for term, value in terms.items():
            assert found[term] == pytest.approx(value, rel=1e-4), (name, term)


# Output paths under a folder that does not exist; {missing} is that folder, {model} a saved two-state model.
MISSING_FOLDER_CASES = [
    ["simulate", "lorenz", "--t-end", "1", "--out", "{missing}/s.csv"],
    ["forecast", "{model}", "--x0", "1,2", "--t-end", "1", "--out", "{missing}/f.csv"],
    ["discover", "lotka_volterra", "--t-end", "2", "--out", "{tmp}/run", "--report", "{missing}/r.json"],
    ["discover", "lotka_volterra", "--t-end", "2", "--out", "{missing}/run"],
    ["compare", "lotka_volterra", "--out", "{tmp}/run", "--report", "{missing}/r.json"],
    ["compare", "lotka_volterra", "--out", "{missing}/run"],
    ["benchmark", "--suite", "core", "--systems", "lorenz", "--out", "{missing}/run"],
]


@pytest.mark.parametrize("argv", MISSING_FOLDER_CASES, ids=[" ".join(c[:1] + c[-2:-1]) for c in MISSING_FOLDER_CASES])
def test_output_in_missing_folder(tmp_path, capsys, model_path, argv):
    missing = tmp_path / "no" / "such"
    argv = [a.replace("{missing}", str(missing)).replace("{tmp}", str(tmp_path)).replace("{model}", str(model_path))
            for a in argv]
    code, err = _cli(capsys, argv)
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert f"folder {missing} does not exist" in err
    assert "create it" in err
    assert not (tmp_path / "no").exists()
    assert not (tmp_path / "run").exists()

