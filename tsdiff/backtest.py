"""Rolling-origin backtests: forecast from many cut-offs at once and score against the truth.

At each origin the model is given only the grid steps up to and including that
origin (its cut-off) and forecasts the ``horizon`` steps after it. Origins sit every
``step`` steps over the end of each series, the last one ``horizon`` steps before the
end, so every forecast has its truth in the data. All (series, origin) pairs become
the series of one panel and are sampled in a single batched sampler call: 60 daily
origins of a 36-station panel are 60 windows, not 60 calls.

The forecast table (long: one row per series, origin, timestamp and variable) keeps
the truth beside the median, mean, central intervals and the 19 quantiles
0.05..0.95, so every per-cell metric of the summary can be recomputed from the table
alone (:func:`score_frame`). CRPS-sum needs the joint samples; it is computed from
them and the samples can be written out (``return_samples``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tsdiff import metrics
from tsdiff.calibration import (
    cell_support,
    fit_interval_scale,
    fit_spread,
    rescale,
)
from tsdiff.data import Panel
from tsdiff.errors import DataError, RangeError
from tsdiff.forecast_gate import gate_forecasts
from tsdiff.forecasting import (
    chunk_length,
    first_chunk,
    gate_paths,
    lead_gate,
    scale_paths,
)
from tsdiff.inference import model_intervals
from tsdiff.origins import OriginDraws, cutoffs, draw_origins, origin_pasts
from tsdiff.predictor import Predictor
from tsdiff.rolling_calibration import Forecasts, Refit, refit_summary, rolling_refits

Intervals = dict[int, tuple[np.ndarray, np.ndarray]]  # level → (lo, hi), each (W, K, H)

ORIGIN_COL = "origin"
STEP_COL = "step"
TRUTH_COL = "truth"


def quantile_columns() -> list[str]:
    """Names of the 19 quantile columns, ``q05`` .. ``q95``."""
    return [f"q{int(round(q * 100)):02d}" for q in metrics.quantile_levels()]


@dataclass
class BacktestResult:
    """``forecasts``: the long table; ``summary``: JSON-ready metrics and settings.

    ``windows``: (series key, cut-off position, cut-off time) per forecast, the order of
    the table. When asked for, ``samples`` (W, n, K, H) in original units,
    ``samples_frame``, the same as a long table, and their ``truth`` (W, K, H).
    """

    forecasts: pd.DataFrame
    summary: dict[str, Any]
    windows: list[tuple[Any, int, Any]]
    samples: np.ndarray | None = None
    samples_frame: pd.DataFrame | None = None
    truth: np.ndarray | None = None  # (W, K, H) beside the samples, NaN where not observed
    # a recalibrated backtest beyond one window: the same draws calibrated once, before
    # the first origin (what ``backtest`` without ``recalibrate`` returns)
    once: BacktestResult | None = None


def backtest(
    model: Predictor,
    df: pd.DataFrame,
    *,
    horizon: int,
    step: int,
    windows: int,
    levels: Sequence[int] = (50, 90),
    n_samples: int | None = None,
    steps: int | None = None,
    sampler: str | None = None,
    eta: float | None = None,
    seed: int = 0,
    return_samples: bool = False,
    calibrate_windows: int = 0,
    spread: float | None = None,
    static_df: pd.DataFrame | None = None,
    gate: bool = True,
    recalibrate: int = 0,
) -> BacktestResult:
    """Forecast ``horizon`` steps from ``windows`` origins every ``step`` steps per series.

    Each forecast conditions on the ``window - horizon`` grid steps up to its origin,
    on the ``history_steps`` before them that a model with lags reads (fewer at the
    start of a series: the rest is padded as missing) and on the calendar of its
    horizon, which is known in advance. Variables are forecast jointly,
    so the samples carry the cross-variable structure that CRPS-sum scores.

    ``calibrate_windows`` > 0 first fits the forecast spread (see
    :func:`calibrate_forecast`) on that many earlier origins, ``step`` apart, whose
    horizons all end at or before each series' first test origin: the fit sees only what
    the first forecast may see. The factor is used for this backtest and reported in
    the summary; ``model`` is not changed. Else ``spread`` (default the model's
    forecast spread) scales the samples. A model with covariates reads them from
    ``df`` (known-future ones for each horizon too) and ``static_df``
    (:mod:`tsdiff.covariates`). The forecasts are recentred by the forecast gate (the
    model's, or the one the calibration fits: weights of the model's median against
    seasonal naive); ``gate=False`` scores the model alone, e.g. to see what the gate did.

    ``recalibrate`` > 0 (with ``calibrate_windows``) refits the spread and interval
    factors at every origin on the ``recalibrate`` latest forecasts whose truths had
    arrived by then (:mod:`tsdiff.rolling_calibration`): a forecaster recalibrated as it
    goes, e.g. by a daily ``tsdiff calibrate-forecast``. The gate stays as fitted first.
    Beyond one window, whose paths are scaled after sampling either way, the result's
    ``once`` is the same draws calibrated once before the first origin: both rows of a
    comparison for the price of one draw.
    """
    model.require_fitted()
    horizon = model.check_horizon(horizon)
    levels = sorted({int(v) for v in levels})
    if not levels or not all(1 <= v <= 99 for v in levels):
        raise RangeError(f"levels must be integers in 1..99, got {levels}")
    if isinstance(calibrate_windows, bool) or calibrate_windows < 0:
        raise RangeError(f"calibrate_windows must be an integer >= 0, got {calibrate_windows!r}")
    if isinstance(recalibrate, bool) or recalibrate < 0:
        raise RangeError(f"recalibrate must be an integer >= 0, got {recalibrate!r}")
    if recalibrate and not calibrate_windows:
        raise RangeError("recalibrate needs calibrate_windows >= 1: the forecasts it starts from")
    panel = model.panel(df, static_df=static_df)
    opts = {"n_samples": n_samples, "steps": steps, "sampler": sampler, "eta": eta, "seed": seed}
    calibration, cells = None, None
    if calibrate_windows:
        cal_panel = before_first_origin(panel, horizon, step, windows)
        cells = calibration_cells(model, cal_panel, horizon, step, int(calibrate_windows), opts)
        calibration = fit_on_cells(model, cells)
        spread = calibration["spread"]
        scale = (calibration.get("intervals") or {}).get("scale")
        # fitted at this horizon: one α per variable for all its leads
        alphas = (calibration.get("gate") or {}).get("kept")
        near, far = alphas, None
    else:  # the model's interval factors belong to its own forecast spread
        scale = model.forecast_interval_scale if spread is None else None
        alphas = lead_gate(model, horizon)  # (K, H) or None
        near = model.forecast_gate
        far = model.forecast_gate_far if horizon > chunk_length(model) else None
    alphas = alphas if gate else None

    def once_calibrated(run: OriginDraws) -> Intervals:
        smp = run.samples.transpose(1, 0, 2, 3)  # (n, W, K, H)
        return model_intervals(model, smp, levels, scale)  # {level: (lo, hi)}, each (W, K, H)

    settings = {"horizon": horizon, "step": step, "windows": windows, "levels": levels}
    settings.update(steps=steps, seed=seed, recalibrate=int(recalibrate))

    def result(run: OriginDraws, bounds: Intervals, refits: list[Refit] | None) -> BacktestResult:
        return _result(
            model,
            panel,
            run,
            bounds,
            refits,
            settings=settings,
            gates=(alphas, near, far),
            calibration=calibration,
            return_samples=return_samples,
        )

    if not recalibrate:
        run = draw_origins(model, panel, horizon, step, windows, opts, spread, alphas)
        return result(run, once_calibrated(run), None)
    assert cells is not None
    raw = draw_origins(model, panel, horizon, step, windows, opts, 1.0)  # (W, n, K, H)
    once = None
    if horizon > model.window - 1:  # drawn unscaled and scaled after, as draw_forecasts does
        drawn = _post_hoc(model, panel, raw, spread, alphas)
        once = result(drawn, once_calibrated(drawn), None)
    run = _post_hoc(model, panel, raw, 1.0, alphas)
    refits = _refit_as_truths_arrive(model, cells, run, horizon, int(recalibrate))
    rolled = result(run, _refit_intervals(model, run, refits, levels), refits)
    return dataclasses.replace(rolled, once=once)


def _post_hoc(
    model: Predictor,
    panel: Panel,
    raw: OriginDraws,
    spread: float,
    gate: np.ndarray | Sequence[float] | None,
) -> OriginDraws:
    """Forecasts drawn unscaled and ungated (``raw``) as :func:`draw_forecasts` finishes
    a horizon beyond one window: scaled by ``spread``, then recentred by ``gate``."""
    past, cuts = origin_pasts(panel, raw)
    paths = [scale_paths(model, p, spread) for p in raw.samples]  # each (n, K, H)
    if gate is not None:
        paths = gate_paths(model, paths, past, cuts, gate)
    return dataclasses.replace(raw, samples=np.stack(paths), spread=float(spread))


def _result(
    model: Predictor,
    panel: Panel,
    run: OriginDraws,
    bounds: Intervals,
    refits: list[Refit] | None,
    *,
    settings: dict[str, Any],
    gates: tuple[Any, Any, Any],
    calibration: dict[str, Any] | None,
    return_samples: bool,
) -> BacktestResult:
    """The table and summary of the forecasts ``run`` with their intervals ``bounds``
    (``settings``: the backtest's arguments; ``gates``: the α applied, near and far)."""
    horizon, steps = settings["horizon"], settings["steps"]
    alphas, near, far = gates
    frame = forecast_table(panel, run.where, run.index, run.samples, run.truth, bounds)
    summary = summarize_samples(run.samples, run.truth, panel.variables, bounds)
    if np.isfinite(run.truth).any():  # how far the coverages can be trusted, over origins
        summary["overall"].update(coverage_se(frame, list(bounds), horizon, settings["step"]))
    summary = {
        "horizon": int(horizon),
        "step": int(settings["step"]),
        "windows": int(settings["windows"]),
        # steps read before each forecast (its first window's)
        "context": model.history_steps + model.window - first_chunk(model, horizon),
        "lags": list(model.config.network.lags),
        "n_series": len(panel.series),
        "n_forecasts": len(run.where),
        "first_origin": str(min(w[2] for w in run.where)),
        "last_origin": str(max(w[2] for w in run.where)),
        "n_samples": int(run.samples.shape[1]),
        "steps": int(steps if steps is not None else model.config.sample.steps),
        "seed": int(settings["seed"]),
        "levels": settings["levels"],
        "spread": None if refits is not None else run.spread,  # per origin: "recalibration"
        # α per variable over the first chunk's leads, and beyond it; None: the model alone
        "gate": None if alphas is None or near is None else [float(a) for a in near],
        "gate_far": None if alphas is None or far is None else [float(a) for a in far],
        "calibration": calibration,
        "recalibration": None if refits is None else refit_summary(refits, settings["recalibrate"]),
        "sample_seconds": round(run.seconds, 3),
        **summary,
    }
    if not return_samples:
        return BacktestResult(frame, summary, run.where)
    return BacktestResult(
        frame,
        summary,
        run.where,
        run.samples,
        _samples_table(panel, run.where, run.index, run.samples),
        run.truth,
    )


def calibrate_forecast(
    model: Predictor,
    df: pd.DataFrame,
    *,
    horizon: int,
    step: int,
    windows: int,
    n_samples: int | None = None,
    steps: int | None = None,
    seed: int = 0,
    static_df: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Fit ``model.forecast_spread`` on the last ``windows`` forecast origins of ``df``.

    ``df`` should be data the model was not trained on (its validation tail, or the
    weeks before the forecasts that matter): forecasts from each origin are sampled
    uncalibrated and the factor minimising CRPS on their truths is kept (see
    :mod:`tsdiff.calibration`), with (``train.calibrate_intervals``) the factors that
    make the forecast intervals cover what they claim there. Saved with the model;
    ``forecast`` and backtests use them. The gate fitted here weighs every lead of
    ``horizon``: a horizon beyond the first chunk replaces the far gate too.
    """
    model.require_fitted()
    horizon = model.check_horizon(horizon)
    opts = {"n_samples": n_samples, "steps": steps, "sampler": None, "eta": None, "seed": seed}
    panel = model.panel(df, static_df=static_df)
    info = fit_forecast_spread(model, panel, horizon, step, windows, opts)
    model.forecast_spread = info["spread"]
    model.forecast_interval_scale = (info.get("intervals") or {}).get("scale")
    model.forecast_gate = (info.get("gate") or {}).get("kept")
    if horizon > chunk_length(model):
        model.forecast_gate_far = None
    return info


def fit_forecast_spread(
    model: Predictor,
    panel: Panel,
    horizon: int,
    step: int,
    windows: int,
    opts: dict[str, Any],
    *,
    spread: bool = True,
    until: float | None = None,
) -> dict[str, Any]:
    """The forecast spread factor minimising CRPS on ``windows`` origins per series of
    ``panel`` (sampled uncalibrated), with where it was fitted; ``model`` unchanged.
    ``until`` (a ``time.perf_counter()`` value): series are drawn a batch at a time and
    the fit uses those drawn by then (at least ``MIN_FORECASTS`` forecasts); every
    forecast draws its own noise, so the batching changes no draw.

    With ``model.config.train.calibrate_intervals`` also the interval factors of the
    forecasts with that spread. ``spread=False`` fits only those, for forecasts drawn
    as the model draws them now (its forecast spread kept): intervals that cover what
    they claim, samples and CRPS unchanged.
    """
    cells = calibration_cells(
        model, panel, horizon, step, windows, opts, spread=1.0 if spread else None, until=until
    )
    return fit_on_cells(model, cells, spread=spread)


def fit_on_cells(
    model: Predictor, cells: CalibrationCells, *, spread: bool = True
) -> dict[str, Any]:
    """:func:`fit_forecast_spread` on forecasts already drawn (``spread``: whether
    ``cells`` were drawn uncalibrated and a spread is to be fitted)."""
    smp, y, run = cells.samples, cells.truth, cells.run
    info = fit_spread(smp, y).to_dict() if spread else {"spread": run.spread, "kept": True}
    if cells.gate is not None:
        info["gate"] = cells.gate
    if model.config.train.calibrate_intervals:  # of the forecasts with that spread
        factor = info["spread"] if spread else 1.0  # drawn with it already when kept
        scaled = rescale(smp, factor)
        w, _, k, h = run.samples.shape
        var = np.broadcast_to(np.arange(k)[:, None], (w, k, h)).reshape(-1)  # cells (W, K, H)
        support = cell_support(model.support(), var)  # served forecasts are clipped to it
        info["intervals"] = fit_interval_scale(scaled, y, support=support).to_dict()
    info.update(
        windows=len(run.where),
        first_origin=str(min(x[2] for x in run.where)),
        last_origin=str(max(x[2] for x in run.where)),
    )
    return info


def before_first_origin(panel: Panel, horizon: int, step: int, windows: int) -> Panel:
    """Each series of ``panel`` up to its first of ``windows`` origins ``step`` apart
    (:func:`cutoffs`): what a calibration before a backtest may see, so its last
    horizon ends where the first test forecast begins."""
    before = []
    for s in panel.series:
        c0 = int(cutoffs(len(s.index), horizon, step, windows)[0])
        before.append(s.part(0, c0 + 1))
    return dataclasses.replace(panel, series=before)


@dataclass
class CalibrationCells:
    """Validation forecasts as the forecast calibration scores them, in the model's
    normalised units (CRPS divides by sum |y| over all cells, so a variable in large
    units would otherwise decide a factor alone): ``samples`` (n, m) recentred by the
    forecast gate fitted on them (``gate``, None without one), ``truth`` (m,) NaN where
    not observed, each cell's ``lead`` (m,, 0-based), and the draws themselves."""

    samples: np.ndarray
    truth: np.ndarray
    lead: np.ndarray
    gate: dict[str, Any] | None
    run: OriginDraws


def calibration_cells(
    model: Predictor,
    panel: Panel,
    horizon: int,
    step: int,
    windows: int,
    opts: dict[str, Any],
    *,
    spread: float | None = 1.0,
    until: float | None = None,
) -> CalibrationCells:
    """Draw forecasts from ``windows`` origins per series of ``panel`` (``spread``:
    1.0 uncalibrated, None the model's own) and gate them against seasonal naive when
    ``train.forecast_gate`` (first: spreads are fitted about the gated median); see
    :func:`fit_forecast_spread` for ``until``."""
    run = draw_origins(model, panel, horizon, step, windows, opts, spread, until=until)
    w, n, k, h = run.samples.shape
    assert model.scaler is not None
    smp = model.normalizer.transform(run.samples).transpose(1, 0, 2, 3).reshape(n, -1)  # (n, W·K·H)
    y = model.normalizer.transform(run.truth).reshape(-1)  # (W·K·H,)
    lead = np.broadcast_to(np.arange(h)[None, None, :], (w, k, h)).reshape(-1)
    gate = None
    if model.config.train.forecast_gate:
        smp, gate = gate_forecasts(model, panel, run, smp, y)
    return CalibrationCells(smp, y, lead, gate, run)


def _refit_as_truths_arrive(
    model: Predictor, cells: CalibrationCells, run: OriginDraws, horizon: int, recent: int
) -> list[Refit]:
    """Per forecast of ``run`` (drawn with spread 1), its factors fitted on the latest
    ``recent`` matured forecasts, and ``run.samples`` scaled by its spread in place."""
    w, n, k, h = run.samples.shape
    wc = len(cells.run.where)
    norm = model.normalizer
    validation = Forecasts(
        cells.samples.reshape(n, wc, k, h).transpose(1, 0, 2, 3),  # (Wc, n, K, H)
        cells.truth.reshape(wc, k, h),
        cells.run.where,
    )
    own = Forecasts(norm.transform(run.samples), norm.transform(run.truth), run.where)
    intervals = bool(model.config.train.calibrate_intervals)
    refits = rolling_refits(
        validation, own, horizon, recent, intervals=intervals, support=model.support()
    )
    for i, r in enumerate(refits):
        run.samples[i] = scale_paths(model, run.samples[i], r.spread)  # (n, K, H)
    return refits


def _refit_intervals(
    model: Predictor, run: OriginDraws, refits: Sequence[Refit], levels: Sequence[int]
) -> Intervals:
    """Each forecast's central intervals with its own interval factors."""
    per = [
        model_intervals(model, run.samples[i], levels, r.intervals) for i, r in enumerate(refits)
    ]
    return {
        lv: (np.stack([b[lv][0] for b in per]), np.stack([b[lv][1] for b in per])) for lv in levels
    }


def forecast_table(
    panel: Panel,
    where: Sequence[tuple[Any, int, Any]],
    index: Sequence[pd.Index],
    samples: np.ndarray,
    truth: np.ndarray,
    bounds: Intervals,
) -> pd.DataFrame:
    """Long table: series, origin, timestamp, step, variable, truth and the forecast.

    samples (W, n, K, H), truth (W, K, H), ``bounds`` {level: (lo, hi)} each (W, K, H)
    (see :func:`~tsdiff.inference.model_intervals`). Forecast columns: ``median``,
    ``mean``, ``lo_<l>`` / ``hi_<l>`` per level, and the 19 quantiles ``q05`` .. ``q95``.
    """
    w, _, k, h = samples.shape
    cols = panel.columns
    qs = np.quantile(samples, metrics.quantile_levels(), axis=1)  # (19, W, K, H)

    def cells(a: np.ndarray) -> np.ndarray:  # (W, K, H) → rows ordered (W, H, K)
        return np.ascontiguousarray(a.transpose(0, 2, 1)).ravel()

    out: dict[str, Any] = {}
    if panel.has_id:
        out[cols.id_col] = np.repeat(np.asarray([x[0] for x in where], dtype=object), h * k)
    origins = pd.Index([x[2] for x in where])
    out[ORIGIN_COL] = origins.repeat(h * k)
    out[cols.time_col] = _concat(index).repeat(k)
    out[STEP_COL] = np.tile(np.repeat(np.arange(1, h + 1), k), w)
    out[cols.var_col] = np.tile(np.asarray(panel.variables, dtype=object), w * h)
    out[TRUTH_COL] = cells(truth)
    out["median"] = cells(np.median(samples, axis=1))
    out["mean"] = cells(samples.mean(axis=1))
    for lv, (lo, hi) in bounds.items():
        out[f"lo_{lv}"] = cells(lo)
        out[f"hi_{lv}"] = cells(hi)
    for name, q in zip(quantile_columns(), qs, strict=True):
        out[name] = cells(q)
    frame = pd.DataFrame(out)
    if panel.has_id and panel.id_dtype is not None:
        try:
            frame[cols.id_col] = frame[cols.id_col].astype(panel.id_dtype)
        except (TypeError, ValueError):
            pass
    return frame


def _point_metrics(
    med: np.ndarray, q: np.ndarray, y: np.ndarray, bounds: dict[int, tuple[np.ndarray, np.ndarray]]
) -> dict[str, float]:
    """Metrics of selected cells: median (m,), quantiles (19, m), truth (m,), bounds (m,)."""
    out: dict[str, float] = {
        "mae": float(np.mean(np.abs(med - y))) if y.size else float("nan"),
        "rmse": float(np.sqrt(np.mean((med - y) ** 2))) if y.size else float("nan"),
        "crps": metrics.crps_from_quantiles(q, y, np.ones(y.shape, bool)),
    }
    for lv, (lo, hi) in bounds.items():
        out[f"cov{lv}"] = float(np.mean((y >= lo) & (y <= hi))) if y.size else float("nan")
        out[f"width{lv}"] = float(np.mean(hi - lo)) if y.size else float("nan")
    out["n_cells"] = int(y.size)
    return out


def summarize_samples(
    samples: np.ndarray, truth: np.ndarray, variables: Sequence[str], bounds: Intervals
) -> dict[str, Any]:
    """Overall and per-variable metrics of samples (W, n, K, H) on observed truths (W, K, H),
    with the intervals ``bounds`` {level: (lo, hi)} each (W, K, H).

    Overall adds ``crps_sum``: the quantile CRPS of the sum over variables (the cells of
    each window and step with an observed truth), from the joint samples.
    """
    mask = ~np.isnan(truth)  # (W, K, H)
    y = np.nan_to_num(truth)
    smp = samples.transpose(1, 0, 2, 3)  # (n, W, K, H)

    def score(sel: np.ndarray) -> dict[str, float]:
        s_m = smp[:, sel]  # (n, m)
        b = {lv: (lo[sel], hi[sel]) for lv, (lo, hi) in bounds.items()}
        q = np.quantile(s_m, metrics.quantile_levels(), axis=0)  # (19, m)
        return _point_metrics(np.median(s_m, axis=0), q, y[sel], b)

    overall = score(mask)
    overall["crps_sum"] = metrics.crps_sum(smp, y, mask, var_axis=-2)
    per_var = {}
    for j, name in enumerate(variables):
        sel = np.zeros_like(mask)
        sel[:, j] = mask[:, j]
        per_var[str(name)] = score(sel)
    return {
        "overall": _rounded(overall),
        "per_variable": {k: _rounded(v) for k, v in per_var.items()},
    }


def score_frame(
    frame: pd.DataFrame, levels: Sequence[int] = (50, 90), var_col: str = "variable"
) -> dict[str, Any]:
    """Overall and per-variable metrics from a forecast table alone (rows with a truth).

    Works for any forecaster that fills ``median``, ``lo_<l>`` / ``hi_<l>`` and the 19
    quantile columns: it is how baselines without samples are scored, and how a saved
    backtest is re-scored. CRPS-sum is not included (it needs joint samples).
    """
    qcols = quantile_columns()
    missing = [
        c
        for c in [
            TRUTH_COL,
            "median",
            *qcols,
            *(f"{s}_{lv}" for lv in levels for s in ("lo", "hi")),
        ]
        if c not in frame.columns
    ]
    if missing:
        raise DataError(f"forecast table lacks columns {missing}")
    f = frame[frame[TRUTH_COL].notna()]

    def score(part: pd.DataFrame) -> dict[str, float]:
        bounds = {
            lv: (part[f"lo_{lv}"].to_numpy(float), part[f"hi_{lv}"].to_numpy(float))
            for lv in levels
        }
        q = part[qcols].to_numpy(float).T  # (19, m)
        return _point_metrics(
            part["median"].to_numpy(float), q, part[TRUTH_COL].to_numpy(float), bounds
        )

    per_var = {str(v): _rounded(score(part)) for v, part in f.groupby(var_col, sort=False)}
    return {"overall": _rounded(score(f)), "per_variable": per_var}


def coverage_se(
    frame: pd.DataFrame,
    levels: Sequence[int],
    horizon: int,
    step: int,
    *,
    draws: int = 2000,
    seed: int = 0,
) -> dict[str, float]:
    """Standard error of each level's coverage (``cov<l>_se``) over the origins of a
    forecast table (rows with a truth), by a moving-block bootstrap of origins.

    Cells of one forecast share its origin's weather, and forecasts whose horizons
    overlap (``horizon`` > ``step``) share truths, so the cells are far from independent:
    30 daily origins of week-ahead forecasts hold about 5 independent weeks. Blocks of
    ⌈horizon / step⌉ consecutive origins keep that dependence; each resample pools the
    cells of its origins as the coverage itself does.
    """
    f = frame[frame[TRUTH_COL].notna()]
    if f.empty:
        raise DataError("no forecast cell with a truth to bootstrap")
    if draws < 1:
        raise RangeError(f"draws must be >= 1, got {draws}")
    origin, _ = pd.factorize(f[ORIGIN_COL], sort=True)  # (m,) each cell's origin, in order
    n = np.bincount(origin).astype(float)  # (W,) cells per origin
    w = len(n)
    block = min(w, max(1, math.ceil(horizon / step)))
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, w - block + 1, size=(draws, math.ceil(w / block)))  # (D, B)
    idx = (starts[:, :, None] + np.arange(block)).reshape(draws, -1)[:, :w]  # (D, W)
    y = f[TRUTH_COL].to_numpy(float)
    out = {}
    for lv in levels:
        inside = (f[f"lo_{lv}"].to_numpy(float) <= y) & (y <= f[f"hi_{lv}"].to_numpy(float))
        k = np.bincount(origin, weights=inside, minlength=w)  # (W,) covered cells per origin
        cov = k[idx].sum(axis=1) / n[idx].sum(axis=1)  # (D,)
        out[f"cov{lv}_se"] = round(float(cov.std(ddof=1)) if draws > 1 else 0.0, 4)
    return out


def _rounded(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in d.items()}


def _samples_table(
    panel: Panel,
    where: Sequence[tuple[Any, int, Any]],
    index: Sequence[pd.Index],
    samples: np.ndarray,
) -> pd.DataFrame:
    """Long table of samples (W, n, K, H): series, origin, timestamp, variable, sample, value."""
    w, n, k, h = samples.shape
    cols = panel.columns
    out: dict[str, Any] = {}
    if panel.has_id:
        out[cols.id_col] = np.repeat(np.asarray([x[0] for x in where], object), n * h * k)
    out[ORIGIN_COL] = pd.Index([x[2] for x in where]).repeat(n * h * k)
    times = _concat(index)  # (W·H,)
    out[cols.time_col] = times.to_numpy().reshape(w, 1, h).repeat(n, axis=1).ravel().repeat(k)
    out["sample"] = np.tile(np.repeat(np.arange(n), h * k), w)
    out[cols.var_col] = np.tile(np.asarray(panel.variables, object), w * n * h)
    out[cols.value_col] = np.ascontiguousarray(samples.transpose(0, 1, 3, 2)).ravel()
    return pd.DataFrame(out)


def _concat(index: Sequence[pd.Index]) -> pd.Index:
    return index[0].append(list(index[1:])) if len(index) > 1 else index[0]
