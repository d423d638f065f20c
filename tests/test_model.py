"""Contracts of the estimator: determinism, persistence, the output frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tsdiff.errors import (
    EmptyInputError,
    ModelFileError,
    NotFittedError,
    RangeError,
    UnknownVariableError,
)
from tsdiff.model import TSDiff

from .conftest import tiny_config

VARS = [f"station_0010{i:02d}" for i in range(1, 9)]


def test_fit_records_history_and_info(fitted):
    assert fitted.variables == VARS
    assert fitted.freq.to_str() in ("1h", "h", "60min")
    assert len(fitted.epoch_log) == 2 and "val_loss" in fitted.epoch_log[-1]
    assert "val_crps" in fitted.epoch_log[-1]
    assert fitted.info["train_windows"] > 0


def test_impute_keeps_observed_bit_identical_and_flags_the_rest(fitted, pm25):
    df = pm25.iloc[500:600]
    out = fitted.impute(df, seed=1).frame
    assert len(out) == len(df)
    assert list(out["timestamp"]) == list(df["timestamp"])
    for v in VARS:
        obs = df[v].notna().to_numpy()
        assert np.array_equal(out[v].to_numpy()[obs], df[v].to_numpy()[obs])
        assert (out[f"{v}_imputed"].to_numpy() == ~obs).all()
        assert out[v].notna().all()
        lo, hi = out[f"{v}_lo_90"].to_numpy(), out[f"{v}_hi_90"].to_numpy()
        lo50, hi50 = out[f"{v}_lo_50"].to_numpy(), out[f"{v}_hi_50"].to_numpy()
        assert (lo <= lo50 + 1e-9).all() and (lo50 <= out[v] + 1e-9).all()
        assert (out[v] <= hi50 + 1e-9).all() and (hi50 <= hi + 1e-9).all()


def test_seeded_determinism(fitted, pm25):
    df = pm25.iloc[500:560]
    a = fitted.impute(df, seed=3).frame
    b = fitted.impute(df, seed=3).frame
    c = fitted.impute(df, seed=4).frame
    pd.testing.assert_frame_equal(a, b)
    imputed = a[[f"{v}_imputed" for v in VARS]].to_numpy().any()
    assert imputed and not a.equals(c)


def test_fit_is_seeded(pm25):
    a = TSDiff(tiny_config(epochs=1)).fit(pm25.iloc[:200], progress=False)
    b = TSDiff(tiny_config(epochs=1)).fit(pm25.iloc[:200], progress=False)
    for (k, x), (_, y) in zip(a.net.state_dict().items(), b.net.state_dict().items(), strict=False):
        assert np.array_equal(x.numpy(), y.numpy()), k


def test_fit_save_load_predict_equality(fitted, pm25, tmp_path):
    df = pm25.iloc[500:580]
    path = fitted.save(tmp_path / "m")
    loaded = TSDiff.load(path)
    assert loaded.config == fitted.config and loaded.variables == fitted.variables
    pd.testing.assert_frame_equal(fitted.impute(df, seed=2).frame, loaded.impute(df, seed=2).frame)
    pd.testing.assert_frame_equal(
        fitted.forecast(df, horizon=6, seed=2).frame, loaded.forecast(df, horizon=6, seed=2).frame
    )


def test_saved_model_contains_no_pickle(fitted, tmp_path):
    path = fitted.save(tmp_path / "m")
    names = sorted(p.name for p in path.iterdir())
    assert names == ["config.json", "model.json", "weights.safetensors"]
    assert not list(tmp_path.glob(".m.*"))  # no temporary left behind


def test_load_errors_name_the_problem(tmp_path):
    with pytest.raises(ModelFileError, match="missing"):
        TSDiff.load(tmp_path / "nowhere")
    with pytest.raises(NotFittedError):
        TSDiff(tiny_config()).impute(pd.DataFrame({"timestamp": [1], "a": [1.0]}))


def test_long_series_is_stitched_from_windows(fitted, pm25):
    df = pm25.iloc[:300]  # 300 steps, windows of 24 with stride 12
    res = fitted.impute(df, seed=0, return_samples=True)
    out, samples = res.frame, res.samples
    assert len(out) == 300 and samples["sample"].nunique() == 4
    assert len(samples) == 300 * 4
    v = VARS[0]
    med = samples.groupby("timestamp")[v].median().to_numpy()
    assert np.allclose(out[v].to_numpy(), med)


def test_same_series_alone_or_with_others_gives_the_same_answer(fitted, pm25):
    a = pm25.iloc[500:548].assign(series_id="a")
    b = pm25.iloc[548:600].assign(series_id="b")
    both = fitted.impute(pd.concat([a, b]), seed=5).frame
    alone = fitted.impute(a, seed=5).frame
    got = both[both["series_id"] == "a"].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, alone.reset_index(drop=True), atol=1e-5)


def test_forecast_timestamps_and_shapes(fitted, pm25):
    df = pm25.iloc[500:600]
    fc = fitted.forecast(df, horizon=5, levels=[50, 80], seed=0).frame
    last = df["timestamp"].max()
    expect = pd.date_range(last + pd.Timedelta("1h"), periods=5, freq="h")
    assert list(fc["timestamp"]) == list(expect)
    v = VARS[2]
    for col in (v, f"{v}_mean", f"{v}_lo_50", f"{v}_hi_50", f"{v}_lo_80", f"{v}_hi_80"):
        assert fc[col].notna().all(), col
    assert (fc[f"{v}_lo_80"] <= fc[f"{v}_hi_80"]).all()


def test_forecast_of_a_short_series(fitted, pm25):
    fc = fitted.forecast(pm25.iloc[500:505], horizon=3, seed=0).frame
    assert len(fc) == 3


@pytest.mark.parametrize("horizon", [0, -3, 2.5, True])
def test_horizon_out_of_range(fitted, pm25, horizon):
    with pytest.raises(RangeError, match="horizon"):
        fitted.forecast(pm25.iloc[:50], horizon=horizon)


def test_unknown_and_missing_variables(fitted, pm25):
    with pytest.raises(UnknownVariableError, match="extra"):
        fitted.impute(pm25.iloc[:50].assign(extra=1.0))
    with pytest.raises(UnknownVariableError, match=VARS[0]):
        fitted.impute(pm25.iloc[:50].drop(columns=[VARS[0]]))
    with pytest.raises(EmptyInputError):
        fitted.impute(pm25.iloc[:0])


@pytest.mark.parametrize("kw", [{"n_samples": 0}, {"steps": 51}, {"levels": [0]}, {"eta": 2.0}])
def test_sampling_options_are_range_checked(fitted, pm25, kw):
    with pytest.raises(RangeError):
        fitted.impute(pm25.iloc[:50], **kw)


def test_evaluate_reports_model_and_baselines(fitted, pm25):
    r = fitted.evaluate(pm25.iloc[500:620], missing=0.2, seed=0)
    assert r["n_cells"] > 50
    for key in ("mae", "rmse", "crps", "cov50", "cov90", "width90"):
        assert np.isfinite(r["model"][key]), key
    assert set(r["baselines"]) == {"mean", "locf", "linear"}
    assert 0 <= r["model"]["cov90"] <= 1


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    length=st.integers(2, 60),
    missing=st.floats(0.0, 0.9),
    n_series=st.integers(1, 3),
    seed=st.integers(0, 10_000),
)
def test_observed_cells_bit_identical_on_random_panels(fitted, length, missing, n_series, seed):
    rng = np.random.default_rng(seed)
    frames = []
    for s in range(n_series):
        vals = rng.normal(50, 30, size=(length, len(VARS))) * rng.choice([1, 1e-3, 1e3])
        vals[rng.random(vals.shape) < missing] = np.nan
        vals[0, 0] = rng.normal()  # at least one observation per series
        f = pd.DataFrame(vals, columns=VARS)
        f.insert(0, "timestamp", pd.date_range("2020-01-01", periods=length, freq="h"))
        f.insert(0, "series_id", s)
        frames.append(f)
    df = pd.concat(frames, ignore_index=True)
    out = fitted.impute(df, seed=seed).frame
    assert len(out) == len(df)
    for v in VARS:
        obs = df[v].notna().to_numpy()
        assert np.array_equal(out[v].to_numpy()[obs], df[v].to_numpy()[obs])
        assert out[v].notna().all()
        assert (out[f"{v}_imputed"].to_numpy() == ~obs).all()


def test_fit_calibrates_the_spread_on_validation_cells(fitted):
    cal = fitted.info["calibration"]
    assert cal["n_cells"] > 0 and fitted.spread == cal["spread"]
    # the factor is chosen by CRPS on those cells, and 1 (no change) was a candidate
    assert cal["crps_after"] <= cal["crps_before"]


def test_spread_scales_samples_about_their_median_and_survives_save_load(fitted, pm25, tmp_path):
    model = TSDiff.load(fitted.save(tmp_path / "m"))
    assert model.spread == fitted.spread
    panel = model.panel(pm25.iloc[500:560])
    with torch.no_grad():  # a barely trained head draws near-identical samples: widen them
        g = torch.Generator().manual_seed(0)
        model.net.head[-1].weight.normal_(0, 0.3, generator=g)
        model.net.input_proj.weight[:, 1].normal_(0, 3.0, generator=g)  # the noisy channel
    model.spread = 1.0
    raw = model.sample(panel, n_samples=8, seed=4)
    model.spread = 2.5
    wide = model.sample(panel, n_samples=8, seed=4)
    for r, w, s in zip(raw, wide, panel.series, strict=True):
        obs = ~np.isnan(s.values)
        assert np.array_equal(w[:, obs], r[:, obs])  # observed cells untouched
        med = np.median(r, axis=0)
        np.testing.assert_allclose(np.median(w, axis=0), med, atol=1e-3)
        np.testing.assert_allclose(w - med, 2.5 * (r - med), rtol=1e-3, atol=1e-3)
        spread_r, spread_w = r[:, ~obs].std(axis=0), w[:, ~obs].std(axis=0)
        assert spread_r.mean() > 0.01  # µg/m³: the samples really differ
        np.testing.assert_allclose(spread_w, 2.5 * spread_r, rtol=1e-2, atol=1e-2)


def test_calibrate_refits_the_spread_on_given_data(fitted, pm25):
    model = TSDiff(fitted.config)
    model.__dict__.update({k: v for k, v in fitted.__dict__.items() if k != "spread"})
    report = model.calibrate(pm25.iloc[300:500], seed=1)
    assert report["n_cells"] > 0 and model.spread == report["spread"]
    assert report["cov90_after"] >= report["cov90_before"] or report["spread"] < 1
    with pytest.raises(RangeError):
        model.calibrate(pm25.iloc[300:500], missing=1.5)


def test_a_step_token_model_fits_saves_loads_and_predicts_the_same(pm25, tmp_path):
    """The step-token body through the whole contract: seeded fit, save, load, impute
    and forecast equality, the token kind saved with the model."""
    cfg = tiny_config(epochs=1).replace(network={"tokens": "steps", "channels": 32, "heads": 4})
    model = TSDiff(cfg).fit(pm25.iloc[:200], progress=False)
    again = TSDiff(cfg).fit(pm25.iloc[:200], progress=False)
    for (k, x), (_, y) in zip(
        model.net.state_dict().items(), again.net.state_dict().items(), strict=True
    ):
        assert np.array_equal(x.numpy(), y.numpy()), k
    loaded = TSDiff.load(model.save(tmp_path / "m"))
    assert loaded.config.network.tokens == "steps" and loaded.net.step_tokens is not None
    df = pm25.iloc[500:580]
    pd.testing.assert_frame_equal(model.impute(df, seed=2).frame, loaded.impute(df, seed=2).frame)
    pd.testing.assert_frame_equal(
        model.forecast(df, horizon=6, seed=2).frame, loaded.forecast(df, horizon=6, seed=2).frame
    )
