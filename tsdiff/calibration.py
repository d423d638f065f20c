"""Spread calibration: widen or narrow samples about their median to fit held-out truths.

Diffusion samples after short training are typically too narrow: intervals cover less
than they claim. A factor s maps each cell's samples to ``median + s·(samples − median)``,
so medians (and MAE) are unchanged, and s is the value on a fixed geometric grid that
minimises CSDI's quantile CRPS on held-out cells. CRPS is a proper score, so s improves
calibration without rewarding wide intervals for their own sake.

A CRPS-optimal spread still leaves 90 % intervals short when errors are heavier-tailed
than the samples (PhysioNet: 0.81), so the reported intervals get their own factors
(:func:`fit_interval_scale`): per level, the conformal quantile of how far outside its
interval each validation truth fell, so the intervals cover what they claim while the
samples (and CRPS) keep the CRPS-optimal spread.

Imputation and forecasting get separate factors (``TSDiff.spread`` fitted on hidden
cells of validation series, ``TSDiff.forecast_spread`` on rolling forecast origins): a
forecast's uncertainty grows with lead time in a way hidden cells inside a window do not
show, and a factor fitted on one task does not carry to the other.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import numpy as np
import torch

from tsdiff import metrics
from tsdiff.errors import DataError

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)

# 0.5 .. 5.66 in 29 geometric steps, 1.0 included (the uncalibrated samples)
SPREAD_GRID = np.round(2.0 ** np.linspace(-1, 2.5, 29), 4)


@dataclass(frozen=True)
class SpreadFit:
    """The chosen factor and what it changed on the cells it was fitted on."""

    spread: float
    n_cells: int
    crps_before: float
    crps_after: float
    cov50_before: float
    cov50_after: float
    cov90_before: float
    cov90_after: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rescale(samples: ArrayT, spread: float | ArrayT, axis: int = 0) -> ArrayT:
    """Samples (a numpy array or a tensor) scaled about their per-cell median by
    ``spread`` (a number, or factors that broadcast, e.g. one per variable); the samples
    run along ``axis``. The sampler applies the fitted factor
    with it, the fit scores candidate factors with it: one definition of "spread"."""
    if isinstance(samples, torch.Tensor):
        med = torch.quantile(samples, 0.5, dim=axis, keepdim=True)  # numpy's median
    else:
        med = np.median(samples, axis=axis, keepdims=True)
    return med + spread * (samples - med)


@dataclass(frozen=True)
class Support:
    """Per cell, the bounds of what its variable can take, in the samples' space (the
    network's units; −inf / inf where open). A model serves samples clipped to them
    (:func:`tsdiff.spec.project`), so interval factors are fitted on samples so
    clipped: fitted on unclipped ones, week-ahead PM2.5 forecasts (spread x3, bounded at
    0) refitted as truths arrived covered 0.892 of their truths at 90 % as served, 0.907
    fitted clipped (benchmarks/results/calibration-support-pm25-h168-before37.md).
    Clipping is monotone, so quantiles of clipped samples are the clipped quantiles.
    The CRPS spread is fitted unclipped: clipped, it chose a wider spread there and
    cost 0.2–0.4 % CRPS. The rounding of integer kinds is not modelled (their interval
    bounds round outward, which only covers more)."""

    lower: np.ndarray  # (m,)
    upper: np.ndarray  # (m,)

    @classmethod
    def of(cls, bounds: tuple[np.ndarray, np.ndarray], var: np.ndarray) -> Support:
        """From per-variable ``bounds`` ((K,), (K,)) and each cell's variable ``var`` (m,)."""
        lo, hi = (np.asarray(b, dtype=np.float64) for b in bounds)
        v = np.asarray(var)
        return cls(lo[v], hi[v])

    def clip(self, values: np.ndarray) -> np.ndarray:
        """``values`` (..., m) onto the cells' bounds."""
        return np.clip(values, self.lower, self.upper)

    def select(self, keep: np.ndarray) -> Support:
        return Support(self.lower[keep], self.upper[keep])


def cell_support(bounds: tuple[np.ndarray, np.ndarray] | None, var: np.ndarray) -> Support | None:
    """:meth:`Support.of` where a model has bounds (``Predictor.support()``), else None."""
    return None if bounds is None else Support.of(bounds, var)


def _clipped(values: np.ndarray, support: Support | None) -> np.ndarray:
    return values if support is None else support.clip(values)


def _held_out_cells(
    samples: np.ndarray, truth: np.ndarray, support: Support | None = None
) -> tuple[np.ndarray, np.ndarray, Support | None]:
    """``samples`` (n, m) and ``truth`` (m,) as float64, and ``support``, kept where the
    truth is known."""
    smp = np.asarray(samples, dtype=np.float64)
    y = np.asarray(truth, dtype=np.float64)
    if smp.ndim != 2 or y.shape != smp.shape[1:]:
        raise DataError(f"need samples (n, m) and truth (m,), got {smp.shape} and {y.shape}")
    if support is not None and support.lower.shape != y.shape:
        raise DataError(f"support must bound each of the {y.size} cells, got {support.lower.shape}")
    keep = np.isfinite(y)
    if not keep.any():
        raise DataError("no held-out cell with a truth to calibrate on")
    return smp[:, keep], y[keep], None if support is None else support.select(keep)


def fit_spread(samples: np.ndarray, truth: np.ndarray, support: Support | None = None) -> SpreadFit:
    """The grid factor minimising quantile CRPS of ``samples`` (n, m) against ``truth``
    (m,); with ``support`` each rescaled sample clipped to it, as served (the library
    fits unclipped, see :class:`Support`; the option measures the alternative).

    Quantiles are computed once: for s > 0 the quantiles of the rescaled samples are
    the rescaled quantiles, so every factor costs one pass over (19, m) numbers.
    """
    smp, y, support = _held_out_cells(samples, truth, support)
    ones = np.ones(y.shape, dtype=bool)
    crps = _grid_crps(smp, y, support)
    best = float(SPREAD_GRID[int(np.nanargmin(crps))])
    smp = _clipped(smp, support)  # the samples as served uncalibrated
    after = _clipped(rescale(smp, best), support)
    one = int(np.flatnonzero(SPREAD_GRID == 1.0)[0])
    return SpreadFit(
        spread=best,
        n_cells=int(y.size),
        crps_before=round(float(crps[one]), 5),
        crps_after=round(float(np.nanmin(crps)), 5),
        cov50_before=round(metrics.coverage(smp, y, ones, 50), 4),
        cov50_after=round(metrics.coverage(after, y, ones, 50), 4),
        cov90_before=round(metrics.coverage(smp, y, ones, 90), 4),
        cov90_after=round(metrics.coverage(after, y, ones, 90), 4),
    )


def _grid_crps(smp: np.ndarray, y: np.ndarray, support: Support | None = None) -> np.ndarray:
    """Quantile CRPS of ``smp`` (n, m) rescaled by each factor of the grid (and clipped
    to ``support``) → (grid,)."""
    med = np.median(smp, axis=0)  # (m,)
    q = np.quantile(smp, metrics.quantile_levels(), axis=0)  # (19, m)
    ones = np.ones(y.shape, dtype=bool)
    return np.array(
        [
            metrics.crps_from_quantiles(_clipped(med + f * (q - med), support), y, ones)
            for f in SPREAD_GRID
        ]
    )


@dataclass(frozen=True)
class VariableSpreadFit:
    """One factor per variable: variables differ in how far a short-trained model's
    samples fall short (a lab measured twice a day is not a heart rate measured every
    minute). A variable with fewer than ``min_cells`` held-out cells keeps the overall
    factor, so no factor is fitted on a handful of cells."""

    spread: tuple[float, ...]  # (K,)
    n_own: int  # variables with a factor of their own
    crps_after: float  # on all the cells, each variable with its factor
    cov50_after: float
    cov90_after: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fit_variable_spread(
    samples: np.ndarray,
    truth: np.ndarray,
    var: np.ndarray,
    n_vars: int,
    overall: float,
    min_cells: int = 50,
) -> VariableSpreadFit:
    """Per-variable grid factors minimising quantile CRPS of ``samples`` (n, m) against
    ``truth`` (m,); ``var`` (m,) the variable index of each cell, ``overall`` the factor
    of variables with fewer than ``min_cells`` cells (the all-cells fit)."""
    smp = np.asarray(samples, dtype=np.float64)
    y = np.asarray(truth, dtype=np.float64)
    v = np.asarray(var)
    if smp.ndim != 2 or y.shape != smp.shape[1:] or v.shape != y.shape:
        raise DataError(f"need samples (n, m), truth and var (m,), got {smp.shape}, {y.shape}")
    keep = np.isfinite(y)
    smp, y, v = smp[:, keep], y[keep], v[keep]
    factors = []
    for k in range(n_vars):
        sel = v == k
        if sel.sum() < min_cells:
            factors.append(float(overall))
            continue
        factors.append(float(SPREAD_GRID[int(np.nanargmin(_grid_crps(smp[:, sel], y[sel])))]))
    f = np.asarray(factors)[v]  # (m,)
    med = np.median(smp, axis=0)
    after = med + f * (smp - med)
    ones = np.ones(y.shape, dtype=bool)
    return VariableSpreadFit(
        spread=tuple(factors),
        n_own=int(sum(int((v == k).sum() >= min_cells) for k in range(n_vars))),
        crps_after=round(metrics.crps_quantile(after, y, ones), 5),
        cov50_after=round(metrics.coverage(after, y, ones, 50), 4),
        cov90_after=round(metrics.coverage(after, y, ones, 90), 4),
    )


# central interval levels whose factors are fitted; another level interpolates between
# them (outside, the nearest one's factor)
INTERVAL_LEVELS = (10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 98)
# half-widths (network units, i.e. standard deviations) count as at least this much, so a
# cell whose samples all agree still gets an interval, and every score is finite
MIN_HALF_WIDTH = 0.01


@dataclass(frozen=True)
class IntervalFit:
    """Per level, the factor the central interval is widened (or narrowed) by about the
    median, and the coverage of the cells it was fitted on before and after."""

    scale: dict[int, float]
    n_cells: int
    coverage_before: dict[int, float]
    coverage_after: dict[int, float]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fit_interval_scale(
    samples: np.ndarray,
    truth: np.ndarray,
    levels: Sequence[int] = INTERVAL_LEVELS,
    support: Support | None = None,
) -> IntervalFit:
    """Factors of the central intervals of ``samples`` (n, m), clipped to ``support``
    as served, that cover ``truth`` (m,).

    A truth y scores r = how many half-widths beyond the median it lies, on its own
    side: ``(med − y)/(med − lo)`` below, ``(y − med)/(hi − med)`` above (half-widths
    at least ``MIN_HALF_WIDTH``); the interval scaled by a covers y iff r <= a. The
    factor of level L is the ⌈(m+1)·L⌉-th smallest r (split-conformal: at least L
    coverage on exchangeable cells). Samples without any spread (a model trained for
    an epoch) thus get the intervals of their absolute errors.
    """
    smp, y, support = _held_out_cells(samples, truth, support)
    smp = _clipped(smp, support)
    med = np.median(smp, axis=0)
    m = y.size
    scale, before, after = {}, {}, {}
    for lv in levels:
        r = interval_ratios(smp, y, med, lv)
        k = min(m, math.ceil((m + 1) * lv / 100)) - 1  # 0-based rank
        a = round(float(np.partition(r, k)[k]), 4)
        scale[int(lv)] = a
        before[int(lv)] = round(float((r <= 1.0).mean()), 4)
        after[int(lv)] = round(float((r <= a).mean()), 4)
    return IntervalFit(scale, int(m), before, after)


def interval_ratios(smp: np.ndarray, y: np.ndarray, med: np.ndarray, level: int) -> np.ndarray:
    """How many half-widths of its central ``level`` interval beyond the median ``med``
    (m,) each truth ``y`` (m,) lies, on its own side (0 at the median); ``smp`` (n, m).
    The interval scaled by a covers y iff the ratio is at most a."""
    lo, hi = metrics.interval(smp, level)
    below = (med - y) / np.maximum(med - lo, MIN_HALF_WIDTH)
    above = (y - med) / np.maximum(hi - med, MIN_HALF_WIDTH)
    return np.maximum(np.maximum(below, above), 0.0)


def interval_factor(scale: dict[int, float] | None, level: float) -> float:
    """The factor of a central ``level`` % interval: fitted, interpolated between fitted
    levels, or the nearest fitted level's outside them; 1 without a fit."""
    if not scale:
        return 1.0
    lv = sorted(scale)
    return float(np.interp(level, lv, [scale[x] for x in lv]))


def scaled_interval(
    samples: np.ndarray, level: int, scale: dict[int, float] | None
) -> tuple[np.ndarray, np.ndarray]:
    """``metrics.interval`` of ``samples`` (n, ...) (network units) widened about the
    per-cell median by the level's factor (:func:`interval_factor`), each half-width
    at least ``MIN_HALF_WIDTH`` as when fitted; without factors, the samples' own."""
    lo, hi = metrics.interval(samples, level)
    if not scale:
        return lo, hi
    f = interval_factor(scale, level)
    med = np.median(samples, axis=0)
    return (
        med - f * np.maximum(med - lo, MIN_HALF_WIDTH),
        med + f * np.maximum(hi - med, MIN_HALF_WIDTH),
    )


# weight of the model's median against its prior (1: the model alone)
GATE_GRID = np.linspace(0.0, 1.0, 11)
GATE_EVIDENCE = 2.0  # standard errors by which the gate's mix must beat its base alone
# the same for forecasts against seasonal naive, counted over forecasts: the CLI
# defaults' validation holds about 7 origins per series, and on the same PM2.5 model and
# draws 2 sent 9 of 36 stations back to seasonal naive for CRPS +1.1 % (h = 24) / +1.3 %
# (h = 168) against the model alone, 1 within ±0.1 % (ETTh1: the same gate at 0, 1 and 2;
# benchmarks/results/forecast-gate-evidence.md)
FORECAST_GATE_EVIDENCE = 1.0


@dataclass(frozen=True)
class GateFit:
    """Per-variable weights α of the model's median against the prior it refines.

    Imputed cells become ``samples + (1 − α)·(prior − median)``: the samples keep their
    spread, centred on ``α·median + (1 − α)·prior``. The prior is linear interpolation or
    the learned prior (which itself keeps its best validation MAE, starting from
    interpolation). α is chosen on held-out validation cells by MAE, so the model is
    never worse there than what it refines, however short its training. A variable
    with fewer than ``min_cells`` held-out cells gets the α chosen on all cells together.
    """

    gate: tuple[float, ...]
    n_cells: int
    mae_model: float
    mae_interpolation: float  # the prior's MAE (the name predates the learned prior)
    mae_gated: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fit_gate(
    median: np.ndarray,
    prior: np.ndarray,
    truth: np.ndarray,
    var: np.ndarray,
    n_vars: int,
    min_cells: int = 50,
    evidence: float = 0.0,
    groups: np.ndarray | None = None,
    both_ways: bool = False,
    pooled: bool = False,
    anchor: Sequence[float] | None = None,
) -> GateFit:
    """α per variable minimising MAE of ``α·median + (1 − α)·prior`` against ``truth``
    (``prior``: the prior's point imputation, or a forecast's seasonal naive);
    all (m,) arrays, ``var`` the variable index (0..K−1) of each cell. ``evidence`` > 0:
    an α above 0 must lower the cells' mean absolute error below the prior's by that
    many standard errors of the paired difference, else the prior alone (α = 0) is
    kept: on a few dozen cells the best α is mostly noise, and the prior is the safe side.
    ``groups`` (m,): cells whose errors move together (one forecast's steps) count as one
    unit of that standard error, their mean difference, not as independent cells.
    ``both_ways``: an α below 1 must also beat the model alone (α = 1) by that evidence,
    else the model alone is the candidate: a blend that won on a few validation origins
    by chance cost a well-trained ETTh1 model 5 % CRPS on the test origins.
    ``pooled``: a variable keeps the α fitted on all cells unless its own best α beats
    that by the evidence on its cells (rather than falling to the prior): on PM2.5 the
    model beat its base by 28 % over all stations, yet 15 of 36 stations fell to the
    base for want of evidence on their ~140 cells each.
    ``anchor`` (K,): the α each variable keeps without evidence (in place of the
    prior): a variable takes its own best α where that beats its anchor by the evidence
    on its cells, and the variables left take one common α where it beats their
    anchors on all their cells (the far forecast gate keeps half the first gate's
    weights unless the long validation forecasts say otherwise); ``min_cells``,
    ``both_ways`` and ``pooled`` then do not apply."""
    med, lin, y = (np.asarray(a, dtype=np.float64) for a in (median, prior, truth))
    if not (med.shape == lin.shape == y.shape == np.shape(var)) or med.ndim != 1:
        raise DataError("median, prior, truth and var must be (m,) arrays")
    if groups is not None and np.shape(groups) != y.shape:
        raise DataError("groups must be an (m,) array, one group per cell")
    if y.size == 0:
        raise DataError("no held-out cell to choose the gate on")

    def beats(a: Any, b: Any, sel: np.ndarray) -> bool:
        """Whether weight ``a`` has the lower MAE than ``b`` by ``evidence`` SEs (each a
        number, or per cell (m,))."""
        a, b = (x[sel] if np.ndim(x) else x for x in (a, b))
        d = np.abs(a * med[sel] + (1 - a) * lin[sel] - y[sel])
        d = d - np.abs(b * med[sel] + (1 - b) * lin[sel] - y[sel])
        if groups is not None:  # one mean difference per group
            _, at = np.unique(np.asarray(groups)[sel], return_inverse=True)
            d = np.bincount(at, weights=d) / np.bincount(at)
        se = d.std(ddof=1) / np.sqrt(d.size) if d.size > 1 else np.inf
        return bool(d.mean() < -evidence * se)

    def lowest(sel: np.ndarray) -> float:
        """The α of the grid with the lowest MAE on the cells ``sel``."""
        errs = [np.abs(a * med[sel] + (1 - a) * lin[sel] - y[sel]).mean() for a in GATE_GRID]
        return float(GATE_GRID[int(np.argmin(errs))])

    def best(sel: np.ndarray) -> float:
        a = lowest(sel)
        if both_ways and a < 1 and not beats(a, 1.0, sel):
            a = 1.0
        if evidence > 0 and a > 0 and not beats(a, 0.0, sel):
            return 0.0
        return a

    if anchor is not None:
        return _anchored(med, lin, y, var, n_vars, anchor, lowest, beats)
    overall = best(np.ones(y.shape, dtype=bool))
    gate = []
    for k in range(n_vars):
        sel = var == k
        if sel.sum() < min_cells:
            gate.append(overall)
        elif pooled:
            own = lowest(sel)
            gate.append(own if own != overall and beats(own, overall, sel) else overall)
        else:
            gate.append(best(sel))
    return _gate_fit(med, lin, y, var, gate)


def _gate_fit(
    med: np.ndarray, lin: np.ndarray, y: np.ndarray, var: np.ndarray, gate: Sequence[float]
) -> GateFit:
    """The :class:`GateFit` of weights ``gate`` (K,) on the cells (m,)."""
    g = np.asarray(gate, dtype=np.float64)[var]
    return GateFit(
        gate=tuple(float(a) for a in gate),
        n_cells=int(y.size),
        mae_model=round(float(np.abs(med - y).mean()), 5),
        mae_interpolation=round(float(np.abs(lin - y).mean()), 5),
        mae_gated=round(float(np.abs(g * med + (1 - g) * lin - y).mean()), 5),
    )


def _anchored(
    med: np.ndarray,
    lin: np.ndarray,
    y: np.ndarray,
    var: np.ndarray,
    n_vars: int,
    anchor: Sequence[float],
    lowest: Any,
    beats: Any,
) -> GateFit:
    """:func:`fit_gate` from per-variable ``anchor`` weights (see its docstring)."""
    gate = np.asarray(anchor, dtype=np.float64).copy()
    if gate.shape != (n_vars,):
        raise DataError(f"anchor must hold one weight per variable ({n_vars})")
    start = gate.copy()
    moved = np.zeros(n_vars, dtype=bool)
    for k in range(n_vars):
        sel = var == k
        own = lowest(sel) if sel.any() else gate[k]
        if own != gate[k] and beats(own, gate[k], sel):
            gate[k], moved[k] = own, True
    rest = ~moved[var]  # the cells of variables without evidence of their own
    if rest.any():
        common = lowest(rest)
        if beats(common, start[var], rest):
            gate[~moved] = common
    return _gate_fit(med, lin, y, var, list(gate))


@dataclass(frozen=True)
class BaseChoice:
    """Per variable, whether the point imputation the gate refines is the alternative
    (the plain interpolation) rather than the learned prior: the one with the lower MAE
    on the held-out cells. Variables with fewer than ``min_cells`` cells follow the
    choice on all cells together."""

    use_alternative: tuple[bool, ...]
    mae_prior: float
    mae_alternative: float
    mae_chosen: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def choose_base(
    prior: np.ndarray,
    alternative: np.ndarray,
    truth: np.ndarray,
    var: np.ndarray,
    n_vars: int,
    min_cells: int = 50,
) -> BaseChoice:
    """Which of two point imputations, (m,) each, to refine per variable (see
    :class:`BaseChoice`); ``var`` (m,) the variable index of each cell."""
    a, b, y = (np.asarray(x, dtype=np.float64) for x in (prior, alternative, truth))
    if not (a.shape == b.shape == y.shape == np.shape(var)) or a.ndim != 1 or y.size == 0:
        raise DataError("prior, alternative, truth and var must be non-empty (m,) arrays")
    ea, eb = np.abs(a - y), np.abs(b - y)
    overall = bool(eb.mean() < ea.mean())
    use = []
    for k in range(n_vars):
        sel = var == k
        use.append(bool(eb[sel].mean() < ea[sel].mean()) if sel.sum() >= min_cells else overall)
    u = np.asarray(use)[var]
    return BaseChoice(
        use_alternative=tuple(use),
        mae_prior=round(float(ea.mean()), 5),
        mae_alternative=round(float(eb.mean()), 5),
        mae_chosen=round(float(np.where(u, eb, ea).mean()), 5),
    )


def gate_shift(samples: np.ndarray, base: np.ndarray, gate: np.ndarray) -> np.ndarray:
    """What :class:`GateFit` adds to every sample (n, K, T) of a cell → (K, T); ``base``
    (K, T) is what the model refines, ``gate`` (K,) or per step (K, T)."""
    med = np.median(samples, axis=0)  # (K, T)
    g = np.asarray(gate, dtype=np.float64)
    return (1.0 - (g[:, None] if g.ndim == 1 else g)) * (base - med)


def apply_gate(samples: np.ndarray, base: np.ndarray, gate: np.ndarray) -> np.ndarray:
    """Samples (n, K, T) recentred as :class:`GateFit` says; base (K, T), gate (K,)."""
    return samples + gate_shift(samples, base, gate)[None]
