"""Reading and writing trajectories as CSV or NPZ, and atomic file output.

CSV layout: a header row, a time column (``t`` by default) and one column
per state. Several trajectories share one file through an extra integer
column ``trajectory``; rows of one trajectory are contiguous.

NPZ layout: ``t_<i>`` and ``x_<i>`` arrays per trajectory plus
``state_names`` and ``time_name`` string arrays. Loaded with
``allow_pickle=False``, so a file cannot make the loader run code.
"""

from __future__ import annotations

import contextlib
import csv
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from .errors import DataError, S2KANDynError
from .trajectory import Trajectory, _check_same_states

TRAJECTORY_COLUMN = "trajectory"
SUFFIXES = (".csv", ".npz")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only on success.

    A failure inside the block removes the temporary file, so no partial file
    is ever left under the requested name.

    Raises:
        S2KANDynError: the folder of ``path`` does not exist. It is not
            created, because a missing folder is most often a typo.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise S2KANDynError(
            f"cannot write {path}: folder {path.parent} does not exist; create it first or give a path in an existing folder."
        )
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    # mkstemp creates the file readable by its owner only; give the final file
    # the permissions that open() would give under the current umask.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _check_suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(
            f"{path}: unsupported file type {suffix or '(none)'!r}; use a .csv or .npz file."
        )
    return suffix


def save_trajectories(path: str | os.PathLike, trajs: Sequence[Trajectory], time_name: str = "t") -> Path:
    """Write trajectories to ``path`` as CSV or NPZ, chosen by its suffix."""
    path = Path(path)
    suffix = _check_suffix(path)
    trajs = [trajs] if isinstance(trajs, Trajectory) else list(trajs)
    if not trajs:
        raise DataError("no trajectories to write.")
    _check_same_states(trajs)
    with atomic_path(path) as tmp:
        if suffix == ".csv":
            _write_csv(tmp, trajs, time_name)
        else:
            _write_npz(tmp, trajs, time_name)
    return path


def _write_csv(path: Path, trajs: Sequence[Trajectory], time_name: str) -> None:
    several = len(trajs) > 1
    header = ([TRAJECTORY_COLUMN] if several else []) + [time_name, *trajs[0].state_names]
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for i, tr in enumerate(trajs):
            for tk, xk in zip(tr.t, tr.x):
                # repr() of a float round-trips exactly.
                row = [repr(float(tk)), *(repr(float(v)) for v in xk)]
                writer.writerow(([str(i)] if several else []) + row)


def _write_npz(path: Path, trajs: Sequence[Trajectory], time_name: str) -> None:
    arrays = {"state_names": np.array(trajs[0].state_names), "time_name": np.array(time_name)}
    for i, tr in enumerate(trajs):
        arrays[f"t_{i}"] = tr.t
        arrays[f"x_{i}"] = tr.x
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def load_trajectories(
    path: str | os.PathLike,
    time_column: str | None = None,
    states: Sequence[str] | None = None,
) -> list[Trajectory]:
    """Read trajectories from a CSV or NPZ file.

    Args:
        path: the file; its suffix picks the format.
        time_column: name of the time column; by default ``t``, ``time`` or the
            first column.
        states: state columns to keep, in this order; by default all others.
    """
    path = Path(path)
    suffix = _check_suffix(path)
    if not path.exists():
        raise DataError(f"{path}: file not found; check the path.")
    if path.is_dir():
        raise DataError(f"{path}: is a folder; give a .csv or .npz file.")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty; give a file with a header row and data rows.")
    if suffix == ".csv":
        trajs = _read_csv(path, time_column, states)
    else:
        trajs = _read_npz(path, states)
    _check_same_states(trajs)
    return trajs


def _read_csv(path: Path, time_column: str | None, states: Sequence[str] | None) -> list[Trajectory]:
    # Messages name a place as "row N", N being the line a text editor shows
    # (the header is line 1), so each kept row remembers its line.
    rows, lines = [], []
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        try:
            for row in reader:
                if any(cell.strip() for cell in row):
                    rows.append(row)
                    lines.append(reader.line_num)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: not a readable CSV file ({exc}).") from None
    if not rows:
        raise DataError(f"{path}: file is empty; give a file with a header row and data rows.")
    header = [h.strip() for h in rows[0]]
    numeric = [h for h in header if _is_number(h)]
    if numeric:
        raise DataError(
            f"{path}: the first line has numbers ({', '.join(numeric[:3])}) where column names "
            "belong; add a header row such as 't,x,y'."
        )
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        raise DataError(f"{path}: repeated column name(s) {repeated} in the header row; give each column its own name.")
    body, lines = rows[1:], lines[1:]
    if not body:
        raise DataError(f"{path}: header row only, no data rows.")

    time_name = _pick_time_column(path, header, time_column)
    names = _pick_state_columns(path, header, time_name, states)
    for line, row in zip(lines, body):
        if len(row) != len(header):
            raise DataError(
                f"{path}: row {line} has {len(row)} cells but the header has {len(header)}; "
                "every row needs one cell per column."
            )

    wanted = ([TRAJECTORY_COLUMN] if TRAJECTORY_COLUMN in header else []) + [time_name, *names]
    table = np.empty((len(body), len(wanted)))
    for j, name in enumerate(wanted):
        col = header.index(name)
        for k, row in enumerate(body):
            cell = row[col].strip()
            try:
                table[k, j] = float(cell)
            except ValueError:
                raise DataError(
                    f"{path}: non-numeric cell {cell!r} in column {name!r} at row {lines[k]}; "
                    "every data cell must be a number."
                ) from None

    _check_rows(path, table, wanted, lines)
    if TRAJECTORY_COLUMN in header:
        ids = table[:, 0]
        table = table[:, 1:]
        groups = [np.flatnonzero(ids == i) for i in dict.fromkeys(ids.tolist())]
    else:
        groups = [np.arange(len(body))]
    trajs = []
    for g_index, rows_of in enumerate(groups):
        label = str(path) if len(groups) == 1 else f"{path} trajectory {g_index}"
        trajs.append(Trajectory(table[rows_of, 0], table[rows_of, 1:], tuple(names), label))
    return trajs


def _check_rows(path: Path, table: np.ndarray, columns: Sequence[str], lines: Sequence[int]) -> None:
    """Raise :class:`DataError` at the first non-finite cell or non-increasing time of a CSV table.

    ``Trajectory`` checks the same later, but it counts rows within one
    trajectory; this names the row as the file's line. ``table`` has the
    ``columns`` (an optional trajectory column, the time, the states) and one
    row per entry of ``lines``.
    """
    bad = ~np.isfinite(table)
    if bad.any():
        k, j = (int(i) for i in np.argwhere(bad)[0])
        raise DataError(
            f"{path}: non-finite value {table[k, j]} in column {columns[j]!r} at row {lines[k]}; "
            "remove or interpolate NaN and inf values."
        )
    several = columns[0] == TRAJECTORY_COLUMN
    ids = table[:, 0] if several else np.zeros(len(table))
    t = table[:, 1] if several else table[:, 0]
    for trajectory in dict.fromkeys(ids.tolist()):
        rows = np.flatnonzero(ids == trajectory)
        steps = np.diff(t[rows])
        if np.any(steps <= 0):
            k = int(np.flatnonzero(steps <= 0)[0])
            before, after = rows[k], rows[k + 1]
            if steps[k] == 0:
                raise DataError(
                    f"{path}: repeated time {t[after]:g} at rows {lines[before]} and {lines[after]}; "
                    "remove the duplicate sample."
                )
            raise DataError(
                f"{path}: time decreases from {t[before]:g} to {t[after]:g} at row {lines[after]}; "
                "times must be strictly increasing (sort the rows)."
            )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _pick_time_column(path: Path, header: list[str], time_column: str | None) -> str:
    if time_column is not None:
        if time_column not in header:
            raise DataError(
                f"{path}: time column {time_column!r} not found; columns are {header}. "
                "Pass --time-column with one of them."
            )
        return time_column
    for candidate in ("t", "time", "Time", "T"):
        if candidate in header:
            return candidate
    first = [h for h in header if h != TRAJECTORY_COLUMN]
    if not first:
        raise DataError(f"{path}: no columns besides {TRAJECTORY_COLUMN!r}; add a time column.")
    return first[0]


def _pick_state_columns(path: Path, header: list[str], time_name: str, states) -> list[str]:
    others = [h for h in header if h not in (time_name, TRAJECTORY_COLUMN)]
    if states is None:
        if not others:
            raise DataError(f"{path}: only a time column {time_name!r}; add at least one state column.")
        return others
    missing = [s for s in states if s not in header]
    if missing:
        raise DataError(f"{path}: state column(s) {missing} not found; columns are {header}.")
    if time_name in states:
        raise DataError(f"{path}: {time_name!r} is the time column; it cannot also be a state.")
    return list(states)


def _read_npz(path: Path, states: Sequence[str] | None) -> list[Trajectory]:
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{path}: not a readable NPZ file ({exc}).") from None
    if "state_names" not in arrays or "t_0" not in arrays or "x_0" not in arrays:
        raise DataError(
            f"{path}: NPZ file lacks 'state_names', 't_0' or 'x_0'; "
            "write it with s2kan_dyn.io.save_trajectories or s2kan-dyn simulate."
        )
    names = [str(s) for s in np.atleast_1d(arrays["state_names"])]
    trajs = []
    i = 0
    while f"t_{i}" in arrays:
        if f"x_{i}" not in arrays:
            raise DataError(f"{path}: array 't_{i}' has no matching 'x_{i}'.")
        x = np.asarray(arrays[f"x_{i}"], dtype=float)
        if x.ndim == 2 and x.shape[1] != len(names):
            raise DataError(f"{path}: x_{i} has {x.shape[1]} columns but {len(names)} state names.")
        label = str(path) if f"t_1" not in arrays else f"{path} trajectory {i}"
        trajs.append(Trajectory(arrays[f"t_{i}"], x, tuple(names), label))
        i += 1
    if states is not None:
        missing = [s for s in states if s not in names]
        if missing:
            raise DataError(f"{path}: state(s) {missing} not found; states are {names}.")
        idx = [names.index(s) for s in states]
        trajs = [Trajectory(tr.t, tr.x[:, idx], tuple(states), tr.source) for tr in trajs]
    return trajs


def check_output_file(option: str, path: str | Path) -> None:
    """Raise :class:`S2KANDynError` unless the folder of the output file ``path`` exists.

    A missing folder is most often a typo, so no command creates one for a
    file the user named.
    """
    folder = Path(path).parent
    if not folder.is_dir():
        raise S2KANDynError(
            f"{option} {path}: folder {folder} does not exist; create it first or give a file in an existing folder."
        )


def check_output_folder(option: str, path: str | Path) -> None:
    """Raise :class:`S2KANDynError` unless the output folder ``path`` or its parent exists.

    Commands create only the last level of an output folder, so a typo in
    its parent path creates nothing.
    """
    path = Path(path)
    if not path.exists() and not path.parent.is_dir():
        raise S2KANDynError(
            f"{option} {path}: folder {path.parent} does not exist; create it first or give a folder "
            "inside an existing one."
        )
