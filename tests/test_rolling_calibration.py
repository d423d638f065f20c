"""Forecast calibration refitted as truths arrive: only matured forecasts, only the
latest, and a backtest that uses them origin by origin."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tsdiff.backtest import backtest, cutoffs
from tsdiff.benchmarks.lead_calibration import tracked
from tsdiff.calibration import rescale, scaled_interval
from tsdiff.errors import DataError, RangeError
from tsdiff.rolling_calibration import Forecasts, Refit, matured, rolling_refits

H, STEP, N = 6, 12, 5


def test_matured_takes_the_latest_forecasts_of_the_series_whose_horizon_had_ended() -> None:
    t = pd.Timestamp("2020-01-01")
    pool = [(("a", p, t), False) for p in (0, 4, 8)] + [(("a", 12, t), True), (("b", 9, t), True)]
    # at origin 14 with horizon 6: origins <= 8 have ended; 12 has not; series b is other
    assert matured(("a", 14, t), pool, horizon=6, recent=5) == [0, 1, 2]
    assert matured(("a", 14, t), pool, horizon=6, recent=2) == [1, 2]
    assert matured(("a", 18, t), pool, horizon=6, recent=2) == [2, 3]
    assert matured(("b", 30, t), pool, horizon=6, recent=3) == [4]
    assert matured(("a", 5, t), pool, horizon=6, recent=3) == []


def _forecasts(rng, origins, truth_sd, n=200, k=2, h=4, key="s") -> Forecasts:
    """Samples N(0, 1) per cell and truths N(0, truth_sd): spread 1 is right for sd 1."""
    w = len(origins)
    return Forecasts(
        rng.standard_normal((w, n, k, h)),
        truth_sd * rng.standard_normal((w, k, h)),
        [(key, int(p), pd.Timestamp("2020-01-01") + pd.Timedelta(hours=int(p))) for p in origins],
    )


def test_refits_follow_a_calm_period_once_its_truths_have_arrived() -> None:
    rng = np.random.default_rng(0)
    h = 4
    validation = _forecasts(rng, range(0, 40, 4), truth_sd=1.0, h=h)
    # the test period is calm: truths vary a third as much as the samples claim
    test = _forecasts(rng, range(40, 120, 4), truth_sd=0.33, h=h)
    refits = rolling_refits(validation, test, horizon=h, recent=10, intervals=True)
    assert len(refits) == len(test.where)
    # the first test origin sees only validation forecasts: the stormy factor
    assert refits[0].own == 0 and refits[0].pooled == 10
    assert 0.8 < refits[0].spread < 1.25
    # origin 44 sees its predecessor at 40 (40 + 4 <= 44): one own forecast pooled
    assert refits[1].own == 1
    # ten origins later the pool is the test period's own: narrower samples, intervals
    late = refits[12]
    assert late.own == 10 and late.pooled == 10
    assert late.spread < 0.6 * refits[0].spread
    assert late.intervals is not None and refits[0].intervals is not None
    assert late.intervals[90] < refits[0].intervals[90] * 1.2  # already narrowed by spread
    # nothing from the future: the truths of the last three forecasts (origins 108, 112,
    # 116) change no refit at or before 108, and do change the one at 116
    moved = Forecasts(test.samples, test.truth.copy(), test.where)
    moved.truth[-3:] *= 10
    again = rolling_refits(validation, moved, horizon=h, recent=10, intervals=True)
    assert again[:-2] == refits[:-2]
    assert again[-1] != refits[-1]


def test_refits_fit_interval_factors_on_samples_clipped_to_the_support() -> None:
    from tsdiff.calibration import Support, fit_interval_scale, fit_spread

    rng = np.random.default_rng(2)
    h, k = 4, 2
    validation = _forecasts(rng, range(0, 40, 4), truth_sd=1.0, h=h, k=k)
    test = _forecasts(rng, range(40, 60, 4), truth_sd=1.0, h=h, k=k)
    bounds = (np.array([-0.3, -np.inf]), np.array([np.inf, np.inf]))  # variable 0 bounded
    plain = rolling_refits(validation, test, horizon=h, recent=5, intervals=True)
    clipped = rolling_refits(validation, test, horizon=h, recent=5, intervals=True, support=bounds)
    assert [r.spread for r in clipped] == [r.spread for r in plain]  # the spread: unclipped
    assert clipped[0].intervals != plain[0].intervals
    # the first refit's pool is the last five validation forecasts, cells (K, H) each
    smp = validation.samples[-5:].transpose(1, 0, 2, 3).reshape(200, -1)
    y = validation.truth[-5:].reshape(-1)
    s = fit_spread(smp, y).spread
    var = np.tile(np.repeat(np.arange(k), h), 5)
    direct = fit_interval_scale(rescale(smp, s), y, support=Support.of(bounds, var)).scale
    assert clipped[0].intervals == direct


def test_refits_refuse_a_forecast_with_nothing_matured_before_it() -> None:
    rng = np.random.default_rng(1)
    validation = _forecasts(rng, [0], truth_sd=1.0, key="other")
    test = _forecasts(rng, [10], truth_sd=1.0)
    with pytest.raises(DataError, match="no forecast of series 's' had matured"):
        rolling_refits(validation, test, horizon=4, recent=3, intervals=False)
    with pytest.raises(DataError, match="recent must be >= 1"):
        rolling_refits(validation, test, horizon=4, recent=0, intervals=False)
    with pytest.raises(DataError, match="samples must be"):
        Forecasts(np.zeros((2, 3, 1, 4)), np.zeros((1, 1, 4)), test.where)


def _coverage(f: Forecasts, refits: list[Refit], level: int) -> float:
    """Share of f's truths inside the intervals its refits give (as ``tracked`` scores)."""
    inside = []
    for smp, y, r in zip(f.samples, f.truth, refits, strict=True):
        lo, hi = scaled_interval(rescale(smp, r.spread), level, r.intervals)
        inside.append((lo <= y) & (y <= hi))
    return float(np.mean(inside))


def test_tracking_narrows_intervals_that_keep_covering_too_much_and_widens_the_others() -> None:
    rng = np.random.default_rng(2)
    h = 4
    fixed = {50: 1.0, 90: 1.0}  # factors fitted before: right for truths ~ N(0, 1)
    for sd, wider in ((0.5, False), (2.0, True)):  # calmer, then stormier than fitted
        test = _forecasts(rng, range(0, 200, 4), truth_sd=sd, h=h)
        once = [Refit(1.0, fixed, 10, 0)] * len(test.where)
        got = tracked(once, test, horizon=h, rate=1.0)
        # nothing matured by the first origin (0 + 4 > 0): its factors as fitted
        assert got[0] == once[0]
        late = got[-1].intervals
        assert late is not None
        for lv in (50, 90):
            assert (late[lv] > 1.0) if wider else (late[lv] < 1.0)
            # coverage over the period moves toward the level from the fitted factors'
            before, after = _coverage(test, once, lv), _coverage(test, got, lv)
            assert abs(after - lv / 100) < abs(before - lv / 100) - 0.02, (sd, lv)
    assert tracked(once, test, horizon=h, rate=0.0) == once  # rate 0: as given


def test_tracking_uses_only_forecasts_whose_horizon_had_ended() -> None:
    rng = np.random.default_rng(3)
    h = 8
    test = _forecasts(rng, range(0, 80, 4), truth_sd=0.5, h=h)
    once = [Refit(1.0, {50: 1.0, 90: 1.0}, 10, 0)] * len(test.where)
    got = tracked(once, test, horizon=h, rate=0.5)
    assert got[:2] == once[:2]  # origins 0 and 4: nothing had ended (0 + 8 > 4)
    assert got[2] != once[2]  # origin 8: the forecast from 0 had
    moved = Forecasts(test.samples, test.truth.copy(), test.where)
    moved.truth[-2:] *= 10  # the last two forecasts (origins 72, 76) never mature
    assert tracked(once, moved, horizon=h, rate=0.5) == got
    moved.truth[-3] *= 10  # origin 68 ends at 76: the last origin reads it
    again = tracked(once, moved, horizon=h, rate=0.5)
    assert again[:-1] == got[:-1] and again[-1] != got[-1]


def test_tracking_refuses_bad_rates_and_refits() -> None:
    rng = np.random.default_rng(4)
    test = _forecasts(rng, [0, 4], truth_sd=1.0)
    ok = [Refit(1.0, {90: 1.0}, 1, 0)] * 2
    with pytest.raises(DataError, match="rate must be"):
        tracked(ok, test, horizon=4, rate=-0.1)
    with pytest.raises(DataError, match="one refit per forecast"):
        tracked(ok[:1], test, horizon=4, rate=0.1)
    with pytest.raises(DataError, match="no interval factors"):
        tracked([Refit(1.0, None, 1, 0)] * 2, test, horizon=4, rate=0.1)


def test_backtest_recalibrated_as_truths_arrive(fitted, pm25) -> None:
    kw = {"horizon": H, "step": STEP, "windows": N, "seed": 2, "calibrate_windows": 4}
    once = backtest(fitted, pm25, **kw, return_samples=True)
    rolled = backtest(fitted, pm25, **kw, recalibrate=4, return_samples=True)
    rec = rolled.summary["recalibration"]
    assert rec["recent"] == 4 and len(rec["spread"]) == rolled.summary["n_forecasts"] == N
    assert rolled.summary["spread"] is None  # one per origin instead
    # the first origin's pool is the calibration origins: the factor fitted once
    assert rec["spread"][0] == pytest.approx(once.summary["calibration"]["spread"])
    assert rec["own_forecasts_pooled"][0] == 0
    # origins STEP apart with H < STEP: each later one has seen its predecessors
    assert rec["own_forecasts_pooled"][1:] == [1, 2, 3, 4]
    assert rolled.summary["calibration"] == once.summary["calibration"]
    # same draws and gate: the same medians; the first origin is scaled alike
    assert once.samples is not None and rolled.samples is not None
    np.testing.assert_allclose(
        np.median(rolled.samples, axis=1), np.median(once.samples, axis=1), rtol=1e-4, atol=1e-3
    )
    np.testing.assert_allclose(rolled.samples[0], once.samples[0], rtol=1e-4, atol=1e-3)
    # each origin's 90 % interval width follows its own factors
    f = rolled.forecasts
    var = f["variable"].iloc[0]
    times = pd.DatetimeIndex(pm25["timestamp"])
    pos = cutoffs(len(times), H, STEP, N)
    assert f["origin"].nunique() == N and set(f["origin"]) == set(times[pos])
    assert (f[f["variable"] == var]["hi_90"] >= f[f["variable"] == var]["lo_90"]).all()
    # seeded: the same again
    again = backtest(fitted, pm25, **kw, recalibrate=4)
    # a smaller pool: the latest two
    two = backtest(fitted, pm25, **kw, recalibrate=2).summary["recalibration"]
    assert two["recent"] == 2 and two["own_forecasts_pooled"] == [0, 1, 2, 2, 2]
    pd.testing.assert_frame_equal(again.forecasts, rolled.forecasts)


def test_backtest_recalibrate_needs_calibration_origins(fitted, pm25) -> None:
    with pytest.raises(RangeError, match="recalibrate needs calibrate_windows"):
        backtest(fitted, pm25, horizon=H, step=STEP, windows=N, recalibrate=3)
    with pytest.raises(RangeError, match="recalibrate must be an integer >= 0"):
        backtest(fitted, pm25, horizon=H, step=STEP, windows=N, recalibrate=-1)


def test_cli_backtest_recalibrates_and_refuses_it_without_calibration_origins(
    fitted, pm25, tmp_path, capsys
) -> None:
    from tsdiff.cli import main

    model_dir, data, out = tmp_path / "model", tmp_path / "data.parquet", tmp_path / "bt.parquet"
    fitted.save(model_dir)
    pm25.to_parquet(data)
    argv = ["backtest", str(model_dir), str(data), "--horizon", str(H), "--step", str(STEP)]
    argv += ["--windows", str(N), "--out", str(out), "--n-samples", "8", "--recalibrate", "3"]
    assert main(argv) == 2
    assert "recalibrate needs calibrate_windows" in capsys.readouterr().err
    assert not out.exists()
    assert main([*argv, "--calibrate-windows", "3"]) == 0
    rec = json.loads(out.with_suffix(".json").read_text())["recalibration"]
    assert rec["recent"] == 3 and rec["own_forecasts_pooled"] == [0, 1, 2, 3, 3]
    assert len(pd.read_parquet(out)) > 0


def test_a_long_recalibrated_backtest_carries_the_once_calibrated_one_from_its_draws(
    fitted, pm25
) -> None:
    """Beyond one window the paths are scaled after sampling either way, so one draw
    gives both rows: ``once`` equals a backtest calibrated once, table and samples."""
    long = fitted.window + 6  # two chunks
    kw = {"horizon": long, "step": STEP, "windows": 3, "seed": 2, "calibrate_windows": 3}
    once = backtest(fitted, pm25, **kw, return_samples=True)
    rolled = backtest(fitted, pm25, **kw, recalibrate=2, return_samples=True)
    assert rolled.once is not None and once.once is None
    np.testing.assert_array_equal(rolled.once.samples, once.samples)
    pd.testing.assert_frame_equal(rolled.once.forecasts, once.forecasts)
    drop = lambda s: {k: v for k, v in s.items() if k != "sample_seconds"}  # noqa: E731
    assert drop(rolled.once.summary) == drop(once.summary)
    assert rolled.once.summary["recalibration"] is None
    assert rolled.summary["recalibration"]["recent"] == 2
    # one window: the sampler scales inside its last step, so no such row
    short = backtest(
        fitted, pm25, horizon=H, step=STEP, windows=3, calibrate_windows=3, recalibrate=2
    )
    assert short.once is None
