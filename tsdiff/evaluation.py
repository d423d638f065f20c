"""Scoring a model's imputations on cells it is shown the data without (the backtests,
:mod:`tsdiff.backtest`, do the same for forecasts)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tsdiff import baselines, metrics
from tsdiff.errors import RangeError
from tsdiff.inference import Bounds, interval_bounds, sample_series
from tsdiff.masks import hold_out
from tsdiff.predictor import Predictor


def flat_cells(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """Per-series (..., K, T) arrays → one (..., K·T summed over series) array."""
    return np.concatenate([a.reshape(*a.shape[:-2], -1) for a in arrays], axis=-1)


def interval_scores(
    model: Predictor,
    samples: Sequence[np.ndarray],
    truth: Sequence[np.ndarray],
    hidden: Sequence[np.ndarray],
    levels: Sequence[int],
    scale: Callable[[np.ndarray], np.ndarray] | None = None,
    bounds: Bounds | None = None,
) -> dict[str, float]:
    """``cov<L>`` and ``width<L>`` of the intervals ``model.impute`` reports (its interval
    factors applied to the samples' quantiles) on the ``hidden`` cells; per series
    samples (n, K, T), truth and hidden (K, T). ``scale`` maps values to the units
    widths are reported in (default: original units); ``bounds``: those intervals when
    already drawn from the samples (scoring them in two units)."""
    if bounds is None:
        bounds = reported_bounds(model, samples, hidden, levels)
    y, msk = flat_cells(truth), flat_cells(hidden)
    out: dict[str, float] = {}
    for lv in levels:
        lo, hi = (flat_cells(b) for b in bounds[lv])
        inside = (y >= lo) & (y <= hi)
        if scale is not None:
            lo, hi = (flat_cells([scale(x) for x in b]) for b in bounds[lv])
        out[f"cov{lv}"] = float(inside[msk].mean()) if msk.any() else float("nan")
        out[f"width{lv}"] = float((hi - lo)[msk].mean()) if msk.any() else float("nan")
    return out


def reported_bounds(
    model: Predictor,
    samples: Sequence[np.ndarray],
    hidden: Sequence[np.ndarray],
    levels: Sequence[int],
) -> Bounds:
    """The intervals ``impute`` reports for the ``hidden`` cells (the rest observed)."""
    return interval_bounds(list(samples), levels, model, [~h for h in hidden])


def evaluate(
    model: Predictor,
    df: pd.DataFrame,
    *,
    missing: float = 0.1,
    seed: int = 0,
    levels: Sequence[int] | None = None,
    n_samples: int | None = None,
    steps: int | None = None,
    sampler: str | None = None,
    eta: float | None = None,
) -> dict[str, Any]:
    """Hide a share of the observed cells, impute them, score the result.

    Metrics are reported in original units and on the normalised scale (the CSDI
    PhysioNet convention), next to linear interpolation, LOCF and the training
    mean on exactly the same held-out cells.
    """
    if not 0 < missing < 1:
        raise RangeError(f"missing must be in (0, 1), got {missing}")
    opts = model.options(
        n_samples=n_samples, steps=steps, sampler=sampler, eta=eta, levels=levels, seed=seed
    )
    panel = model.panel(df)
    assert model.scaler is not None
    rng = np.random.default_rng(seed)
    # round (half to even): the nearest count to the share asked for
    held = [hold_out(s.values, missing, rng, rounding="round") for s in panel.series]
    masked = [m for m, _ in held]  # per series (K, T), NaN where hidden
    hidden = [h for _, h in held]  # per series (K, T) bool
    t0 = time.perf_counter()
    samples = sample_series(model, panel, opts, values=masked).samples
    secs = time.perf_counter() - t0
    truth = [s.values for s in panel.series]
    means = np.asarray(model.scaler.mean)

    smp, tru, msk = flat_cells(samples), flat_cells(truth), flat_cells(hidden)
    tru = np.where(msk, tru, 0.0)
    norm = model.scaler.transform
    smp_n = flat_cells([norm(x) for x in samples])
    tru_n = np.where(msk, flat_cells([norm(x) for x in truth]), 0.0)
    result: dict[str, Any] = {
        "n_series": len(panel.series),
        "n_cells": int(msk.sum()),
        "missing": missing,
        "seed": seed,
        "n_samples": opts.n_samples,
        "steps": opts.steps if opts.sampler == "ddim" else None,  # DDPM visits every step
        "sampler": opts.sampler,
        "impute_seconds": round(secs, 3),
        "model": metrics.summarize(smp, tru, msk, opts.levels),
        "model_normalized": metrics.summarize(smp_n, tru_n, msk, opts.levels),
        "baselines": {},
        "baselines_normalized": {},
    }
    if model.interval_scale:  # coverage and width of the intervals impute reports
        lv = opts.levels
        b = reported_bounds(model, samples, hidden, lv)
        result["model"].update(interval_scores(model, samples, truth, hidden, lv, bounds=b))
        result["model_normalized"].update(
            interval_scores(model, samples, truth, hidden, lv, norm, bounds=b)
        )
    for name, fn in baselines.BASELINES.items():
        filled = [fn(m, means) for m in masked]
        pred, pred_n = flat_cells(filled), flat_cells([norm(f) for f in filled])
        result["baselines"][name] = {
            "mae": metrics.mae(pred, tru, msk),
            "rmse": metrics.rmse(pred, tru, msk),
        }
        result["baselines_normalized"][name] = {
            "mae": metrics.mae(pred_n, tru_n, msk),
            "rmse": metrics.rmse(pred_n, tru_n, msk),
        }
    return result
