"""The forecast gates: per variable, the weight of a model's forecast median against
seasonal naive, fitted on validation forecasts: the fallback for a model the budget left
worse than seasonal naive. The first gate (:func:`naive_gate`) is fitted with the
forecast calibration on its forecasts (one chunk long at fit, the whole horizon in a
calibrated backtest); the far gate (:func:`fit_far_gate`, the leads beyond the first
chunk) on one long forecast per validation series.
:func:`~tsdiff.forecasting.gate_paths` applies them to sample paths."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from tsdiff.calibration import FORECAST_GATE_EVIDENCE, GateFit, fit_gate
from tsdiff.data import Panel
from tsdiff.forecasting import chunk_length
from tsdiff.origins import OriginDraws, draw_origins, origin_bases
from tsdiff.predictor import Predictor

FAR_SERIES = 32  # validation series the far gate draws a long forecast from, at most
FAR_SAMPLES = 16  # samples per long forecast: the far gate reads only their median
FAR_ANCHOR = 0.5  # the far gate's weights without evidence, a share of the first gate's
FAR_CHUNKS = 7  # continuation chunks a long validation forecast spans, at most (a week
# of hourly data after a first day)


def gate_forecasts(
    model: Predictor, panel: Panel, run: OriginDraws, smp: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, dict[str, Any]]:
    """Per variable, the weight α of the forecasts' median against seasonal naive
    (:func:`naive_gate`), and the samples ``smp`` (n, W·K·H, normalised) so recentred."""
    w, _, k, h = run.samples.shape
    base = np.stack(origin_bases(model, panel, run)).reshape(-1)
    var = np.broadcast_to(np.arange(k)[None, :, None], (w, k, h)).reshape(-1)  # (W·K·H,)
    group = np.broadcast_to(np.arange(w)[:, None, None], (w, k, h)).reshape(-1)
    med = np.median(smp, axis=0)
    info = naive_gate(med, base, y, var, group, k)
    if info["kept"] is None:
        return smp, info
    g = np.asarray(info["kept"])[var]
    shift = np.where(np.isfinite(base), (1 - g) * (base - med), 0.0)  # as forecasting.gate_paths
    return smp + shift[None], info


def naive_gate(
    med: np.ndarray, base: np.ndarray, y: np.ndarray, var: np.ndarray, group: np.ndarray, k: int
) -> dict[str, Any]:
    """The gate fit of forecast medians against seasonal naive, all (m,) normalised
    cells (``group``: the forecast, or stretch of one, a cell belongs to): per variable
    α by MAE, moving off seasonal naive, and off the model alone, each only on the
    evidence of ``FORECAST_GATE_EVIDENCE`` standard errors over groups
    (:func:`tsdiff.calibration.fit_gate`). A model that beats seasonal naive over all
    variables on that evidence is kept alone: the gate is a fallback for a model that
    does not, not a per-variable tuner of one that does. ``kept``: the α to save, None
    when every variable keeps the model alone."""
    use = np.isfinite(y) & np.isfinite(base)
    if not use.any():
        return {"kept": None, "n_cells": 0}
    med, base, y, var, group = (a[use] for a in (med, base, y, var, group))
    if _beats_naive(med, base, y, group):
        # the model wins over all variables: kept alone. Per-variable weights fitted on a
        # month of origins then moved two ETTh1 sensors of a well-trained model wholly to
        # seasonal naive, costing 5 % CRPS on the test origins (forecast-etth1-gate-oneway)
        alone = round(float(np.abs(med - y).mean()), 5)
        naive = round(float(np.abs(base - y).mean()), 5)
        kept = GateFit((1.0,) * k, int(y.size), alone, naive, alone)
        return {**kept.to_dict(), "model_wins_overall": True, "kept": None}
    fit = fit_gate(
        med, base, y, var, k, evidence=FORECAST_GATE_EVIDENCE, groups=group, both_ways=True
    )
    return {**fit.to_dict(), "kept": list(fit.gate) if min(fit.gate) < 1 else None}


def _beats_naive(med: np.ndarray, base: np.ndarray, y: np.ndarray, group: np.ndarray) -> bool:
    """Whether the forecasts' median has the lower MAE than seasonal naive over all
    variables by ``FORECAST_GATE_EVIDENCE`` standard errors counted over forecasts."""
    d = np.abs(med - y) - np.abs(base - y)
    _, at = np.unique(group, return_inverse=True)
    d = np.bincount(at, weights=d) / np.bincount(at)  # (forecasts,) mean differences
    se = d.std(ddof=1) / np.sqrt(d.size) if d.size > 1 else np.inf
    return bool(d.mean() < -FORECAST_GATE_EVIDENCE * se)


def far_anchor(model: Predictor) -> list[float]:
    """The far gate's weights without evidence: ``FAR_ANCHOR`` times the first gate's
    (the model alone, weight 1, where there is none)."""
    k = len(model.variables)
    near = [1.0] * k if model.forecast_gate is None else list(model.forecast_gate)
    return [FAR_ANCHOR * a for a in near]


def fit_far_gate(
    model: Predictor, panel: Panel, tails: Sequence[int], seed: int
) -> dict[str, Any] | None:
    """The forecast gate of the leads beyond :func:`~tsdiff.forecasting.chunk_length`
    (``model.forecast_gate_far``), fitted on one long forecast per validation series
    from the start of its held-out tail (``tails``: per series, its last steps held out),
    as far as the shortest tail that spans two chunks and at most ``FAR_CHUNKS`` more.

    The first gate is fitted on forecasts one chunk long, which cannot see how a
    continued forecast drifts: on PM2.5 a CLI-default model that beat seasonal naive at
    a day lost to it at a week (MAE ×1.04 and ×1.11 in two fits, defaults-tokens-2).
    Each chunk of a forecast counts as one unit of evidence, and the far leads keep
    ``FAR_ANCHOR`` times the first gate's weights (an even blend of the model's median
    and seasonal naive where the first gate kept the model alone) unless other weights
    beat them by ``FORECAST_GATE_EVIDENCE`` standard errors over those units
    (:func:`tsdiff.calibration.fit_gate`'s ``anchor``). A week of validation is a few
    units of one weather: fitted from seasonal naive as the first gate is, it sent 33 of
    36 PM2.5 stations there although the model was 7 % better, costing 13 % MAE on the
    test weeks (``forecast-far-gate.md``); anchored at the first gate's weights, it still
    moved PM2.5 stations off the model on validation weeks where seasonal naive won,
    costing up to 17 % against the model alone on five of six PM2.5 models. Far out
    both forecasts are weak and their errors partly independent, so their mean beats
    either more often than a weight fitted on one week (the combination puzzle):
    anchored at the even blend, 18 CLI-default models' week-ahead MAE was at or below
    the first-gate anchor's on 17, mean ratio to seasonal naive 0.814 against 0.827,
    worst 0.883 against 0.912 (``forecast-far-gate-half*.md``). ``model`` unchanged;
    None when no series is long enough."""
    cells = far_cells(model, panel, tails, seed)
    if cells is None:
        return None
    med, base, y, var, group, run = cells
    use = np.isfinite(y) & np.isfinite(base)
    if not use.any():
        return None
    k = len(model.variables)
    anchor = far_anchor(model)
    fit = fit_gate(
        med[use],
        base[use],
        y[use],
        var[use],
        k,
        evidence=FORECAST_GATE_EVIDENCE,
        groups=group[use],
        anchor=anchor,
    )
    return {
        **fit.to_dict(),
        "kept": list(fit.gate),
        "anchor": anchor,
        "horizon": int(run.samples.shape[-1]),
        "leads_from": chunk_length(model) + 1,
        "forecasts": len(run.where),
        "units": int(np.unique(group[use]).size),
        "seconds": round(run.seconds, 2),
    }


def far_cells(
    model: Predictor, panel: Panel, tails: Sequence[int], seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, OriginDraws] | None:
    """The far gate's evidence (:func:`fit_far_gate`): the long validation forecasts'
    median, seasonal naive, truth, variable and unit (forecast × chunk) of every far
    cell, each (m,) normalised, and the forecasts drawn; None when no series is long
    enough."""
    plan = _far_plan(model, panel, tails)
    if plan is None:
        return None
    part, horizon = plan
    h = chunk_length(model)
    opts = {"n_samples": FAR_SAMPLES, "steps": None, "sampler": None, "eta": None, "seed": seed}
    run = draw_origins(model, part, horizon, horizon, 1, opts, 1.0)
    w, _, k, _ = run.samples.shape
    far = slice(h, horizon)  # the leads continued window by window
    med = np.median(model.normalizer.transform(run.samples), axis=1)[..., far]  # (W, K, H − h)
    y = model.normalizer.transform(run.truth)[..., far]
    base = np.stack(origin_bases(model, part, run))[..., far]
    shape = med.shape
    var = np.broadcast_to(np.arange(k)[None, :, None], shape).reshape(-1)
    chunk = (np.arange(h, horizon) - h) // h  # (H − h,) the continuation chunk of each lead
    group = np.broadcast_to(np.arange(w)[:, None, None] * (FAR_CHUNKS + 1) + chunk, shape)
    flat = (a.reshape(-1) for a in (med, base, y))
    return (*flat, var, group.reshape(-1), run)


def _far_plan(model: Predictor, panel: Panel, tails: Sequence[int]) -> tuple[Panel, int] | None:
    """The series the far gate draws a long forecast from (those whose held-out tail
    spans two chunks, at most ``FAR_SERIES``) and its horizon; None when none is."""
    h = chunk_length(model)
    keep = [(s, t) for s, t in zip(panel.series, tails, strict=True) if t >= 2 * h][:FAR_SERIES]
    if not keep:
        return None
    horizon = min(min(t for _, t in keep), (FAR_CHUNKS + 1) * h)
    return dataclasses.replace(panel, series=[s for s, _ in keep]), horizon


def far_gate_draws(model: Predictor, panel: Panel, tails: Sequence[int]) -> int:
    """Window samples :func:`fit_far_gate` draws (one window per chunk of each long
    forecast): what a fit's budget keeps time for."""
    plan = _far_plan(model, panel, tails)
    if plan is None:
        return 0
    part, horizon = plan
    return len(part.series) * math.ceil(horizon / chunk_length(model)) * FAR_SAMPLES
