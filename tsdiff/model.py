"""``TSDiff``: the user-facing estimator (fit / impute / forecast / evaluate / save / load).

It owns the boundary between frames and tensors: a frame becomes a
:class:`~tsdiff.data.Panel` on a regular grid, the panel becomes normalised windows,
windows go to the trainer or the sampler, and samples come back through the same
path as frames. Observed values are never passed through the network's float32
arithmetic: outputs copy them from the input, bit for bit.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from tsdiff import __version__, baselines, metrics
from tsdiff.calibration import fit_gate, fit_spread, gate_shift
from tsdiff.config import TSDiffConfig
from tsdiff.data import (
    Columns,
    Freq,
    Panel,
    Scaler,
    Series,
    calendar_features,
    extract_windows,
    forecast_frame,
    future_index,
    impute_frame,
    samples_frame,
    stitch,
    to_panel,
    trajectory_frame,
    window_starts,
)
from tsdiff.errors import ConfigError, DataError, ModelFileError, NotFittedError, RangeError
from tsdiff.io import current_umask
from tsdiff.masks import hold_out, open_gaps
from tsdiff.network import Denoiser
from tsdiff.pretrained import locate, shipped
from tsdiff.prior_training import train_prior
from tsdiff.sampling import (
    Trajectory,
    WindowBatch,
    prior_windows,
    record_indices,
    reverse_steps,
    sample_windows,
)
from tsdiff.scheduler import NoiseScheduler
from tsdiff.spec import RULE, VariableSpec, infer_spec, outside, project
from tsdiff.training import EpochCallback, TrainResult, Windows, train, value_bounds

FORMAT_VERSION = 1
WEIGHTS_FILE = "weights.safetensors"
CONFIG_FILE = "config.json"
META_FILE = "model.json"


@dataclass(frozen=True)
class SeriesWindows:
    """Normalised windows of one series (see ``TSDiff._series_windows``).

    values (W, K, L) NaN where missing; valid (W, L) False past the series' end;
    calendar (W, 4, L); starts (W,); history (W, K, H) the H steps before each window
    (NaN where missing or before the series' first step).
    """

    values: np.ndarray
    valid: np.ndarray
    calendar: np.ndarray
    starts: np.ndarray
    history: np.ndarray


@dataclass(frozen=True)
class SampleOptions:
    """Per-call sampling options, resolved against the config's defaults."""

    n_samples: int
    steps: int
    sampler: str
    eta: float
    levels: tuple[int, ...]
    seed: int


@dataclass(frozen=True)
class TrajectoryOptions:
    """Which reverse-process states to keep: ``states`` (a count or indices) of ``samples``."""

    states: int | tuple[int, ...]
    samples: int


@dataclass
class SeriesTrajectory:
    """Recorded states per series, original units, stitched like the samples.

    states: per series (S, m, K, T); steps (S,) reverse-step indices (0 = noise);
    noise_std (S,) sqrt(1 - ᾱ) of each state.
    """

    states: list[np.ndarray]
    steps: list[int]
    noise_std: list[float]


class TSDiff:
    """Conditional diffusion imputer and forecaster for multivariate time series.

    >>> model = TSDiff().fit(train_df)                     # doctest: +SKIP
    >>> filled = model.impute(df)                          # doctest: +SKIP
    >>> fc = model.forecast(df, horizon=24)                # doctest: +SKIP
    """

    def __init__(self, config: TSDiffConfig | None = None) -> None:
        self.config = config or TSDiffConfig()
        self.net: Denoiser | None = None
        self.variables: list[str] = []
        self.freq: Freq | None = None
        self.scaler: Scaler | None = None
        self.scheduler = NoiseScheduler(self.config.diffusion)
        self.history: list[dict[str, Any]] = []
        self.value_range: tuple[list[float], list[float]] | None = None  # normalised (lo, hi)
        self.spread = 1.0  # calibration factor of the samples' spread (see calibrate)
        # the same for forecasts (tsdiff.backtest.calibrate_forecast); None: use spread
        self.forecast_spread: float | None = None
        # per-variable weight of the model's median against the prior it refines, in
        # imputations, chosen on validation cells (see calibrate); None: the model alone
        self.gate: list[float] | None = None
        # what each variable can be (tsdiff.spec); every sample is projected onto it
        self.spec: dict[str, VariableSpec] | None = None
        self.info: dict[str, Any] = {}

    # ------------------------------------------------------------------ helpers
    @property
    def columns(self) -> Columns:
        d = self.config.data
        return Columns(d.id_col, d.time_col, d.var_col, d.value_col)

    @property
    def window(self) -> int:
        return self.config.data.window

    @property
    def fitted(self) -> bool:
        return self.net is not None

    def _require_fitted(self) -> None:
        if not self.fitted:
            raise NotFittedError("this TSDiff model is not fitted: call fit() or TSDiff.load()")

    def _panel(self, df: pd.DataFrame, *, layout: str = "auto") -> Panel:
        self._require_fitted()
        assert self.freq is not None
        return to_panel(
            df,
            columns=self.columns,
            freq=self.freq,
            agg=self.config.data.agg,
            layout=layout,
            variables=self.variables,
            time_kind=self.freq.kind,
        )

    def _options(
        self,
        n_samples: int | None,
        steps: int | None,
        sampler: str | None,
        eta: float | None,
        levels: Sequence[int] | None,
        seed: int,
    ) -> SampleOptions:
        s = self.config.sample
        opts = SampleOptions(
            n_samples=int(n_samples if n_samples is not None else s.n_samples),
            steps=int(steps if steps is not None else s.steps),
            sampler=sampler or s.sampler,
            eta=float(eta if eta is not None else s.eta),
            levels=tuple(sorted({int(v) for v in (levels if levels is not None else s.levels)})),
            seed=int(seed),
        )
        if opts.n_samples < 1:
            raise RangeError(f"n_samples must be >= 1, got {opts.n_samples}")
        if not 1 <= opts.steps <= self.scheduler.num_steps:
            raise RangeError(
                f"steps must be in 1..{self.scheduler.num_steps} (the model's diffusion "
                f"steps), got {opts.steps}"
            )
        if opts.sampler not in ("ddim", "ddpm"):
            raise ConfigError(f"sampler must be 'ddim' or 'ddpm', got {opts.sampler!r}")
        if not 0 <= opts.eta <= 1:
            raise RangeError(f"eta must be in [0, 1], got {opts.eta}")
        if not opts.levels or not all(1 <= v <= 99 for v in opts.levels):
            raise RangeError(f"levels must be integers in 1..99, got {list(opts.levels)}")
        return opts

    @property
    def history_steps(self) -> int:
        """Steps before each window the network reads (its longest lag; 0 without lags)."""
        return self.config.network.history_steps

    def _series_windows(self, series: Series, stride: int, lead: int = 0) -> SeriesWindows:
        """Windows tiling ``series`` after its first ``lead`` steps, each with its history.

        The first ``lead`` steps are context only: windows start at or after them (starts
        count from ``lead``) and read them as history.
        """
        assert self.scaler is not None and self.freq is not None
        h, length = self.history_steps, len(series.index) - lead
        starts = window_starts(length, self.window, stride)  # (W,) relative to lead
        x = self.scaler.transform(series.values)  # (K, lead + length)
        if lead < h:  # too little history before the first window: NaN in front
            x = np.concatenate([np.full((x.shape[0], h - lead), np.nan), x], axis=1)
        off = max(lead - h, 0)  # x[:, off + s] is h steps before relative start s
        ext, valid = extract_windows(x[:, off:], h + self.window, starts)  # (W, K, H + L)
        index = series.index[lead:]
        if length < self.window:  # padding cells get the calendar of the steps they stand for
            index = index.append(future_index(index, self.freq, self.window - length))
        cal, _ = extract_windows(calendar_features(index), self.window, starts)
        return SeriesWindows(ext[..., h:], valid[:, h:], cal, starts, ext[..., :h])

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        df: pd.DataFrame,
        *,
        valid_df: pd.DataFrame | None = None,
        freq: str | float | None = None,
        max_minutes: float | None = None,
        checkpoint: str | Path | None = None,
        resume: bool = False,
        progress: bool = True,
        callbacks: Sequence[EpochCallback] = (),
    ) -> TSDiff:
        """Learn to denoise masked windows of ``df`` (wide or long, see the README).

        Validation uses ``valid_df`` when given, else a held-out share of the series
        (``train.val_fraction``). ``max_minutes`` caps wall-clock time; the learning
        rate schedule adapts to the epochs that fit in it.
        """
        cfg = self.config
        if max_minutes is not None:
            cfg = cfg.replace(train={"max_minutes": max_minutes})
            self.config = cfg
        panel = to_panel(df, columns=self.columns, freq=freq or cfg.data.freq, agg=cfg.data.agg)
        self.variables = list(panel.variables)
        self.freq = panel.freq
        train_series, val_series = self._split(panel.series, valid_df)
        self.spec, spec_info = self._infer_spec([s.values for s in train_series])
        self.scaler = Scaler.fit([s.values for s in train_series])
        train_set = self._windows(train_series)
        if len(train_set) == 0:
            raise DataError("no training window has an observed value")
        val_set = self._windows(val_series) if val_series else None
        lo, hi = value_bounds(train_set)
        self.value_range = (lo.tolist(), hi.tolist())

        with torch.random.fork_rng():
            torch.manual_seed(cfg.train.seed)
            self.net = Denoiser(cfg.network, len(self.variables), cfg.diffusion.prediction)
        t0 = time.perf_counter()
        train_cfg = cfg.train
        if self.net.prior_net is not None:
            budget = cfg.train.max_minutes
            prior = train_prior(
                self.net,
                train_set,
                val_set,
                cfg.train,
                minutes=budget * cfg.train.prior_fraction if budget else None,
                checkpoint=f"{checkpoint}.prior" if checkpoint else None,
                resume=resume,
                progress=progress,
            )
            if budget:  # the denoiser gets what the prior left of the budget
                left = max(budget - prior.seconds / 60, 0.05 * budget)
                train_cfg = dataclasses.replace(cfg.train, max_minutes=left)
        with torch.random.fork_rng():  # the network's dropout draws from the global generator
            torch.manual_seed(cfg.train.seed)
            best, result = train(
                self.net,
                self.scheduler,
                train_set,
                val_set,
                train_cfg,
                checkpoint=checkpoint,
                resume=resume,
                progress=progress,
                callbacks=callbacks,
                clip=self._clip(),
            )
        self.net.load_state_dict(best)
        self.net.eval()
        self.history = result.history
        self.info = self._fit_info(panel, train_set, val_set, result, time.perf_counter() - t0)
        self.info["spec"] = spec_info
        if self.net.prior_net is not None:
            self.info["prior"] = prior.to_dict()
        self.spread, self.forecast_spread, self.gate = 1.0, None, None
        if cfg.train.calibrate and val_series:
            val_panel = dataclasses.replace(panel, series=val_series)
            self.info["calibration"] = self._calibrate(val_panel, seed=cfg.train.seed)
        return self

    def _infer_spec(
        self, arrays: list[np.ndarray]
    ) -> tuple[dict[str, VariableSpec], dict[str, Any]]:
        """Bounds and kinds from the training data and the config (before any training,
        so a bad spec fails first); observed values outside them are counted and warned
        about, never changed."""
        vc = self.config.variables
        specs = infer_spec(arrays, self.variables, vc.spec, infer=vc.infer)
        x = np.concatenate(arrays, axis=1) if arrays else np.zeros((len(self.variables), 0))
        out = {n: outside(x[k], specs[n]) for k, n in enumerate(self.variables)}
        out = {n: c for n, c in out.items() if c}
        if out:
            warnings.warn(
                f"observed values outside their declared bounds (kept as observed): {out}",
                stacklevel=3,
            )
        return specs, {"rule": RULE, "observed_outside": out}

    def infer_spec(self, df: pd.DataFrame) -> dict[str, Any]:
        """(Re)infer the variables' bounds and kinds from ``df`` (the training data) and
        the config's overrides, as ``fit`` does: for a model saved before specs existed.
        Returns what ``fit`` records in ``info["spec"]``."""
        panel = self._panel(df)
        self.spec, summary = self._infer_spec([s.values for s in panel.series])
        self.info["spec"] = summary
        return summary

    def calibrate(self, df: pd.DataFrame, *, missing: float = 0.1, seed: int = 0) -> dict[str, Any]:
        """Fit the spread of the samples to held-out cells of ``df`` (validation data).

        Diffusion samples after short training are typically too narrow (intervals
        cover less than they claim). This hides ``missing`` of ``df``'s observed cells,
        samples them, and picks the factor s — samples = median + s·(samples − median),
        so medians and MAE are unchanged — that minimises CRPS there, a proper score,
        so s improves calibration without rewarding wide intervals. ``fit`` does this
        on its validation series when ``train.calibrate`` is set.
        """
        return self._calibrate(self._panel(df), missing=missing, seed=seed)

    def _calibrate(self, panel: Panel, *, missing: float = 0.1, seed: int = 0) -> dict[str, Any]:
        assert self.scaler is not None
        if not 0 < missing < 1:
            raise RangeError(f"missing must be in (0, 1), got {missing}")
        series = panel.series[: self.config.train.calibrate_max_series]
        panel = dataclasses.replace(panel, series=series)
        rng = np.random.default_rng(seed + 7)
        # ceil: every series with an observation gives the fit at least one cell
        held = [hold_out(s.values, missing, rng, rounding="ceil") for s in series]
        masked = [m for m, _ in held]  # per series (K, T), NaN where hidden
        hidden = [h for _, h in held]  # per series (K, T) bool
        opts = self._options(None, None, None, None, None, seed)
        self.gate = None
        samples = self._sample_series(panel, opts, values=masked, spread=1.0)
        norm = self.scaler.transform
        smp = np.concatenate([norm(x).reshape(x.shape[0], -1) for x in samples], axis=1)
        tru = np.concatenate([norm(s.values).reshape(-1) for s in series])
        msk = np.concatenate([h.reshape(-1) for h in hidden])
        if not msk.any():
            return {"spread": 1.0, "n_cells": 0}
        k = len(self.variables)
        base = np.concatenate([p.reshape(-1) for p in self._prior_series(panel, masked)])[msk]
        var = np.concatenate([np.repeat(np.arange(k), m.shape[1]) for m in masked])[msk]
        smp = smp[:, msk]  # (n, m): the held-out cells
        med = np.median(smp, axis=0)
        gate = fit_gate(med, base, tru[msk], var, k)
        smp = smp + ((1 - np.asarray(gate.gate)[var]) * (base - med))[None]  # as gate_shift
        self.gate = list(gate.gate) if min(gate.gate) < 1 else None
        fit = fit_spread(smp, tru[msk])  # (n, m), (m,)
        self.spread = fit.spread
        return {**fit.to_dict(), "gate": gate.to_dict()}

    def _split(
        self, series: list[Series], valid_df: pd.DataFrame | None
    ) -> tuple[list[Series], list[Series]]:
        if valid_df is not None:
            val = to_panel(
                valid_df,
                columns=self.columns,
                freq=self.freq,
                agg=self.config.data.agg,
                variables=self.variables,
                time_kind=self.freq.kind if self.freq else None,
            )
            return series, val.series
        frac = self.config.train.val_fraction
        if frac <= 0:
            return series, []
        if len(series) < 5:  # few series: hold out the end of each long enough timeline
            tr, va = [], []
            for s in series:
                cut = int(round(len(s.index) * (1 - frac)))
                if len(s.index) - cut >= self.window // 2 and cut >= self.window:
                    tr.append(Series(s.key, s.index[:cut], s.values[:, :cut]))
                    va.append(Series(s.key, s.index[cut:], s.values[:, cut:]))
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

    def _windows(self, series: list[Series]) -> Windows:
        vals, obs, cals, hist = [], [], [], []
        for s in series:
            sw = self._series_windows(s, self.config.data.training_stride)
            observed = ~np.isnan(sw.values) & sw.valid[:, None, :]
            keep = observed.any(axis=(1, 2))
            vals.append(sw.values[keep])
            obs.append(observed[keep])
            cals.append(sw.calendar[keep])
            hist.append(sw.history[keep])
        k, length, h = len(self.variables), self.window, self.history_steps
        if not vals:
            vals, obs, cals, hist = (
                [np.zeros((0, k, length))],
                [np.zeros((0, k, length), bool)],
                [np.zeros((0, 4, length))],
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

    def _fit_info(
        self, panel: Panel, tr: Windows, va: Windows | None, result: TrainResult, secs: float
    ) -> dict[str, Any]:
        last = result.history[-1] if result.history else {}
        return {
            "n_series": len(panel.series),
            "train_windows": len(tr),
            "val_windows": len(va) if va is not None else 0,
            "epochs_run": result.epochs_run,
            "steps_run": result.steps_run,
            "best_epoch": result.best_epoch,
            "best_val_loss": result.best_val_loss if np.isfinite(result.best_val_loss) else None,
            "stopped_by_budget": result.stopped_by_budget,
            "train_seconds": round(secs, 2),
            "step_seconds": round(result.step_seconds, 2),
            "final": {k: v for k, v in last.items() if isinstance(v, (int, float))},
            "layout": panel.layout,
            "has_id": panel.has_id,
        }

    def _clip(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        if self.value_range is None or not self.config.sample.clip:
            return None
        return torch.tensor(self.value_range[0]), torch.tensor(self.value_range[1])

    # ------------------------------------------------------------------ sampling core
    def panel(self, df: pd.DataFrame) -> Panel:
        """``df`` checked against the model and put on its grid (what ``sample`` takes)."""
        return self._panel(df)

    def check_horizon(self, horizon: Any) -> int:
        """``horizon`` as an int, or :class:`RangeError`: it must leave one step of context."""
        if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)):
            raise RangeError(f"horizon must be an integer, got {horizon!r}")
        if not 1 <= horizon <= self.window - 1:
            raise RangeError(
                f"horizon must be in 1..{self.window - 1} (window {self.window} minus at least "
                f"one step of context), got {horizon}"
            )
        return int(horizon)

    def task_spread(self, task: str) -> float:
        """The calibration factor samples get for ``task`` ("impute" or "forecast")."""
        if task == "forecast" and self.forecast_spread is not None:
            return self.forecast_spread
        return self.spread

    def sample(
        self,
        panel: Panel,
        *,
        values: Sequence[np.ndarray] | None = None,
        n_samples: int | None = None,
        steps: int | None = None,
        sampler: str | None = None,
        eta: float | None = None,
        seed: int = 0,
        spread: float | None = None,
        lead: int = 0,
        gate: bool = True,
    ) -> list[np.ndarray]:
        """Raw samples per series of ``panel`` → list of (n, K, T - lead), original units.

        For evaluations and benchmarks that score samples themselves: ``values``
        replaces the series' (K, T) arrays, e.g. with held-out cells set to NaN.
        Cells observed in what the model is given carry their values in every sample.
        ``spread`` overrides the imputation spread (1.0: uncalibrated samples).
        The first ``lead`` steps of every series are context only: a model with lags
        reads them as history; they are neither imputed nor returned. ``gate``: recentre
        imputed cells by the model's gate (see :meth:`calibrate`); forecasts pass False.
        """
        if spread is not None and not (np.isfinite(spread) and spread > 0):
            raise RangeError(f"spread must be a finite number > 0, got {spread!r}")
        if isinstance(lead, bool) or not isinstance(lead, (int, np.integer)) or lead < 0:
            raise RangeError(f"lead must be an integer >= 0, got {lead!r}")
        if any(len(s.index) <= lead for s in panel.series):
            raise DataError(f"every series must be longer than lead={lead}")
        opts = self._options(n_samples, steps, sampler, eta, None, seed)
        if values is not None:
            values = [np.asarray(v, dtype=np.float64) for v in values]
            shapes = [s.values.shape for s in panel.series]
            if [v.shape for v in values] != shapes:
                raise DataError(f"values must match the panel's series shapes {shapes[:3]}...")
        return self._sample_series(
            panel, opts, values=values, spread=spread, lead=int(lead), gate=gate
        )

    def _collect(
        self, panel: Panel, vals: list[np.ndarray], lead: int, seed: int
    ) -> tuple[list[tuple[np.ndarray, np.ndarray, int]], WindowBatch | None, list[tuple]]:
        """The windows of every series, and a batch of those with something to impute.

        Returns per series (values (W, K, L), starts, length after the lead), the batch
        (None when nothing is missing) and each batch row's (series, window) position.
        """
        stride = self.config.data.inference_stride
        per_series = []
        todo_v, todo_m, todo_c, todo_h, seeds, where = [], [], [], [], [], []
        for si, (s, v) in enumerate(zip(panel.series, vals, strict=True)):
            sw = self._series_windows(Series(s.key, s.index, v), stride, lead)
            valid = sw.valid[:, None, :]
            observed = ~np.isnan(sw.values) & valid  # (W, K, L)
            need = (~observed & valid).any(axis=(1, 2))
            per_series.append((sw.values, sw.starts, len(s.index) - lead))
            for wi in np.flatnonzero(need):
                todo_v.append(np.nan_to_num(sw.values[wi]))
                todo_m.append(observed[wi])
                todo_c.append(sw.calendar[wi])
                todo_h.append(sw.history[wi])
                seeds.append(_window_seed(seed, s.key, int(sw.starts[wi])))
                where.append((si, wi))
        if not where:
            return per_series, None, where
        history = np.stack(todo_h)  # (W_todo, K, H)
        batch = WindowBatch(
            torch.from_numpy(np.stack(todo_v)).float(),
            torch.from_numpy(np.stack(todo_m)),
            torch.from_numpy(np.stack(todo_c)).float(),
            seeds,
            torch.from_numpy(np.nan_to_num(history)).float(),
            torch.from_numpy(~np.isnan(history)),
        )
        return per_series, batch, where

    def _stitch(
        self,
        per_series: list[tuple[np.ndarray, np.ndarray, int]],
        where: list[tuple],
        drawn: np.ndarray | None,
    ) -> list[np.ndarray]:
        """Per-window draws (W_todo, n, K, L) → per series (n, K, T), normalised; windows
        not drawn are fully observed and carry their data."""
        lookup = {key: i for i, key in enumerate(where)}
        n = drawn.shape[1] if drawn is not None else 1
        out = []
        for si, (win, starts, length) in enumerate(per_series):
            full = np.repeat(np.nan_to_num(win)[:, None], n, axis=1)
            for wi in range(len(starts)):
                j = lookup.get((si, wi))
                if j is not None:
                    full[wi] = drawn[j]
            out.append(stitch(full, starts, length).astype(np.float64))  # (n, K, T)
        return out

    def _prior_series(
        self, panel: Panel, values: list[np.ndarray] | None = None, lead: int = 0
    ) -> list[np.ndarray]:
        """The network's prior (what its samples refine) per series → (K, T − lead),
        normalised: the learned prior's point imputation, or the interpolation."""
        assert self.net is not None
        vals = values if values is not None else [s.values for s in panel.series]
        per_series, batch, where = self._collect(panel, vals, lead, 0)
        drawn = None
        if batch is not None:
            drawn = prior_windows(self.net, batch, self.config.sample.batch_cells).numpy()
            drawn = drawn[:, None]  # (W_todo, 1, K, L)
        return [p[0] for p in self._stitch(per_series, where, drawn)]

    def _sample_series(
        self,
        panel: Panel,
        opts: SampleOptions,
        values: list[np.ndarray] | None = None,
        record: TrajectoryOptions | None = None,
        spread: float | None = None,
        lead: int = 0,
        gate: bool = True,
    ) -> Any:
        """Samples for every series of ``panel`` → list of (n, K, T - lead), original units.

        ``values`` overrides the panel's (K, T) arrays (evaluation hides cells this way).
        The first ``lead`` steps are history only (see :meth:`sample`).
        Windows with nothing to impute are not sampled. With ``record`` the answer is
        ``(samples, SeriesTrajectory)``: the reverse process' states, see :meth:`_trajectory`.
        ``gate``: recentre the samples by the model's gate (see :meth:`calibrate`).
        """
        assert self.net is not None and self.scaler is not None
        vals = values if values is not None else [s.values for s in panel.series]
        per_series, batch, where = self._collect(panel, vals, lead, opts.seed)
        drawn, priors = None, None
        if batch is not None:
            result = sample_windows(
                self.net,
                self.scheduler,
                batch,
                n_samples=opts.n_samples,
                steps=opts.steps,
                sampler=opts.sampler,
                eta=opts.eta,
                batch_cells=self.config.sample.batch_cells,
                clip=self._clip(),
                precision=self.config.sample.precision,
                spread=self.spread if spread is None else spread,
                **(
                    {"record": record.states, "record_samples": record.samples}
                    if record is not None
                    else {}
                ),
            )
            if record is not None:
                result, traj = result
            drawn = result.numpy()  # (W_todo, n, K, L)
            if gate and self.gate is not None:
                cells = self.config.sample.batch_cells
                priors = prior_windows(self.net, batch, cells).numpy()[:, None]
        vals = [v[:, lead:] for v in vals]  # what is returned: after the lead
        stitched = self._stitch(per_series, where, drawn)  # per series (n, K, T) normalised
        shifts = None  # per series (K, T): what the gate adds to every sample
        if priors is not None:
            assert self.gate is not None
            g = np.asarray(self.gate)
            bases = self._stitch(per_series, where, priors)
            shifts = [gate_shift(x, b[0], g) for x, b in zip(stitched, bases, strict=True)]
            stitched = [x + d[None] for x, d in zip(stitched, shifts, strict=True)]
        out = []
        specs = None if self.spec is None else [self.spec[n] for n in self.variables]
        for x, v in zip(stitched, vals, strict=True):
            samples = self.scaler.inverse(x)
            if specs is not None:  # every sample a value its variable can take
                samples = project(samples, specs)
            samples = np.where(~np.isnan(v)[None], v[None], samples)  # observed: bit-identical
            out.append(samples)
        if record is not None:
            lookup = {key: i for i, key in enumerate(where)}
            return out, self._trajectory(
                record, opts, per_series, vals, lookup, traj if where else None, shifts
            )
        return out

    def _trajectory(
        self,
        record: TrajectoryOptions,
        opts: SampleOptions,
        per_series: list[tuple[np.ndarray, np.ndarray, int]],
        vals: list[np.ndarray],
        lookup: dict[tuple[int, int], int],
        traj: Trajectory | None,
        shifts: list[np.ndarray] | None = None,
    ) -> SeriesTrajectory:
        """Window states → per-series (S, m, K, T) in original units, stitched like samples.

        A series spanning several windows takes each step from the window that owns it
        (as its samples do), so the last state equals the returned samples exactly.
        Windows that needed no sampling hold their data in every state.
        """
        assert self.scaler is not None
        if traj is None:  # nothing was sampled: every state is the data
            n_states = len(reverse_steps(self.scheduler, opts.sampler, opts.steps)) + 1
            steps = record_indices(n_states, record.states)
            levels = [0.0] * len(steps)
            states_w = None
        else:
            steps, levels = traj.steps, traj.noise_std
            states_w = traj.states.numpy()  # (W_todo, S, m, K, L)
        m = min(record.samples, opts.n_samples)
        n_states = len(reverse_steps(self.scheduler, opts.sampler, opts.steps)) + 1
        final = [i for i, st in enumerate(steps) if st == n_states - 1]  # the result, if kept
        out = []
        for si, (win, starts, length) in enumerate(per_series):
            full = np.broadcast_to(
                np.nan_to_num(win)[:, None, None], (len(starts), len(steps), m, *win.shape[1:])
            ).copy()  # (W, S, m, K, L)
            for wi in range(len(starts)):
                j = lookup.get((si, wi))
                if j is not None and states_w is not None:
                    full[wi] = states_w[j]
            states = stitch(full, starts, length).astype(np.float64)  # (S, m, K, T)
            if shifts is not None and final:  # the result carries the gate, as the samples
                states[final] += shifts[si][None, None]
            states = self.scaler.inverse(states)
            v = vals[si]
            out.append(np.where(np.isnan(v)[None, None], states, v[None, None]))  # (S, m, K, T)
        return SeriesTrajectory(out, list(steps), list(levels))

    # ------------------------------------------------------------------ impute
    def impute(
        self,
        df: pd.DataFrame,
        *,
        levels: Sequence[int] | None = None,
        n_samples: int | None = None,
        steps: int | None = None,
        sampler: str | None = None,
        eta: float | None = None,
        seed: int = 0,
        return_samples: bool = False,
        return_trajectory: bool = False,
        trajectory_steps: int | Sequence[int] | None = 6,
        trajectory_samples: int = 3,
        max_gap: int | None = None,
        fill_edges: bool = True,
    ) -> pd.DataFrame | tuple[pd.DataFrame, ...]:
        """Fill every missing cell of ``df``'s grid with the sample median.

        ``max_gap``: runs of more than this many missing steps of a variable stay open
        (value NaN, ``imputed`` False, no interval), as with pandas'
        ``interpolate(limit=...)``; ``fill_edges=False`` also leaves the runs before a
        variable's first and after its last observation open. Raw samples and the
        trajectory are not masked.

        Output (same layout as the input): observed values unchanged, a boolean
        ``<var>_imputed`` flag, and ``<var>_lo_<level>`` / ``<var>_hi_<level>`` bounds
        of the central intervals (equal to the value on observed cells). With
        ``return_samples`` also a frame of the raw samples; with ``return_trajectory``
        also the reverse process' states as a long frame (``step`` 0 = the starting
        noise .. ``steps`` = the result, ``noise_std``, ``sample``, value, ``imputed``;
        which states and samples: ``trajectory_steps``, ``trajectory_samples``, see
        :meth:`_record`). Extras follow the frame in that order:
        ``(frame, samples, trajectory)``. Observed cells hold their value in every state;
        the first state's other cells are the sampler's N(0, 1) noise in normalised
        units (so ``std`` of the variable in original units); its last state is exactly
        the returned samples. A series longer than the window is stitched per state the
        way its samples are (each step from the window whose centre is nearest).
        """
        opts = self._options(n_samples, steps, sampler, eta, levels, seed)
        record = self._record(return_trajectory, trajectory_steps, trajectory_samples)
        _check_max_gap(max_gap)  # before any sampling
        panel = self._panel(df)
        samples = self._sample_series(panel, opts, record=record)
        if record is not None:
            samples, traj = samples
        # samples carry the observed values, so bounds equal them there; the filled
        # values take them straight from the input, bit for bit
        imputed = [np.isnan(s.values) for s in panel.series]
        filled = [
            np.where(miss, np.median(smp, axis=0), s.values)
            for s, smp, miss in zip(panel.series, samples, imputed, strict=True)
        ]
        bounds = _bounds(samples, opts.levels)
        if max_gap is not None or not fill_edges:
            filled, imputed, bounds = _leave_open(
                panel, filled, imputed, bounds, max_gap, fill_edges
            )
        frame = impute_frame(panel, filled, imputed, bounds)
        index = [s.index for s in panel.series]
        extra = []
        if return_samples:
            extra.append(samples_frame(panel, samples, index))
        if record is not None:
            extra.append(
                trajectory_frame(panel, index, traj.states, traj.steps, traj.noise_std, imputed)
            )
        return (frame, *extra) if extra else frame

    # ------------------------------------------------------------------ forecast
    def forecast(
        self,
        df: pd.DataFrame,
        horizon: int,
        *,
        levels: Sequence[int] | None = None,
        n_samples: int | None = None,
        steps: int | None = None,
        sampler: str | None = None,
        eta: float | None = None,
        seed: int = 0,
        return_samples: bool = False,
        return_trajectory: bool = False,
        trajectory_steps: int | Sequence[int] | None = 6,
        trajectory_samples: int = 3,
    ) -> pd.DataFrame | tuple[pd.DataFrame, ...]:
        """Forecast ``horizon`` steps after each series' last timestamp.

        The model imputes a window whose last ``horizon`` steps are masked, conditioned
        on the ``window - horizon`` steps before and, with lags, on the
        ``history_steps`` before those (see :meth:`origin_window`). Output: per variable the median,
        the mean and the bounds of the requested central intervals. ``return_samples``
        and ``return_trajectory`` add frames as in :meth:`impute`; the trajectory covers
        the whole window the model saw (the context, observed cells fixed, then the
        horizon), so a fan chart can be animated from noise.
        """
        opts = self._options(n_samples, steps, sampler, eta, levels, seed)
        record = self._record(return_trajectory, trajectory_steps, trajectory_samples)
        horizon = self.check_horizon(horizon)
        panel = self._panel(df)
        assert self.freq is not None
        context, lead = self.window - horizon, self.history_steps
        # each series becomes one window after its last grid step (and its history)
        made = [self.origin_window(s, len(s.index) - 1, horizon) for s in panel.series]
        ext_panel = dataclasses.replace(panel, series=[e for e, _ in made])
        drawn = self._sample_series(
            ext_panel,
            opts,
            record=record,
            spread=self.task_spread("forecast"),
            lead=lead,
            gate=False,
        )
        if record is not None:
            drawn, traj = drawn
        ext = [Series(e.key, e.index[lead:], e.values[:, lead:]) for e, _ in made]  # windows
        pads = [p for _, p in made]
        samples = [smp[:, :, context:] for smp in drawn]
        index = [s.index[context:] for s in ext]
        frame = forecast_frame(
            panel,
            index,
            [np.median(smp, axis=0) for smp in samples],
            [smp.mean(axis=0) for smp in samples],
            _bounds(samples, opts.levels),
        )
        extra = []
        if return_samples:
            extra.append(samples_frame(panel, samples, index))
        if record is not None:  # the window without the padding in front of short histories
            extra.append(
                trajectory_frame(
                    panel,
                    [s.index[p:] for s, p in zip(ext, pads, strict=True)],
                    [st[..., p:] for st, p in zip(traj.states, pads, strict=True)],
                    traj.steps,
                    traj.noise_std,
                    [np.isnan(s.values[:, p:]) for s, p in zip(ext, pads, strict=True)],
                )
            )
        return (frame, *extra) if extra else frame

    def origin_window(self, series: Series, origin: int, horizon: int) -> tuple[Series, int]:
        """What a forecast from position ``origin`` of ``series`` is sampled from.

        The ``history + window - horizon`` grid steps up to and including ``origin``
        (nothing after it), then ``horizon`` empty future steps: (K, history + window).
        A short past is padded in front with missing cells that carry the calendar of
        the steps they stand for. Also returns how many padded steps fall inside the
        window (after the history), which trajectories leave out.
        """
        assert self.freq is not None
        k = series.values.shape[0]
        span = self.history_steps + self.window - horizon  # steps up to the origin
        lo = origin + 1 - span
        seen = series.values[:, max(lo, 0) : origin + 1]  # (K, <= span)
        idx = series.index[max(lo, 0) : origin + 1]
        if lo < 0:  # short history: missing cells in front, calendar of the real steps
            idx = _past_index(series.index, self.freq, -lo).append(idx)
            seen = np.concatenate([np.full((k, -lo), np.nan), seen], axis=1)
        fut = future_index(idx, self.freq, horizon)  # the grid's next steps, by calendar
        v = np.concatenate([seen, np.full((k, horizon), np.nan)], axis=1)
        return Series(series.key, idx.append(fut), v), max(-lo - self.history_steps, 0)

    def forward_process(
        self,
        df: pd.DataFrame,
        *,
        states: int | Sequence[int] = 6,
        seed: int = 0,
    ) -> pd.DataFrame:
        """The forward (noising) process on ``df``'s observed cells, for teaching.

        x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε in normalised units, de-normalised.
        ``states`` is a count of evenly spaced diffusion steps (0 = the clean data ..
        ``num_steps`` = almost pure noise) or a list of them. One ε per cell is shared by
        all steps, so the states show the marginals q(x_t | x_0) of one draw rather
        than a Markov chain. Long frame like the trajectory's: ``step`` = t,
        ``noise_std`` = sqrt(1 - ᾱ_t), ``sample`` 0; missing cells are left out.
        """
        panel = self._panel(df)
        assert self.scaler is not None
        n = self.scheduler.num_steps
        steps = record_indices(n + 1, states)
        abar = [1.0] + self.scheduler.alphas_cumprod.tolist()  # index t: ᾱ after t steps
        level = np.asarray([np.sqrt(1 - abar[t]) for t in steps])  # (S,)
        keep = np.sqrt(np.asarray([abar[t] for t in steps]))  # (S,)
        out = []
        for s in panel.series:
            rng = np.random.default_rng(_window_seed(seed, s.key, -1))
            x0 = self.scaler.transform(s.values)  # (K, T)
            eps = rng.standard_normal(x0.shape)
            xt = keep[:, None, None] * x0 + level[:, None, None] * eps  # (S, K, T)
            xt = self.scaler.inverse(xt)
            out.append(np.where(np.isnan(s.values), np.nan, xt)[:, None])  # (S, 1, K, T)
        frame = trajectory_frame(
            panel,
            [s.index for s in panel.series],
            out,
            steps,
            level.tolist(),
            [np.zeros(s.values.shape, bool) for s in panel.series],
        )
        return frame[frame[self.columns.value_col].notna()].reset_index(drop=True)

    def _record(
        self, wanted: bool, states: int | Sequence[int] | None, samples: int
    ) -> TrajectoryOptions | None:
        """Trajectory options, checked before any sampling; None when not ``wanted``.

        ``states``: how many evenly spaced states to keep (first = noise and last =
        result included), or their indices (0 = noise .. ``steps`` = result); None =
        every state. ``samples``: how many of the samples to follow (the first ones).
        Each state is a full copy of the grid, so the defaults keep the frame small.
        """
        if not wanted:
            return None
        if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 1:
            raise RangeError(f"trajectory_samples must be an integer >= 1, got {samples!r}")
        if states is None:
            return TrajectoryOptions(states=self.scheduler.num_steps + 1, samples=int(samples))
        if isinstance(states, (int, np.integer)) and not isinstance(states, bool):
            if states < 2:
                raise RangeError(f"trajectory_steps must be >= 2 (noise and result), got {states}")
            return TrajectoryOptions(states=int(states), samples=int(samples))
        try:
            picked = tuple(int(i) for i in states)
        except (TypeError, ValueError):
            raise RangeError(
                f"trajectory_steps must be a count or a list of state indices, got {states!r}"
            ) from None
        if not picked:
            raise RangeError("trajectory_steps is an empty list")
        return TrajectoryOptions(states=picked, samples=int(samples))

    # ------------------------------------------------------------------ evaluate
    def evaluate(
        self,
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
        opts = self._options(n_samples, steps, sampler, eta, levels, seed)
        panel = self._panel(df)
        assert self.scaler is not None
        rng = np.random.default_rng(seed)
        # round (half to even): the nearest count to the share asked for
        held = [hold_out(s.values, missing, rng, rounding="round") for s in panel.series]
        masked = [m for m, _ in held]  # per series (K, T), NaN where hidden
        hidden = [h for _, h in held]  # per series (K, T) bool
        t0 = time.perf_counter()
        samples = self._sample_series(panel, opts, values=masked)
        secs = time.perf_counter() - t0
        truth = [s.values for s in panel.series]
        means = np.asarray(self.scaler.mean)

        def flat(arrays: list[np.ndarray]) -> np.ndarray:
            return np.concatenate([a.reshape(*a.shape[:-2], -1) for a in arrays], axis=-1)

        smp, tru, msk = flat(samples), flat(truth), flat(hidden)
        tru = np.where(msk, tru, 0.0)
        norm = self.scaler.transform
        smp_n = flat([norm(x) for x in samples])
        tru_n = np.where(msk, flat([norm(x) for x in truth]), 0.0)
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
        for name, fn in baselines.BASELINES.items():
            filled = [fn(m, means) for m in masked]
            pred, pred_n = flat(filled), flat([norm(f) for f in filled])
            result["baselines"][name] = {
                "mae": metrics.mae(pred, tru, msk),
                "rmse": metrics.rmse(pred, tru, msk),
            }
            result["baselines_normalized"][name] = {
                "mae": metrics.mae(pred_n, tru_n, msk),
                "rmse": metrics.rmse(pred_n, tru_n, msk),
            }
        return result

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write config, metadata and safetensors weights to the directory ``path``.

        Written to a temporary sibling and renamed into place, so a crash never leaves
        a half-written model where a good one was expected.
        """
        self._require_fitted()
        assert self.net is not None and self.scaler is not None and self.freq is not None
        from safetensors.torch import save_file

        dest = Path(path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
        try:
            state = {k: v.detach().contiguous() for k, v in self.net.state_dict().items()}
            save_file(state, str(tmp / WEIGHTS_FILE))
            (tmp / CONFIG_FILE).write_text(self.config.to_json())
            meta = {
                "format_version": FORMAT_VERSION,
                "tsdiff_version": __version__,
                "variables": self.variables,
                "freq": self.freq.to_str(),
                "time_kind": self.freq.kind,
                "scaler": self.scaler.to_dict(),
                "value_range": self.value_range,
                "spread": self.spread,
                "forecast_spread": self.forecast_spread,
                "gate": self.gate,
                "spec": None
                if self.spec is None
                else {n: s.to_dict() for n, s in self.spec.items()},
                "history": self.history,
                "info": self.info,
                "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            (tmp / META_FILE).write_text(json.dumps(meta, indent=2, default=_json_default))
            os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes 0700
            if dest.exists():
                old = dest.with_name(f".{dest.name}.old{os.getpid()}")
                os.replace(dest, old)
                try:
                    os.replace(tmp, dest)
                except BaseException:  # the old model survives any failure
                    os.replace(old, dest)
                    raise
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return dest

    @classmethod
    def load(cls, path: str | Path) -> TSDiff:
        """Rebuild a model from its own saved config; no pickle is involved. ``path`` may
        also be the short name of a shipped model (see :mod:`tsdiff.pretrained`)."""
        from safetensors.torch import load_file

        p = locate(path)
        missing = [f for f in (WEIGHTS_FILE, CONFIG_FILE, META_FILE) if not (p / f).is_file()]
        if not p.is_dir() or missing:
            known = ", ".join(shipped()) or "none"
            raise ModelFileError(
                f"{p} is not a saved tsdiff model (missing: {', '.join(missing) or 'directory'}; "
                f"shipped models: {known})"
            )
        try:
            raw = json.loads((p / CONFIG_FILE).read_text())
            if isinstance(raw, dict) and isinstance(raw.get("network"), dict):
                # models saved before the learned prior existed used the interpolation
                raw["network"].setdefault("prior_layers", 0)
            config = TSDiffConfig.from_dict(raw)
            meta = json.loads((p / META_FILE).read_text())
            if meta.get("format_version") != FORMAT_VERSION:
                raise ModelFileError(
                    f"{p}: unsupported model format {meta.get('format_version')!r}"
                )
            model = cls(config)
            model.variables = list(meta["variables"])
            model.freq = Freq.parse(meta["freq"], meta["time_kind"])
            model.scaler = Scaler.from_dict(meta["scaler"])
            vr = meta.get("value_range")
            model.value_range = (list(vr[0]), list(vr[1])) if vr else None
            model.spread = float(meta.get("spread", 1.0))
            fs = meta.get("forecast_spread")
            model.forecast_spread = None if fs is None else float(fs)
            sp = meta.get("spec")
            model.spec = None if sp is None else {n: VariableSpec(**d) for n, d in sp.items()}
            g = meta.get("gate")
            model.gate = None if g is None else [float(x) for x in g]
            model.history = list(meta.get("history", []))
            model.info = dict(meta.get("info", {}))
            net = Denoiser(config.network, len(model.variables), config.diffusion.prediction)
            try:
                weights = load_file(str(p / WEIGHTS_FILE))
            except Exception as e:  # safetensors has its own error type for bad files
                raise ModelFileError(f"{p / WEIGHTS_FILE}: cannot read the weights: {e}") from e
            net.load_state_dict(weights)
        except ModelFileError:
            raise
        except (KeyError, ValueError, RuntimeError) as e:
            raise ModelFileError(f"{p}: corrupt or incompatible model files: {e}") from e
        net.eval()
        model.net = net
        return model


def _bounds(
    samples: list[np.ndarray], levels: Sequence[int]
) -> dict[int, tuple[list[np.ndarray], list[np.ndarray]]]:
    """Central-interval bounds per level, per series: {level: ([lo (K,T)], [hi (K,T)])}."""
    out: dict[int, tuple[list[np.ndarray], list[np.ndarray]]] = {}
    for lv in levels:
        pairs = [metrics.interval(smp, lv) for smp in samples]
        out[lv] = ([lo for lo, _ in pairs], [hi for _, hi in pairs])
    return out


def _leave_open(
    panel: Panel,
    filled: list[np.ndarray],
    imputed: list[np.ndarray],
    bounds: dict[int, tuple[list[np.ndarray], list[np.ndarray]]],
    max_gap: int | None,
    fill_edges: bool,
) -> tuple[list[np.ndarray], list[np.ndarray], dict[int, tuple[list, list]]]:
    """Filled values, flags and interval bounds with long gaps (and edges) left open."""
    gaps = [open_gaps(s.values, max_gap, fill_edges) for s in panel.series]  # (K, T) each
    filled = [np.where(g, np.nan, f) for f, g in zip(filled, gaps, strict=True)]
    imputed = [i & ~g for i, g in zip(imputed, gaps, strict=True)]
    out = {
        lv: (
            [np.where(g, np.nan, a) for a, g in zip(lo, gaps, strict=True)],
            [np.where(g, np.nan, a) for a, g in zip(hi, gaps, strict=True)],
        )
        for lv, (lo, hi) in bounds.items()
    }
    return filled, imputed, out


def _check_max_gap(max_gap: Any) -> None:
    if max_gap is not None and (
        isinstance(max_gap, bool) or not isinstance(max_gap, (int, np.integer)) or max_gap < 0
    ):
        raise RangeError(f"max_gap must be an integer >= 0, got {max_gap!r}")


def _window_seed(seed: int, key: Any, start: int) -> int:
    """A noise seed per (call seed, series, window) that is the same in every process."""
    h = hashlib.blake2b(f"{seed}|{key}|{start}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & (2**63 - 1)


def _past_index(index: pd.Index, freq: Freq, n: int) -> pd.Index:
    """The ``n`` grid steps before ``index[0]``."""
    first = index[0]
    step = freq.step
    return pd.Index([first - step * (n - i) for i in range(n)])


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
