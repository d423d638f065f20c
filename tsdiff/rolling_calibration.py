"""Forecast calibration refitted as truths arrive.

A forecast's spread and interval factors are fitted on validation origins before the
first forecast (:func:`tsdiff.backtest.fit_forecast_spread`). When the weeks being
forecast differ from those (a calm spring after a stormy winter), no factor fitted
before them can cover what it claims. A forecaster in use sees the truths of its own
earlier forecasts as they arrive and can refit on the latest of them: at each origin,
the factors come from the ``recent`` latest forecasts of the same series whose whole
horizon had happened by that origin (the validation origins' first, then the earlier
forecasts' own). Nothing after the origin is used. In production that is
``tsdiff calibrate-forecast`` rerun on the latest data (say daily); a backtest with
``recalibrate`` simulates that schedule on its own draws.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tsdiff.calibration import cell_support, fit_interval_scale, fit_spread, rescale
from tsdiff.errors import DataError

Where = tuple[Hashable, int, Any]  # (series key, cut-off position, cut-off time)


@dataclass(frozen=True)
class Forecasts:
    """Forecasts whose truths may serve a later fit, in the network's normalised units
    (as the calibration scores them): ``samples`` (W, n, K, H), uncalibrated (spread
    1, recentred by the forecast gate where there is one), ``truth`` (W, K, H) NaN
    where not observed, ``where`` (W,) each forecast's series and origin."""

    samples: np.ndarray
    truth: np.ndarray
    where: Sequence[Where]

    def __post_init__(self) -> None:
        w = len(self.where)
        if self.samples.ndim != 4 or self.samples.shape[0] != w:
            raise DataError(f"samples must be (W={w}, n, K, H), got {self.samples.shape}")
        if self.truth.shape != (w, *self.samples.shape[2:]):
            raise DataError(f"truth must be (W, K, H), got {self.truth.shape}")


@dataclass(frozen=True)
class Refit:
    """The factors one forecast uses: ``spread`` (CRPS-optimal), ``intervals`` (per
    level, None without interval calibration), fitted on ``pooled`` earlier forecasts of
    which ``own`` were the backtest's own (not validation) forecasts."""

    spread: float
    intervals: dict[int, float] | None
    pooled: int
    own: int


def matured(
    target: Where, pool: Sequence[tuple[Where, bool]], horizon: int, recent: int
) -> list[int]:
    """Indices into ``pool`` ((where, own) pairs) of the ``recent`` latest forecasts of
    ``target``'s series whose whole horizon ends at or before ``target``'s origin."""
    key, pos, _ = target
    known = [i for i, ((k, p, _), _) in enumerate(pool) if k == key and p + horizon <= pos]
    known.sort(key=lambda i: pool[i][0][1])
    return known[-recent:]


def rolling_refits(
    validation: Forecasts,
    forecasts: Forecasts,
    horizon: int,
    recent: int,
    *,
    intervals: bool,
    support: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[Refit]:
    """One :class:`Refit` per forecast of ``forecasts``, from the ``recent`` latest
    matured forecasts (of ``validation`` and of ``forecasts`` itself) before it.
    ``intervals``: also the interval factors of the samples so scaled, fitted on them
    clipped to ``support`` (each variable's bounds in these units,
    ``Predictor.support()``) as served (:class:`tsdiff.calibration.Support`)."""
    if recent < 1:
        raise DataError(f"recent must be >= 1, got {recent}")
    pool = [(w, False) for w in validation.where] + [(w, True) for w in forecasts.where]
    n_val = len(validation.where)

    def block(i: int) -> tuple[np.ndarray, np.ndarray]:  # (n, K·H), (K·H,)
        src, j = (validation, i) if i < n_val else (forecasts, i - n_val)
        smp = src.samples[j]
        return smp.reshape(smp.shape[0], -1), src.truth[j].reshape(-1)

    k, h = forecasts.truth.shape[1:]
    var = np.repeat(np.arange(k), h)  # each block's cells (K·H,), variable by variable
    out: list[Refit] = []
    cache: dict[tuple[int, ...], Refit] = {}
    for target in forecasts.where:
        idx = tuple(matured(target, pool, horizon, recent))
        if not idx:
            raise DataError(
                f"no forecast of series {target[0]!r} had matured by its origin "
                f"{target[2]}: calibrate on origins before the first forecast"
            )
        if idx not in cache:
            parts = [block(i) for i in idx]
            smp = np.concatenate([p[0] for p in parts], axis=1)  # (n, m)
            y = np.concatenate([p[1] for p in parts])  # (m,)
            s = fit_spread(smp, y).spread
            scale = None
            if intervals:
                cells = cell_support(support, np.tile(var, len(parts)))  # (m,)
                scale = fit_interval_scale(rescale(smp, s), y, support=cells).scale
            cache[idx] = Refit(s, scale, len(idx), sum(i >= n_val for i in idx))
        out.append(cache[idx])
    return out


def refit_summary(refits: Sequence[Refit], recent: int) -> dict[str, Any]:
    """What the refits were, for a backtest's summary: per forecast, in its order."""
    return {
        "recent": int(recent),
        "spread": [r.spread for r in refits],
        "intervals": [r.intervals for r in refits],
        "own_forecasts_pooled": [r.own for r in refits],
    }
