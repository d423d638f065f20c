"""Would a spread per cell calibrate better than one per variable? A candidate
calibration, measured on a shipped PhysioNet model and not adopted.

``python -m tsdiff.benchmarks.cell_spread physionet-vitals [--n-samples 64]`` draws the
model's samples (its gate and per-variable spreads applied, as users get them) for 10 %
hidden cells of the validation stays and of the test stays, then fits a factor per cell
``exp(b0 + b·features)`` that scales each cell's samples about their median, by CRPS on
the validation cells, and scores it on the test cells. Features: the cell's own 50 %
interval width (log), the distance to the variable's nearest observation (log 1 + h), how
often the variable was observed in the stay (log 1 + n), whether the cell lies between
two of its observations. A factor of 1 everywhere is the model as shipped.
Results: ``benchmarks/results/cell-spread-<model>.{json,md}``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from tsdiff.benchmarks.common import (
    RESULTS,
    commit,
    log,
    module_command,
    page_header,
    stamp,
    write_results,
)
from tsdiff.benchmarks.csdi import held_out_cells, task_for
from tsdiff.errors import ConfigError
from tsdiff.metrics import quantile_levels
from tsdiff.model import TSDiff

FEATURES = ("width50", "gap", "observed", "inside")
VARIANTS = {"scalar": (), "width": (0,), "gap": (1,), "width+gap": (0, 1), "all": (0, 1, 2, 3)}


def cell_quantiles(
    model: TSDiff, df: pd.DataFrame, seed: int, n_samples: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """10 % of ``df``'s observed cells hidden and imputed: their 19 quantiles (19, m) and
    truths (m,) in the model's z-scored units, and their features (m, 4)."""
    cells = held_out_cells(model, df, None, 0.1, seed)
    drawn = model.sample(cells.panel, values=cells.given, seed=seed, n_samples=n_samples)
    z = model.scaler.transform  # type: ignore[union-attr]
    qs, ys, fs = [], [], []
    per_series = zip(drawn, cells.truth, cells.given, cells.hidden, strict=True)
    for smp, truth, given, hidden in per_series:
        q = np.quantile(z(smp), quantile_levels(), axis=0)  # (19, K, T)
        obs = ~np.isnan(given)  # (K, T)
        steps = np.arange(obs.shape[1])
        gap = np.full(obs.shape, float(obs.shape[1]))  # never observed: the stay's length
        inside = np.zeros(obs.shape, dtype=bool)
        for k in np.flatnonzero(obs.any(axis=1)):
            seen = steps[obs[k]]
            gap[k] = np.abs(steps[:, None] - seen[None]).min(axis=1)
            inside[k] = (steps > seen.min()) & (steps < seen.max())
        k, t = np.nonzero(hidden)
        qs.append(q[:, k, t])
        ys.append(z(truth)[k, t])
        width = q[14, k, t] - q[4, k, t]  # the 30 % and 70 % quantiles
        fs.append(
            np.stack(
                [np.log(width + 1e-3), np.log1p(gap[k, t]), np.log1p(obs.sum(1)[k]), inside[k, t]],
                axis=1,
            )
        )
    return np.concatenate(qs, axis=1), np.concatenate(ys), np.concatenate(fs)


def standardized(
    features: np.ndarray, cols: tuple[int, ...], mu: np.ndarray, sd: np.ndarray
) -> np.ndarray:
    """Columns ``cols`` of ``features`` (m, 4), standardized: (m, len(cols))."""
    pick = list(cols)  # an empty tuple as an index would keep every column
    return (features[:, pick] - mu[pick]) / sd[pick]


def scaled_crps(q: np.ndarray, y: np.ndarray, factor: np.ndarray | float) -> float:
    """CSDI's quantile CRPS of quantiles ``q`` (19, m) scaled about their median."""
    med = q[9]
    qs = med + factor * (q - med)
    lv = quantile_levels()[:, None]
    return float(2 * np.abs((y - qs) * ((y <= qs) - lv)).mean(axis=0).sum() / np.abs(y).sum())


def fit_factor(q: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Coefficients (1 + f,) of ``exp(b0 + x @ b)`` minimising the CRPS of the cells."""

    def loss(b: np.ndarray) -> float:
        return scaled_crps(q, y, np.exp(b[0] + x @ b[1:]))

    opts = {"maxiter": 2000, "xatol": 1e-4, "fatol": 1e-7}
    return minimize(loss, np.zeros(1 + x.shape[1]), method="Nelder-Mead", options=opts).x


def run(name: str, out_dir: Path = RESULTS, n_samples: int | None = None) -> dict[str, Any]:
    model = TSDiff.load(name)
    dataset = model.info["data"]["dataset"]
    if not dataset.startswith("physionet"):
        raise ConfigError(f"{name!r} was trained on {dataset!r}: this compares PhysioNet models")
    task = task_for(dataset)
    qv, yv, fv = cell_quantiles(model, task.valid, 1, n_samples)
    qt, yt, ft = cell_quantiles(model, task.test, 0, n_samples)
    mu, sd = fv.mean(axis=0), fv.std(axis=0) + 1e-9
    half = np.arange(yv.size) % 2 == 0  # a two-fold check inside the validation cells
    rows = [
        {
            "variant": "as shipped",
            "features": [],
            "val_crps": scaled_crps(qv, yv, 1.0),
            "val_half_crps": scaled_crps(qv[:, ~half], yv[~half], 1.0),
            "test_crps": scaled_crps(qt, yt, 1.0),
        }
    ]
    for variant, cols in VARIANTS.items():
        xv, xt = standardized(fv, cols, mu, sd), standardized(ft, cols, mu, sd)
        b = fit_factor(qv, yv, xv)
        bh = fit_factor(qv[:, half], yv[half], xv[half])
        rows.append(
            {
                "variant": variant,
                "features": [FEATURES[c] for c in cols],
                "coefficients": [round(float(c), 4) for c in b],
                "val_crps": scaled_crps(qv, yv, np.exp(b[0] + xv @ b[1:])),
                "val_half_crps": scaled_crps(
                    qv[:, ~half], yv[~half], np.exp(bh[0] + xv[~half] @ bh[1:])
                ),
                "test_crps": scaled_crps(qt, yt, np.exp(b[0] + xt @ b[1:])),
            }
        )
        got, base = rows[-1]["test_crps"], rows[0]["test_crps"]
        log(f"{variant}: test CRPS {got:.5f} (as shipped {base:.5f})")
    for r in rows:
        r.update({k: round(r[k], 5) for k in ("val_crps", "val_half_crps", "test_crps")})
    result = {
        **stamp(module_command("tsdiff.benchmarks.cell_spread"), commit()),
        "model": name,
        "dataset": dataset,
        "n_samples": n_samples or model.config.sample.n_samples,
        "val_cells": int(yv.size),
        "test_cells": int(yt.size),
        "rows": rows,
    }
    write_results(result, out_dir, f"cell-spread-{Path(name).name}", _page)
    return result


def _page(r: dict[str, Any]) -> str:
    lines = [
        *page_header(f"A spread per cell, fitted on validation cells: `{r['model']}`", r),
        "",
        f"{r['n_samples']} samples; 10 % of the observed values hidden in the {r['val_cells']} "
        f"validation cells (fit) and the {r['test_cells']} test cells (score), z-scored "
        "units. Each cell's samples scaled about their median by exp(b0 + b·features), on "
        "top of the model's own calibration. `val half`: fitted on every other validation "
        "cell, scored on the rest.",
        "",
        "| variant | features | coefficients | val CRPS | val half | test CRPS |",
        "|---|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        feats = ", ".join(row["features"]) or "–"
        coef = ", ".join(map(str, row.get("coefficients", []))) or "–"
        lines.append(
            f"| {row['variant']} | {feats} | {coef} | {row['val_crps']:.5f} | "
            f"{row['val_half_crps']:.5f} | {row['test_crps']:.5f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m tsdiff.benchmarks.cell_spread")
    ap.add_argument("name", help="a shipped PhysioNet model or a model folder")
    ap.add_argument("--n-samples", type=int)
    ap.add_argument("--out", default=str(RESULTS), help="results folder")
    a = ap.parse_args(argv)
    try:
        run(a.name, Path(a.out), a.n_samples)
    except ConfigError as e:
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    main()
