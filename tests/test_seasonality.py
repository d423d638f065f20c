"""Defaults that forecast: season and lags inferred from the grid, the budget spent."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.conftest import tiny_config
from tsdiff.cli import main
from tsdiff.config import TrainConfig, TSDiffConfig
from tsdiff.data import Freq
from tsdiff.errors import InsufficientHistoryError
from tsdiff.model import TSDiff
from tsdiff.seasonality import default_lags, infer_season, natural_season


@pytest.mark.parametrize(
    ("step", "season"),
    [("1h", 24), ("30min", 48), ("15min", 96), ("1D", 7), ("7D", 52), ("7h", 0), ("2D", 0)],
)
def test_natural_season_of_a_datetime_grid(step, season):
    assert natural_season(Freq("datetime", pd.Timedelta(step))) == season


def test_numeric_grids_have_no_season_and_two_cycles_are_needed():
    assert natural_season(Freq("numeric", 60.0)) == 0
    hourly = Freq("datetime", pd.Timedelta("1h"))
    assert infer_season(hourly, 47) == 0 and infer_season(hourly, 48) == 24
    assert default_lags(24) == (24,) and default_lags(0) == ()


def test_fit_records_the_inferred_season_and_lags(pm25, tmp_path):
    cfg = tiny_config().replace(network={"season": None, "lags": None})
    model = TSDiff(cfg).fit(pm25.iloc[:300], progress=False)
    assert model.config.network.season == 24 and model.config.network.lags == (24,)
    assert model.history_steps == 24
    loaded = TSDiff.load(model.save(tmp_path / "m"))
    assert loaded.config.network == model.config.network  # saved resolved
    fc = loaded.forecast(pm25.iloc[:300], 6, n_samples=2).frame
    assert len(fc) == 6


def test_explicit_season_and_lags_are_kept(pm25):
    cfg = tiny_config().replace(network={"season": 0, "lags": (12,)})
    model = TSDiff(cfg).fit(pm25.iloc[:300], progress=False)
    assert model.config.network.season == 0 and model.config.network.lags == (12,)


def test_a_time_budget_is_not_cut_short_by_an_epoch_count():
    assert TrainConfig().epoch_cap == 200  # no budget: a bounded run
    assert TrainConfig(max_minutes=2).epoch_cap >= 10**6  # the budget decides
    assert TrainConfig(max_minutes=2, epochs=7).epoch_cap == 7  # asked for: kept


def test_a_budget_smaller_than_the_preparation_still_fits(pm25):
    """The budget covers the whole fit; one already spent reading the data still trains a
    step of the prior and of the denoiser rather than failing."""
    cfg = tiny_config(epochs=None).replace(
        network={"prior_layers": 1, "prior_dim": 16, "prior_heads": 2}
    )
    model = TSDiff(cfg).fit(pm25.iloc[:200], max_minutes=1e-5, progress=False)
    assert model.fitted and model.info["steps_run"] >= 1


def test_too_short_a_history_is_refused_by_name(tmp_path) -> None:
    ts = pd.date_range("2024-01-01", periods=60, freq="h")
    df = pd.DataFrame({"timestamp": ts, "y": np.sin(np.arange(60) / 3.0)})
    with pytest.raises(InsufficientHistoryError, match="needs at least 96"):
        TSDiff().fit(df, progress=False, max_minutes=0.05)  # default window 48
    data = tmp_path / "short.parquet"
    df.to_parquet(data)
    rc = main(["train", str(data), "--out", str(tmp_path / "m"), "--quiet"])
    assert rc == 2 and not (tmp_path / "m").exists()


def test_few_training_windows_warn() -> None:
    ts = pd.date_range("2024-01-01", periods=50, freq="h")
    df = pd.DataFrame({"timestamp": ts, "y": np.sin(np.arange(50) / 3.0)})
    cfg = TSDiffConfig().replace(data={"window": 24}, train={"epochs": 1})
    with pytest.warns(UserWarning, match="training windows of 24 steps"):
        TSDiff(cfg).fit(df, progress=False)
