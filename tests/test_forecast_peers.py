"""The forecasting benchmark's peers: NeuralForecast DeepAR/NHITS and statsforecast AutoARIMA
on a slice of ETTh1, checked for the benchmark's protocol (same cut-offs, no leakage, the
training budget) and for well-formed quantile tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from tsdiff.backtest import cutoffs, quantile_columns

H, STEP, N = 24, 24, 3
BUDGET_MIN = 4 / 60  # 4 s of training per peer
COLUMNS = ["HUFL", "OT", "LULL"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def etth1() -> pd.DataFrame:
    from tsdiff.benchmarks import forecast
    from tsdiff.datasets import default_data_dir

    base = default_data_dir()
    if base is None or not (base / "etth1_2017_2018.parquet").is_file():
        pytest.skip("../shared/data/etth1_2017_2018.parquet is not available")
    df = forecast.load_dataset("etth1")[["timestamp", *COLUMNS]]
    return df.iloc[-600:].reset_index(drop=True)


@pytest.fixture(scope="module")
def bench():
    from tsdiff.benchmarks.forecast import ForecastBench

    return ForecastBench(horizon=H, step=STEP, windows=N)


@pytest.fixture(scope="module")
def neural(etth1, bench):
    pytest.importorskip("neuralforecast")
    from tsdiff.benchmarks.forecast_peers import neural_tables

    return neural_tables(etth1, bench, N, minutes=BUDGET_MIN, seed=0)


def check_table(table: pd.DataFrame, df: pd.DataFrame, variables: list[str]) -> None:
    """Origins are the backtest's cut-offs; every (origin, variable) has the h steps after
    its origin; quantiles are ordered and agree with the median and interval columns."""
    pos = cutoffs(len(df), H, STEP, N)
    origins = pd.DatetimeIndex(sorted(table["origin"].unique()))
    assert origins.equals(pd.DatetimeIndex(df["timestamp"].iloc[pos]))
    assert len(table) == N * len(variables) * H
    assert set(table["variable"]) == set(variables)
    lead = (table["timestamp"] - table["origin"]) / pd.Timedelta(hours=1)
    for _, g in lead.groupby([table["origin"], table["variable"]]):
        assert sorted(g) == list(range(1, H + 1))
    q = table[quantile_columns()].to_numpy(float)  # (rows, 19)
    assert not np.isnan(q).any() and not table["median"].isna().any()
    assert (np.diff(q, axis=1) >= 0).all()
    np.testing.assert_array_equal(table["median"], table["q50"])
    for a, b in [("lo_90", "lo_50"), ("lo_50", "median"), ("median", "hi_50"), ("hi_50", "hi_90")]:
        assert (table[a] <= table[b]).all(), (a, b)
    np.testing.assert_array_equal(table["lo_90"], table["q05"])
    np.testing.assert_array_equal(table["hi_50"], table["q75"])
    # the truth is the data at each forecast's timestamp, unfilled
    truth = df.melt(id_vars="timestamp", var_name="variable", value_name="y")
    joined = table.merge(truth, on=["timestamp", "variable"])
    np.testing.assert_array_equal(joined["truth"], joined["y"])


def test_neural_peers_forecast_from_the_backtest_cutoffs(neural, etth1) -> None:
    assert set(neural) == {"deepar", "nhits"}
    for table, secs, _info in neural.values():
        check_table(table, etth1, COLUMNS)
        assert secs > 0


def test_neural_peers_train_within_the_budget_on_the_history_before_the_first_origin(
    neural, etth1
) -> None:
    first = int(cutoffs(len(etth1), H, STEP, N)[0])
    budget = BUDGET_MIN * 60
    for label, (_table, _secs, info) in neural.items():
        assert info["budget_s"] == pytest.approx(budget)
        assert info["steps"] >= 1 and info["probe"]["per_step_s"] > 0
        # the step count follows from the probe, and the real fit keeps to the budget
        assert info["train_s"] <= 3 * budget + 2, label
        assert info["settings"]["train_rows"] == first + 1
        assert info["settings"]["series"] == len(COLUMNS)


def test_neural_forecasts_see_nothing_after_their_origin(etth1, bench) -> None:
    """Scaling every value after the second origin leaves the forecasts from the first two
    origins unchanged (training stops at the first); the last origin's forecast moves."""
    pytest.importorskip("neuralforecast")
    from tsdiff.benchmarks.forecast_peers import neural_tables

    pos = cutoffs(len(etth1), H, STEP, N)
    later = etth1.copy()
    after = later["timestamp"] > etth1["timestamp"].iloc[pos[1]]
    later.loc[after, COLUMNS] *= 3.0
    kw = {"minutes": BUDGET_MIN, "seed": 0, "peers": ("nhits",), "steps": 3}
    base = neural_tables(etth1, bench, N, **kw)["nhits"]
    hit = neural_tables(later, bench, N, **kw)["nhits"]
    assert base[2]["steps"] == hit[2]["steps"] == 3
    cols = quantile_columns()
    seen = base[0]["origin"] <= etth1["timestamp"].iloc[pos[1]]
    np.testing.assert_array_equal(base[0].loc[seen, cols], hit[0].loc[seen, cols])
    assert not np.allclose(base[0].loc[~seen, cols], hit[0].loc[~seen, cols])


def test_autoarima_baseline_uses_the_same_cutoffs(etth1, bench) -> None:
    pytest.importorskip("statsforecast")
    from tsdiff.benchmarks.forecast import statsforecast_tables

    df = etth1[["timestamp", "OT"]].iloc[-300:].reset_index(drop=True)  # ARIMA(24) is slow
    out = statsforecast_tables(df, bench, N)
    assert set(out) == {"seasonal_naive", "autoets", "autoarima"}
    check_table(out["autoarima"][0], df, ["OT"])


def test_autoarima_reads_only_its_recent_input_window(etth1, bench) -> None:
    """Fitted on the last ``arima_input`` steps: values before them change nothing."""
    pytest.importorskip("statsforecast")
    from dataclasses import replace

    from tsdiff.benchmarks.forecast import statsforecast_tables

    short = replace(bench, arima_input=96)
    df = etth1[["timestamp", "OT"]].iloc[-300:].reset_index(drop=True)
    early = df.copy()
    early.loc[:100, "OT"] += 5.0  # 300 - 3·24 origins leaves 228 steps before the first
    cols = quantile_columns()
    base = statsforecast_tables(df, short, N)
    moved = statsforecast_tables(early, short, N)
    np.testing.assert_allclose(base["autoarima"][0][cols], moved["autoarima"][0][cols])
    assert not np.allclose(base["autoets"][0][cols], moved["autoets"][0][cols])


def test_missing_neuralforecast_is_reported_not_skipped(etth1, bench, monkeypatch) -> None:
    from tsdiff.benchmarks import forecast, forecast_peers

    monkeypatch.setattr(forecast_peers, "missing_reason", lambda: "not installed")
    pos = cutoffs(len(etth1), H, STEP, N)
    peers, scored = forecast._neural_peers(etth1, bench, N, pos, BUDGET_MIN, 0)
    assert peers == {"deepar": {"missing": "not installed"}, "nhits": {"missing": "not installed"}}
    methods = {"tsdiff": {"mae": 1.0, "crps": 0.1, "cov50": 0.5, "cov90": 0.9}}
    methods.update({label: entry for label, (entry, _) in scored.items()})
    assert not any("deepar" in k or "nhits" in k for k in forecast.targets(methods, "etth1"))
