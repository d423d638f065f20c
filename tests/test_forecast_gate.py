"""Forecasts never worse than seasonal naive: the forecast gate, chosen on validation
forecast origins, weighs the model's median against seasonal naive per variable."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tsdiff.backtest import backtest
from tsdiff.baselines import seasonal_naive_forecast
from tsdiff.calibration import fit_gate
from tsdiff.errors import DataError, RangeError
from tsdiff.model import TSDiff

from .conftest import tiny_config

DAY = 24


def _seasonal(days: int = 40, seed: int = 0) -> pd.DataFrame:
    """Two hourly variables with a strong daily cycle and little noise: seasonal naive
    is hard to beat, so an undertrained model should fall back to it."""
    rng = np.random.default_rng(seed)
    t = np.arange(days * DAY)
    day = np.sin(2 * np.pi * t / DAY)
    return pd.DataFrame(
        {
            "timestamp": pd.date_range("2024-01-01", periods=t.size, freq="h"),
            "load": 50 + 20 * day + rng.normal(0, 0.5, t.size),
            "temp": 10 - 6 * day + rng.normal(0, 0.3, t.size),
        }
    )


@pytest.fixture(scope="module")
def undertrained():
    """One epoch on the seasonal frame, the gate on (as the default config has it)."""
    cfg = tiny_config(epochs=1, forecast_gate=True).replace(network={"season": DAY})
    return TSDiff(cfg).fit(_seasonal().iloc[: 30 * DAY], progress=False)


def test_seasonal_naive_repeats_the_last_observed_value_of_each_phase() -> None:
    x = np.arange(10, dtype=float)[None]  # (1, 10)
    assert seasonal_naive_forecast(x, 4, 6).tolist() == [[6, 7, 8, 9, 6, 7]]
    gap = x.copy()
    gap[0, 8] = np.nan  # phase 2's latest value is missing: one season further back
    assert seasonal_naive_forecast(gap, 4, 3).tolist() == [[6, 7, 4]]
    # no season, or one longer than the history: the last observed value
    assert seasonal_naive_forecast(gap, 0, 2).tolist() == [[9, 9]]
    assert seasonal_naive_forecast(gap, 11, 2).tolist() == [[9, 9]]
    never = np.full((1, 10), np.nan)  # nothing to repeat
    assert np.isnan(seasonal_naive_forecast(never, 4, 3)).all()
    with pytest.raises(RangeError, match="horizon"):
        seasonal_naive_forecast(x, 4, 0)


def test_the_gate_counts_a_forecast_as_one_unit_of_evidence() -> None:
    """Twenty forecasts of 24 steps each, each forecast's error shifted by its own
    amount (errors of one forecast move together): the model is slightly better on
    average. Per cell that looks like evidence; per forecast it is not, and seasonal
    naive is kept."""
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(20), DAY)
    z = rng.normal(size=20)
    u = -0.15 + 0.6 * (z - z.mean()) / z.std()  # per forecast: the model's gain (< 0: wins)
    truth = np.zeros(groups.size)
    naive = truth + 1.0  # error 1 everywhere
    median = 1.0 + u[groups] + rng.normal(0, 0.01, groups.size)
    var = np.zeros(groups.size, dtype=int)
    cells = fit_gate(median, naive, truth, var, 1, evidence=2.0)
    forecasts = fit_gate(median, naive, truth, var, 1, evidence=2.0, groups=groups)
    assert cells.gate[0] > 0  # 480 cells: "significant"
    assert forecasts.gate[0] == 0.0  # 20 forecasts: not
    good = fit_gate(truth + 0.01, naive, truth, var, 1, evidence=2.0, groups=groups)
    assert good.gate == (1.0,)  # a model that wins on every forecast is kept alone
    with pytest.raises(DataError, match="groups"):  # one group per cell
        fit_gate(median, naive, truth, var, 1, evidence=2.0, groups=groups[:-1])


def test_a_blend_must_beat_the_model_alone_on_evidence_too() -> None:
    """A model far better than seasonal naive, 20 forecasts: a 0.9 blend happens to
    have the lower validation MAE, by less than a standard error over forecasts; the
    forecast gate keeps the model alone (a blend won by chance cost a tuned ETTh1 model
    5 % CRPS on its test origins). A real blend win (biases of opposite sign) stays."""
    rng = np.random.default_rng(4)
    groups = np.repeat(np.arange(20), DAY)
    truth = np.zeros(groups.size)
    med = rng.normal(0, 1, 20)[groups] + rng.normal(0, 0.3, groups.size)
    naive = 2.0 + rng.normal(0, 1.5, 20)[groups] + rng.normal(0, 0.3, groups.size)
    var = np.zeros(groups.size, dtype=int)
    one_way = fit_gate(med, naive, truth, var, 1, evidence=1.0, groups=groups)
    both = fit_gate(med, naive, truth, var, 1, evidence=1.0, groups=groups, both_ways=True)
    assert one_way.gate == (0.9,) and both.gate == (1.0,)
    kw = {"evidence": 1.0, "groups": groups, "both_ways": True}
    real = fit_gate(truth + 1, truth - 1, truth, var, 1, **kw)
    assert real.gate == (0.5,)


def test_a_model_that_beats_seasonal_naive_overall_is_kept_alone() -> None:
    """Pooled over variables, per forecast: a model better on most variables and most
    forecasts wins overall (the gate then keeps it alone, however one variable looks);
    one better only by chance on a few forecasts does not."""
    from tsdiff.forecast_gate import _beats_naive

    rng = np.random.default_rng(0)
    w, k, h = 28, 7, DAY
    group = np.repeat(np.arange(w), k * h)  # (W·K·H,) forecast after forecast
    y = np.zeros(group.size)
    base = rng.normal(0, 1.0, group.size)  # seasonal naive's errors
    good = rng.normal(0, 0.8, group.size)  # the model's: 20 % smaller on average
    assert _beats_naive(good, base, y, group)
    few = np.repeat(np.arange(3), k * h)  # three forecasts, the model barely better
    n = few.size
    assert not _beats_naive(
        rng.normal(0, 0.99, n) + rng.normal(0, 1, 3)[few], rng.normal(0, 1.0, n), y[:n], few
    )


def test_an_undertrained_model_forecasts_no_worse_than_seasonal_naive(undertrained) -> None:
    """The gate falls back to seasonal naive where validation says the model loses; on
    later origins the gated forecasts' MAE is seasonal naive's, far below the model's."""
    model = undertrained
    got = model.info["forecast_calibration"]["gate"]
    assert model.forecast_gate is not None and max(model.forecast_gate) < 1
    assert got["mae_gated"] <= got["mae_interpolation"]  # on validation: no worse than naive
    df = _seasonal()
    kw = {"horizon": 12, "step": DAY, "windows": 8, "seed": 2}
    gated = backtest(model, df, **kw)
    gate, model.forecast_gate = model.forecast_gate, None
    try:
        alone = backtest(model, df, **kw)
    finally:
        model.forecast_gate = gate
    assert gated.summary["gate"] == gate and alone.summary["gate"] is None
    values = df[["load", "temp"]].to_numpy().T  # (K, T)
    naive = np.mean(
        [
            np.abs(seasonal_naive_forecast(values[:, : c + 1], DAY, 12) - values[:, c + 1 : c + 13])
            for _, c, _ in gated.windows
        ]
    )
    assert gated.summary["overall"]["mae"] <= 1.05 * naive
    assert gated.summary["overall"]["mae"] < 0.8 * alone.summary["overall"]["mae"]


def test_the_gate_is_saved_and_a_loaded_model_forecasts_the_same(undertrained, tmp_path) -> None:
    df = _seasonal().iloc[: 30 * DAY]
    undertrained.save(tmp_path / "m")
    loaded = TSDiff.load(tmp_path / "m")
    assert loaded.forecast_gate == undertrained.forecast_gate
    a = undertrained.forecast(df, horizon=12, seed=4).frame
    b = loaded.forecast(df, horizon=12, seed=4).frame
    pd.testing.assert_frame_equal(a, b)


def test_a_long_forecast_is_recentred_on_seasonal_naive_too(undertrained) -> None:
    """Beyond one window (chunks continued path by path) the gate applies to the whole
    paths: with α = 0 their median is the seasonal naive forecast, every step."""
    model = undertrained
    df = _seasonal().iloc[: 30 * DAY]
    horizon = 3 * model.window
    gate, model.forecast_gate = model.forecast_gate, [0.0, 0.0]
    try:
        res = model.forecast(df, horizon=horizon, seed=1)
    finally:
        model.forecast_gate = gate
    hist = df[["load", "temp"]].to_numpy().T  # (K, T)
    naive = seasonal_naive_forecast(hist, DAY, horizon)  # (K, H)
    med = res.frame[["load", "temp"]].to_numpy().T  # a wide frame: the medians, (K, H)
    np.testing.assert_allclose(med, naive, atol=1e-6)


def test_a_model_saved_before_the_gate_loads_without_one(undertrained, tmp_path) -> None:
    """Older models (no ``forecast_gate`` in their metadata) forecast with the model
    alone, and their config says they were trained without the gate."""
    import json

    from tsdiff.config import TSDiffConfig

    undertrained.save(tmp_path / "m")
    meta_path = tmp_path / "m" / "model.json"
    meta = json.loads(meta_path.read_text())
    del meta["forecast_gate"], meta["forecast_gate_far"]
    meta_path.write_text(json.dumps(meta))
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    del cfg["train"]["forecast_gate"]
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    loaded = TSDiff.load(tmp_path / "m")
    assert loaded.forecast_gate is None and loaded.forecast_gate_far is None
    assert not loaded.config.train.forecast_gate
    assert TSDiffConfig().train.forecast_gate  # the default for new models


def test_the_command_line_backtest_scores_the_model_alone_on_request(
    undertrained, tmp_path, capsys
) -> None:
    import json

    from tsdiff.cli import main

    undertrained.save(tmp_path / "m")
    _seasonal().to_parquet(tmp_path / "data.parquet")
    args = ["backtest", str(tmp_path / "m"), str(tmp_path / "data.parquet"), "--horizon", "12",
            "--step", "24", "--windows", "4"]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "g.parquet")]) == 0
    assert main([*args, "--out", str(tmp_path / "a.parquet"), "--no-gate"]) == 0
    capsys.readouterr()
    gated = json.loads((tmp_path / "g.json").read_text())
    alone = json.loads((tmp_path / "a.json").read_text())
    assert gated["gate"] == undertrained.forecast_gate and alone["gate"] is None
    assert gated["overall"]["mae"] < alone["overall"]["mae"]


def test_validation_forecasts_read_the_training_steps_before_the_held_out_end(
    undertrained,
) -> None:
    """A held-out end of a timeline is forecast with the steps before it as context (a
    forecast after the data's end has them too); a held-out whole series from its own."""
    import dataclasses

    from tsdiff.data import Panel
    from tsdiff.estimator import _forecast_validation

    panel = undertrained.panel(_seasonal(days=10))
    (whole,) = panel.series
    train, val = whole.part(0, 200), whole.part(200, 240)
    got, tails = _forecast_validation(panel, [train], [val])
    assert isinstance(got, Panel) and got.series[0] is whole and tails == [40]
    other = dataclasses.replace(val, key="elsewhere")
    got, tails = _forecast_validation(panel, [train], [other])
    assert got.series[0] is other and tails == [39]


def test_a_fit_on_one_series_calibrates_forecasts_from_origins_in_its_held_out_end(
    undertrained,
) -> None:
    df = _seasonal().iloc[: 30 * DAY]
    cal = undertrained.info["forecast_calibration"]
    held_out = int(round(len(df) * undertrained.config.train.val_fraction))
    first_val = pd.Timestamp(df["timestamp"].iloc[len(df) - held_out])
    # the first origin is the last training step or later; its horizon lies in the end
    assert pd.Timestamp(cal["first_origin"]) >= first_val - pd.Timedelta(hours=1)
    assert cal["windows"] == (held_out - cal["horizon"]) // cal["horizon"] + 1


def test_a_gated_forecast_trajectory_ends_at_the_gated_samples(undertrained) -> None:
    """The fan chart a dashboard animates ends where the forecast does: the gate moves
    the trajectory's result state with the samples."""
    df = _seasonal().iloc[: 30 * DAY]
    assert undertrained.forecast_gate is not None
    res = undertrained.forecast(
        df, 6, seed=3, return_samples=True, return_trajectory=True, trajectory_steps=3
    )
    traj, samples = res.trajectory, res.samples
    future = traj[traj["timestamp"] > df["timestamp"].max()]
    last = future[future["step"] == future["step"].max()]
    long = samples.melt(
        id_vars=["timestamp", "sample"], var_name="variable", value_name="value"
    ).query("sample < 3")
    merged = last.merge(long, on=["timestamp", "variable", "sample"], suffixes=("", "_s"))
    assert len(merged) == len(last) == len(long) > 0
    np.testing.assert_array_equal(merged["value"].to_numpy(), merged["value_s"].to_numpy())


def test_a_fit_bounded_by_its_deadline_draws_validation_forecasts_in_batches(
    undertrained, monkeypatch
) -> None:
    """Past the deadline the forecast fit stops after a batch (at least MIN_FORECASTS);
    with time left it draws them all, batch by batch, exactly as at once."""
    import time

    from tsdiff import backtest as bt
    from tsdiff import origins

    df = _seasonal(days=12)
    three = pd.concat([df.iloc[i * 96 : (i + 1) * 96].assign(series_id=f"s{i}") for i in range(3)])
    panel = undertrained.panel(three)
    assert len(panel.series) == 3
    monkeypatch.setattr(origins, "FORECAST_BATCH", 1)
    monkeypatch.setattr(origins, "MIN_FORECASTS", 2)
    opts = {"n_samples": None, "steps": None, "sampler": None, "eta": None, "seed": 0}
    args = (undertrained, panel, 12, 12, 2, opts)
    whole = bt.fit_forecast_spread(*args, spread=False)
    later = bt.fit_forecast_spread(*args, spread=False, until=time.perf_counter() + 600)
    assert whole == later and whole["windows"] == 6  # 3 series x 2 origins
    past = bt.fit_forecast_spread(*args, spread=False, until=time.perf_counter() - 1)
    assert past["windows"] == 2  # one series (2 forecasts) reaches MIN_FORECASTS


def test_a_validation_frame_sharing_a_series_key_is_forecast_from_its_own_steps(
    undertrained,
) -> None:
    """A ``valid_df`` series with a training series' key is not the end of that training
    series: its origins stay in its own steps, never in the training data."""
    import dataclasses

    from tsdiff.estimator import _forecast_validation

    panel = undertrained.panel(_seasonal(days=10))
    (whole,) = panel.series
    train = whole.part(0, 200)
    later = dataclasses.replace(whole.part(200, 240))  # same key, given apart
    fit_panel = dataclasses.replace(panel, series=[train])  # what fit gridded: train only
    got, tails = _forecast_validation(fit_panel, [train], [later])
    assert got.series[0] is later and tails == [39]


def test_the_far_gate_weighs_the_leads_beyond_the_first_chunk() -> None:
    """``lead_gate``: the first gate over the first chunk's leads, the far gate beyond;
    None when the model stands alone at every lead."""
    from types import SimpleNamespace

    from tsdiff.forecasting import chunk_length, lead_gate

    cfg = tiny_config(epochs=1)
    m = SimpleNamespace(
        variables=["a", "b"], window=cfg.data.window, config=cfg, forecast_gate=None
    )
    h = chunk_length(m)
    m.forecast_gate_far = None
    assert lead_gate(m, 3 * h) is None
    m.forecast_gate_far = [1.0, 0.4]
    got = lead_gate(m, 3 * h)
    assert got.shape == (2, 3 * h)
    assert (got[:, :h] == 1).all() and (got[0, h:] == 1).all() and (got[1, h:] == 0.4).all()
    m.forecast_gate = [0.0, 0.5]  # the far gate may also keep the model alone far out
    m.forecast_gate_far = [1.0, 1.0]
    got = lead_gate(m, 2 * h)
    assert (got[:, h:] == 1).all() and got[:, :h].tolist() == [[0.0] * h, [0.5] * h]
    assert lead_gate(m, h).tolist() == [[0.0] * h, [0.5] * h]  # no far lead: no far gate


def test_a_fit_fits_the_far_gate_on_a_long_validation_forecast_per_chunk(undertrained) -> None:
    """The validation tail (72 steps) is forecast once, continued window by window; the
    leads beyond the first chunk give one unit of evidence per chunk, against an anchor
    at half the first gate's weights. The undertrained model loses to seasonal naive
    there too, so its far leads fall back to it."""
    from tsdiff.forecast_gate import FAR_ANCHOR
    from tsdiff.forecasting import chunk_length

    far = undertrained.info["forecast_calibration"]["far_gate"]
    h = chunk_length(undertrained)
    held_out = int(round(30 * DAY * undertrained.config.train.val_fraction))
    assert far["horizon"] == held_out and far["leads_from"] == h + 1
    assert far["forecasts"] == 1 and far["units"] == (held_out - h + h - 1) // h
    assert far["n_cells"] == 2 * (held_out - h)
    assert undertrained.forecast_gate_far == far["kept"] and max(far["kept"]) < 1
    near = undertrained.forecast_gate or [1.0, 1.0]
    assert 0 < FAR_ANCHOR < 1 and far["anchor"] == [FAR_ANCHOR * a for a in near]
    assert far["mae_gated"] <= far["mae_interpolation"] < far["mae_model"]


def test_a_long_forecast_takes_the_far_gate_beyond_the_first_chunk(undertrained, tmp_path) -> None:
    """Model alone over the first chunk, seasonal naive (α = 0) beyond: the forecast's
    median leaves the naive forecast over the first chunk and is it after; the far gate
    is saved and a loaded model forecasts the same."""
    from tsdiff.forecasting import chunk_length

    model = undertrained
    df = _seasonal().iloc[: 30 * DAY]
    horizon, h = 3 * model.window, chunk_length(model)
    saved = model.forecast_gate, model.forecast_gate_far
    model.forecast_gate, model.forecast_gate_far = None, [0.0, 0.0]
    try:
        res = model.forecast(df, horizon=horizon, seed=1)
        model.save(tmp_path / "m")
    finally:
        model.forecast_gate, model.forecast_gate_far = saved
    naive = seasonal_naive_forecast(df[["load", "temp"]].to_numpy().T, DAY, horizon)  # (K, H)
    med = res.frame[["load", "temp"]].to_numpy().T  # (K, H)
    np.testing.assert_allclose(med[:, h:], naive[:, h:], atol=1e-6)
    assert np.abs(med[:, :h] - naive[:, :h]).mean() > 1.0  # the undertrained model alone
    loaded = TSDiff.load(tmp_path / "m")
    assert loaded.forecast_gate is None and loaded.forecast_gate_far == [0.0, 0.0]
    again = loaded.forecast(df, horizon=horizon, seed=1).frame
    pd.testing.assert_frame_equal(res.frame, again)


def test_a_backtest_reports_both_gates_and_a_long_recalibration_replaces_the_far_one(
    undertrained,
) -> None:
    import copy

    from tsdiff.backtest import calibrate_forecast

    df = _seasonal()
    model = copy.deepcopy(undertrained)
    long = backtest(model, df, horizon=48, step=DAY, windows=2)
    assert long.summary["gate"] == model.forecast_gate
    assert long.summary["gate_far"] == model.forecast_gate_far
    assert backtest(model, df, horizon=12, step=DAY, windows=2).summary["gate_far"] is None
    assert (
        backtest(model, df, horizon=48, step=DAY, windows=2, gate=False).summary["gate_far"] is None
    )
    calibrate_forecast(model, df.iloc[: 30 * DAY], horizon=12, step=DAY, windows=4)
    assert model.forecast_gate_far == undertrained.forecast_gate_far  # a day: far gate kept
    calibrate_forecast(model, df.iloc[: 30 * DAY], horizon=48, step=DAY, windows=4)
    assert model.forecast_gate_far is None  # fitted over all 48 leads: one gate


def test_an_anchored_gate_keeps_its_anchor_unless_the_evidence_moves_it() -> None:
    """An anchored gate (the far gate's): anchored at the model alone, seven chunks where
    the model is a little better than seasonal naive keep it alone (fitted from seasonal
    naive, the same cells would have sent it there); a variable on which seasonal
    naive wins clearly moves; a common weight that wins over all variables replaces
    the anchor everywhere."""
    rng = np.random.default_rng(3)
    k, units = 3, 7
    groups = np.tile(np.repeat(np.arange(units), DAY), k)
    var = np.repeat(np.arange(k), units * DAY)
    truth = np.zeros(groups.size)
    naive = 1.0 + rng.uniform(0, 0.4, units * k)[groups + units * var]  # (m,) all > 0
    z = rng.normal(size=units)
    gain = -0.07 + 0.25 * (z - z.mean()) / z.std()  # per chunk: the model's, 0.7 SE
    med = naive + gain[groups]  # the model 7 % better on average, chunk by chunk
    med[var == 2] = 3.0 + rng.normal(0, 0.1, (var == 2).sum())  # far worse on the third
    kw = {"evidence": 1.0, "groups": groups}
    anchored = fit_gate(med, naive, truth, var, k, anchor=[1.0, 1.0, 1.0], **kw)
    assert anchored.gate[:2] == (1.0, 1.0) and anchored.gate[2] == 0.0
    from_naive = fit_gate(med[var < 2], naive[var < 2], truth[var < 2], var[var < 2], 2,
                          both_ways=True, **{**kw, "groups": groups[var < 2]})  # fmt: skip
    assert from_naive.gate == (0.0, 0.0)  # the first gate's rule: no evidence, naive
    # the model alone everywhere beats an anchor at seasonal naive by far: one weight moves
    good = fit_gate(0.2 * naive, naive, truth, var, k, anchor=[0.0, 0.0, 0.0], **kw)
    assert good.gate == (1.0, 1.0, 1.0)
    with pytest.raises(DataError, match="anchor"):
        fit_gate(med, naive, truth, var, k, anchor=[1.0], **kw)


def test_the_far_gate_keeps_the_even_blend_that_beats_either_forecast() -> None:
    """Far out the model's median and seasonal naive are both weak, their errors
    independent here: their mean beats either by far, and a week of seven chunks gives
    no evidence to leave the blend the far gate starts from."""
    from tsdiff.forecast_gate import FAR_ANCHOR

    rng = np.random.default_rng(5)
    n = 7 * DAY
    groups, var = np.repeat(np.arange(7), DAY), np.zeros(n, dtype=int)
    truth = rng.normal(size=n)
    med, naive = truth + rng.normal(size=n), truth + rng.normal(size=n)
    fit = fit_gate(med, naive, truth, var, 1, evidence=1.0, groups=groups, anchor=[FAR_ANCHOR])
    assert fit.gate == (FAR_ANCHOR,)
    assert fit.mae_gated < 0.8 * min(fit.mae_model, fit.mae_interpolation)


def test_a_gate_of_ones_leaves_the_paths_untouched_and_another_moves_them(undertrained) -> None:
    """α = 1 everywhere is the model alone: the paths come back bit for bit (a
    benchmark then reuses the gated row as the ungated one); α < 1 moves them."""
    from tsdiff.forecasting import gate_paths

    df = _seasonal().iloc[: 30 * DAY]
    (series,) = undertrained.panel(df).series
    cut = len(series.index) - 1
    rng = np.random.default_rng(0)
    paths = [rng.normal(50, 5, size=(4, 2, 6))]  # (n, K, H)
    same = gate_paths(undertrained, paths, [series], [cut], np.ones(2))
    np.testing.assert_array_equal(same[0], paths[0])
    moved = gate_paths(undertrained, paths, [series], [cut], np.full(2, 0.5))
    assert not np.allclose(moved[0], paths[0])
