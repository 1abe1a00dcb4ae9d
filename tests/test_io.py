"""Tests of trajectory files (CSV, NPZ), their validation, and the shipped data sets."""

from __future__ import annotations

import csv
import os
import stat

import numpy as np
import pytest

from s2kan_dyn import datasets
from s2kan_dyn.errors import DataError, S2KANDynError, UnknownNameError
from s2kan_dyn.io import atomic_path, load_trajectories, save_trajectories
from s2kan_dyn.trajectory import Trajectory, as_trajectories


def _trajectories(lengths=(40,), d=3, seed=0):
    rng = np.random.default_rng(seed)
    names = tuple(f"s{j}" for j in range(d))
    # Irregular times and values with full 17-digit mantissas test exact round trips.
    return [
        Trajectory(np.cumsum(rng.uniform(0.01, 0.1, n)), rng.normal(size=(n, d)) * 1e3, names, "test")
        for n in lengths
    ]


def _write(path, text):
    path.write_text(text)
    return path


# --- round trips ---------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".npz"])
def test_round_trip_exact(tmp_path, suffix):
    [traj] = _trajectories()
    loaded = load_trajectories(save_trajectories(tmp_path / f"one{suffix}", [traj]))
    assert len(loaded) == 1
    assert loaded[0] == traj
    np.testing.assert_array_equal(loaded[0].t, traj.t)
    np.testing.assert_array_equal(loaded[0].x, traj.x)
    assert loaded[0].state_names == traj.state_names


@pytest.mark.parametrize("suffix", [".csv", ".npz"])
def test_round_trip_unequal_lengths(tmp_path, suffix):
    trajs = _trajectories(lengths=(30, 7, 52))
    loaded = load_trajectories(save_trajectories(tmp_path / f"many{suffix}", trajs))
    assert [tr.n_samples for tr in loaded] == [30, 7, 52]
    for original, back in zip(trajs, loaded):
        np.testing.assert_array_equal(back.t, original.t)
        np.testing.assert_array_equal(back.x, original.x)


def test_round_trip_single_trajectory_object(tmp_path):
    [traj] = _trajectories(d=1)
    [back] = load_trajectories(save_trajectories(tmp_path / "one.csv", traj))
    assert back == traj


def test_csv_layout_header(tmp_path):
    save_trajectories(tmp_path / "two.csv", _trajectories(lengths=(5, 6), d=2))
    with open(tmp_path / "two.csv", newline="") as fh:
        header = next(csv.reader(fh))
    assert header == ["trajectory", "t", "s0", "s1"]


def test_load_selects_states(tmp_path):
    [traj] = _trajectories()
    for suffix in (".csv", ".npz"):
        [back] = load_trajectories(save_trajectories(tmp_path / f"f{suffix}", [traj]), states=["s2", "s0"])
        assert back.state_names == ("s2", "s0")
        np.testing.assert_array_equal(back.x, traj.x[:, [2, 0]])


def test_load_named_time_column(tmp_path):
    path = _write(tmp_path / "named.csv", "a,year,b\n1,2000,3\n2,2001,4\n3,2002,5\n4,2003,6\n5,2004,7\n")
    [traj] = load_trajectories(path, time_column="year")
    np.testing.assert_array_equal(traj.t, [2000, 2001, 2002, 2003, 2004])
    assert traj.state_names == ("a", "b")


def test_save_keeps_no_partial_file(tmp_path):
    target = tmp_path / "out.csv"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("interrupted")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_save_file_permissions_follow_umask(tmp_path):
    path = save_trajectories(tmp_path / "perm.csv", _trajectories())
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_trajectory_equality():
    [a] = _trajectories(seed=1)
    b = Trajectory(a.t.copy(), a.x.copy(), a.state_names, "other")
    assert a == b
    assert a != a.with_states(a.x + 1.0)


# --- invalid input -------------------------------------------------------------

GOOD_ROWS = "t,x,y\n0,1,2\n1,2,3\n2,3,4\n3,4,5\n4,5,6\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("t,x,y\n0,1,2\n1,nan,3\n2,3,4\n3,4,5\n4,5,6\n", "non-finite value nan in column 'x'"),
        ("t,x,y\n0,1,2\n1,2,3\n2,inf,4\n3,4,5\n4,5,6\n", "non-finite value inf in column 'x'"),
        ("t,x,y\n0,1,2\n2,2,3\n1,3,4\n3,4,5\n4,5,6\n", "time decreases from 2 to 1"),
        ("t,x,y\n0,1,2\n1,2,3\n1,3,4\n3,4,5\n4,5,6\n", "repeated time 1"),
        ("t,x,y\n0,1,2\n1,2,3\n2,3,4\n", "3 samples, fewer than the minimum of 5"),
        ("t,x,y\n0,1,2\n1,two,3\n2,3,4\n3,4,5\n4,5,6\n", "non-numeric cell 'two' in column 'x'"),
        ("t,x,y\n0,1,2\n1,,3\n2,3,4\n3,4,5\n4,5,6\n", "non-numeric cell '' in column 'x'"),
        ("t,x,y\n0,1,2\n1,2\n2,3,4\n3,4,5\n4,5,6\n", "row 3 has 2 cells but the header has 3"),
        ("t\n0\n1\n2\n3\n4\n", "only a time column"),
        ("t,x,y\n", "header row only"),
        ("\n\n\n", "file is empty"),
    ],
)
def test_csv_invalid(tmp_path, text, message):
    path = _write(tmp_path / "bad.csv", text)
    with pytest.raises(DataError, match=message):
        load_trajectories(path)


def test_csv_error_names_file(tmp_path):
    path = _write(tmp_path / "named_bad.csv", "t,x\n0,1\n0,2\n1,3\n2,4\n3,5\n")
    with pytest.raises(DataError, match="named_bad.csv"):
        load_trajectories(path)


def test_csv_missing_time_column(tmp_path):
    path = _write(tmp_path / "nt.csv", GOOD_ROWS.replace("t,x,y", "a,x,y"))
    with pytest.raises(DataError, match="time column 't' not found"):
        load_trajectories(path, time_column="t")


def test_csv_missing_state_column(tmp_path):
    path = _write(tmp_path / "ns.csv", GOOD_ROWS)
    with pytest.raises(DataError, match=r"state column\(s\) \['z'\] not found"):
        load_trajectories(path, states=["z"])


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_trajectories(tmp_path / "absent.csv")


@pytest.mark.parametrize("suffix", [".csv", ".npz"])
def test_empty_file(tmp_path, suffix):
    path = tmp_path / f"empty{suffix}"
    path.touch()
    with pytest.raises(DataError, match="file is empty"):
        load_trajectories(path)


@pytest.mark.parametrize("name", ["data.txt", "data", "data.json"])
def test_unknown_suffix(tmp_path, name):
    path = _write(tmp_path / name, GOOD_ROWS)
    with pytest.raises(DataError, match="unsupported file type"):
        load_trajectories(path)
    with pytest.raises(DataError, match="use a .csv or .npz file"):
        save_trajectories(tmp_path / f"out_{name}", _trajectories())


def test_folder_instead_of_file(tmp_path):
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(DataError, match="is a folder"):
        load_trajectories(tmp_path / "dir.csv")


def test_npz_not_a_zip(tmp_path):
    path = _write(tmp_path / "junk.npz", "not a zip archive")
    with pytest.raises(DataError, match="not a readable NPZ file"):
        load_trajectories(path)


def test_npz_missing_arrays(tmp_path):
    np.savez(tmp_path / "other.npz", a=np.arange(3))
    with pytest.raises(DataError, match="lacks 'state_names'"):
        load_trajectories(tmp_path / "other.npz")


def test_npz_unequal_time_and_states(tmp_path):
    np.savez(tmp_path / "uneq.npz", state_names=np.array(["x"]), t_0=np.arange(6.0), x_0=np.ones((5, 1)))
    with pytest.raises(DataError, match="6 times but 5 state rows"):
        load_trajectories(tmp_path / "uneq.npz")


def test_npz_nan(tmp_path):
    x = np.ones((6, 1))
    x[3, 0] = np.nan
    np.savez(tmp_path / "nan.npz", state_names=np.array(["x"]), t_0=np.arange(6.0), x_0=x)
    with pytest.raises(DataError, match="non-finite value nan in column 'x' at row 4"):
        load_trajectories(tmp_path / "nan.npz")


def test_arrays_unequal_lengths():
    with pytest.raises(DataError, match="6 times but 5 state rows"):
        as_trajectories(np.ones((5, 2)), np.arange(6.0))


def test_arrays_unequal_trajectory_counts():
    with pytest.raises(DataError, match="2 state arrays but 1 time arrays"):
        as_trajectories([np.ones((5, 2)), np.ones((6, 2))], [np.arange(5.0)])


def test_arrays_non_numeric():
    with pytest.raises(DataError, match="not numeric"):
        as_trajectories(np.array([["a", "b"]] * 5), 0.1)


def test_arrays_list_unequal_lengths():
    trajs = as_trajectories([np.ones((5, 2)), np.ones((8, 2))], 0.5, state_names=["p", "q"])
    assert [tr.n_samples for tr in trajs] == [5, 8]
    np.testing.assert_array_equal(trajs[1].t, 0.5 * np.arange(8))


def test_save_mixed_states_rejected(tmp_path):
    first = _trajectories(d=2)[0]
    second = Trajectory(first.t, first.x, ("u", "v"))
    with pytest.raises(DataError, match="differ from"):
        save_trajectories(tmp_path / "mixed.csv", [first, second])


# --- shipped data ---------------------------------------------------------------


def test_lynx_hare_loads():
    traj = datasets.load("lynx_hare")
    assert traj.state_names == ("hare", "lynx")
    assert traj.x.shape == (21, 2)
    np.testing.assert_array_equal(traj.t, np.arange(1900, 1921))
    np.testing.assert_array_equal(traj.x[0], [30.0, 4.0])
    assert traj.source == "lynx_hare"


def test_lynx_hare_path_in_package():
    path = datasets.path("lynx_hare")
    assert path.is_file()
    assert path.name == "lynx_hare_1900_1920.csv"


def test_dataset_unknown_name():
    with pytest.raises(UnknownNameError, match="Did you mean 'lynx_hare'"):
        datasets.load("lynx")


def test_lynx_hare_matches_reference(shared_data):
    with open(shared_data / "real" / "lynx_hare_hudson_bay_1900_1920.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    traj = datasets.load("lynx_hare")
    np.testing.assert_array_equal(traj.t, [float(r["year"]) for r in rows])
    np.testing.assert_array_equal(traj.x[:, 0], [float(r["hare"]) for r in rows])
    np.testing.assert_array_equal(traj.x[:, 1], [float(r["lynx"]) for r in rows])


def test_csv_without_header_rejected(tmp_path):
    path = tmp_path / "noheader.csv"
    path.write_text("0.0,0.0,1.0\n0.1,0.1,1.1\n0.2,0.2,1.2\n0.3,0.3,1.3\n0.4,0.4,1.4\n0.5,0.5,1.5\n")
    with pytest.raises(DataError, match="add a header row"):
        load_trajectories(path)


def test_csv_repeated_column_rejected(tmp_path):
    path = tmp_path / "repeated.csv"
    path.write_text("t,x,x\n" + "".join(f"{k},{k},{k}\n" for k in range(6)))
    with pytest.raises(DataError, match="repeated column"):
        load_trajectories(path)


def test_save_into_missing_folder(tmp_path):
    target = tmp_path / "absent" / "out.csv"
    with pytest.raises(S2KANDynError, match="does not exist"):
        save_trajectories(target, _trajectories())
    assert not target.parent.exists()
