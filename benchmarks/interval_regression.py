"""Interval factors that grow with the lead, fitted by pinball loss, against one factor
for every lead: scored on the draws a ``lead_calibration --dump`` run kept, without
drawing again.

One factor per level leaves week-ahead intervals too wide at early leads and too narrow
at late ones (ETTh1 before its test period: 50 % coverage 0.62 at leads 1-8, 0.43 at
129-168). Per band of leads the factors were noisy
(``lead-calibration-*-h168-before37.md``). Here each level's factor is
``exp(b0 + b1·log(1 + lead))``: for each slope ``b1`` on a grid, ``b0`` is the
conformal quantile of how far outside its interval each calibration truth fell (log
ratio, less the slope's part), and the slope kept is the one with the least pinball
loss — a quantile regression of the log ratio on log lead, two numbers per level.

Two checks: fitted on the earlier half of the calibration origins and scored on the
later half, then fitted on the latest ``--fit-origins`` and scored on the test origins.

    python -m tsdiff.benchmarks.interval_regression DUMP --name etth1-h168-before37
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tsdiff import metrics
from tsdiff.backtest import coverage_se
from tsdiff.benchmarks.common import (
    RESULTS,
    commit,
    module_command,
    page_header,
    slashed,
    stamp,
    write_results,
)
from tsdiff.benchmarks.lead_calibration import load_dump
from tsdiff.calibration import (
    MIN_HALF_WIDTH,
    fit_interval_scale,
    fit_spread,
    interval_ratios,
    rescale,
)
from tsdiff.errors import DataError
from tsdiff.spec import project, project_bounds

LEVELS = (50, 90)
SLOPES = np.round(np.arange(-0.6, 0.6001, 0.02), 2)
BANDS = ((0, 8), (8, 16), (16, 32), (32, 64), (64, 128), (128, 168))


def _cells(z: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draws (W, n, K, H) and truths (W, K, H) → samples (n, m), truth (m,), lead (m,),
    the cells with a truth."""
    w, n, k, h = z.shape
    smp = z.transpose(1, 0, 2, 3).reshape(n, -1)
    lead = np.broadcast_to(np.arange(h), (w, k, h)).reshape(-1)
    yy = y.reshape(-1)
    keep = np.isfinite(yy)
    return smp[:, keep], yy[keep], lead[keep]


def fit(z: np.ndarray, y: np.ndarray, by_lead: bool) -> dict[str, Any]:
    """Spread (CRPS-optimal) and per level ``(b0, b1)``: the factor at 0-based lead l is
    ``exp(b0 + b1·log(1 + l))`` (``b1`` 0 and ``b0`` the log of the conformal factor
    without ``by_lead``)."""
    smp, yy, lead = _cells(z, y)
    s = fit_spread(smp, yy).spread
    scaled = rescale(smp, s)
    out: dict[str, Any] = {"spread": s, "by_lead": by_lead}
    if not by_lead:
        scale = fit_interval_scale(scaled, yy, LEVELS).scale
        out["coef"] = {lv: (math.log(scale[lv]), 0.0) for lv in LEVELS}
        return out
    x = np.log1p(lead)
    out["coef"] = {}
    for lv in LEVELS:
        ratios = interval_ratios(scaled, yy, np.median(scaled, axis=0), lv)
        logr = np.log(np.maximum(ratios, 1e-6))
        tau, best = lv / 100, None
        for b1 in SLOPES:
            resid = logr - b1 * x
            b0 = float(np.quantile(resid, min(1.0, math.ceil((len(resid) + 1) * tau) / len(resid))))
            u = resid - b0
            loss = float(np.mean(np.maximum(tau * u, (tau - 1) * u)))
            if best is None or loss < best[0]:
                best = (loss, b0, float(b1))
        assert best is not None
        out["coef"][lv] = (best[1], best[2])
    return out


def score(
    f: dict[str, Any], z: np.ndarray, truth: np.ndarray, norm: Any, specs: Any, h: int
) -> dict[str, Any]:
    """Coverage of draws ``z`` (W, n, K, H, normalised) against ``truth`` (W, K, H,
    original units) with the fit's factors, as the lead_calibration benchmark scores:
    samples projected onto the specs, intervals widened in the network's space."""
    w, n, k, _ = z.shape
    x = norm.inverse(rescale(z, f["spread"], axis=1))
    if specs is not None:
        x = project(x, specs)
    zt = norm.transform(x.transpose(1, 0, 2, 3))  # (n, W, K, H)
    med = np.median(zt, axis=0)
    mask = np.isfinite(truth)
    y = np.nan_to_num(truth)
    lead = np.log1p(np.arange(h))  # (H,)
    origin = np.broadcast_to(np.arange(w)[:, None, None], (w, k, h))
    table: dict[str, Any] = {"origin": origin[mask], "truth": truth[mask]}
    out: dict[str, Any] = {}
    for lv in LEVELS:
        b0, b1 = f["coef"][lv]
        a = np.exp(b0 + b1 * lead)  # (H,)
        lo, hi = metrics.interval(zt, lv)
        lo_b = norm.inverse(med - a * np.maximum(med - lo, MIN_HALF_WIDTH))
        hi_b = norm.inverse(med + a * np.maximum(hi - med, MIN_HALF_WIDTH))
        if specs is not None:
            lo_b, hi_b = project_bounds(lo_b, hi_b, specs)
        inside = (lo_b <= y) & (y <= hi_b)
        out[f"cov{lv}"] = round(float(inside[mask].mean()), 4)
        out[f"cov{lv}_by_lead"] = [
            round(float(inside[..., p:q][mask[..., p:q]].mean()), 3) for p, q in BANDS if p < h
        ]
        out[f"factor{lv}_lead1_168"] = [round(float(a[0]), 3), round(float(a[-1]), 3)]
        table[f"lo_{lv}"], table[f"hi_{lv}"] = lo_b[mask], hi_b[mask]
    # daily origins of h-step forecasts: blocks of ⌈h / 24⌉ origins share truths
    out.update(coverage_se(pd.DataFrame(table), LEVELS, horizon=h, step=24))
    return out


def run(dump: Path, name: str, fit_origins: int, out_dir: Path, command: str) -> dict[str, Any]:
    measured = commit()
    d, meta = load_dump(dump)
    norm, specs = meta["normalizer"], meta["specs"]
    cal_z, cal_y, z, truth = d["cal_z"], d["cal_y"], d["z"], d["truth"]
    h = z.shape[-1]
    half = cal_z.shape[0] // 2
    rows: dict[str, Any] = {}
    for by_lead, label in (
        (False, "one factor for every lead"),
        (True, "factor by lead (pinball)"),
    ):
        early = fit(cal_z[:half], cal_y[:half], by_lead)
        late = fit(cal_z[-fit_origins:], cal_y[-fit_origins:], by_lead)
        rows[label] = {
            "within_calibration": score(
                early, cal_z[half:], norm.inverse(cal_y[half:]), norm, specs, h
            ),
            "test": score(late, z, truth, norm, specs, h),
            "coef": {str(lv): [round(c, 4) for c in late["coef"][lv]] for lv in LEVELS},
        }
    result = {
        **stamp(command, measured),
        "dump": str(dump),
        "name": name,
        "calibration_origins": int(cal_z.shape[0]),
        "fit_origins": fit_origins,
        "test_origins": int(z.shape[0]),
        "horizon": h,
        "variants": rows,
    }
    write_results(result, out_dir, f"interval-regression-{name}", markdown)
    return result


def markdown(r: dict[str, Any]) -> str:
    lines = page_header(f"Interval factors by lead: {r['name']}", r)
    lines += [
        "",
        f"Draws of `{r['dump']}` (a `lead_calibration --dump` run): {r['calibration_origins']} "
        f"calibration origins, {r['test_origins']} test origins, h = {r['horizon']}. "
        "Within calibration: fitted on the earlier half of the calibration origins, scored "
        f"on the later half; test: fitted on the latest {r['fit_origins']}. Coverage ± its "
        "standard error over origins (moving-block bootstrap, blocks of ⌈h / 24⌉ origins). "
        "Lead bands: 1-8, 9-16, 17-32, 33-64, 65-128, 129-168.",
        "",
        "| factors | scored on | cov50 | cov90 | cov50 by band | cov90 by band "
        "| factor 50 % / 90 % at lead 1 → 168 |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, v in r["variants"].items():
        for part in ("within_calibration", "test"):
            s = v[part]
            lines.append(
                f"| {label} | {part.replace('_', ' ')} | {s['cov50']:.3f} ± {s['cov50_se']:.3f} | "
                f"{s['cov90']:.3f} ± {s['cov90_se']:.3f} | "
                f"{slashed(s['cov50_by_lead'])} | {slashed(s['cov90_by_lead'])} | "
                f"{s['factor50_lead1_168'][0]:.2f} → {s['factor50_lead1_168'][1]:.2f} / "
                f"{s['factor90_lead1_168'][0]:.2f} → {s['factor90_lead1_168'][1]:.2f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tsdiff.benchmarks.interval_regression")
    p.add_argument("dump", type=Path, help="a lead_calibration --dump folder")
    p.add_argument("--name", required=True, help="the results page's name, e.g. pm25-h168")
    p.add_argument("--fit-origins", type=int, default=28)
    p.add_argument("--out", type=Path, default=RESULTS)
    a = p.parse_args(argv)
    command = module_command("tsdiff.benchmarks.interval_regression")
    try:
        run(a.dump, a.name, a.fit_origins, a.out, command)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
