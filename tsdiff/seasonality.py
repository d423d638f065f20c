"""The natural cycle of a grid, for defaults that forecast.

A model trained with no profile should start its forecasts from seasonal naive, the
baseline a user compares against: ``network.season`` (the prior's look-back) and a lag
at one season (so the look-back reaches before short windows) are inferred from the
grid's step when the config leaves them unset (None), and recorded in the saved
config. Rules: a sub-daily step that divides a day → one day; a daily step → one week;
a weekly step → 52; anything else (numeric time, irregular multiples) → no season.
A season needs two full cycles in the training data to be learned from.
"""

from __future__ import annotations

import pandas as pd

from tsdiff.data import Freq

DAY = pd.Timedelta(days=1)
WEEK = pd.Timedelta(days=7)


def natural_season(freq: Freq) -> int:
    """Steps per natural cycle of ``freq``'s grid, or 0 when it has none we know."""
    if freq.kind != "datetime":
        return 0
    step = freq.step
    if step < DAY and DAY % step == pd.Timedelta(0):
        return int(DAY // step)
    if step == DAY:
        return 7
    if step == WEEK:
        return 52
    return 0


def infer_season(freq: Freq, longest: int) -> int:
    """The season a model fitted on series of at most ``longest`` steps should use: the
    grid's natural cycle if the data hold two of them, else 0 (none)."""
    season = natural_season(freq)
    return season if season >= 2 and longest >= 2 * season else 0


def default_lags(season: int) -> tuple[int, ...]:
    """Lags a model with ``season`` reads by default: one season back, so the seasonal
    prior and the network see last cycle's value even before a short window; none
    without a season."""
    return (season,) if season else ()
