"""Forecast sample paths from origins, for any horizon.

A horizon that fits in one window (``horizon <= window - 1``) is one sampler call over
the forecast-origin windows (:func:`tsdiff.windowing.forecast_windows`). A longer one
is continued window by window: each of the ``n`` sample paths is extended by a chunk
of ``chunk_length`` steps drawn from a window whose context is the observed past *and
that path's own earlier draws* (its history and lags too), so every sample stays one
coherent trajectory rather than a set of independent marginals. Cost: the first chunk
is one window per forecast with ``n`` samples; each further chunk is ``n`` windows of
one sample per forecast — about ``ceil(horizon / chunk) × n`` window-samples per
forecast, each ``steps`` network calls.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tsdiff.baselines import seasonal_naive_forecast
from tsdiff.calibration import gate_shift, rescale
from tsdiff.covariates import padded_slice
from tsdiff.data import Panel, Series, future_index
from tsdiff.inference import SeriesTrajectory, TrajectoryOptions, sample_series
from tsdiff.samplers import get_sampler
from tsdiff.samplers.options import SampleOptions
from tsdiff.spec import project
from tsdiff.windowing import ForecastWindows, forecast_windows

if TYPE_CHECKING:  # pragma: no cover
    from tsdiff.predictor import Predictor


@dataclass(frozen=True)
class ForecastDraws:
    """Samples of every (series, origin) forecast, in the order of ``where``.

    samples: per forecast (n, K, H), original units; truth: the observed steps after
    each origin (K, ≤ H), NaN where missing; index: each forecast's H timestamps;
    windows: the first chunk's windows (what a trajectory covers); trajectory: the
    first chunk's reverse process, when recorded (only for one-window horizons).
    """

    samples: list[np.ndarray]
    where: list[tuple[Any, int, Any]]
    truth: list[np.ndarray]
    index: list[pd.Index]
    windows: ForecastWindows
    trajectory: SeriesTrajectory | None = None


def chunk_length(model: Predictor) -> int:
    """Steps each continuation window forecasts: the longest future the training masks
    hide (``train.max_forecast_fraction`` of the window), leaving the rest as context."""
    frac = model.config.train.max_forecast_fraction
    return min(model.window - 1, max(1, int(round(model.window * frac))))


def first_chunk(model: Predictor, horizon: int) -> int:
    """Steps the first window forecasts: the whole horizon when a window holds it, else
    :func:`chunk_length` (the rest continues window by window)."""
    return chunk_length(model) if horizon > model.window - 1 else horizon


def lead_gate(model: Predictor, horizon: int) -> np.ndarray | None:
    """(K, ``horizon``) the forecast gate's α per variable and lead: ``forecast_gate``
    over the first :func:`chunk_length` leads (as far as its validation forecasts
    reached), ``forecast_gate_far`` beyond them (fitted on validation forecasts
    continued window by window; a one-window horizon longer than a chunk takes it for
    its later leads too); None where the model stands alone at every lead."""
    near, far = model.forecast_gate, model.forecast_gate_far
    k = len(model.variables)
    a = np.ones((k, horizon)) if near is None else np.repeat(np.asarray(near)[:, None], horizon, 1)
    if far is not None:
        a[:, chunk_length(model) :] = np.asarray(far, dtype=np.float64)[:, None]
    return None if np.all(a == 1.0) else a


def draw_forecasts(
    model: Predictor,
    panel: Panel,
    origins: Sequence[Sequence[int]],
    horizon: int,
    opts: SampleOptions,
    *,
    spread: float,
    key_by_origin: bool,
    record: TrajectoryOptions | None = None,
    gate: Sequence[float] | np.ndarray | None = None,
) -> ForecastDraws:
    """Sample ``horizon`` steps after ``origins[i]`` (positions) of ``panel.series[i]``.

    ``spread`` scales the samples about their median (the forecast calibration);
    ``key_by_origin``: see :func:`~tsdiff.windowing.forecast_windows`. ``record`` asks
    for the trajectory, which only a one-window horizon has. ``gate`` (K,): recentre
    each forecast's samples on ``α·median + (1 − α)·seasonal naive`` per variable
    (:func:`gate_paths`; ``model.forecast_gate`` where the model forecasts); a recorded
    trajectory ends at those samples, as an imputation's ends at its gated samples.

    A horizon longer than a window is drawn unscaled, chunk after chunk, and the whole
    paths are scaled once at the end: that is what the spread was fitted for (uncalibrated
    forecasts scaled about their median), whereas scaling each chunk would compound, as
    every chunk inherits the spread its context was already given.
    """
    shape = model.window_shape()
    long = horizon > model.window - 1
    first = first_chunk(model, horizon)
    fw = forecast_windows(shape, panel, origins, first, key_by_origin=key_by_origin)
    drawn = sample_series(
        model,
        fw.panel,
        opts,
        record=record,
        spread=1.0 if long else spread,
        lead=fw.lead,
        gate=False,
    )
    paths = [d[:, :, fw.context :] for d in drawn.samples]  # per forecast (n, K, first)
    by_key = {s.key: s for s in panel.series}
    past = [by_key[key] for key, _, _ in fw.where]  # each forecast's own series
    cuts = [c for _, c, _ in fw.where]
    if not long:
        traj = drawn.trajectory
        if gate is not None:
            paths = gate_paths(model, paths, past, cuts, gate)
            if traj is not None:
                traj = _final_state_as(traj, paths, fw.context, _last_state(model, opts))
        return ForecastDraws(paths, fw.where, fw.truth, fw.index, fw, traj)
    done = first
    while done < horizon:
        h = min(first, horizon - done)  # chunk_length(model), as the first chunk
        paths = continue_paths(model, past, cuts, fw, paths, h, opts)
        done += h
    paths = [scale_paths(model, p, spread) for p in paths]  # each (n, K, horizon)
    if gate is not None:  # a shift: it commutes with the scaling about the median
        paths = gate_paths(model, paths, past, cuts, gate)
    truth = [s.values[:, c + 1 : c + 1 + horizon] for s, c in zip(past, cuts, strict=True)]
    index = [
        future_index(s.index[: c + 1], panel.freq, horizon) for s, c in zip(past, cuts, strict=True)
    ]
    return ForecastDraws(paths, fw.where, truth, index, fw)


def continue_paths(
    model: Predictor,
    past: list[Series],
    cuts: list[int],
    fw: ForecastWindows,
    paths: list[np.ndarray],
    h: int,
    opts: SampleOptions,
) -> list[np.ndarray]:
    """Every path extended by ``h`` steps, each drawn after its own earlier steps
    (unscaled: :func:`scale_paths` calibrates the whole paths afterwards)."""
    n = paths[0].shape[0]
    ext: list[Series] = []
    ends = []
    for f, (s, c, drawn) in enumerate(zip(past, cuts, paths, strict=True)):
        done = drawn.shape[-1]
        idx = s.index[: c + 1]
        idx = idx.append(future_index(idx, fw.panel.freq, done + h))  # (c+1+done+h,)
        # known-future covariates run on to the chunk's end; its values are to be drawn
        cov = None if s.covariates is None else padded_slice(s.covariates, 0, len(idx))
        blank = np.full((s.values.shape[0], h), np.nan)
        key = fw.panel.series[f].key
        for j in range(n):
            values = np.concatenate([s.values[:, : c + 1], drawn[j], blank], axis=1)
            ext.append(
                dataclasses.replace(s, key=(key, j), index=idx, values=values, covariates=cov)
            )
            ends.append([c + done])  # the path's last drawn step
    step = forecast_windows(
        model.window_shape(),
        dataclasses.replace(fw.panel, series=ext),
        ends,
        h,
        key_by_origin=True,
    )
    one = SampleOptions(1, opts.steps, opts.sampler, opts.eta, opts.levels, opts.seed)
    got = sample_series(model, step.panel, one, spread=1.0, lead=step.lead, gate=False)
    chunk = [g[0, :, step.context :] for g in got.samples]  # per (forecast, path) (K, h)
    return [
        np.concatenate([drawn, np.stack(chunk[f * n : (f + 1) * n])], axis=-1)  # (n, K, ·+h)
        for f, drawn in enumerate(paths)
    ]


def scale_paths(model: Predictor, paths: np.ndarray, spread: float) -> np.ndarray:
    """``paths`` (n, K, H) scaled about their per-step median by ``spread``, in the
    network's space (where the sampler scales) and brought back onto what each variable
    can take: the forecast calibration, applied as it was fitted."""
    if spread == 1.0 or paths.shape[0] < 2:
        return paths
    norm = model.normalizer
    out = norm.inverse(rescale(norm.transform(paths), spread, axis=0))
    if model.spec is not None:
        out = project(out, [model.spec[v] for v in model.variables])
    return out


def naive_bases(
    model: Predictor, past: Sequence[Series], cuts: Sequence[int], horizon: int
) -> list[np.ndarray]:
    """Per forecast (K, ``horizon``): the seasonal naive forecast after position
    ``cuts[i]`` of ``past[i]``, with the model's season (0: the last value), in the
    network's space; NaN for a variable that series never showed."""
    season = int(model.config.network.season or 0)
    return [
        model.normalizer.transform(seasonal_naive_forecast(s.values[:, : c + 1], season, horizon))
        for s, c in zip(past, cuts, strict=True)
    ]


def gate_paths(
    model: Predictor,
    paths: Sequence[np.ndarray],
    past: Sequence[Series],
    cuts: Sequence[int],
    gate: Sequence[float] | np.ndarray,
) -> list[np.ndarray]:
    """Each forecast's paths (n, K, H) moved, in the network's space, so that their
    median becomes ``α·median + (1 − α)·seasonal naive`` (``gate`` the α: (K,) per
    variable, or (K, H) per variable and lead), keeping their spread; brought back onto
    what each variable can take. A variable without a seasonal naive value keeps the
    model's median."""
    g = np.asarray(gate, dtype=np.float64)  # (K,) or (K, H)
    if not paths or (g == 1.0).all():  # the model's median everywhere: nothing moves
        return list(paths)
    norm, out = model.normalizer, []
    specs = None if model.spec is None else [model.spec[v] for v in model.variables]
    bases = naive_bases(model, past, cuts, paths[0].shape[-1])
    for p, base in zip(paths, bases, strict=True):
        x = norm.transform(p)  # (n, K, H)
        shift = np.nan_to_num(gate_shift(x, base, g))  # (K, H)
        y = norm.inverse(x + shift[None])
        out.append(project(y, specs) if specs is not None else y)
    return out


def _last_state(model: Predictor, opts: SampleOptions) -> int:
    """The index of the sampler's result among a trajectory's states (0 = noise)."""
    stepper = get_sampler(opts.sampler, model.scheduler, eta=opts.eta)
    return len(stepper.set_timesteps(opts.steps))


def _final_state_as(
    traj: SeriesTrajectory, paths: Sequence[np.ndarray], context: int, last: int
) -> SeriesTrajectory:
    """``traj`` whose result state (if recorded) holds the (gated) forecast ``paths``
    after each window's ``context`` steps: its first samples, as the trajectory follows."""
    final = [i for i, st in enumerate(traj.steps) if st == last]
    if not final:
        return traj
    states = []
    for st, p in zip(traj.states, paths, strict=True):  # (S, m, K, T), (n, K, H)
        st = st.copy()
        st[final, :, :, context:] = p[None, : st.shape[1]]
        states.append(st)
    return dataclasses.replace(traj, states=states)
