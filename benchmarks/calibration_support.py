"""Forecast calibration fitted on samples clipped to each variable's bounds, as they are
served, against fitted on unclipped samples: scored on the draws a ``lead_calibration
--dump`` run kept, without drawing again.

A served sample is projected onto what its variable can take (PM2.5 is never below 0).
With a week-ahead spread factor near 3, many lower samples of a clean-air hour fall
below 0 and are clipped, which narrows the lower half of the served intervals. Factors
fitted on the unclipped samples then claim more than the served intervals cover
(:class:`tsdiff.calibration.Support`). Both fits are scored the same way, on the served
(clipped) samples, for factors fitted once on the latest calibration origins and for
the rolling refit as truths arrive.

    python -m tsdiff.benchmarks.calibration_support DUMP --name pm25-h168-before37
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from tsdiff.benchmarks.common import (
    RESULTS,
    commit,
    module_command,
    page_header,
    slashed,
    stamp,
    write_results,
)
from tsdiff.benchmarks.lead_calibration import (
    Factors,
    fit_factors,
    lead_bands,
    load_dump,
    score,
)
from tsdiff.calibration import Support, rescale
from tsdiff.errors import DataError
from tsdiff.rolling_calibration import matured
from tsdiff.transforms import network_bounds


def run(
    dump: Path, name: str, recent: int, once: int, out_dir: Path, command: str
) -> dict[str, Any]:
    measured = commit()
    d, meta = load_dump(dump)
    n_cal = d["cal_pos"].shape[0]
    if not (1 <= once <= n_cal) or recent < 1:
        raise DataError(
            f"need 1 <= --once <= {n_cal} (the dump's calibration origins) and --recent >= 1,"
            f" got {once} and {recent}"
        )
    norm, specs = meta["normalizer"], meta["specs"]
    if specs is None:
        raise DataError(f"{dump}: the model has no variable specs, so nothing is clipped")
    cal_z, cal_y, cal_pos = d["cal_z"], d["cal_y"], d["cal_pos"]
    z, zy, truth = d["z"], d["zy"], d["truth"]
    w, n, k, h = z.shape
    bounds = network_bounds(norm, specs)
    one, bands = [(0, h)], lead_bands(h)
    # once: the latest ``once`` calibration origins' cells, (n, m) in (origin, K, H) order
    sel = slice(len(cal_pos) - once, None)
    smp = cal_z[sel].transpose(1, 0, 2, 3).reshape(n, -1)
    y = cal_y[sel].reshape(-1)
    lead = np.broadcast_to(np.arange(h), cal_y[sel].shape).reshape(-1)
    var = np.broadcast_to(np.arange(k)[:, None], cal_y[sel].shape).reshape(-1)
    rows: dict[str, Any] = {}
    product = Support.of(bounds, var)
    for label, support, clip_spread in (
        ("unclipped", None, False),
        ("intervals clipped (the library's rule)", product, False),
        ("spread and intervals clipped", product, True),
    ):
        fitted = fit_factors(smp, y, lead, one, support, clip_spread)
        rows[f"once, latest {once} origins: {label}"] = {
            "spread": fitted.spread[0],
            **score(norm, specs, z, truth, [(one, fitted)] * w, bands),
        }
        pools = (cal_z, cal_y, cal_pos, z, zy, d["pos"])
        plan = _rolling(pools, recent, bounds, support is not None, clip_spread)
        rows[f"rolling, latest {recent} matured: {label}"] = {
            "spread": float(np.median([f.spread[0] for _, f in plan])),
            **score(norm, specs, z, truth, plan, bands),
        }
    s_once = rows[f"once, latest {once} origins: unclipped"]["spread"]
    below = float(np.mean(rescale(cal_z, s_once, axis=1) < bounds[0][None, None, :, None]))
    result = {
        **stamp(command, measured),
        "dump": str(dump),
        "name": name,
        "calibration_origins": int(cal_z.shape[0]),
        "test_origins": int(w),
        "horizon": h,
        "bands": bands,
        "share_below_a_bound_at_the_once_spread": round(below, 5),
        "variants": rows,
    }
    write_results(result, out_dir, f"calibration-support-{name}", markdown)
    return result


def _rolling(
    pools: tuple[np.ndarray, ...],
    recent: int,
    bounds: tuple[np.ndarray, np.ndarray],
    clip: bool,
    clip_spread: bool,
) -> list[tuple[list[tuple[int, int]], Factors]]:
    """Per test forecast, its factors fitted on the ``recent`` latest matured forecasts
    (:func:`tsdiff.rolling_calibration.matured`, as the library's rolling refit) of
    ``pools`` (calibration draws, truths, positions, then the test's), clipped to
    ``bounds`` when ``clip`` (and the spread too with ``clip_spread``)."""
    cal_z, cal_y, cal_pos, z, zy, pos = pools
    w, n, k, h = z.shape
    pool = [(("s", int(p), None), False) for p in cal_pos]
    pool += [(("s", int(p), None), True) for p in pos]
    allz, ally = np.concatenate([cal_z, z]), np.concatenate([cal_y, zy])
    one = [(0, h)]
    plan, cache = [], {}
    for i in range(w):
        idx = list(matured(pool[len(cal_pos) + i][0], pool, h, recent))
        key = tuple(idx)
        if key not in cache:
            smp = allz[idx].transpose(1, 0, 2, 3).reshape(n, -1)  # (n, len(idx)·K·H)
            var = np.tile(np.repeat(np.arange(k), h), len(idx))
            cells = Support.of(bounds, var) if clip else None
            lead = np.tile(np.arange(h), len(idx) * k)
            cache[key] = fit_factors(smp, ally[idx].reshape(-1), lead, one, cells, clip_spread)
        plan.append((one, cache[key]))
    return plan


def markdown(r: dict[str, Any]) -> str:
    lines = page_header(f"Forecast calibration fitted on clipped samples: {r['name']}", r)
    mae = sorted({round(s["mae"], 3) for s in r["variants"].values()})  # one median for all
    lines += [
        "",
        f"Draws of `{r['dump']}` (a `lead_calibration --dump` run): {r['calibration_origins']} "
        f"calibration origins, {r['test_origins']} test origins, h = {r['horizon']}; "
        f"{r['share_below_a_bound_at_the_once_spread']:.1%} of the calibration samples "
        "scaled by the once-fitted spread lie below their variable's lower bound. "
        "Spread: the fitted one (rolling: the median over origins). Every row scored on "
        "the samples as served (scaled by the fitted spread, then clipped onto the bounds; "
        "intervals widened in the network's space). Lead bands: "
        + ", ".join(f"{a + 1}-{b}" for a, b in r["bands"])
        + f". MAE {', '.join(f'{m:.3f}' for m in mae)} in every row (factors keep the median).",
        "",
        "| factors | spread | CRPS | cov50 | cov90 | cov50 by band | cov90 by band |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, s in r["variants"].items():
        lines.append(
            f"| {label} | {s['spread']:.3f} | {s['crps']:.4f} | {s['cov50']:.3f} | "
            f"{s['cov90']:.3f} | {slashed(s['cov50_by_lead'])} | {slashed(s['cov90_by_lead'])} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tsdiff.benchmarks.calibration_support")
    p.add_argument("dump", type=Path, help="a lead_calibration --dump folder")
    p.add_argument("--name", required=True, help="the results page's name, e.g. pm25-h168")
    p.add_argument("--recent", type=int, default=7, help="pool of the rolling refit")
    p.add_argument("--once", type=int, default=28, help="calibration origins of the once fit")
    p.add_argument("--out", type=Path, default=RESULTS)
    a = p.parse_args(argv)
    command = module_command("tsdiff.benchmarks.calibration_support")
    try:
        run(a.dump, a.name, a.recent, a.once, a.out, command)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
