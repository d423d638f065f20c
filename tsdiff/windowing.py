"""Series → the fixed-length windows the network sees, and forecast-origin windows.

Layout (see :mod:`tsdiff`): a series is (K, T); its windows are (W, K, L) with L the
model's ``window``, plus the H = ``history_steps`` steps before each window that a
network with lags reads (W, K, H). Everything here works in normalised units, except
:func:`forecast_windows`, which builds the raw series a forecast is sampled from.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tsdiff.covariates import Covariates, padded_slice, time_features
from tsdiff.data import (
    Freq,
    Panel,
    Scaler,
    Series,
    extract_windows,
    future_index,
    window_starts,
)
from tsdiff.transforms import Normalizer


@dataclass(frozen=True)
class SeriesWindows:
    """Normalised windows of one series (see :func:`series_windows`).

    values (W, K, L) NaN where missing; valid (W, L) False past the series' end;
    calendar (W, 4 + C + S, L) calendar and covariates (see :mod:`tsdiff.covariates`);
    starts (W,); history (W, K, H) the H steps before each window
    (NaN where missing or before the series' first step).
    """

    values: np.ndarray
    valid: np.ndarray
    calendar: np.ndarray
    starts: np.ndarray
    history: np.ndarray


@dataclass(frozen=True)
class WindowShape:
    """What windowing needs to know of a model: its scaler, grid, window, lags and
    covariates."""

    scaler: Scaler | Normalizer  # raw values → the network's space
    freq: Freq
    window: int
    history_steps: int
    covariates: Covariates | None = None


def series_windows(shape: WindowShape, series: Series, stride: int, lead: int = 0) -> SeriesWindows:
    """Windows tiling ``series`` after its first ``lead`` steps, each with its history.

    The first ``lead`` steps are context only: windows start at or after them (starts
    count from ``lead``) and read them as history.
    """
    h, length, win = shape.history_steps, len(series.index) - lead, shape.window
    starts = window_starts(length, win, stride)  # (W,) relative to lead
    x = shape.scaler.transform(series.values)  # (K, lead + length)
    if lead < h:  # too little history before the first window: NaN in front
        x = np.concatenate([np.full((x.shape[0], h - lead), np.nan), x], axis=1)
    off = max(lead - h, 0)  # x[:, off + s] is h steps before relative start s
    ext, valid = extract_windows(x[:, off:], h + win, starts)  # (W, K, H + L)
    index = series.index[lead:]
    if length < win:  # padding cells get the calendar of the steps they stand for
        index = index.append(future_index(index, shape.freq, win - length))
    cal, _ = extract_windows(time_features(series, index, lead, shape.covariates), win, starts)
    return SeriesWindows(ext[..., h:], valid[:, h:], cal, starts, ext[..., :h])


def origin_window(
    shape: WindowShape, series: Series, origin: int, horizon: int
) -> tuple[Series, int]:
    """What a forecast from position ``origin`` of ``series`` is sampled from.

    The ``history + window - horizon`` grid steps up to and including ``origin``
    (nothing after it), then ``horizon`` empty future steps: (K, history + window).
    A short past is padded in front with missing cells that carry the calendar of
    the steps they stand for. Also returns how many padded steps fall inside the
    window (after the history), which trajectories leave out.
    """
    k = series.values.shape[0]
    span = shape.history_steps + shape.window - horizon  # steps up to the origin
    lo = origin + 1 - span
    seen = series.values[:, max(lo, 0) : origin + 1]  # (K, <= span)
    idx = series.index[max(lo, 0) : origin + 1]
    if lo < 0:  # short history: missing cells in front, calendar of the real steps
        idx = _past_index(series.index, shape.freq, -lo).append(idx)
        seen = np.concatenate([np.full((k, -lo), np.nan), seen], axis=1)
    fut = future_index(idx, shape.freq, horizon)  # the grid's next steps, by calendar
    v = np.concatenate([seen, np.full((k, horizon), np.nan)], axis=1)
    cov = series.covariates  # known-future inputs: given for the horizon too
    if cov is not None:
        cov = padded_slice(cov, lo, span + horizon)
    out = dataclasses.replace(series, index=idx.append(fut), values=v, covariates=cov)
    return out, max(-lo - shape.history_steps, 0)


@dataclass(frozen=True)
class ForecastWindows:
    """One window per (series, origin), as :func:`forecast_windows` builds them.

    ``panel``: the windows as series (K, history + window), what the sampler takes
    with ``lead`` = history steps; ``pads``: padded steps inside each window;
    ``where``: (series key, origin position, origin time); ``truth``: the observed
    horizon after each origin (K, ≤ horizon), NaN where missing; ``index``: each
    horizon's timestamps; ``context`` = window - horizon.
    """

    panel: Panel
    pads: list[int]
    where: list[tuple[Any, int, Any]]
    truth: list[np.ndarray]
    index: list[pd.Index]
    lead: int
    context: int


def forecast_windows(
    shape: WindowShape,
    panel: Panel,
    origins: Sequence[Sequence[int]],
    horizon: int,
    *,
    key_by_origin: bool,
) -> ForecastWindows:
    """The windows of forecasts from ``origins[i]`` (positions) of ``panel.series[i]``:
    what ``forecast`` (each series' last step) and the backtests (rolling origins) both
    sample. ``key_by_origin``: each window's noise seed also depends on its origin
    (several per series), else on its series alone (one forecast per series)."""
    context, lead = shape.window - horizon, shape.history_steps
    series, pads, where, truth, index = [], [], [], [], []
    for s, cuts in zip(panel.series, origins, strict=True):
        for c in cuts:
            c = int(c)
            e, pad = origin_window(shape, s, c, horizon)  # nothing after the origin
            if key_by_origin:
                e = dataclasses.replace(e, key=(s.key, c))
            series.append(e)
            pads.append(pad)
            where.append((s.key, c, s.index[c]))
            truth.append(s.values[:, c + 1 : c + 1 + horizon])
            index.append(e.index[lead + context :])
    return ForecastWindows(
        dataclasses.replace(panel, series=series), pads, where, truth, index, lead, context
    )


def window_seed(seed: int, key: Any, start: int) -> int:
    """A noise seed per (call seed, series, window) that is the same in every process."""
    h = hashlib.blake2b(f"{seed}|{key}|{start}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & (2**63 - 1)


def _past_index(index: pd.Index, freq: Freq, n: int) -> pd.Index:
    """The ``n`` grid steps before ``index[0]``."""
    first = index[0]
    step = freq.step
    return pd.Index([first - step * (n - i) for i in range(n)])
