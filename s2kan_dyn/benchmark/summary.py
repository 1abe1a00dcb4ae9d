"""Markdown summary of a suite's results: success rates and medians per method.

One table row per (method, noise, sampling) group:

- ``runs``, ``ok``, ``timed out``, ``failed``: counts (``failed`` includes crashed workers);
- ``exact``: share of runs with the exact set of terms (F1 = 1); a run that
  did not finish counts as not exact;
- ``R2>0.99``: share of runs whose derivative R^2 on the held-out states
  exceeds 0.99;
- medians over the finished runs of the coefficient error, the valid
  prediction time (in Lyapunov times where known, else in time units) and
  the fit time.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Sequence

from .results import parse_float

R2_SUCCESS = 0.99


def group_rows(rows: Sequence[dict]) -> dict[tuple[str, str, str], list[dict]]:
    """Group rows by (method, noise, sampling), sorted by method, then noise, then sampling."""
    groups = defaultdict(list)
    for row in rows:
        groups[(row["method"], row["noise"], row["sampling"])].append(row)
    return dict(sorted(groups.items(), key=lambda kv: (kv[0][0], float(kv[0][1]), kv[0][2])))


def _median(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}g}"


def _rate(count: int, total: int) -> str:
    return f"{count}/{total} ({100.0 * count / total:.0f} %)" if total else "-"


def group_figures(rows: Sequence[dict]) -> dict:
    """Return the counts, rates and medians of one group of rows."""
    finished = [r for r in rows if r["status"] == "ok"]
    lyapunov = [parse_float(r.get("vpt_lyapunov", "")) for r in finished]
    use_lyapunov = bool(finished) and all(v is not None for v in lyapunov)
    vpts = lyapunov if use_lyapunov else [parse_float(r.get("vpt", "")) for r in finished]
    r2 = [parse_float(r.get("r2", "")) for r in finished]
    return {
        "runs": len(rows),
        "ok": len(finished),
        "timed_out": sum(r["status"] == "timed out" for r in rows),
        "failed": sum(r["status"] in ("failed", "crashed") for r in rows),
        "exact": sum(r.get("exact") == "true" for r in finished),
        "r2_success": sum(v is not None and v > R2_SUCCESS for v in r2),
        "coef_error": _median(parse_float(r.get("coef_error", "")) for r in finished),
        "vpt": _median(vpts),
        "vpt_unit": "Lyapunov times" if use_lyapunov else "time units",
        "fit_seconds": _median(parse_float(r.get("fit_seconds", "")) for r in finished),
    }


def summary_markdown(suite: str, rows: Sequence[dict], has_truth: bool = True) -> str:
    """Return the markdown summary of ``rows`` of one suite."""
    lines = [f"# Benchmark summary: {suite}", ""]
    if not rows:
        return "\n".join(lines + ["No runs yet.", ""])
    systems = sorted({r["system"] for r in rows})
    seeds = sorted({r["seed"] for r in rows}, key=int)
    lines.append(f"{len(systems)} systems, seeds {', '.join(seeds)}, {len(rows)} runs.")
    lines.append("")

    header = ["method", "noise", "sampling", "runs", "ok", "timed out", "failed"]
    if has_truth:
        header += ["exact structure", "R2 > 0.99", "median coef. error"]
    header += ["median VPT", "median fit (s)"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))

    for (method, noise, sampling), group in group_rows(rows).items():
        f = group_figures(group)
        cells = [method, noise, sampling, str(f["runs"]), str(f["ok"]), str(f["timed_out"]), str(f["failed"])]
        if has_truth:
            cells += [_rate(f["exact"], f["runs"]), _rate(f["r2_success"], f["runs"]), _fmt(f["coef_error"])]
        vpt = _fmt(f["vpt"])
        cells += [f"{vpt} ({f['vpt_unit']})" if f["vpt"] is not None else vpt, _fmt(f["fit_seconds"])]
        lines.append("| " + " | ".join(cells) + " |")

    lines += [
        "",
        "Rates count every run, and a run that timed out or failed counts as a miss. Medians are over "
        "finished runs. VPT is the valid prediction time: the first time the forecast's error, normalised "
        "by each state's standard deviation in the training data, exceeds 0.4.",
        "",
    ]
    return "\n".join(lines)
