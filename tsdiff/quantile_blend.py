"""Blending the samples with the quantile prior's quantiles (Vincentization).

The diffusion draws samples that carry the joint structure of a window (which sample
is high where, across cells and variables); the quantile prior
(:class:`tsdiff.prior.QuantilePriorNet`) regresses each cell's quantiles directly, by
pinball loss. On PhysioNet each alone scores about the same CRPS; the average of their
quantile functions scores better than either (two forecasts of different kinds, averaged
quantile by quantile). Done sample by sample: the sample of rank i (of n) at a cell
becomes ``w · itself + (1 − w) · Q(i / (n − 1))``, Q the prior's quantile function at
that cell (linear between :data:`~tsdiff.prior.QUANTILE_LEVELS`, held at their ends).
Ranks are kept, so the draws' dependence survives; the sample quantiles that every
metric and interval reads off (numpy's linear rule puts sample i at level i / (n − 1))
are then the blend of the two quantile functions. ``w`` is fitted on validation cells by
CRPS (:func:`fit_blend`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from tsdiff import metrics
from tsdiff.prior import QUANTILE_LEVELS

# the samples' weight: 1 keeps them as drawn, 0 takes the quantile prior alone
BLEND_GRID = np.round(np.linspace(0.0, 1.0, 21), 2)


def sample_levels(n: int) -> np.ndarray:
    """The level numpy's linear quantile rule gives each of ``n`` sorted samples → (n,)."""
    return np.full(1, 0.5) if n == 1 else np.arange(n) / (n - 1)


def quantiles_at(quantiles: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """``quantiles`` (Q, ...) at :data:`QUANTILE_LEVELS`, read at ``levels`` (n,) → (n, ...)."""
    grid = np.asarray(QUANTILE_LEVELS)
    u = np.clip(levels, grid[0], grid[-1])
    j = np.clip(np.searchsorted(grid, u, side="right") - 1, 0, len(grid) - 2)  # (n,)
    t = (u - grid[j]) / (grid[j + 1] - grid[j])  # (n,)
    t = t.reshape((-1,) + (1,) * (quantiles.ndim - 1))
    return quantiles[j] * (1 - t) + quantiles[j + 1] * t


def blend_quantiles(
    samples: np.ndarray, quantiles: np.ndarray, weight: float | np.ndarray
) -> np.ndarray:
    """``samples`` (n, ...) blended with ``quantiles`` (Q, ...) by ``weight`` (a number or
    an array broadcasting to ``samples[0]``), each sample keeping its rank per cell."""
    order = np.argsort(samples, axis=0, kind="stable")
    ranked = np.take_along_axis(samples, order, axis=0)  # (n, ...) ascending
    prior = quantiles_at(quantiles, sample_levels(samples.shape[0]))
    w = np.asarray(weight, dtype=np.float64)
    out = np.empty_like(samples)
    np.put_along_axis(out, order, w * ranked + (1 - w) * prior, axis=0)
    return out


@dataclass(frozen=True)
class BlendFit:
    """The chosen weight of the samples and what it did on the cells it was fitted on."""

    weight: float
    n_cells: int
    crps_samples: float  # weight 1
    crps_prior: float  # weight 0
    crps_after: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fit_blend(samples: np.ndarray, quantiles: np.ndarray, truth: np.ndarray) -> BlendFit:
    """The weight on :data:`BLEND_GRID` minimising the quantile CRPS of the blend of
    ``samples`` (n, m) and ``quantiles`` (Q, m) against ``truth`` (m,). The quantiles
    of a blend are the blend of the quantiles, so each weight costs one pass over
    (19, m) numbers."""
    keep = np.isfinite(truth)
    y = np.asarray(truth, dtype=np.float64)[keep]
    ranked = np.sort(np.asarray(samples, dtype=np.float64)[:, keep], axis=0)
    lv = metrics.quantile_levels()
    own = np.quantile(ranked, lv, axis=0)  # (19, m)
    prior = np.quantile(quantiles_at(quantiles[:, keep], sample_levels(len(ranked))), lv, axis=0)
    ones = np.ones(y.shape, dtype=bool)
    crps = np.array(
        [metrics.crps_from_quantiles(w * own + (1 - w) * prior, y, ones) for w in BLEND_GRID]
    )
    best = int(np.argmin(crps))
    return BlendFit(
        weight=float(BLEND_GRID[best]),
        n_cells=int(y.size),
        crps_samples=round(float(crps[-1]), 5),
        crps_prior=round(float(crps[0]), 5),
        crps_after=round(float(crps[best]), 5),
    )
