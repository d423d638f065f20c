"""Forecasts longer than the window: each sample path continued window by window."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tsdiff.backtest import ORIGIN_COL, backtest
from tsdiff.errors import RangeError
from tsdiff.forecasting import chunk_length, continue_paths, draw_forecasts, scale_paths

H = 30  # the tiny model's window is 24: two continuation chunks after the first


def test_long_forecast_keeps_the_grid_shapes_and_seeds(fitted, pm25):
    df = pm25.iloc[:200]
    res = fitted.forecast(df, H, n_samples=4, seed=3, return_samples=True)
    times = pd.to_datetime(res.frame["timestamp"])
    step = pd.Timedelta("1h")
    expected = pd.date_range(df["timestamp"].max() + step, periods=H, freq=step)
    assert list(times) == list(expected)
    assert res.samples["sample"].nunique() == 4 and len(res.samples) == 4 * H
    again = fitted.forecast(df, H, n_samples=4, seed=3, return_samples=True)
    pd.testing.assert_frame_equal(res.frame, again.frame)
    pd.testing.assert_frame_equal(res.samples, again.samples)
    other = fitted.forecast(df, H, n_samples=4, seed=4).frame
    assert not other.equals(res.frame)
    # the first chunk is what a one-window forecast of that length draws (scaled after
    # the last chunk instead of inside the sampler: equal to float rounding)
    first = fitted.forecast(df, chunk_length(fitted), n_samples=4, seed=3).frame
    k = chunk_length(fitted)
    var = fitted.variables[0]
    np.testing.assert_allclose(res.frame[var].to_numpy()[:k], first[var].to_numpy(), rtol=1e-12)


def test_each_path_continues_from_its_own_draws(fitted, pm25):
    df = pm25.iloc[:200]
    panel = fitted.panel(df)
    opts = fitted.options(n_samples=4, seed=0)
    k = chunk_length(fitted)
    end = [[len(panel.series[0].index) - 1]]
    first = draw_forecasts(fitted, panel, end, k, opts, spread=1.0, key_by_origin=False)
    x = np.concatenate([s.values for s in panel.series], axis=1)
    hi, lo = np.nanpercentile(x, 90, axis=1), np.nanpercentile(x, 10, axis=1)  # (K,)
    planted = first.samples[0].copy()  # (4, K, k)
    planted[0] = hi[:, None]  # path 0 ends high, the others low
    planted[1:] = lo[:, None]
    cut = len(panel.series[0].index) - 1
    out = continue_paths(fitted, [panel.series[0]], [cut], first.windows, [planted], 6, opts)
    new = out[0][:, :, k]  # (4, K): the first step of the next window
    assert out[0].shape == (4, len(fitted.variables), k + 6)
    np.testing.assert_array_equal(out[0][:, :, :k], planted)  # earlier draws kept
    higher = new[0] > new[1:].max(axis=0)  # path 0 continues from its own high level
    assert higher.mean() >= 0.75, (new, hi, lo)


def test_a_long_forecast_is_scaled_once_as_its_spread_was_fitted(fitted, pm25):
    """The forecast spread is fitted on unscaled forecasts scaled about their median;
    a long horizon applies it so, once over the whole paths, not chunk by chunk (each
    chunk would inherit its context's scaling and compound it)."""
    panel = fitted.panel(pm25.iloc[:200])
    opts = fitted.options(n_samples=8, seed=0)
    end = [[len(panel.series[0].index) - 1]]
    raw = draw_forecasts(fitted, panel, end, H, opts, spread=1.0, key_by_origin=False)
    wide = draw_forecasts(fitted, panel, end, H, opts, spread=2.0, key_by_origin=False)
    expected = scale_paths(fitted, raw.samples[0], 2.0)  # (8, K, H)
    np.testing.assert_allclose(wide.samples[0], expected, rtol=1e-5, atol=1e-6)
    norm = fitted.normalizer.transform
    ratio = norm(wide.samples[0]).std(axis=0) / norm(raw.samples[0]).std(axis=0)  # (K, H)
    late = ratio[:, -6:]  # the last chunk: about 2 (less where 0 µg/m³ clips), never 4
    assert 1.5 < np.nanmedian(late) <= 2.0 + 1e-6


def test_long_backtest_scores_every_step(fitted, pm25):
    res = backtest(fitted, pm25, horizon=H, step=24, windows=2, n_samples=4, seed=1)
    assert res.summary["horizon"] == H
    # what the first window reads before the horizon: the window less its first chunk
    assert res.summary["context"] == fitted.window - chunk_length(fitted) > 0
    per_origin = res.forecasts.groupby(ORIGIN_COL)["timestamp"].nunique()
    assert (per_origin == H).all() and len(per_origin) == 2
    var = fitted.variables[0]
    rows = res.forecasts[res.forecasts["variable"] == var]
    actual = pm25.set_index("timestamp")[var].reindex(pd.to_datetime(rows["timestamp"]))
    np.testing.assert_array_equal(rows["truth"].to_numpy(), actual.to_numpy())  # all H steps


def test_a_long_horizon_has_no_trajectory(fitted, pm25):
    with pytest.raises(RangeError, match="trajectory"):
        fitted.forecast(pm25.iloc[:100], H, return_trajectory=True)
