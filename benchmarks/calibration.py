"""Which spread calibration serves imputations best: one factor, one per variable, or a
heavier-tailed reshaping, fitted on validation cells and scored on unseen test cells.

``python -m tsdiff.benchmarks.calibration physionet-vitals --valid-series 400
--test-series 200`` draws uncalibrated samples (the model's sampler and gate, spread 1)
for 10% hidden cells of the PhysioNet fold-0 validation stays and for the CSDI
protocol's held-out cells of the first test stays, once; every variant is then fitted on
the validation draws (on the first 64 stays, what ``fit`` samples by default, and on
all) and applied to the same test draws. Factors act in the network's space and the
result is mapped back and clipped to each variable's bounds, as the sampler's
projection does. Results: ``benchmarks/results/calibration.{json,md}``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import torch

from tsdiff import metrics
from tsdiff.benchmarks.common import (
    RESULTS,
    commit,
    log,
    module_command,
    page_header,
    stamp,
    write_results,
)
from tsdiff.benchmarks.csdi import _cap, held_out_cells, physionet_task
from tsdiff.calibration import SPREAD_GRID, fit_spread, fit_variable_spread
from tsdiff.evaluation import flat_cells
from tsdiff.inference import sample_series
from tsdiff.model import TSDiff

DEFAULT_SERIES = 64  # train.calibrate_max_series before this comparison (now 400)
TAIL_POWERS = (1.0, 1.2, 1.4, 1.7)


def _draw(model: TSDiff, cells: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Samples (n, m), truths (m,), variables (m,) of the hidden cells, network space;
    and the series index (m,) of each cell."""
    opts = model.options(seed=0)
    drawn = sample_series(model, cells.panel, opts, values=cells.given, spread=1.0).samples
    norm = model.normalizer
    k = len(model.variables)
    mask = flat_cells(cells.hidden)
    smp = flat_cells([norm.transform(x) for x in drawn])[:, mask]
    tru = flat_cells([norm.transform(t) for t in cells.truth])[mask]
    var = flat_cells([np.broadcast_to(np.arange(k)[:, None], h.shape) for h in cells.hidden])
    ser = flat_cells([np.full(h.shape, i) for i, h in enumerate(cells.hidden)])
    return smp, tru, var[mask], ser[mask]


def _tail(smp: np.ndarray, s: float | np.ndarray, p: float) -> np.ndarray:
    """``median + s·scale·sign(u)|u|^p`` with u the deviation in units of the cell's mean
    absolute deviation: p = 1 is the plain factor, p > 1 fattens the tails."""
    med = np.median(smp, axis=0, keepdims=True)
    dev = smp - med
    scale = np.mean(np.abs(dev), axis=0, keepdims=True) + 1e-12
    u = dev / scale
    return med + s * scale * np.sign(u) * np.abs(u) ** p


def _quantile_crps(smp: np.ndarray, y: np.ndarray) -> float:
    q = np.quantile(smp, metrics.quantile_levels(), axis=0)
    return metrics.crps_from_quantiles(q, y, np.ones(y.shape, dtype=bool))


class Scorer:
    """Test metrics on the z-scale of raw values (the protocol's), after mapping samples
    from the network's space back and clipping them to the variables' bounds."""

    def __init__(self, model: TSDiff, var: np.ndarray) -> None:
        assert model.spec is not None and model.scaler is not None
        self.model, self.var = model, var
        spec = [model.spec[v] for v in model.variables]
        self.lo = np.array([-np.inf if s.lower is None else s.lower for s in spec])
        self.hi = np.array([np.inf if s.upper is None else s.upper for s in spec])

    def z(self, x: np.ndarray) -> np.ndarray:  # (..., m) network space → z of raw
        k = len(self.model.variables)
        out = np.empty_like(x)
        for j in np.unique(self.var):
            sel = self.var == j
            a = np.full(x.shape[:-1] + (k, int(sel.sum())), np.nan)
            a[..., j, :] = x[..., sel]
            raw = np.clip(self.model.normalizer.inverse(a)[..., j, :], self.lo[j], self.hi[j])
            a[..., j, :] = raw
            out[..., sel] = self.model.scaler.transform(a)[..., j, :]
        return out

    def __call__(self, smp: np.ndarray, tru: np.ndarray) -> dict[str, float]:
        zs, zt = self.z(smp), self.z(tru[None])[0]
        ones = np.ones(zt.shape, dtype=bool)
        return {
            "mae": round(metrics.mae(np.median(zs, axis=0), zt, ones), 5),
            "crps": round(metrics.crps_quantile(zs, zt, ones), 5),
            "cov50": round(metrics.coverage(zs, zt, ones, 50), 4),
            "cov90": round(metrics.coverage(zs, zt, ones, 90), 4),
        }


def variants(val: tuple, k: int) -> dict[str, dict[str, Any]]:
    """Every calibration fitted on validation draws: name → (factor(s), tail power)."""
    vs, vt, vv, vser = val
    out: dict[str, dict[str, Any]] = {"uncalibrated": {"spread": 1.0, "power": 1.0}}
    for label, sel in (
        (f"first {DEFAULT_SERIES} stays", vser < DEFAULT_SERIES),
        ("all stays", np.ones(vt.shape, dtype=bool)),
    ):
        one = fit_spread(vs[:, sel], vt[sel]).spread
        out[f"one factor ({label})"] = {"spread": one, "power": 1.0, "cells": int(sel.sum())}
        per = fit_variable_spread(vs[:, sel], vt[sel], vv[sel], k, overall=one)
        out[f"per variable ({label})"] = {
            "spread": list(per.spread),
            "power": 1.0,
            "cells": int(sel.sum()),
            "own_factors": per.n_own,
        }
    best = min(
        (_quantile_crps(_tail(vs, s, p), vt), float(s), p) for p in TAIL_POWERS for s in SPREAD_GRID
    )
    out["one factor + tail power (all stays)"] = {"spread": best[1], "power": best[2]}
    return out


def run(name: str, valid_series: int, test_series: int) -> dict[str, Any]:
    model = TSDiff.load(name)
    task = physionet_task(0.1, fold=0, seed=0)
    val_cells = held_out_cells(model, _cap(task.valid, valid_series), None, 0.1, seed=7)
    test_cells = held_out_cells(model, _cap(task.test, test_series), None, 0.1, seed=0)
    t0 = time.perf_counter()
    val, test = _draw(model, val_cells), _draw(model, test_cells)
    log(
        f"drew {val[1].size} validation and {test[1].size} test cells in "
        f"{time.perf_counter() - t0:.0f} s"
    )
    k = len(model.variables)
    score = Scorer(model, test[2])
    rows = []
    for label, v in variants(val, k).items():
        factor = v["spread"]
        s = np.asarray(factor)[test[2]] if isinstance(factor, list) else factor
        row = {"variant": label, **score(_tail(test[0], s, v["power"]), test[1]), **v}
        log(
            f"  {label:40s} CRPS {row['crps']:.4f} cov50 {row['cov50']:.3f} "
            f"cov90 {row['cov90']:.3f}"
        )
        rows.append(row)
    return {
        "model": name,
        "valid_cells": int(val[1].size),
        "test_cells": int(test[1].size),
        "valid_series": valid_series,
        "test_series": test_series,
        "rows": rows,
    }


def markdown(r: dict[str, Any]) -> str:
    title = "Spread calibration variants, fitted on validation cells, scored on test cells"
    lines = [
        *page_header(title, r),
        "",
        f"Model `{r['model']}`, its sampler and gate; {r['valid_cells']} hidden validation "
        f"cells (10% of the first {r['valid_series']} validation stays of fold 0), "
        f"{r['test_cells']} held-out test cells (CSDI protocol, first {r['test_series']} "
        "test stays); one set of draws, every variant applied to the same samples. "
        "z-scale of raw values, as the protocol scores.",
        "",
        "| variant | fitted on cells | MAE | CRPS | cov50 | cov90 |",
        "|---|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        lines.append(
            f"| {row['variant']} | {row.get('cells', '–')} | {row['mae']:.4f} | "
            f"{row['crps']:.4f} | {row['cov50']:.3f} | {row['cov90']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", nargs="?", default="physionet-vitals")
    p.add_argument("--valid-series", type=int, default=400)
    p.add_argument("--test-series", type=int, default=200)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(RESULTS))
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    started = commit()
    result = run(a.model, a.valid_series, a.test_series)
    result.update(stamp(module_command("tsdiff.benchmarks.calibration"), started))
    write_results(result, a.out, "calibration", markdown)


if __name__ == "__main__":
    main()
