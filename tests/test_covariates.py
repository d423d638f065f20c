"""Covariates: known-future and static inputs that are read, never predicted."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.conftest import tiny_config
from tsdiff.errors import DataError, MissingCovariateError
from tsdiff.model import TSDiff
from tsdiff.predictor import Predictor

STEPS = 480


def _frame(seed: int = 0, steps: int = STEPS) -> pd.DataFrame:
    """Three hourly series whose value is 3 × a random on/off plan ("load", known in
    advance and unpredictable from the past) plus a per-series level ("level")."""
    rng = np.random.default_rng(seed)
    parts = []
    for i, level in enumerate((0.0, 1.0, 2.0)):
        t = pd.date_range("2024-01-01", periods=steps, freq="h")
        load = (rng.random(steps) < 0.3).astype(float)
        y = 3.0 * load + level + 0.1 * rng.standard_normal(steps)
        parts.append(
            pd.DataFrame(
                {"series_id": f"s{i}", "timestamp": t, "y": y, "load": load, "level": level}
            )
        )
    return pd.concat(parts, ignore_index=True)


def _future(df: pd.DataFrame, horizon: int, value: float | None = None) -> pd.DataFrame:
    """The next ``horizon`` hours of every series with its planned load."""
    rows = []
    rng = np.random.default_rng(1)
    for sid, g in df.groupby("series_id"):
        t = pd.date_range(g["timestamp"].max() + pd.Timedelta("1h"), periods=horizon, freq="h")
        load = rng.random(horizon) < 0.5 if value is None else np.full(horizon, value)
        rows.append(pd.DataFrame({"series_id": sid, "timestamp": t, "load": load.astype(float)}))
    return pd.concat(rows, ignore_index=True)


def _config(epochs: int = 2, static: bool = True):
    return tiny_config(epochs=epochs).replace(
        data={
            "future_covariates": ("load",),
            "static_covariates": ("level",) if static else (),
        },
        network={"prior_layers": 2},  # the default design: its prior reads covariates too
    )


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return _frame()


@pytest.fixture(scope="module")
def model(frame) -> TSDiff:
    """Trained long enough to read the plan: 3 × load dominates the series (measured:
    a lift of 2.96 after 12 epochs with the learned prior, 0.23 without it)."""
    return TSDiff(_config(epochs=12)).fit(frame, progress=False)


def test_covariates_are_inputs_not_variables(model, frame):
    assert model.variables == ["y"]
    assert model.config.network.covariates == 2
    fc = model.forecast(frame, 6, future_df=_future(frame, 6), n_samples=4).frame
    assert not [c for c in fc.columns if "load" in str(c) or "level" in str(c)]
    filled = model.impute(frame.iloc[:200], n_samples=2).frame
    assert not [c for c in filled.columns if "load" in str(c) or "level" in str(c)]


def test_forecast_follows_the_planned_covariate(model, frame):
    """The planted effect: a planned load of 1 raises the forecast by about 3."""
    on = model.forecast(frame, 6, future_df=_future(frame, 6, 1.0), n_samples=8).frame
    off = model.forecast(frame, 6, future_df=_future(frame, 6, 0.0), n_samples=8).frame
    lift = float((on["y"].to_numpy() - off["y"].to_numpy()).mean())
    assert lift > 1.5, lift


def test_missing_future_covariates_name_the_steps(model, frame):
    with pytest.raises(MissingCovariateError, match="future_df"):
        model.forecast(frame, 6)
    fut = _future(frame, 6)
    gap = fut.index[(fut["series_id"] == "s1")][3]
    missing_time = fut.loc[gap, "timestamp"]
    with pytest.raises(MissingCovariateError, match=str(missing_time)) as e:
        model.forecast(frame, 6, future_df=fut.drop(index=gap))
    assert "'s1'" in str(e.value)
    with pytest.raises(MissingCovariateError, match="load"):
        model.forecast(frame, 6, future_df=fut.drop(columns="load"))
    with pytest.raises(MissingCovariateError, match="load"):
        model.impute(frame.drop(columns="load"))


def test_static_covariates_from_columns_or_a_table(model, frame):
    table = frame.groupby("series_id", as_index=False)["level"].first()
    fut = _future(frame, 4)
    a = model.forecast(frame, 4, future_df=fut, seed=3).frame
    b = model.forecast(frame.drop(columns="level"), 4, future_df=fut, static_df=table, seed=3)
    pd.testing.assert_frame_equal(a, b.frame)
    with pytest.raises(MissingCovariateError, match="s2"):
        model.forecast(frame.drop(columns="level"), 4, future_df=fut, static_df=table.iloc[:2])
    wobbly = frame.assign(level=frame["level"] + np.arange(len(frame)) % 2)
    with pytest.raises(DataError, match="constant within a series"):
        model.forecast(wobbly, 4, future_df=fut)


def test_save_load_forecast_equal(model, frame, tmp_path):
    fut = _future(frame, 5)
    a = model.forecast(frame, 5, future_df=fut, seed=7).frame
    loaded = Predictor.load(model.save(tmp_path / "m"))
    assert loaded.covariates == model.covariates
    pd.testing.assert_frame_equal(a, loaded.forecast(frame, 5, future_df=fut, seed=7).frame)


def test_horizon_longer_than_the_window_reads_covariates_to_its_end(model, frame):
    h = model.window + 10  # continued window by window
    fut = _future(frame, h, 1.0)
    fc = model.forecast(frame, h, future_df=fut, n_samples=4, seed=2).frame
    assert len(fc) == 3 * h
    first = fc[fc["series_id"] == "s0"]["timestamp"]
    assert first.iloc[0] == frame["timestamp"].max() + pd.Timedelta("1h")
    assert (first.diff().dropna() == pd.Timedelta("1h")).all()
    again = model.forecast(frame, h, future_df=fut, n_samples=4, seed=2).frame
    pd.testing.assert_frame_equal(fc, again)
    late = fut.index[(fut["series_id"] == "s0")][h - 1]  # the last step, in the 2nd chunk
    with pytest.raises(MissingCovariateError, match="s0"):
        model.forecast(frame, h, future_df=fut.drop(index=late), n_samples=4)


def test_a_model_without_covariates_refuses_covariate_tables(fitted, pm25):
    with pytest.raises(DataError, match="no covariates"):
        fitted.forecast(pm25.iloc[:200], 4, future_df=pm25.iloc[:4])


def test_long_layout_gives_future_covariates_as_rows(frame):
    long = frame.drop(columns="level").melt(
        id_vars=["series_id", "timestamp"], var_name="variable", value_name="value"
    )
    m = TSDiff(_config(static=False)).fit(long, progress=False)
    assert m.variables == ["y"]
    fc = m.forecast(long, 3, future_df=_future(frame, 3), n_samples=2).frame
    assert set(fc["variable"]) == {"y"}  # long in, long out: the covariate is no variable


def test_backtest_reads_the_covariates_of_each_horizon(model, frame):
    from tsdiff.backtest import backtest

    res = backtest(model, frame, horizon=6, step=24, windows=3, n_samples=4)
    assert res.summary["n_forecasts"] == 9
    # a model blind to the plan does no better than its median, 0: MAE 3 × 0.3 = 0.9
    assert res.summary["overall"]["mae"] < 0.5, res.summary["overall"]


def test_cli_trains_and_forecasts_with_covariate_files(tmp_path, capsys):
    from tsdiff.cli import EXIT_INPUT, main

    frame = _frame(steps=240)  # the default design trains on every window: keep it short

    data, fut, static, out = (
        tmp_path / n for n in ("d.parquet", "f.parquet", "s.parquet", "o.parquet")
    )
    frame.drop(columns="level").to_parquet(data)
    frame.groupby("series_id", as_index=False)["level"].first().to_parquet(static)
    _future(frame, 4).to_parquet(fut)
    args = ["--future-covariates", "load", "--static-covariates", "level", "--static", str(static)]
    rc = main(
        [
            "train",
            str(data),
            "--out",
            str(tmp_path / "m"),
            "--epochs",
            "1",
            "--window",
            "24",
            "--quiet",
            *args,
        ]
    )
    assert rc == 0
    assert Predictor.load(tmp_path / "m").covariates.names == ("load", "level")
    base = [
        "forecast",
        str(tmp_path / "m"),
        str(data),
        "--horizon",
        "4",
        "--out",
        str(out),
        "--n-samples",
        "2",
        "--steps",
        "2",
    ]
    assert main([*base, "--static", str(static)]) == EXIT_INPUT  # no --future
    assert "future" in capsys.readouterr().err
    assert not out.exists()
    assert main([*base, "--static", str(static), "--future", str(fut)]) == 0
    fc = pd.read_parquet(out)
    assert len(fc) == 12 and "load" not in fc.columns
