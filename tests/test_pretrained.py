"""The models the project ships: found by short name, on their own test data."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tsdiff.datasets import default_data_dir, physionet_slice
from tsdiff.errors import ModelFileError
from tsdiff.model import TSDiff
from tsdiff.pretrained import SHIPPED_DIR, locate, shipped

SHIPPED = ("physionet-vitals", "pm25-beijing", "pm25-beijing-wide")


def test_shipped_models_are_listed_with_their_cards() -> None:
    assert set(SHIPPED) <= set(shipped())
    for name in SHIPPED:
        card = (SHIPPED_DIR / name / "MODEL_CARD.md").read_text()
        assert "## Test metrics" in card and "## Limits" in card and "command" in card
        assert (SHIPPED_DIR / name / "weights.safetensors").stat().st_size < 5_000_000


def test_a_folder_of_the_same_name_wins_over_a_shipped_model(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert locate("physionet-vitals") == SHIPPED_DIR / "physionet-vitals"
    (tmp_path / "physionet-vitals").mkdir()
    assert locate("physionet-vitals").resolve() == (tmp_path / "physionet-vitals").resolve()
    with pytest.raises(ModelFileError, match="shipped models: .*physionet-vitals"):
        TSDiff.load("no-such-model")


def test_vitals_model_imputes_unseen_stays_by_name_from_the_cli(tmp_path) -> None:
    model = TSDiff.load("physionet-vitals")
    test_ids = model.info["data"]["test_series"]
    df = physionet_slice()
    stays = df[df["series_id"].isin(test_ids[:400])]
    stays = stays[stays["series_id"].isin(stays["series_id"].unique()[:3])]
    assert stays["series_id"].nunique() == 3
    data, out = tmp_path / "stays.parquet", tmp_path / "filled.parquet"
    stays.to_parquet(data)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "tsdiff.cli",
            "impute",
            "physionet-vitals",
            str(data),
            "--out",
            str(out),
            "--n-samples",
            "8",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    filled = pd.read_parquet(out)
    imputed = filled[filled["imputed"]]
    assert len(imputed) > 0 and imputed["value"].notna().all()
    for var, spec in model.spec.items():  # every value one the variable can take
        v = imputed.loc[imputed["variable"] == var, ["value", "lo_90", "hi_90"]].to_numpy()
        if spec.lower is not None:
            assert (v >= spec.lower).all(), var
        if spec.upper is not None:
            assert (v <= spec.upper).all(), var
    assert model.spec["GCS"].kind == "integer"


@pytest.mark.parametrize("name", ["pm25-beijing", "pm25-beijing-wide"])
def test_pm25_model_imputes_a_test_month_by_name(name: str) -> None:
    base = default_data_dir()
    if base is None or not (base / "pm25_missing.parquet").exists():
        pytest.skip("../shared/data/pm25_missing.parquet is not available")
    miss = pd.read_parquet(base / "pm25_missing.parquet")
    month = miss[pd.to_datetime(miss["timestamp"]).dt.month == 3].iloc[:72]
    model = TSDiff.load(name)
    assert "2015-03" in model.info["data"]["test_series"] or any(
        str(s).endswith("-03") for s in model.info["data"]["test_series"]
    )
    out = model.impute(month, n_samples=8, seed=0).frame
    stations = [c for c in month.columns if c.startswith("station_")]
    obs = month[stations].notna().to_numpy()
    assert np.array_equal(out[stations].to_numpy()[obs], month[stations].to_numpy()[obs])
    assert out[stations].notna().all().all() and (out[stations].to_numpy() >= 0).all()


def test_sampling_other_than_the_calibrated_sampler_warns() -> None:
    """The shipped model's factors were fitted for its 4-step DDIM: other steps or a
    DDPM run keep them but draw differently spread samples, and say so; its own
    settings (any sample count) do not warn."""
    import warnings

    from tsdiff.errors import CalibrationWarning

    model = TSDiff.load("physionet-vitals")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.options(n_samples=8, seed=3)
    with pytest.warns(CalibrationWarning, match="ddim with 4 steps.*'ddim' -> 'ddpm'"):
        model.options(sampler="ddpm")
    stays = physionet_slice()
    one = stays[stays["series_id"] == stays["series_id"].iloc[0]]
    with pytest.warns(CalibrationWarning, match="steps 4 -> 2"):
        model.impute(one, n_samples=4, steps=2)
    model.spread, model.variable_spread, model.gate = 1.0, None, None
    model.interval_scale = model.forecast_interval_scale = model.forecast_spread = None
    model.forecast_gate = model.forecast_gate_far = model.quantile_blend = None
    assert not model.is_calibrated
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # samples as drawn: nothing to mismatch
        model.options(sampler="ddpm")


def test_cards_say_where_each_models_spec_came_from() -> None:
    """The models trained before specs existed had theirs inferred by the card script; the
    wide PM2.5 model inferred its own at fit: each card says which."""
    from tsdiff.benchmarks.model_card import _spec_origin

    for name, by_card in (
        ("pm25-beijing", True),
        ("physionet-vitals", True),
        ("pm25-beijing-wide", False),
    ):
        info = TSDiff.load(name).info
        line = _spec_origin(info)
        assert ("benchmarks.model_card" in line) is by_card, name
        card = (SHIPPED_DIR / name / "MODEL_CARD.md").read_text()
        assert line in card, name


def test_pm25_cards_show_the_gate_per_distance_and_why_it_was_chosen() -> None:
    """Both PM2.5 models ship with the gap gate, chosen on validation over the
    calibration before: the card says so, with the page that chose it."""
    for name in ("pm25-beijing", "pm25-beijing-wide"):
        model = TSDiff.load(name)
        assert model.gap_gate is not None and model.gate is None, name
        card = (SHIPPED_DIR / name / "MODEL_CARD.md").read_text()
        assert "gate per distance to the nearest observation" in card, name
        assert model.info["calibration"]["chosen_on"]["result"] in card, name
