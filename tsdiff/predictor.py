"""A fitted model's predicting half: impute, forecast, sample, save and load.

Loadable and usable without the training code (:mod:`tsdiff.estimator` fills a
predictor's state when it fits; :meth:`Predictor.load` restores it from disk). The
sampling pipeline itself lives in :mod:`tsdiff.inference`, windows in
:mod:`tsdiff.windowing`, the file format in :mod:`tsdiff.serialization`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from tsdiff.config import TSDiffConfig
from tsdiff.covariates import Covariates, grid_with_covariates
from tsdiff.data import (
    Columns,
    Freq,
    Panel,
    Scaler,
    forecast_frame,
    impute_frame,
    samples_frame,
    trajectory_frame,
)
from tsdiff.device import module_device, resolve_device
from tsdiff.errors import CalibrationWarning, DataError, NotFittedError, RangeError
from tsdiff.forecasting import draw_forecasts, lead_gate
from tsdiff.gap_gate import GapGate
from tsdiff.inference import (
    check_max_gap,
    interval_bounds,
    leave_open,
    sample_series,
    trajectory_options,
)
from tsdiff.network import Denoiser
from tsdiff.results import ForecastResult, ImputeResult
from tsdiff.samplers.options import SampleOptions, resolve_options
from tsdiff.scheduler import NoiseScheduler
from tsdiff.spec import VariableSpec
from tsdiff.transforms import Normalizer, network_bounds, uses_transforms
from tsdiff.windowing import WindowShape


class Predictor:
    """Fitted state (network, variables, grid, scaler, calibration, spec) and the calls
    that use it. ``TSDiff`` adds fitting on top; a predictor alone only predicts."""

    def __init__(self, config: TSDiffConfig | None = None) -> None:
        self.config = config or TSDiffConfig()
        self.net: Denoiser | None = None
        self.variables: list[str] = []
        self.freq: Freq | None = None
        self.scaler: Scaler | None = None  # z-score of raw values (what metrics use)
        # z-score of transformed values, when a variable has a transform (tsdiff.transforms)
        self.transformed_scaler: Scaler | None = None
        self.scheduler = NoiseScheduler(self.config.diffusion)
        self.epoch_log: list[dict[str, Any]] = []  # the training's per-epoch records
        self.value_range: tuple[list[float], list[float]] | None = None  # normalised (lo, hi)
        self.spread = 1.0  # calibration factor of the samples' spread (see calibrate)
        # per-variable factors for imputation (train.spread_per_variable); None: spread
        self.variable_spread: list[float] | None = None
        # the same for forecasts (tsdiff.backtest.calibrate_forecast); None: use spread
        self.forecast_spread: float | None = None
        # per-variable weight of the model's median against the prior it refines, in
        # imputations, chosen on validation cells (see calibrate); None: the model alone
        self.gate: list[float] | None = None
        # the same for forecasts, weighed against seasonal naive on validation forecast
        # origins (train.forecast_gate); None: the model alone
        self.forecast_gate: list[float] | None = None
        # the same for leads beyond the first chunk_length (forecasts continued window by
        # window), fitted on longer validation forecasts; None: forecast_gate at every lead
        self.forecast_gate_far: list[float] | None = None
        # per variable: the gate weighs the median against the series' interpolation, not
        # the network's prior (validation found it better there); None: the prior
        self.gate_interpolation: list[bool] | None = None
        # the gate and its base per variable and distance to the nearest observation
        # (train.gate_by_gap, tsdiff.gap_gate); used in place of gate when set
        self.gap_gate: GapGate | None = None
        # the samples' weight against the quantile prior's quantiles in imputations
        # (tsdiff.quantile_blend), fitted on validation cells; None: the samples alone
        self.quantile_blend: float | None = None
        # per central level, the factor an imputation's interval is widened by about its
        # median to cover what it claims on validation cells (see calibration.
        # fit_interval_scale); None: the samples' own quantiles
        self.interval_scale: dict[int, float] | None = None
        # the same for forecasts, fitted on forecasts with the forecast spread
        self.forecast_interval_scale: dict[int, float] | None = None
        # what each variable can be (tsdiff.spec); every sample is projected onto it
        self.spec: dict[str, VariableSpec] | None = None
        # inputs read beside the calendar, never predicted (tsdiff.covariates); None: none
        self.covariates: Covariates | None = None
        self.info: dict[str, Any] = {}

    # ------------------------------------------------------------------ state
    @property
    def columns(self) -> Columns:
        d = self.config.data
        return Columns(d.id_col, d.time_col, d.var_col, d.value_col)

    @property
    def window(self) -> int:
        return self.config.data.window

    @property
    def history_steps(self) -> int:
        """Steps before each window the network reads (its longest lag; 0 without lags)."""
        return self.config.network.history_steps

    @property
    def fitted(self) -> bool:
        return self.net is not None

    def require_fitted(self) -> None:
        if not self.fitted:
            raise NotFittedError("this TSDiff model is not fitted: call fit() or TSDiff.load()")

    @property
    def normalizer(self) -> Scaler | Normalizer:
        """Raw values ↔ the network's space: the scaler, or with transforms a
        :class:`~tsdiff.transforms.Normalizer` (transform, then z-score)."""
        assert self.scaler is not None
        specs = None if self.spec is None else [self.spec[v] for v in self.variables]
        if specs is None or not uses_transforms(specs) or self.transformed_scaler is None:
            return self.scaler
        return Normalizer(specs, self.transformed_scaler)

    def support(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Each variable's bounds in the network's space ((K,), (K,); −inf / inf where
        open), where the calibration clips samples as :func:`tsdiff.spec.project` clips
        the served ones; None without a spec."""
        if self.spec is None:
            return None
        return network_bounds(self.normalizer, [self.spec[v] for v in self.variables])

    def window_shape(self) -> WindowShape:
        assert self.freq is not None
        return WindowShape(
            self.normalizer, self.freq, self.window, self.history_steps, self.covariates
        )

    def clip_bounds(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Normalised (lo, hi) of the clean-value estimates while sampling, or None."""
        if self.value_range is None or not self.config.sample.clip:
            return None
        return torch.tensor(self.value_range[0]), torch.tensor(self.value_range[1])

    def panel(
        self,
        df: pd.DataFrame,
        *,
        layout: str = "auto",
        future_df: pd.DataFrame | None = None,
        static_df: pd.DataFrame | None = None,
        horizon: int = 0,
    ) -> Panel:
        """``df`` checked against the model and put on its grid (what ``sample`` takes),
        with its covariates (see :mod:`tsdiff.covariates`): known-future ones from
        ``df`` and, for the ``horizon`` steps to forecast, from ``future_df``, which
        extends each series by those steps; static ones from ``df`` or ``static_df``."""
        self.require_fitted()
        assert self.freq is not None
        return grid_with_covariates(
            df,
            self.covariates,
            columns=self.columns,
            freq=self.freq,
            agg=self.config.data.agg,
            static_df=static_df,
            future_df=future_df,
            horizon=horizon,
            layout=layout,
            variables=self.variables,
            time_kind=self.freq.kind,
        )

    def options(self, **per_call: Any) -> SampleOptions:
        """Per-call sampling options over the config's defaults, checked (see
        :mod:`tsdiff.samplers.options`).

        The calibration factors were fitted on samples drawn with the config's sampler,
        steps and eta; other ones keep them but draw differently spread samples, so a
        :class:`~tsdiff.errors.CalibrationWarning` says so (the shipped vitals model's
        50-step DDPM draws: test MAE 0.340 / CRPS 0.417 against 0.236 / 0.265 with its
        4-step DDIM, ``benchmarks/results/shipped-physionet-vitals-ddpm-32x50.md``)."""
        opts = resolve_options(self.config.sample, self.scheduler.num_steps, **per_call)
        moved = self._sampler_caveat(opts)
        if moved:
            warnings.warn(CalibrationWarning(moved), stacklevel=2)
        return opts

    def caveats(self, task: str, **per_call: Any) -> list[str]:
        """What a call of ``task`` ("impute" or "forecast") with these sampling options
        (as :meth:`options` takes them) warns about, as text: for a caller that answers
        over a network rather than a console (the service returns them with the
        result). Thread-safe, unlike catching the warnings: it recomputes them."""
        if task not in ("impute", "forecast"):
            raise RangeError(f"task must be 'impute' or 'forecast', got {task!r}")
        opts = resolve_options(self.config.sample, self.scheduler.num_steps, **per_call)
        found = [self._sampler_caveat(opts)]
        if task == "forecast":
            found.append(self._forecast_caveat())
        return [c for c in found if c]

    def _sampler_caveat(self, opts: SampleOptions) -> str | None:
        """The calibration's sampler moved by a call's options (None: it was not)."""
        if not self.is_calibrated:
            return None
        fitted = resolve_options(self.config.sample, self.scheduler.num_steps)
        names = ("sampler",) if opts.sampler == "ddpm" else ("sampler", "steps", "eta")
        moved = [
            f"{k} {getattr(fitted, k)!r} -> {getattr(opts, k)!r}"
            for k in names
            if getattr(opts, k) != getattr(fitted, k)
        ]
        if not moved:
            return None
        return (
            f"the model's calibration was fitted for {fitted.sampler} with "
            f"{fitted.steps} steps (eta {fitted.eta}); sampling with "
            f"{', '.join(moved)} keeps its factors, so intervals may not cover "
            "what they claim: set config.sample and recalibrate to change it"
        )

    def _forecast_caveat(self) -> str | None:
        """A model trained to impute only, asked to forecast (None: it was trained to)."""
        if self.config.train.forecast_share > 0:
            return None
        return (
            "this model was trained to impute only (no forecast masks in its training "
            "mix: tsdiff train --task impute, or an imputation profile): its forecasts "
            "come from a network never shown a masked future; train with --task both "
            "to forecast"
        )

    def imputation_gate(self) -> GapGate | None:
        """The gate imputations are recentred by: the one per distance to the nearest
        observation, or the per-variable gate of older fits as a table of one bucket
        (its bases from ``gate_interpolation``); None: the model alone."""
        if self.gap_gate is not None or self.gate is None:
            return self.gap_gate
        use = self.gate_interpolation or [False] * len(self.gate)
        return GapGate(
            edges=(1,),
            weight=tuple((float(a),) for a in self.gate),
            interpolation=tuple((bool(u),) for u in use),
        )

    def clear_imputation_calibration(self) -> None:
        """Drop what the imputation calibration fits (gates, per-variable spreads, blend,
        interval factors), before it is fitted anew; the spread and forecasts' stay."""
        self.gate, self.gap_gate, self.gate_interpolation = None, None, None
        self.variable_spread, self.quantile_blend, self.interval_scale = None, None, None

    @property
    def is_calibrated(self) -> bool:
        """Whether any calibration factor or gate is fitted (all off: samples as drawn)."""
        fitted = (
            self.variable_spread,
            self.forecast_spread,
            self.gate,
            self.gap_gate,
            self.quantile_blend,
            self.forecast_gate,
            self.forecast_gate_far,
            self.interval_scale,
            self.forecast_interval_scale,
        )
        return self.spread != 1.0 or any(f is not None for f in fitted)

    def check_horizon(self, horizon: Any) -> int:
        """``horizon`` as an int >= 1, or :class:`RangeError`. Horizons beyond one window
        (``window - 1``) are continued window by window (:mod:`tsdiff.forecasting`)."""
        if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)):
            raise RangeError(f"horizon must be an integer, got {horizon!r}")
        if horizon < 1:
            raise RangeError(f"horizon must be >= 1, got {horizon}")
        return int(horizon)

    def task_spread(self, task: str) -> float | list[float]:
        """The calibration factor samples get for ``task`` ("impute" or "forecast"):
        a number, or one per variable (imputation with ``variable_spread``)."""
        if task == "forecast":
            return self.spread if self.forecast_spread is None else self.forecast_spread
        return self.spread if self.variable_spread is None else self.variable_spread

    def task_interval_scale(self, task: str) -> dict[int, float] | None:
        """The interval factors of ``task`` ("impute" or "forecast"); None: the samples'
        own quantiles (see :func:`tsdiff.calibration.fit_interval_scale`)."""
        return self.forecast_interval_scale if task == "forecast" else self.interval_scale

    # ------------------------------------------------------------------ sampling
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

        For evaluations, backtests and benchmarks that score samples themselves:
        ``values`` replaces the series' (K, T) arrays, e.g. with held-out cells set to
        NaN. Cells observed in what the model is given carry their values in every
        sample. ``spread`` overrides the imputation spread (1.0: uncalibrated samples).
        The first ``lead`` steps of every series are context only: a model with lags
        reads them as history; they are neither imputed nor returned. ``gate``: recentre
        imputed cells by the model's gate (see ``calibrate``); forecasts pass False.
        """
        if spread is not None and not (np.isfinite(spread) and spread > 0):
            raise RangeError(f"spread must be a finite number > 0, got {spread!r}")
        if isinstance(lead, bool) or not isinstance(lead, (int, np.integer)) or lead < 0:
            raise RangeError(f"lead must be an integer >= 0, got {lead!r}")
        if any(len(s.index) <= lead for s in panel.series):
            raise DataError(f"every series must be longer than lead={lead}")
        opts = self.options(n_samples=n_samples, steps=steps, sampler=sampler, eta=eta, seed=seed)
        if values is not None:
            values = [np.asarray(v, dtype=np.float64) for v in values]
            shapes = [s.values.shape for s in panel.series]
            if [v.shape for v in values] != shapes:
                raise DataError(f"values must match the panel's series shapes {shapes[:3]}...")
        drawn = sample_series(
            self, panel, opts, values=values, spread=spread, lead=int(lead), gate=gate
        )
        return drawn.samples

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
        static_df: pd.DataFrame | None = None,
    ) -> ImputeResult:
        """Fill every missing cell of ``df``'s grid with the sample median.

        ``.frame`` (the input's layout): observed values unchanged, a boolean
        ``<var>_imputed`` flag, and ``<var>_lo_<level>`` / ``<var>_hi_<level>`` bounds of
        the central intervals (equal to the value on observed cells). ``max_gap``: runs
        of more than this many missing steps of a variable stay open (NaN, not imputed,
        no interval), as with pandas' ``interpolate(limit=...)``; ``fill_edges=False``
        also leaves the runs before a variable's first and after its last observation
        open. ``return_samples`` fills ``.samples``; ``return_trajectory`` fills
        ``.trajectory``: the reverse process' states as a long frame (``step`` 0 = the
        starting noise .. ``steps`` = the result, ``noise_std``, ``sample``, value,
        ``imputed``; which: ``trajectory_steps``, ``trajectory_samples``). Observed cells
        hold their value in every state; the first state's other cells are N(0, 1) noise
        in normalised units; the last is exactly the samples. Neither is gap-masked.
        A model with static covariates reads them from ``df``'s constant columns or
        ``static_df``; known-future ones are columns of ``df`` (inputs only: the output
        has no covariate).
        """
        opts = self.options(
            n_samples=n_samples, steps=steps, sampler=sampler, eta=eta, levels=levels, seed=seed
        )
        num = self.scheduler.num_steps
        record = trajectory_options(num, return_trajectory, trajectory_steps, trajectory_samples)
        check_max_gap(max_gap)  # before any sampling
        panel = self.panel(df, static_df=static_df)
        drawn = sample_series(self, panel, opts, record=record)
        samples, traj = drawn.samples, drawn.trajectory
        # samples carry the observed values, so bounds equal them there; the filled
        # values take them straight from the input, bit for bit
        imputed = [np.isnan(s.values) for s in panel.series]
        filled = [
            np.where(miss, np.median(smp, axis=0), s.values)
            for s, smp, miss in zip(panel.series, samples, imputed, strict=True)
        ]
        observed = [~m for m in imputed]
        bounds = interval_bounds(samples, opts.levels, self, observed)
        if max_gap is not None or not fill_edges:
            opened = leave_open(panel, filled, imputed, bounds, max_gap, fill_edges)
            filled, imputed, bounds = opened
        index = [s.index for s in panel.series]
        return ImputeResult(
            frame=impute_frame(panel, filled, imputed, bounds),
            samples=samples_frame(panel, samples, index) if return_samples else None,
            trajectory=None
            if traj is None
            else trajectory_frame(panel, index, traj.states, traj.steps, traj.noise_std, imputed),
        )

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
        future_df: pd.DataFrame | None = None,
        static_df: pd.DataFrame | None = None,
    ) -> ForecastResult:
        """Forecast ``horizon`` steps after each series' last timestamp.

        The model imputes a window whose last ``horizon`` steps are masked, conditioned
        on the ``window - horizon`` steps before and, with lags, on the
        ``history_steps`` before those (see :func:`tsdiff.windowing.origin_window`).
        A longer horizon continues each sample path window by window, conditioned on
        its own earlier draws (:mod:`tsdiff.forecasting`); it has no trajectory.
        ``.frame``: per variable the median, the mean and the bounds of the requested
        central intervals. ``.samples`` and ``.trajectory`` as in :meth:`impute`; the
        trajectory covers the whole window the model saw (the context, observed cells
        fixed, then the horizon), so a fan chart can be animated from noise. A model
        with known-future covariates needs them for every step to forecast in
        ``future_df`` (id, time, one column each); static ones come from ``df``'s
        constant columns or ``static_df`` (see :mod:`tsdiff.covariates`).
        """
        opts = self.options(
            n_samples=n_samples, steps=steps, sampler=sampler, eta=eta, levels=levels, seed=seed
        )
        num = self.scheduler.num_steps
        record = trajectory_options(num, return_trajectory, trajectory_steps, trajectory_samples)
        horizon = self.check_horizon(horizon)
        untrained = self._forecast_caveat()
        if untrained:
            warnings.warn(CalibrationWarning(untrained), stacklevel=2)
        if record is not None and horizon > self.window - 1:
            raise RangeError(
                f"a trajectory is recorded for horizons up to {self.window - 1} (one window); "
                f"horizon {horizon} is continued window by window"
            )
        panel = self.panel(df, future_df=future_df, static_df=static_df, horizon=horizon)
        ext = horizon if self.covariates and self.covariates.future else 0  # future covariates
        last = [[len(s.index) - 1 - ext] for s in panel.series]  # one forecast after each series
        spread = self.task_spread("forecast")
        drawn = draw_forecasts(
            self,
            panel,
            last,
            horizon,
            opts,
            spread=spread,
            key_by_origin=False,
            record=record,
            gate=lead_gate(self, horizon),
        )
        samples = drawn.samples
        frame = forecast_frame(
            panel,
            drawn.index,
            [np.median(smp, axis=0) for smp in samples],
            [smp.mean(axis=0) for smp in samples],
            interval_bounds(samples, opts.levels, self, task="forecast"),
        )
        traj, trajectory, fw = drawn.trajectory, None, drawn.windows
        if traj is not None:  # the window without the padding in front of short histories
            cut = [fw.lead + p for p in fw.pads]
            trajectory = trajectory_frame(
                panel,
                [e.index[c:] for e, c in zip(fw.panel.series, cut, strict=True)],
                [st[..., p:] for st, p in zip(traj.states, fw.pads, strict=True)],
                traj.steps,
                traj.noise_std,
                [np.isnan(e.values[:, c:]) for e, c in zip(fw.panel.series, cut, strict=True)],
            )
        return ForecastResult(
            frame=frame,
            samples=samples_frame(panel, samples, drawn.index) if return_samples else None,
            trajectory=trajectory,
        )

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path, *, weights_dtype: str = "float32") -> Path:
        """Write config, metadata and safetensors weights to the directory ``path``,
        atomically: the old model there survives any failure. ``weights_dtype``
        "float16" halves the weights file (it loads back as float32)."""
        from tsdiff.serialization import save_model

        self.require_fitted()
        return save_model(self, path, weights_dtype)

    @classmethod
    def load(cls, path: str | Path, *, device: str | torch.device | None = "cpu") -> Any:
        """Rebuild a model from its own saved config; no pickle is involved. ``path`` may
        also be the short name of a shipped model (see :mod:`tsdiff.pretrained`).
        ``device``: where it predicts (``auto``, ``cpu``, ``cuda``; see :meth:`to`)."""
        from tsdiff.serialization import load_model

        return load_model(cls, path).to(device)

    # ------------------------------------------------------------------ device
    @property
    def device(self) -> torch.device:
        """Where the network runs (the CPU before fitting)."""
        return module_device(self.net) if self.net is not None else torch.device("cpu")

    def to(self, device: str | torch.device | None) -> Any:
        """Run the network on ``device`` (``auto``: CUDA when present, else the CPU) and
        return this model. Samples depend on the seed, not the device: noise is drawn on
        the CPU, so a seed gives the same samples on any device up to float rounding."""
        target = resolve_device(device)
        if self.net is not None:
            self.net.to(target)
        return self
