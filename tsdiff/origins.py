"""Forecasts from many origins at once: the cut-offs of a rolling-origin evaluation and
their draws, every (series, origin) pair a series of one panel sampled in one sampler
call (per continuation chunk beyond one window). What a backtest scores, the forecast
calibration fits on and the forecast gates weigh against seasonal naive."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tsdiff.data import Panel, Series
from tsdiff.errors import DataError, RangeError
from tsdiff.forecasting import draw_forecasts, naive_bases
from tsdiff.predictor import Predictor


def cutoffs(length: int, horizon: int, step: int, windows: int) -> np.ndarray:
    """(N,) positions of the last step seen at each origin, oldest first.

    The last origin leaves exactly ``horizon`` steps after it; earlier ones are ``step``
    apart. Raises :class:`DataError` when the series is too short for the first origin
    to have seen at least one step.
    """
    for name, v in (("horizon", horizon), ("step", step), ("windows", windows)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise RangeError(f"{name} must be an integer >= 1, got {v!r}")
    last = length - 1 - horizon
    pos = last - step * np.arange(windows - 1, -1, -1, dtype=np.int64)  # (N,)
    if pos[0] < 0:
        need = horizon + step * (windows - 1) + 1
        raise DataError(
            f"a series of {length} steps is too short for {windows} origins every {step} "
            f"steps with horizon {horizon}: it needs at least {need}"
        )
    return pos


@dataclass
class OriginDraws:
    """Forecasts drawn from many origins (:func:`draw_origins`)."""

    samples: np.ndarray  # (W, n, K, H), original units
    truth: np.ndarray  # (W, K, H), NaN where not observed
    where: list[tuple[Any, int, Any]]  # (series key, cut-off position, cut-off time)
    index: list[pd.Index]  # per forecast, its H timestamps
    spread: float
    seconds: float


# series drawn at a time when a fit's deadline bounds the drawing, and the forecasts it
# draws at least: as the imputation calibration's batch (CALIBRATION_BATCH), since a
# fit's budget keeps time for these fewest draws (32 forecasts of PhysioNet stays cost
# 30 s, a quarter of a 2-minute budget, under load)
FORECAST_BATCH = 8
MIN_FORECASTS = 8


def draw_origins(
    model: Predictor,
    panel: Panel,
    horizon: int,
    step: int,
    windows: int,
    opts: dict[str, Any],
    spread: float | None,
    gate: Sequence[float] | None = None,
    until: float | None = None,
) -> OriginDraws:
    """Sample the forecasts of every (series, origin) pair in one sampler call (per
    continuation chunk, for horizons beyond one window); ``gate``: see
    :func:`~tsdiff.forecasting.draw_forecasts`. ``until`` (a ``time.perf_counter()``
    value): series a batch at a time, stopping then after at least ``MIN_FORECASTS``:
    a fit's 256 validation forecasts drawn at once took 81 s of a 1-minute PhysioNet fit."""
    if until is not None:
        parts: list[OriginDraws] = []
        for lo in range(0, len(panel.series), FORECAST_BATCH):
            part = dataclasses.replace(panel, series=panel.series[lo : lo + FORECAST_BATCH])
            parts.append(draw_origins(model, part, horizon, step, windows, opts, spread, gate))
            drawn = sum(len(p.where) for p in parts)
            if time.perf_counter() > until and drawn >= MIN_FORECASTS:
                break
        return OriginDraws(
            samples=np.concatenate([p.samples for p in parts]),
            truth=np.concatenate([p.truth for p in parts]),
            where=[w for p in parts for w in p.where],
            index=[i for p in parts for i in p.index],
            spread=parts[0].spread,
            seconds=sum(p.seconds for p in parts),
        )
    origins = [cutoffs(len(s.index), horizon, step, windows) for s in panel.series]
    if spread is None:
        spread = model.task_spread("forecast")
    if not (np.isfinite(spread) and spread > 0):
        raise RangeError(f"spread must be a finite number > 0, got {spread!r}")
    sample_opts = model.options(**opts)
    t0 = time.perf_counter()
    drawn = draw_forecasts(
        model, panel, origins, horizon, sample_opts, spread=spread, key_by_origin=True, gate=gate
    )
    seconds = time.perf_counter() - t0
    return OriginDraws(
        samples=np.stack(drawn.samples),
        truth=np.stack(drawn.truth),
        where=drawn.where,
        index=drawn.index,
        spread=float(spread),
        seconds=seconds,
    )


def origin_bases(model: Predictor, panel: Panel, run: OriginDraws) -> list[np.ndarray]:
    """Per forecast of ``run`` (K, H): seasonal naive from its origin, normalised."""
    past, cuts = origin_pasts(panel, run)
    return naive_bases(model, past, cuts, run.samples.shape[-1])


def origin_pasts(panel: Panel, run: OriginDraws) -> tuple[list[Series], list[int]]:
    """Each forecast's own series of ``panel`` and its origin position."""
    by_key = {s.key: s for s in panel.series}
    return [by_key[key] for key, _, _ in run.where], [c for _, c, _ in run.where]
