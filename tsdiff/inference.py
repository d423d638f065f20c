"""The sampling pipeline of a fitted model: series → windows → samples → series.

:func:`sample_series` cuts every series into windows (:mod:`tsdiff.windowing`),
batches the windows that have something to impute, runs the sampler loop over them
(:func:`tsdiff.sampling.sample_windows`), stitches the windows back (each step from the
window whose centre is nearest), applies the model's gate and variable spec, and puts
observed values back bit for bit. Trajectories are stitched the same way.

It reads the fitted state of a :class:`tsdiff.predictor.Predictor` through its public
attributes; the predictor's ``impute``, ``forecast`` and ``sample`` call it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from tsdiff import metrics
from tsdiff.baselines import linear_impute
from tsdiff.calibration import gate_shift, scaled_interval
from tsdiff.data import Panel, stitch
from tsdiff.errors import RangeError
from tsdiff.gap_gate import GapGate
from tsdiff.masks import open_gaps
from tsdiff.prior import QUANTILE_LEVELS
from tsdiff.quantile_blend import blend_quantiles
from tsdiff.samplers import get_sampler
from tsdiff.samplers.options import SampleOptions
from tsdiff.sampling import (
    Trajectory,
    WindowBatch,
    prior_windows,
    quantile_windows,
    record_indices,
    sample_windows,
)
from tsdiff.spec import project, project_bounds
from tsdiff.windowing import series_windows, window_seed

if TYPE_CHECKING:  # pragma: no cover
    from tsdiff.predictor import Predictor

Bounds = dict[int, tuple[list[np.ndarray], list[np.ndarray]]]  # {level: ([lo], [hi])}


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


@dataclass(frozen=True)
class SeriesSamples:
    """Samples per series (n, K, T - lead), original units, and the trajectory if asked."""

    samples: list[np.ndarray]
    trajectory: SeriesTrajectory | None = None


@dataclass(frozen=True)
class _Collected:
    """Every series' windows, and a batch of those with something to impute.

    per_series: (values (W, K, L), starts, length after the lead) per series; batch:
    None when nothing is missing; where: each batch row's (series, window) position.
    """

    per_series: list[tuple[np.ndarray, np.ndarray, int]]
    batch: WindowBatch | None
    where: list[tuple[int, int]]


def trajectory_options(
    num_steps: int, wanted: bool, states: int | Sequence[int] | None, samples: int
) -> TrajectoryOptions | None:
    """Trajectory options, checked before any sampling; None when not ``wanted``.

    ``states``: how many evenly spaced states to keep (first = noise and last =
    result included), or their indices (0 = noise .. ``steps`` = result); None =
    every state (of a ``num_steps`` diffusion). ``samples``: how many of the samples to
    follow (the first ones). Each state is a full copy of the grid, so the defaults
    keep the frame small.
    """
    if not wanted:
        return None
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 1:
        raise RangeError(f"trajectory_samples must be an integer >= 1, got {samples!r}")
    if states is None:
        return TrajectoryOptions(states=num_steps + 1, samples=int(samples))
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


def _collect(model: Predictor, panel: Panel, vals: list[np.ndarray], lead: int, seed: int):
    stride = model.config.data.stride("inference")
    shape = model.window_shape()
    per_series = []
    todo_v, todo_m, todo_c, todo_h, seeds, where = [], [], [], [], [], []
    for si, (s, v) in enumerate(zip(panel.series, vals, strict=True)):
        sw = series_windows(shape, dataclasses.replace(s, values=v), stride, lead)
        valid = sw.valid[:, None, :]
        observed = ~np.isnan(sw.values) & valid  # (W, K, L)
        need = (~observed & valid).any(axis=(1, 2))
        per_series.append((sw.values, sw.starts, len(s.index) - lead))
        for wi in np.flatnonzero(need):
            todo_v.append(np.nan_to_num(sw.values[wi]))
            todo_m.append(observed[wi])
            todo_c.append(sw.calendar[wi])
            todo_h.append(sw.history[wi])
            seeds.append(window_seed(seed, s.key, int(sw.starts[wi])))
            where.append((si, wi))
    if not where:
        return _Collected(per_series, None, where)
    history = np.stack(todo_h)  # (W_todo, K, H)
    batch = WindowBatch(
        torch.from_numpy(np.stack(todo_v)).float(),
        torch.from_numpy(np.stack(todo_m)),
        torch.from_numpy(np.stack(todo_c)).float(),
        seeds,
        torch.from_numpy(np.nan_to_num(history)).float(),
        torch.from_numpy(~np.isnan(history)),
    )
    return _Collected(per_series, batch, where)


def _stitch(
    col: _Collected,
    drawn: np.ndarray | None,
    join: Callable[[np.ndarray, np.ndarray, int], np.ndarray] = stitch,
) -> list[np.ndarray]:
    """Per-window draws (W_todo, n, K, L) → per series (n, K, T), normalised; windows
    not drawn are fully observed and carry their data. ``join`` puts one series' windows
    (W, n, K, L) together (``scripts/stitching_check.py`` measures an alternative)."""
    lookup = {key: i for i, key in enumerate(col.where)}
    n = drawn.shape[1] if drawn is not None else 1
    out = []
    for si, (win, starts, length) in enumerate(col.per_series):
        full = np.repeat(np.nan_to_num(win)[:, None], n, axis=1)
        for wi in range(len(starts)):
            j = lookup.get((si, wi))
            if j is not None:
                full[wi] = drawn[j]
        out.append(join(full, starts, length).astype(np.float64))  # (n, K, T)
    return out


def prior_series(
    model: Predictor, panel: Panel, values: list[np.ndarray] | None = None, lead: int = 0
) -> list[np.ndarray]:
    """The network's prior (what its samples refine) per series → (K, T − lead),
    normalised: the learned prior's point imputation, or the interpolation."""
    assert model.net is not None
    vals = values if values is not None else [s.values for s in panel.series]
    col = _collect(model, panel, vals, lead, 0)
    drawn = None
    if col.batch is not None:
        cells = model.config.sample.batch_cells
        drawn = prior_windows(model.net, col.batch, cells).numpy()
        drawn = drawn[:, None]  # (W_todo, 1, K, L)
    return [p[0] for p in _stitch(col, drawn)]


def quantile_series(
    model: Predictor, panel: Panel, values: list[np.ndarray] | None = None, lead: int = 0
) -> list[np.ndarray]:
    """The quantile prior per series → (Q, K, T − lead) at ``prior.QUANTILE_LEVELS``,
    normalised (a network with ``network.prior_quantiles`` only)."""
    assert model.net is not None
    vals = values if values is not None else [s.values for s in panel.series]
    col = _collect(model, panel, vals, lead, 0)
    if col.batch is None:  # nothing hidden: every level is the data
        return [np.repeat(x, len(QUANTILE_LEVELS), axis=0) for x in _stitch(col, None)]
    drawn = quantile_windows(model.net, col.batch, model.config.sample.batch_cells).numpy()
    return _stitch(col, drawn)


def series_interpolation(model: Predictor, values: list[np.ndarray]) -> list[np.ndarray]:
    """Linear interpolation of each whole series (K, T) in the network's space: unlike
    the windows' own interpolation it reaches across window edges."""
    norm = model.normalizer.transform
    return [linear_impute(norm(v)) for v in values]


def _gate_shifts(
    gate: GapGate,
    model: Predictor,
    samples: list[np.ndarray],
    priors: list[np.ndarray],
    values: list[np.ndarray],
) -> list[np.ndarray]:
    """What ``gate`` (the model's, :meth:`Predictor.imputation_gate`) adds to every
    sample of each series (K, T), normalised: ``samples`` (n, K, T), ``priors`` (K, T),
    ``values`` (K, T) NaN where imputed. The base is the network's prior, or the series'
    interpolation where the gate says (validation cells found it better there)."""
    uses_interp = any(any(row) for row in gate.interpolation)
    interps = series_interpolation(model, values) if uses_interp else priors
    out = []
    for x, p, i, v in zip(samples, priors, interps, values, strict=True):
        alpha, use = gate.cells(v)  # (K, T) each
        out.append(gate_shift(x, np.where(use, i, p), alpha))
    return out


def blends(model: Predictor) -> bool:
    """Whether ``model``'s imputations blend its samples with its quantile prior."""
    return (
        model.quantile_blend is not None
        and model.net is not None
        and model.net.quantile_net is not None
    )


def _spread(model: Predictor, spread: float | None, gate: bool) -> float | list[float]:
    """The factor(s) samples get: the caller's, else the model's (per variable when it
    has them, for imputations: ``gate`` marks the imputation path)."""
    if spread is not None:
        return spread
    return model.task_spread("impute") if gate else model.spread


def sample_series(
    model: Predictor,
    panel: Panel,
    opts: SampleOptions,
    values: list[np.ndarray] | None = None,
    record: TrajectoryOptions | None = None,
    spread: float | None = None,
    lead: int = 0,
    gate: bool = True,
) -> SeriesSamples:
    """Samples for every series of ``panel`` → per series (n, K, T - lead), original units.

    ``values`` overrides the panel's (K, T) arrays (evaluation hides cells this way).
    The first ``lead`` steps are history only. Windows with nothing to impute are not
    sampled. ``record``: also the reverse process' states. ``gate``: recentre the
    samples by the model's gate (imputation; forecasts pass False).
    """
    assert model.net is not None and model.scaler is not None
    vals = values if values is not None else [s.values for s in panel.series]
    col = _collect(model, panel, vals, lead, opts.seed)
    gated = model.imputation_gate() if gate else None
    drawn, priors, quantiles, traj = None, None, None, None
    if col.batch is not None:
        cells = model.config.sample.batch_cells
        result = sample_windows(
            model.net,
            model.scheduler,
            col.batch,
            n_samples=opts.n_samples,
            steps=opts.steps,
            sampler=opts.sampler,
            eta=opts.eta,
            batch_cells=cells,
            clip=model.clip_bounds(),
            precision=model.config.sample.precision,
            spread=_spread(model, spread, gate),
            **({"record": record.states, "record_samples": record.samples} if record else {}),
        )
        if record is not None:
            result, traj = result
        drawn = result.numpy()  # (W_todo, n, K, L)
        if gated is not None:
            priors = prior_windows(model.net, col.batch, cells).numpy()[:, None]
        if gate and blends(model):
            quantiles = quantile_windows(model.net, col.batch, cells).numpy()  # (W', Q, K, L)
    vals = [v[:, lead:] for v in vals]  # what is returned: after the lead
    stitched = _stitch(col, drawn)  # per series (n, K, T) normalised
    calibrated = False  # whether the gate or the blend moved the samples as drawn
    if gated is not None and priors is not None:
        priors_t = [b[0] for b in _stitch(col, priors)]  # per series (K, T)
        shifts = _gate_shifts(gated, model, stitched, priors_t, vals)
        stitched = [x + d[None] for x, d in zip(stitched, shifts, strict=True)]
        calibrated = True
    if quantiles is not None:
        assert model.quantile_blend is not None
        stitched = [
            blend_quantiles(x, q, model.quantile_blend)
            for x, q in zip(stitched, _stitch(col, quantiles), strict=True)
        ]
        calibrated = True
    out = []
    specs = None if model.spec is None else [model.spec[n] for n in model.variables]
    norm = model.normalizer
    for x, v in zip(stitched, vals, strict=True):
        samples = norm.inverse(x)
        if specs is not None:  # every sample a value its variable can take
            samples = project(samples, specs)
        samples = np.where(~np.isnan(v)[None], v[None], samples)  # observed: bit-identical
        out.append(samples)
    if record is None:
        return SeriesSamples(out)
    finals = stitched if calibrated else None
    return SeriesSamples(out, _trajectory(model, record, opts, col, vals, traj, finals))


def _trajectory(
    model: Predictor,
    record: TrajectoryOptions,
    opts: SampleOptions,
    col: _Collected,
    vals: list[np.ndarray],
    traj: Trajectory | None,
    finals: list[np.ndarray] | None = None,
) -> SeriesTrajectory:
    """Window states → per-series (S, m, K, T) in original units, stitched like samples.

    A series spanning several windows takes each step from the window that owns it
    (as its samples do), so the last state equals the returned samples exactly.
    Windows that needed no sampling hold their data in every state. ``finals``: the
    samples as calibrated (gate, quantile blend; per series (n, K, T), normalised),
    which the last state takes.
    """
    assert model.scaler is not None
    stepper = get_sampler(opts.sampler, model.scheduler, eta=opts.eta)
    n_states = len(stepper.set_timesteps(opts.steps)) + 1
    if traj is None:  # nothing was sampled: every state is the data
        steps = record_indices(n_states, record.states)
        levels = [0.0] * len(steps)
        states_w = None
    else:
        steps, levels = traj.steps, traj.noise_std
        states_w = traj.states.numpy()  # (W_todo, S, m, K, L)
    lookup = {key: i for i, key in enumerate(col.where)}
    m = min(record.samples, opts.n_samples)
    final = [i for i, st in enumerate(steps) if st == n_states - 1]  # the result, if kept
    out, norm = [], model.normalizer
    specs = None if model.spec is None else [model.spec[n] for n in model.variables]
    for si, (win, starts, length) in enumerate(col.per_series):
        full = np.broadcast_to(
            np.nan_to_num(win)[:, None, None], (len(starts), len(steps), m, *win.shape[1:])
        ).copy()  # (W, S, m, K, L)
        for wi in range(len(starts)):
            j = lookup.get((si, wi))
            if j is not None and states_w is not None:
                full[wi] = states_w[j]
        states = stitch(full, starts, length).astype(np.float64)  # (S, m, K, T)
        if finals is not None and final:  # the result as calibrated (gate, blend), as the
            states[final] = finals[si][None, :m]  # samples: the recorded are the first m
        states = norm.inverse(states)
        if specs is not None and final:  # the last state is the samples: values they can be
            states[final] = project(states[final], specs)
        v = vals[si]
        out.append(np.where(np.isnan(v)[None, None], states, v[None, None]))  # (S, m, K, T)
    return SeriesTrajectory(out, list(steps), list(levels))


def interval_bounds(
    samples: list[np.ndarray],
    levels: Sequence[int],
    model: Predictor | None = None,
    observed: list[np.ndarray] | None = None,
    task: str = "impute",
) -> Bounds:
    """Central-interval bounds per level, per series: {level: ([lo (K,T)], [hi (K,T)])}.

    With a ``model`` that has interval factors for ``task`` (see :func:`model_intervals`),
    each interval is widened by its level's factor; ``observed`` (per series (K, T)
    bool) cells keep bounds equal to their value, bit for bit.
    """
    scale = model.task_interval_scale(task) if model is not None else None
    seen = observed or [np.zeros(s.shape[1:], dtype=bool) for s in samples]
    out: Bounds = {lv: ([], []) for lv in levels}
    for smp, obs in zip(samples, seen, strict=True):  # (n, K, T), (K, T)
        for lv, (lo, hi) in model_intervals(model, smp, levels, scale).items():
            if obs.any():
                lo, hi = np.where(obs, smp[0], lo), np.where(obs, smp[0], hi)
            out[lv][0].append(lo)
            out[lv][1].append(hi)
    return out


def model_intervals(
    model: Predictor | None,
    samples: np.ndarray,
    levels: Sequence[int],
    scale: dict[int, float] | None,
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """The central intervals of ``samples`` (n, ..., K, T) in original units, per level:
    the samples' quantiles, or with interval factors ``scale`` widened about the median
    by the level's factor in the network's space (where the factors were fitted) and
    brought back onto what each variable can take."""
    if not scale or model is None:
        return {lv: metrics.interval(samples, lv) for lv in levels}
    norm = model.normalizer
    z = norm.transform(samples)  # once for every level
    specs = None if model.spec is None else [model.spec[n] for n in model.variables]
    out = {}
    for lv in levels:
        lo, hi = scaled_interval(z, lv, scale)
        lo, hi = norm.inverse(lo), norm.inverse(hi)
        out[lv] = (lo, hi) if specs is None else project_bounds(lo, hi, specs)
    return out


def leave_open(
    panel: Panel,
    filled: list[np.ndarray],
    imputed: list[np.ndarray],
    bounds: Bounds,
    max_gap: int | None,
    fill_edges: bool,
) -> tuple[list[np.ndarray], list[np.ndarray], Bounds]:
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


def check_max_gap(max_gap: Any) -> None:
    if max_gap is not None and (
        isinstance(max_gap, bool) or not isinstance(max_gap, (int, np.integer)) or max_gap < 0
    ):
        raise RangeError(f"max_gap must be an integer >= 0, got {max_gap!r}")
