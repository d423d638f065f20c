"""A context longer than the window: lags read history before each window.

The model below imputes 24-step windows but its lags reach 48 steps further back, so
a forecast reads 48 + 24 - horizon steps. These tests check that it does read them,
that it reads nothing earlier, and that backtests still see nothing after an origin.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.conftest import tiny_config
from tsdiff.backtest import backtest, cutoffs
from tsdiff.model import TSDiff

H = 6
LAGS = (24, 48)


@pytest.fixture(scope="module")
def lagged(pm25) -> TSDiff:
    cfg = tiny_config().replace(network={"lags": list(LAGS)})
    return TSDiff(cfg).fit(pm25.iloc[:500], progress=False)


def _shift_rows(df: pd.DataFrame, rows: slice, by: float = 80.0) -> pd.DataFrame:
    out = df.copy()
    stations = [c for c in df.columns if c != "timestamp"]
    out.iloc[rows, [df.columns.get_loc(c) for c in stations]] += by
    return out


def test_forecast_reads_the_history_before_its_window_and_nothing_earlier(lagged, pm25) -> None:
    df = pm25.iloc[:300].reset_index(drop=True)
    context = lagged.window - H  # steps of the window before the horizon
    assert lagged.history_steps == 48
    base = lagged.forecast(df, horizon=H, seed=4).frame
    # inside the history (before the window): the forecast changes
    shifted = _shift_rows(df, slice(-context - 30, -context))
    inside = lagged.forecast(shifted, horizon=H, seed=4).frame
    stations = [c for c in df.columns if c != "timestamp"]  # their columns: the medians
    assert not inside[stations].equals(base[stations])
    # before the history: nothing read, the forecast is the same to the bit
    before = lagged.forecast(_shift_rows(df, slice(0, -context - 48)), horizon=H, seed=4).frame
    pd.testing.assert_frame_equal(before, base)


def test_a_spike_after_an_origin_is_not_seen_through_the_lags(lagged, pm25) -> None:
    df = pm25.iloc[:500].reset_index(drop=True)
    times = pd.DatetimeIndex(df["timestamp"])
    n = 4
    pos = cutoffs(len(times), H, 12, n)
    spiked = _shift_rows(df, slice(pos[1] + 1, pos[1] + 2), by=5000.0)
    kw = {"horizon": H, "step": 12, "windows": n, "seed": 1, "return_samples": True}
    base, hit = backtest(lagged, df, **kw), backtest(lagged, spiked, **kw)
    assert base.samples is not None and hit.samples is not None
    for j in range(2):  # origins before the spike: identical forecasts
        np.testing.assert_array_equal(base.samples[j], hit.samples[j])
    # origin 2 has the spike in its window; origin 3 only in its history, at lag 24 of
    # its first forecast step: both change (the checks above can fail)
    assert not np.array_equal(base.samples[2], hit.samples[2])
    assert pos[3] - (lagged.window - H) >= pos[1] + 1  # before origin 3's window
    assert not np.array_equal(base.samples[3], hit.samples[3])
    assert base.summary["context"] == 48 + lagged.window - H
    assert base.summary["lags"] == list(LAGS)


def test_lagged_model_save_load_forecast_equality(lagged, pm25, tmp_path) -> None:
    loaded = TSDiff.load(lagged.save(tmp_path / "m"))
    assert loaded.config.network.lags == LAGS
    df = pm25.iloc[:200]
    pd.testing.assert_frame_equal(
        lagged.forecast(df, horizon=H, seed=2).frame, loaded.forecast(df, horizon=H, seed=2).frame
    )
    pd.testing.assert_frame_equal(lagged.impute(df, seed=2).frame, loaded.impute(df, seed=2).frame)


def test_lagged_imputation_keeps_observed_values_and_fills_every_gap(lagged, pm25) -> None:
    df = pm25.iloc[100:400]
    out = lagged.impute(df, seed=0).frame
    stations = [c for c in df.columns if c != "timestamp"]
    gaps = 0
    for v in stations:
        obs = df[v].notna().to_numpy()
        gaps += int((~obs).sum())
        np.testing.assert_array_equal(out[v].to_numpy()[obs], df[v].to_numpy()[obs])
        assert (out[f"{v}_imputed"].to_numpy() == ~obs).all()
        assert out[v].notna().all()
    assert gaps > 0


def test_a_short_history_is_padded_not_refused(lagged, pm25) -> None:
    """Fewer steps than the lags reach: the missing history is simply not shown."""
    fc = lagged.forecast(pm25.iloc[:30], horizon=H, seed=0).frame
    stations = [c for c in pm25.columns if c != "timestamp"]
    assert len(fc) == H and fc[stations].notna().all().all()
