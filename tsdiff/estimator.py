"""Fitting: the training windows, the training run and the calibration that follows.

:class:`Estimator` turns a frame into a fitted :class:`~tsdiff.predictor.Predictor`:
it puts the data on a grid, splits off validation series, infers the variables'
bounds and kinds, fits the scaler, trains the learned prior and the denoiser
(:mod:`tsdiff.prior_training`, :mod:`tsdiff.training`) and calibrates the samples'
spread and the gate on the validation series (:func:`calibrate_imputation`).
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from tsdiff.backtest import fit_forecast_spread
from tsdiff.calibration import (
    GATE_EVIDENCE,
    cell_support,
    choose_base,
    fit_gate,
    fit_interval_scale,
    fit_spread,
    fit_variable_spread,
    rescale,
)
from tsdiff.config import TSDiffConfig
from tsdiff.covariates import Covariates, from_config, grid_with_covariates
from tsdiff.data import Panel, Scaler, Series, window_starts
from tsdiff.device import resolve_device
from tsdiff.errors import DataError, InsufficientHistoryError, RangeError
from tsdiff.forecast_gate import far_gate_draws, fit_far_gate
from tsdiff.forecasting import chunk_length
from tsdiff.gap_gate import fit_gap_gate, gap_distance
from tsdiff.inference import prior_series, quantile_series, sample_series, series_interpolation
from tsdiff.masks import hold_out, hold_out_pattern
from tsdiff.network import N_CALENDAR, Denoiser
from tsdiff.origins import FORECAST_BATCH
from tsdiff.predictor import Predictor
from tsdiff.prior_training import train_prior, train_quantile_prior
from tsdiff.quantile_blend import blend_quantiles, fit_blend
from tsdiff.sampling import WindowBatch, sample_windows
from tsdiff.seasonality import default_lags, infer_season
from tsdiff.spec import VariableSpec, infer_spec, outside, rule
from tsdiff.training import (
    EpochCallback,
    TrainResult,
    Windows,
    forecast_weight,
    train,
    value_bounds,
)
from tsdiff.transforms import Normalizer, uses_transforms
from tsdiff.windowing import series_windows


class Estimator:
    """Fits a predictor with ``config`` (the GluonTS estimator role)."""

    def __init__(self, config: TSDiffConfig) -> None:
        self.config = config

    def fit(
        self,
        df: pd.DataFrame,
        *,
        into: Predictor | None = None,
        valid_df: pd.DataFrame | None = None,
        freq: str | float | None = None,
        checkpoint: str | Path | None = None,
        resume: bool = False,
        progress: bool = True,
        callbacks: Sequence[EpochCallback] = (),
        device: str | torch.device | None = "auto",
        static_df: pd.DataFrame | None = None,
    ) -> Predictor:
        """Learn to denoise masked windows of ``df``; fills ``into`` (a new predictor when
        None) and returns it. See ``TSDiff.fit`` for the options."""
        target = resolve_device(device)  # a device this machine lacks fails before any work
        cfg = self.config
        start = time.perf_counter()  # the budget (train.max_minutes) covers the whole fit
        model = into if into is not None else Predictor(cfg)
        model.config = cfg
        covariates = from_config(cfg.data.future_covariates, cfg.data.static_covariates)
        panel = grid_with_covariates(
            df,
            covariates,
            columns=model.columns,
            freq=freq or cfg.data.freq,
            agg=cfg.data.agg,
            static_df=static_df,
        )
        cfg = self.config = resolve_defaults(cfg, panel)  # what the config left to the data
        model.config = cfg
        model.variables = list(panel.variables)
        model.freq = panel.freq
        check_history(panel.series, cfg.data.window)  # before any work on too little data
        train_series, val_series = self._split(model, panel.series, valid_df, static_df, covariates)
        model.covariates = covariates.fit(train_series) if covariates else None
        model.spec, spec_info = fit_spec(model, [s.values for s in train_series])
        model.scaler = Scaler.fit([s.values for s in train_series])
        specs = [model.spec[v] for v in model.variables]
        model.transformed_scaler = (
            Normalizer.fit(specs, [s.values for s in train_series]).scaler
            if uses_transforms(specs)
            else None
        )
        train_set = self._windows(model, train_series)
        if len(train_set) == 0:
            raise DataError("no training window has an observed value")
        if len(train_set) < FEW_WINDOWS:
            warnings.warn(
                f"only {len(train_set)} training windows of {cfg.data.window} steps: the model "
                "will learn little; give more history or a smaller window",
                stacklevel=3,
            )
        val_set = self._windows(model, val_series) if val_series else None
        lo, hi = value_bounds(train_set)
        model.value_range = (lo.tolist(), hi.tolist())

        with torch.random.fork_rng():
            torch.manual_seed(cfg.train.seed)
            model.net = Denoiser(cfg.network, len(model.variables), cfg.diffusion.prediction)
        model.net.to(target)  # initialised on the CPU: the same weights on any device
        forecasts = None  # the validation forecasts' series and held-out tails
        if cfg.train.calibrate and val_series and _calibrates_forecasts(cfg):
            forecasts = _forecast_validation(panel, train_series, val_series)
        train_cfg, prior, quantiles, reserve = cfg.train, None, None, None
        took_prior = 0.0
        budget = cfg.train.max_minutes
        if budget:  # kept for the calibration after training (bounded by what is left)
            reserve = calibration_reserve(model, val_series, val_set, forecasts)
            spent = (time.perf_counter() - start) / 60  # reading the data, the windows
            budget = max(budget - reserve.seconds / 60 - spent, 0.01)  # at least a step
            train_cfg = dataclasses.replace(cfg.train, max_minutes=budget)
        t0 = time.perf_counter()
        if model.net.prior_net is not None:
            prior = train_prior(
                model.net,
                train_set,
                val_set,
                cfg.train,
                minutes=budget * cfg.train.prior_fraction if budget else None,
                checkpoint=f"{checkpoint}.prior" if checkpoint else None,
                resume=resume,
                progress=progress,
            )
            took_prior = prior.seconds
            if model.net.quantile_net is not None:
                quantiles = train_quantile_prior(
                    model.net,
                    train_set,
                    val_set,
                    cfg.train,
                    minutes=budget * cfg.train.quantile_fraction if budget else None,
                    checkpoint=f"{checkpoint}.quantiles" if checkpoint else None,
                    resume=resume,
                    progress=progress,
                )
                took_prior += quantiles.seconds
            if budget:  # the denoiser gets what the priors left of the budget: their wall
                # time (their records leave out their last evaluations), or when resumed
                # (the priors loaded, not trained) the seconds they took in the run before
                took = max(took_prior, time.perf_counter() - t0)
                left = max(budget - took / 60, 0.05 * budget)
                train_cfg = dataclasses.replace(cfg.train, max_minutes=left)
        with torch.random.fork_rng():  # the network's dropout draws from the global generator
            torch.manual_seed(cfg.train.seed)
            best, result = train(
                model.net,
                model.scheduler,
                train_set,
                val_set,
                train_cfg,
                checkpoint=checkpoint,
                resume=resume,
                progress=progress,
                callbacks=callbacks,
                clip=model.clip_bounds(),
            )
        model.net.load_state_dict(best)
        model.net.eval()
        model.epoch_log = result.epoch_log
        secs = time.perf_counter() - t0
        # a resumed run counts the training time of the runs before it too
        secs = max(secs, result.seconds + (took_prior if prior is not None else 0.0))
        model.info = _fit_info(panel, train_set, val_set, result, secs)
        model.info["spec"] = spec_info
        if prior is not None:
            model.info["prior"] = prior.to_dict()
        if quantiles is not None:
            model.info["quantile_prior"] = quantiles.to_dict()
        if reserve is not None:
            model.info["calibration_reserve"] = reserve.to_dict()
        model.clear_imputation_calibration()
        model.spread, model.forecast_spread = 1.0, None
        model.forecast_gate = model.forecast_gate_far = model.forecast_interval_scale = None
        if cfg.train.calibrate and val_series:
            val_panel = dataclasses.replace(panel, series=val_series)
            deadline = start + cfg.train.max_minutes * 60 if cfg.train.max_minutes else None
            impute_until = deadline  # the forecasts' fewest draws come after: time for them
            if deadline is not None and reserve is not None:
                impute_until = deadline - reserve.forecast_seconds
            model.info["calibration"] = calibrate_imputation(
                model,
                val_panel,
                seed=cfg.train.seed,
                deadline=impute_until,
                patterns=holdout_patterns(cfg, train_series),
            )
            # forecasts' own intervals: without them an undertrained model's forecasts
            # kept the imputation spread's intervals, which covered nothing (PM2.5, CLI
            # defaults, 30-s budget: 90 % intervals covering 0.04 %)
            fit_spread = cfg.train.calibrate_forecast
            if forecasts is not None:
                # the factors are needed most when the budget ran out: fitted then too, on
                # the forecasts drawn by the deadline (at least a batch)
                until = deadline if fit_spread else None
                fc_panel, tails = forecasts
                got = calibrate_forecast_spread(
                    model,
                    fc_panel,
                    cfg.train.seed,
                    until,
                    spread=fit_spread,
                    tails=tails,
                    stop=deadline,
                )
                far = None
                if got is not None and cfg.train.forecast_gate:
                    far = fit_far_gate(model, fc_panel, tails, cfg.train.seed)
                if far is not None:
                    model.forecast_gate_far = far["kept"]
                    got["far_gate"] = far
                if got is not None:
                    model.info["forecast_calibration"] = got
        model.info["fit_seconds"] = round(time.perf_counter() - start, 2)
        return model

    def _split(
        self,
        model: Predictor,
        series: list[Series],
        valid_df: pd.DataFrame | None,
        static_df: pd.DataFrame | None,
        covariates: Covariates | None,
    ) -> tuple[list[Series], list[Series]]:
        """Training and validation series: ``valid_df``'s, else a held-out share of the
        series, else (few series) the end of each long enough timeline."""
        if valid_df is not None:
            assert model.freq is not None
            val = grid_with_covariates(
                valid_df,
                covariates,
                columns=model.columns,
                freq=model.freq,
                agg=self.config.data.agg,
                static_df=static_df,
                variables=model.variables,
                time_kind=model.freq.kind,
            )
            return series, val.series
        frac = self.config.train.val_fraction
        if frac <= 0:
            return series, []
        window = self.config.data.window
        if len(series) < 5:  # few series: hold out the end of each long enough timeline
            tr, va = [], []
            for s in series:
                cut = int(round(len(s.index) * (1 - frac)))
                if len(s.index) - cut >= window // 2 and cut >= window:
                    tr.append(s.part(0, cut))
                    va.append(s.part(cut, len(s.index)))
                else:
                    tr.append(s)
            return tr, va
        rng = np.random.default_rng(self.config.train.seed)
        n_val = max(1, int(round(frac * len(series))))
        pick = set(rng.choice(len(series), size=n_val, replace=False).tolist())
        return (
            [s for i, s in enumerate(series) if i not in pick],
            [s for i, s in enumerate(series) if i in pick],
        )

    def training_windows(self, model: Predictor, df: pd.DataFrame) -> Windows:
        """The windows a fit of ``model`` trains (or validates) on from ``df``, for work
        on a fitted model's network after the fit (e.g. ``prior_training.continue_prior``)."""
        return self._windows(model, model.panel(df).series)

    def _windows(self, model: Predictor, series: list[Series]) -> Windows:
        """Training windows with at least one observed cell (normalised, NaN → 0)."""
        vals, obs, cals, hist = [], [], [], []
        shape = model.window_shape()
        for s in series:
            sw = series_windows(shape, s, self.config.data.stride("training"))
            observed = ~np.isnan(sw.values) & sw.valid[:, None, :]
            keep = observed.any(axis=(1, 2))
            vals.append(sw.values[keep])
            obs.append(observed[keep])
            cals.append(sw.calendar[keep])
            hist.append(sw.history[keep])
        k, length, h = len(model.variables), model.window, model.history_steps
        if not vals:
            n_feat = N_CALENDAR + self.config.network.covariates
            vals, obs, cals, hist = (
                [np.zeros((0, k, length))],
                [np.zeros((0, k, length), bool)],
                [np.zeros((0, n_feat, length))],
                [np.zeros((0, k, h))],
            )
        history = np.concatenate(hist)  # (N, K, H)
        return Windows(
            torch.from_numpy(np.nan_to_num(np.concatenate(vals))).float(),
            torch.from_numpy(np.concatenate(obs)),
            torch.from_numpy(np.concatenate(cals)).float(),
            torch.from_numpy(np.nan_to_num(history)).float(),
            torch.from_numpy(~np.isnan(history)),
        )


# the share of a time budget kept at least for calibrating the samples after training
CALIBRATION_SHARE = 0.1
# the most of a budget kept for the calibration however costly its draws: training
# gets the rest, and the calibration then draws its fewest (and runs over)
MAX_CALIBRATION_SHARE = 0.5
PROBE_WINDOWS = 2  # validation windows whose sampling prices a draw before training
CALIBRATION_BATCH = 8  # series sampled at a time while calibrating
# the warning of a model the calibration finds no better than its base anywhere
BASE_ONLY = (
    "on the validation cells the model was no better than its base for any variable, so "
    "its imputations are the base's (the learned prior or the linear interpolation) with "
    "the model's spread: train longer, or, if the gaps to fill are outages rather than "
    "scattered cells, calibrate on gaps like them (train.holdout 'pattern', tsdiff train "
    "--holdout pattern). On PM2.5, cells hidden at random sent every station to its base "
    "(benchmarks/results/pm25-holdout-pairs.md)"
)
# a training set with at most this many windows at stride 1 uses every one of them
EVERY_WINDOW_UP_TO = 4096
FEW_WINDOWS = 32  # fewer training windows than this: fit warns that it will learn little
FORECAST_ORIGINS = 256  # forecasts the fit's forecast spread is calibrated on, at most


def resolve_defaults(cfg: TSDiffConfig, panel: Panel) -> TSDiffConfig:
    """``cfg`` with what it leaves to the data (None) inferred, so that the saved config
    records what was used: ``network.season`` and ``network.lags`` from the grid (see
    :mod:`tsdiff.seasonality`), and ``data.training_stride``: 1 (every window) when
    that gives at most ``EVERY_WINDOW_UP_TO`` windows — a short series has few windows
    at half a window's stride — else half a window."""
    net, data = cfg.network, cfg.data
    longest = max((len(s.index) for s in panel.series), default=0)
    season = net.season if net.season is not None else infer_season(panel.freq, longest)
    lags = net.lags if net.lags is not None else default_lags(season)
    stride = data.training_stride
    if stride is None:
        every = sum(max(len(s.index) - data.window + 1, 1) for s in panel.series)
        stride = 1 if every <= EVERY_WINDOW_UP_TO else data.stride("training")
    covariates = len(data.future_covariates) + len(data.static_covariates)
    return cfg.replace(
        network={"season": season, "lags": tuple(lags), "covariates": covariates},
        data={"training_stride": stride},
    )


def check_history(series: Sequence[Series], window: int) -> None:
    """Refuse data with fewer than two windows of observed time steps in all: a model
    fitted on them has nothing to learn a pattern from, and would only echo noise."""
    steps = sum(int((~np.isnan(s.values)).any(axis=0).sum()) for s in series)
    if steps < 2 * window:
        raise InsufficientHistoryError(
            f"the training data hold {steps} time steps with an observation "
            f"({len(series)} series); a window of {window} steps needs at least "
            f"{2 * window} to learn from: give more history or a smaller window "
            f"(--window, data.window)"
        )


def fit_spec(
    model: Predictor, arrays: list[np.ndarray]
) -> tuple[dict[str, VariableSpec], dict[str, Any]]:
    """Bounds and kinds from the training data and the config (before any training, so
    a bad spec fails first); observed values outside them are counted and warned about,
    never changed. Returns the specs and what ``info["spec"]`` records."""
    vc = model.config.variables
    specs = infer_spec(
        arrays,
        model.variables,
        vc.spec,
        infer=vc.infer,
        transforms=vc.transforms,
        log_skew=vc.log_skew,
    )
    x = np.concatenate(arrays, axis=1) if arrays else np.zeros((len(model.variables), 0))
    out = {n: outside(x[k], specs[n]) for k, n in enumerate(model.variables)}
    out = {n: c for n, c in out.items() if c}
    if out:
        warnings.warn(
            f"observed values outside their declared bounds (kept as observed): {out}",
            stacklevel=3,
        )
    return specs, {"rule": rule(vc.log_skew), "observed_outside": out}


def calibrate_imputation(
    model: Predictor,
    panel: Panel,
    *,
    missing: float = 0.1,
    seed: int = 0,
    deadline: float | None = None,
    patterns: Sequence[np.ndarray] | None = None,
) -> dict[str, Any]:
    """Fit ``model.spread``, ``model.gate`` and ``model.interval_scale`` on hidden cells
    of ``panel`` (validation).

    Hides ``missing`` of the observed cells (``train.holdout`` "pattern": the cells
    missing in a stretch of ``patterns``, the training series' missing masks (K, T_i),
    default ``panel``'s own; see :func:`tsdiff.masks.hold_out_pattern`), samples them
    uncalibrated, chooses per variable the gate (how much of the prior's point
    imputation the median takes, :func:`tsdiff.calibration.fit_gate`; pooled over the
    variables with ``train.gate_pooled``), then the spread factor minimising CRPS and
    (``train.calibrate_intervals``) the factors that make the intervals of the samples
    so calibrated cover what they claim (:func:`tsdiff.calibration.fit_interval_scale`).
    ``deadline`` (a ``time.perf_counter()`` value): series are sampled a few at a time
    and the fit uses those sampled by then (at least one batch). Every window draws its
    own noise, so without a deadline the result does not depend on the batching.
    """
    model.clear_imputation_calibration()
    cells = _calibration_cells(model, panel, missing, seed, deadline, patterns)
    if cells is None:
        return {"spread": 1.0, "n_cells": 0}
    smp, tru, var, base, alt = cells.samples, cells.truth, cells.var, cells.prior, cells.interp
    k = len(model.variables)
    evidence = GATE_EVIDENCE if model.config.train.gate_interpolation else 0.0
    med = np.median(smp, axis=0)
    if model.config.train.gate_by_gap:
        by_gap = fit_gap_gate(
            med, base, alt, tru, var, cells.distance, k,
            evidence=evidence, pooled=model.config.train.gate_pooled,
        )  # fmt: skip
        smp = smp + ((1 - by_gap.alpha) * (by_gap.base - med))[None]  # as gate_shift
        weights = np.asarray(by_gap.gate.weight)  # (K, B)
        model.gap_gate = by_gap.gate if weights.min() < 1 else None
        if weights.max() == 0:  # a model that imputes as its base does should say so
            warnings.warn(BASE_ONLY, stacklevel=2)
        return _calibrate_rest(model, smp, tru, var, cells, {"gap_gate": by_gap.to_dict()})
    base_info = None
    if alt is not None:
        # the network's prior (a learned prior trained on the training mask mix, or the
        # interpolation inside each window, flat at its edges) can lose to the whole
        # series' interpolation on these cells (e.g. sparse gaps in a smooth signal):
        # per variable, the gate then refines whichever of the two is better here
        choice = choose_base(base, alt, tru, var, k)
        if any(choice.use_alternative):
            model.gate_interpolation = list(choice.use_alternative)
            base = np.where(np.asarray(choice.use_alternative)[var], alt, base)
        base_info = choice.to_dict()
    gate = fit_gate(
        med, base, tru, var, k, evidence=evidence, pooled=model.config.train.gate_pooled
    )
    smp = smp + ((1 - np.asarray(gate.gate)[var]) * (base - med))[None]  # as gate_shift
    model.gate = list(gate.gate) if min(gate.gate) < 1 else None
    if max(gate.gate) == 0:  # a model that imputes as its base does should say so
        warnings.warn(BASE_ONLY, stacklevel=2)
    fitted = {"gate": gate.to_dict()}
    if base_info is not None:
        fitted["gate_base"] = base_info
    return _calibrate_rest(model, smp, tru, var, cells, fitted)


def _calibrate_rest(
    model: Predictor,
    smp: np.ndarray,
    tru: np.ndarray,
    var: np.ndarray,
    cells: _CalibrationCells,
    fitted: dict[str, Any],
) -> dict[str, Any]:
    """:func:`calibrate_imputation` after the gate: the spread, the quantile blend and
    the interval factors, fitted on the gated samples ``smp`` (n, m); ``fitted``: what
    the gate's fit records."""
    k = len(model.variables)
    fit = fit_spread(smp, tru)  # (n, m), (m,)
    model.spread = fit.spread
    info = {**fit.to_dict(), "holdout": model.config.train.holdout, **fitted}
    if cells.draws > 1:
        info["draws"] = cells.draws
    if model.config.train.spread_per_variable:
        per = fit_variable_spread(smp, tru, var, k, overall=fit.spread)
        model.variable_spread = list(per.spread) if per.n_own else None
        info["per_variable"] = per.to_dict()
    f = np.broadcast_to(model.task_spread("impute"), (k,))[var]  # (m,) each cell's
    smp = rescale(smp, f)  # the samples as calibrated so far
    if cells.quantiles is not None:
        blend = fit_blend(smp, cells.quantiles, tru)
        model.quantile_blend = blend.weight if blend.weight < 1 else None
        info["quantile_blend"] = blend.to_dict()
        smp = blend_quantiles(smp, cells.quantiles, blend.weight)
    if model.config.train.calibrate_intervals:
        support = cell_support(model.support(), var)  # the samples are served clipped
        intervals = fit_interval_scale(smp, tru, support=support)  # as calibrated
        model.interval_scale = intervals.scale
        info["intervals"] = intervals.to_dict()
    return info


def calibrate_intervals(
    model: Predictor, panel: Panel, *, missing: float = 0.1, seed: int = 0
) -> dict[str, Any]:
    """Fit only ``model.interval_scale``, on hidden cells of ``panel`` sampled with the
    model's calibration as it stands (spread, gate): for a model calibrated before
    interval factors existed, or to recalibrate its intervals on newer data."""
    model.interval_scale = None
    held = _held_out_samples(model, panel, missing, seed, None, spread=None)
    if held is None:
        raise DataError("no held-out cell to fit the interval factors on")
    support = cell_support(model.support(), held.var)
    fit = fit_interval_scale(held.samples, held.truth, support=support)
    model.interval_scale = fit.scale
    return fit.to_dict()


@dataclasses.dataclass(frozen=True)
class _HeldOut:
    """Samples of cells hidden from validation series, in the network's space."""

    panel: Panel  # the series sampled (a deadline may stop before the last)
    masked: list[np.ndarray]  # per series (K, T), NaN where hidden
    hidden: np.ndarray  # (all cells,) bool: the hidden ones, series after series
    samples: np.ndarray  # (n, m) at the hidden cells
    truth: np.ndarray  # (m,)
    var: np.ndarray  # (m,) each cell's variable index


def _held_out_samples(
    model: Predictor,
    panel: Panel,
    missing: float,
    seed: int,
    deadline: float | None,
    spread: float | None,
    patterns: Sequence[np.ndarray] | None = None,
) -> _HeldOut | None:
    """Hide ``missing`` of the observed cells of (at most ``calibrate_max_series`` of)
    ``panel``'s series, or with ``train.holdout`` "pattern" the cells missing in a
    stretch of ``patterns`` (default: ``panel``'s own), and sample them (``spread``
    None: the model's own); None when no cell could be hidden."""
    assert model.scaler is not None
    if not 0 < missing < 1:
        raise RangeError(f"missing must be in (0, 1), got {missing}")
    series = panel.series[: model.config.train.calibrate_max_series]
    rng = np.random.default_rng(seed + 7)
    # ceil: every series with an observation gives the fit at least one cell
    if model.config.train.holdout == "pattern":
        if patterns is None:
            patterns = [np.isnan(s.values) for s in panel.series]
        held = [hold_out_pattern(s.values, patterns, missing, rng) for s in series]
    else:
        held = [hold_out(s.values, missing, rng, rounding="ceil") for s in series]
    masked = [m for m, _ in held]  # per series (K, T), NaN where hidden
    hidden = [h for _, h in held]  # per series (K, T) bool
    opts = model.options(seed=seed)
    samples: list[np.ndarray] = []
    for lo in range(0, len(series), CALIBRATION_BATCH):  # (n, K, T) per series
        part = dataclasses.replace(panel, series=series[lo : lo + CALIBRATION_BATCH])
        vals = masked[lo : lo + CALIBRATION_BATCH]
        samples += sample_series(model, part, opts, values=vals, spread=spread).samples
        if deadline is not None and time.perf_counter() > deadline:
            break
    series, masked, hidden = series[: len(samples)], masked[: len(samples)], hidden[: len(samples)]
    norm = model.normalizer.transform  # the network's space
    smp = np.concatenate([norm(x).reshape(x.shape[0], -1) for x in samples], axis=1)
    tru = np.concatenate([norm(s.values).reshape(-1) for s in series])
    msk = np.concatenate([h.reshape(-1) for h in hidden])
    if not msk.any():
        return None
    k = len(model.variables)
    var = np.concatenate([np.repeat(np.arange(k), m.shape[1]) for m in masked])[msk]
    return _HeldOut(
        dataclasses.replace(panel, series=series), masked, msk, smp[:, msk], tru[msk], var
    )


@dataclasses.dataclass(frozen=True)
class _CalibrationCells:
    """The held-out validation cells the imputation calibration is fitted on, pooled
    over its draws, with what the gate and the blend weigh the samples against."""

    samples: np.ndarray  # (n, m) uncalibrated, in the network's space
    truth: np.ndarray  # (m,)
    var: np.ndarray  # (m,) each cell's variable index
    prior: np.ndarray  # (m,) the network's prior point imputation
    interp: np.ndarray | None  # (m,) the series' interpolation (train.gate_interpolation)
    quantiles: np.ndarray | None  # (Q, m) the quantile prior's, where the model has one
    draws: int  # how many draws were pooled
    distance: np.ndarray  # (m,) steps to the nearest value the model was given


def _calibration_cells(
    model: Predictor,
    panel: Panel,
    missing: float,
    seed: int,
    deadline: float | None,
    patterns: Sequence[np.ndarray] | None,
) -> _CalibrationCells | None:
    """``train.calibrate_draws`` draws of hidden cells (draw d hides and samples with
    ``seed + d``), pooled: more cells of the data's gaps than one draw gives, so that
    the gate and factors depend less on which cells one draw hid. A ``deadline`` ends
    the draws after the one that passes it; None when no draw hid a cell."""
    parts: list[tuple[np.ndarray, ...]] = []
    for d in range(model.config.train.calibrate_draws):
        if parts and deadline is not None and time.perf_counter() > deadline:
            break
        held = _held_out_samples(
            model, panel, missing, seed + d, deadline, spread=1.0, patterns=patterns
        )
        if held is None:
            continue
        drawn, masked, msk = held.panel, held.masked, held.hidden
        prior = np.concatenate([x.reshape(-1) for x in prior_series(model, drawn, masked)])
        dist = np.concatenate([gap_distance(x).reshape(-1) for x in masked])[msk]
        part = [held.samples, held.truth, held.var, prior[msk], dist]
        if model.config.train.gate_interpolation:
            interp = np.concatenate([x.reshape(-1) for x in series_interpolation(model, masked)])
            part.append(interp[msk])
        if model.net is not None and model.net.quantile_net is not None:
            q = quantile_series(model, drawn, masked)
            part.append(np.concatenate([x.reshape(x.shape[0], -1) for x in q], axis=1)[:, msk])
        parts.append(tuple(part))
    if not parts:
        return None
    cols = [np.concatenate(c, axis=-1) for c in zip(*parts, strict=True)]
    rest = iter(cols[5:])
    interp = next(rest) if model.config.train.gate_interpolation else None
    quantiles = next(rest, None)
    return _CalibrationCells(*cols[:4], interp, quantiles, len(parts), cols[4])


def holdout_patterns(cfg: TSDiffConfig, train: Sequence[Series]) -> list[np.ndarray] | None:
    """The missing masks (K, T_i) of the training series, which the pattern hold-out
    (``train.holdout`` "pattern") hides cells like; None for the random hold-out."""
    return [np.isnan(s.values) for s in train] if cfg.train.holdout == "pattern" else None


def _forecast_validation(
    panel: Panel, train: list[Series], val: list[Series]
) -> tuple[Panel, list[int]]:
    """The series validation forecasts are drawn from, and per series how many of its
    last steps the origins may sit in (:func:`calibrate_forecast_spread`): a held-out
    end of a timeline is forecast with the training steps before it as context, as a
    forecast after the end of the data is (without them its first origins had next to
    no context); a held-out whole series, from its own steps."""
    full = {s.key: s for s in panel.series}
    cut = {s.key for s in train}
    series, tails = [], []
    for v in val:
        whole = full.get(v.key)
        # the end of a timeline fit cut off (not a valid_df series sharing a key)
        if v.key in cut and whole is not None and whole.index[-1] == v.index[-1]:
            series.append(whole)
            tails.append(len(v.index))
        else:
            series.append(v)
            tails.append(len(v.index) - 1)  # at least one step of its own before an origin
    return dataclasses.replace(panel, series=series), tails


def calibrate_forecast_spread(
    model: Predictor,
    panel: Panel,
    seed: int,
    deadline: float | None,
    *,
    spread: bool = True,
    tails: Sequence[int] | None = None,
    stop: float | None = None,
) -> dict[str, Any] | None:
    """Fit ``model.forecast_spread`` on forecasts of ``chunk_length(model)`` steps from
    origins one horizon apart in the validation series (at most ``FORECAST_ORIGINS``
    forecasts in all), and their interval factors and gate; ``spread=False``: only the
    interval factors and gate, of forecasts with the spread kept. ``tails``: per series,
    the last steps that are held out (the origins' horizons lie in them; default all but
    the first step). None (nothing fitted) when no series is long enough or the budget's
    deadline has passed. ``stop``: draw forecasts only until then (see
    :func:`tsdiff.backtest.fit_forecast_spread`)."""
    if deadline is not None and time.perf_counter() > deadline:
        return None
    plan = _forecast_plan(model, panel, tails)
    if plan is None:
        return None
    part, windows = plan
    h = chunk_length(model)
    opts = {"n_samples": None, "steps": None, "sampler": None, "eta": None, "seed": seed}
    info = fit_forecast_spread(model, part, h, h, windows, opts, spread=spread, until=stop)
    if spread:
        model.forecast_spread = info["spread"]
    model.forecast_interval_scale = (info.get("intervals") or {}).get("scale")
    model.forecast_gate = (info.get("gate") or {}).get("kept")
    return {**info, "horizon": h}


@dataclasses.dataclass(frozen=True)
class CalibrationReserve:
    """Seconds a fit keeps free of training for the calibration after it.

    The calibration draws at least a batch of imputations, a batch of forecasts and the
    far gate's long forecasts, however little time is left; a fixed share of the budget
    did not cover them (a 2-minute PM2.5 fit drew 15.7 s of them into 12 s and ended at
    127 s). Those fewest draws are priced by timing the network on a few validation
    windows before training (the cost does not depend on the weights); the imputation
    calibration stops early enough for the forecasts' (``forecast_seconds``)."""

    share: float  # CALIBRATION_SHARE of the budget
    impute_draws: int  # window samples the imputation calibration draws at the least
    forecast_draws: int  # those of the forecast calibration and the far gate
    seconds_per_draw: float
    seconds: float  # kept: the larger of the share and the estimate, at most
    # MAX_CALIBRATION_SHARE of the budget

    @property
    def estimate(self) -> float:
        return (self.impute_draws + self.forecast_draws) * self.seconds_per_draw

    @property
    def forecast_seconds(self) -> float:
        return self.forecast_draws * self.seconds_per_draw

    def to_dict(self) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 2),
            "share": round(self.share, 2),
            "estimate": round(self.estimate, 2),
            "impute_draws": self.impute_draws,
            "forecast_draws": self.forecast_draws,
            "seconds_per_draw": self.seconds_per_draw,
        }


def calibration_reserve(
    model: Predictor,
    val_series: Sequence[Series],
    val_set: Windows | None,
    forecasts: tuple[Panel, list[int]] | None,
) -> CalibrationReserve:
    """What of ``model.config.train.max_minutes`` the calibration after training keeps
    (see :class:`CalibrationReserve`); nothing without a calibration to run.
    ``forecasts``: the validation forecasts' series and tails (:func:`_forecast_validation`),
    None when fit calibrates no forecasts."""
    cfg = model.config
    budget = (cfg.train.max_minutes or 0.0) * 60
    if not (cfg.train.calibrate and val_series and val_set is not None and len(val_set)):
        return CalibrationReserve(0.0, 0, 0, 0.0, 0.0)
    share = CALIBRATION_SHARE * budget
    impute, forecast = _calibration_draws(model, val_series, forecasts)
    per = _seconds_per_draw(model, val_set)
    kept = min(max(share, (impute + forecast) * per), MAX_CALIBRATION_SHARE * budget)
    return CalibrationReserve(share, impute, forecast, per, kept)


def _calibrates_forecasts(cfg: TSDiffConfig) -> bool:
    """Whether fit calibrates forecasts (their spread, intervals or gate) after training."""
    t = cfg.train
    return (t.calibrate_forecast or t.calibrate_intervals or t.forecast_gate) and (
        forecast_weight(t) > 0
    )


def _calibration_draws(
    model: Predictor, val_series: Sequence[Series], forecasts: tuple[Panel, list[int]] | None
) -> tuple[int, int]:
    """Window samples the calibration after training draws at the least: imputing the
    first batch of validation series; forecasting the first batch of validation origins
    and the far gate's long forecasts."""
    cfg = model.config
    n = model.options().n_samples
    length, stride = cfg.data.window, cfg.data.stride("inference")
    first = val_series[: min(CALIBRATION_BATCH, cfg.train.calibrate_max_series)]
    impute = n * sum(len(window_starts(len(s.index), length, stride)) for s in first)
    forecast = 0
    if forecasts is not None:
        fc_panel, tails = forecasts
        plan = _forecast_plan(model, fc_panel, tails)
        if plan is not None:
            part, windows = plan
            forecast += n * min(len(part.series), FORECAST_BATCH) * windows
            if cfg.train.forecast_gate:
                forecast += far_gate_draws(model, fc_panel, tails)
    return impute, forecast


def _seconds_per_draw(model: Predictor, windows: Windows) -> float:
    """Seconds one window sample takes with the model's sampler: the network timed on
    ``PROBE_WINDOWS`` of ``windows`` × the samples drawn at once, one reverse step (a
    draw makes ``steps`` of them)."""
    b = windows.subset(torch.arange(min(PROBE_WINDOWS, len(windows))))
    batch = WindowBatch(
        b.values, b.observed, b.calendar, list(range(len(b))), b.history, b.history_observed
    )
    opts, sample = model.options(), model.config.sample
    t = time.perf_counter()
    sample_windows(
        model.net,
        model.scheduler,
        batch,
        n_samples=opts.n_samples,
        steps=1,
        batch_cells=sample.batch_cells,
        clip=model.clip_bounds(),
        precision=sample.precision,
    )
    steps = model.scheduler.num_steps if opts.sampler == "ddpm" else opts.steps
    return (time.perf_counter() - t) * steps / (len(b) * opts.n_samples)


def _forecast_plan(
    model: Predictor, panel: Panel, tails: Sequence[int] | None
) -> tuple[Panel, int] | None:
    """The series :func:`calibrate_forecast_spread` forecasts and the origins per series
    (every series the same number, ``FORECAST_ORIGINS`` forecasts at most); None when no
    series' tail holds a forecast."""
    h = chunk_length(model)
    tails = [len(s.index) - 1 for s in panel.series] if tails is None else list(tails)
    keep = [(s, t) for s, t in zip(panel.series, tails, strict=True) if t >= h + 1]
    keep = keep[:FORECAST_ORIGINS]
    if not keep:
        return None
    fits = min((t - h) // h + 1 for _, t in keep)  # origins every series has in its tail
    windows = max(1, min(fits, FORECAST_ORIGINS // len(keep)))
    return dataclasses.replace(panel, series=[s for s, _ in keep]), windows


def _fit_info(
    panel: Panel, tr: Windows, va: Windows | None, result: TrainResult, secs: float
) -> dict[str, Any]:
    last = result.epoch_log[-1] if result.epoch_log else {}
    return {
        "n_series": len(panel.series),
        "train_windows": len(tr),
        "val_windows": len(va) if va is not None else 0,
        "epochs_run": result.epochs_run,
        "steps_run": result.steps_run,
        "best_epoch": result.best_epoch,
        "best_val_loss": result.best_val_loss if np.isfinite(result.best_val_loss) else None,
        # with train.select_by "crps": the task-weighted validation CRPS it chose on
        "best_val_task_crps": result.best_score if np.isfinite(result.best_score) else None,
        "stopped_by_budget": result.stopped_by_budget,
        "train_seconds": round(secs, 2),
        "step_seconds": round(result.step_seconds, 2),
        "final": {k: v for k, v in last.items() if isinstance(v, (int, float))},
        "layout": panel.layout,
        "has_id": panel.has_id,
    }
