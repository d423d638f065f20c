"""What ``impute`` and ``forecast`` return: one object, whatever was asked for.

Callers read attributes (``result.frame``), never positions, so asking for samples or
a trajectory does not change the shape of the answer. ``BacktestResult``
(:mod:`tsdiff.backtest`) is the backtest's counterpart.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class PredictionResult:
    """``frame``: the answer in the input's layout; ``samples``: the raw samples as a long
    frame (``return_samples``); ``trajectory``: the reverse process' recorded states as a
    long frame (``return_trajectory``). Either is None when not asked for."""

    frame: pd.DataFrame
    samples: pd.DataFrame | None = None
    trajectory: pd.DataFrame | None = None


@dataclass(frozen=True)
class ImputeResult(PredictionResult):
    """Observed values, imputed medians, ``<var>_imputed`` flags and interval bounds."""


@dataclass(frozen=True)
class ForecastResult(PredictionResult):
    """Per variable and horizon step: median, mean and interval bounds."""
