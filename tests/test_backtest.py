"""Backtests: no look-ahead, window geometry, and a summary that the table reproduces."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tsdiff import metrics
from tsdiff.backtest import backtest, coverage_se, cutoffs, quantile_columns, score_frame
from tsdiff.cli import main
from tsdiff.errors import DataError, RangeError

H, STEP, N = 6, 12, 5


@pytest.fixture(scope="module")
def result(fitted, pm25):
    return backtest(fitted, pm25, horizon=H, step=STEP, windows=N, seed=3, return_samples=True)


def _saved(fitted, pm25, tmp_path) -> tuple[Path, Path]:
    """The model and the data as the CLI reads them: a model directory and a parquet."""
    model_dir, data = tmp_path / "model", tmp_path / "data.parquet"
    fitted.save(model_dir)
    pm25.to_parquet(data)
    return model_dir, data


def test_cutoffs_end_the_last_window_at_the_data_end() -> None:
    pos = cutoffs(100, horizon=6, step=12, windows=5)
    assert pos.tolist() == [45, 57, 69, 81, 93]
    assert pos[-1] + 6 == 99
    with pytest.raises(DataError, match="needs at least 55"):
        cutoffs(54, horizon=6, step=12, windows=5)
    with pytest.raises(RangeError):
        cutoffs(100, horizon=0, step=12, windows=5)


def test_a_spike_after_an_origin_is_not_seen_from_it(fitted, pm25) -> None:
    """Plant a spike at the first forecast step of origin 2: origins 0..2 must not move."""
    times = pd.DatetimeIndex(pm25["timestamp"])
    pos = cutoffs(len(times), H, STEP, N)
    spiked = pm25.copy()
    at = times[pos[2] + 1]
    station = [c for c in pm25.columns if c != "timestamp"]
    spiked.loc[spiked["timestamp"] == at, station] = 5000.0
    base = backtest(fitted, pm25, horizon=H, step=STEP, windows=N, seed=1, return_samples=True)
    hit = backtest(fitted, spiked, horizon=H, step=STEP, windows=N, seed=1, return_samples=True)
    assert base.samples is not None and hit.samples is not None
    for j in range(3):  # origins at or before pos[2]: identical forecasts
        np.testing.assert_array_equal(base.samples[j], hit.samples[j])
    # origin 3 has the spike in its context: its forecast changes (the check can fail)
    assert not np.array_equal(base.samples[3], hit.samples[3])
    # and the spike is the truth of origin 2's first step, beside its untouched forecast
    f = hit.forecasts
    row = f[(f["origin"] == times[pos[2]]) & (f["step"] == 1)]
    assert (row["truth"] == 5000.0).all()
    assert (row["median"] < 1000).all()


def test_windows_shapes_and_timestamps(result, pm25) -> None:
    times = pd.DatetimeIndex(pm25["timestamp"])
    variables = [c for c in pm25.columns if c != "timestamp"]
    k = len(variables)
    f = result.forecasts
    assert result.samples.shape == (N, 4, k, H)  # (W, n, K, H), 4 = tiny_config samples
    assert len(f) == N * H * k
    expected = ["origin", "timestamp", "step", "variable", "truth", "median", "mean"]
    assert list(f.columns[:7]) == expected
    assert {"lo_50", "hi_50", "lo_90", "hi_90", *quantile_columns()} <= set(f.columns)
    origins = sorted(f["origin"].unique())
    pos = cutoffs(len(times), H, STEP, N)
    assert list(pd.DatetimeIndex(origins)) == list(times[pos])
    assert (pd.DatetimeIndex(origins).diff()[1:] == pd.Timedelta(hours=STEP)).all()
    truth = pm25.set_index("timestamp")
    for o, part in f.groupby("origin"):
        stamps = pd.DatetimeIndex(sorted(part["timestamp"].unique()))
        assert list(stamps) == list(pd.date_range(o + pd.Timedelta(hours=1), periods=H, freq="h"))
        assert sorted(part["step"].unique()) == list(range(1, H + 1))
        per_stamp = part.groupby("timestamp")["variable"].apply(list)
        assert len(per_stamp) == H and all(v == variables for v in per_stamp)
        want = truth.loc[part["timestamp"]].to_numpy()[np.arange(len(part)), np.tile(range(k), H)]
        np.testing.assert_array_equal(part["truth"].to_numpy(), want)  # NaN where unobserved
    assert f["timestamp"].max() == times[-1]
    # the samples' truths (W, K, H), in the table's order (origin, step, variable)
    assert result.truth is not None and result.truth.shape == (N, k, H)
    np.testing.assert_array_equal(
        result.truth.transpose(0, 2, 1).reshape(-1), f["truth"].to_numpy()
    )
    s = result.summary
    assert s["n_forecasts"] == N and s["context"] == 24 - H and s["levels"] == [50, 90]
    assert s["last_origin"] == str(times[pos[-1]])
    # the intervals nest and the quantiles are ordered
    q = f[quantile_columns()].to_numpy()
    assert (np.diff(q, axis=1) >= 0).all()
    assert (f["lo_90"] <= f["lo_50"]).all() and (f["hi_50"] <= f["hi_90"]).all()


def _hand(part: pd.DataFrame) -> dict[str, float]:
    """Metrics from table columns, written out without the library's helpers."""
    y = part["truth"].to_numpy()
    med = part["median"].to_numpy()
    q = part[quantile_columns()].to_numpy().T  # (19, m)
    lv = metrics.quantile_levels()[:, None]
    loss = 2 * np.abs((y - q) * ((y <= q) - lv)).sum(axis=1)
    out = {
        "mae": np.abs(med - y).mean(),
        "rmse": np.sqrt(((med - y) ** 2).mean()),
        "crps": (loss / np.abs(y).sum()).mean(),
    }
    for level in (50, 90):
        lo, hi = part[f"lo_{level}"].to_numpy(), part[f"hi_{level}"].to_numpy()
        out[f"cov{level}"] = ((y >= lo) & (y <= hi)).mean()
        out[f"width{level}"] = (hi - lo).mean()
    return out


def test_summary_matches_metrics_recomputed_from_the_parquet(fitted, pm25, tmp_path) -> None:
    model_dir, data = _saved(fitted, pm25, tmp_path)
    out = tmp_path / "bt.parquet"
    smp_out = tmp_path / "samples.parquet"
    argv = ["backtest", str(model_dir), str(data), "--horizon", str(H), "--step", str(STEP)]
    argv += ["--windows", str(N), "--out", str(out), "--samples-out", str(smp_out)]
    argv += ["--n-samples", "8", "--seed", "5"]
    assert main(argv) == 0
    summary = json.loads(out.with_suffix(".json").read_text())
    table = pd.read_parquet(out)
    observed = table[table["truth"].notna()]
    assert summary["overall"]["n_cells"] == len(observed) > 0
    hand = _hand(observed)
    for key, value in hand.items():
        assert summary["overall"][key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
    for var, part in observed.groupby("variable"):
        for key, value in _hand(part).items():
            assert summary["per_variable"][var][key] == pytest.approx(value, rel=1e-5, abs=1e-6)
    again = score_frame(table)
    made = {k: v for k, v in summary["overall"].items() if k != "crps_sum" and "_se" not in k}
    assert again["overall"] == made
    # the coverages' standard errors over origins, from the same table
    assert summary["overall"]["cov90_se"] == coverage_se(table, [50, 90], H, STEP)["cov90_se"]
    # CRPS-sum from the written samples: sum the observed variables per (origin, time)
    smp = pd.read_parquet(smp_out).merge(
        table[["origin", "timestamp", "variable", "truth"]], on=["origin", "timestamp", "variable"]
    )
    smp = smp[smp["truth"].notna()]
    sums = smp.groupby(["origin", "timestamp", "sample"])["value"].sum().unstack("sample")
    truth_sum = observed.groupby(["origin", "timestamp"])["truth"].sum().loc[sums.index]
    expected = metrics.crps_quantile(
        sums.to_numpy().T, truth_sum.to_numpy(), np.ones(len(sums), bool)
    )
    assert summary["overall"]["crps_sum"] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(
    "extra",
    [
        ["--horizon", "0"],
        ["--horizon", "6", "--windows", "500"],
        ["--horizon", "6", "--step", "0"],
        ["--horizon", "6", "--calibrate-windows", "-1"],
        ["--horizon", "6", "--calibrate-windows", "400"],  # more origins than history
    ],
)
def test_cli_bad_input_exits_2(fitted, pm25, tmp_path, extra, capsys) -> None:
    model_dir, data = _saved(fitted, pm25, tmp_path)
    args = {"--horizon": "6", "--step": "12", "--windows": "3"}
    for flag, value in zip(extra[::2], extra[1::2], strict=True):
        args[flag] = value
    argv = ["backtest", str(model_dir), str(data), "--out", str(tmp_path / "o.parquet")]
    argv += [x for kv in args.items() for x in kv]
    assert main(argv) == 2
    assert "tsdiff backtest: error:" in capsys.readouterr().err
    assert not (tmp_path / "o.parquet").exists()


@pytest.fixture(scope="module")
def tiny_forecast_bench(tmp_path_factory) -> tuple[dict, Path]:
    """The forecast benchmark's tiny ETTh1 run (no AutoARIMA) and its results folder."""
    pytest.importorskip("statsforecast")
    from tsdiff.benchmarks import forecast
    from tsdiff.datasets import default_data_dir

    base = default_data_dir()
    if base is None or not (base / "etth1_2017_2018.parquet").is_file():
        pytest.skip("../shared/data/etth1_2017_2018.parquet is not available")
    out = tmp_path_factory.mktemp("forecast-bench")
    return forecast.run("etth1", "tiny", out_dir=out, progress=False), out


@pytest.mark.slow
def test_forecast_benchmark_tiny_end_to_end(tiny_forecast_bench) -> None:
    """The benchmark harness on a tiny profile: both baselines, same cut-offs, results files."""
    from tsdiff.benchmarks import forecast

    r, tmp_path = tiny_forecast_bench
    assert set(r["methods"]) == {"tsdiff", "seasonal_naive", "autoets"}
    for s in r["methods"].values():
        assert {"mae", "crps", "crps_sum", "cov50", "cov90", "cov50_se", "cov90_se"} <= set(s)
        assert s["n_cells"] == 3 * 24 * 7  # 3 origins x 24 h x 7 sensors, no gaps
        assert 0.0 <= s["cov90_se"] <= 0.5
    row = next(
        line
        for line in (tmp_path / "forecast-etth1-tiny.md").read_text().splitlines()
        if line.startswith("| tsdiff |")
    )
    ours = r["methods"]["tsdiff"]
    assert f"{ours['cov50']:.3f} ± {ours['cov50_se']:.3f}" in row
    # seasonal naive with season 24 and horizon 24 forecasts the day before each origin:
    # its MAE over the last 72 h is mean |y[t] - y[t - 24]|, if the cut-offs line up
    values = forecast.load_dataset("etth1").drop(columns="timestamp").to_numpy()[-96:]
    expected = np.abs(values[24:] - values[:-24]).mean()
    assert r["methods"]["seasonal_naive"]["mae"] == pytest.approx(expected, rel=1e-5)
    written = json.loads((tmp_path / "forecast-etth1-tiny.json").read_text())
    assert written["methods"] == r["methods"]
    assert (tmp_path / "forecast-etth1-tiny.md").read_text().startswith("# Forecasting: etth1")
    cal = r["calibration"]["forecast"]  # fitted on 2 origins before the first test origin
    assert cal["windows"] == 2 and cal["last_origin"] < r["protocol"]["first_origin"]
    assert "forecast spread" in (tmp_path / "forecast-etth1-tiny.md").read_text()
    # the tiny profile's lags reach 48 h before its 30 h window: 54 h read per forecast
    assert r["protocol"]["lags"] == [24, 48] and r["protocol"]["context"] == 48 + 30 - 24


@pytest.mark.slow
def test_forecast_benchmark_scores_tsdiff_recalibrated_beside_it(tmp_path) -> None:
    """``--recalibrate``: a row for the same model refitted at each origin on matured
    forecasts, its targets checked apart, both on the page."""
    pytest.importorskip("statsforecast")
    from tsdiff.benchmarks import forecast
    from tsdiff.datasets import default_data_dir

    base = default_data_dir()
    if base is None or not (base / "etth1_2017_2018.parquet").is_file():
        pytest.skip("../shared/data/etth1_2017_2018.parquet is not available")
    over = {"recalibrate": 2, "baselines": False}
    r = forecast.run("etth1", "tiny", out_dir=tmp_path, progress=False, overrides=over)
    assert set(r["methods"]) == {"tsdiff", "tsdiff_recalibrated"}
    once, rolled = r["methods"]["tsdiff"], r["methods"]["tsdiff_recalibrated"]
    assert once["n_cells"] == rolled["n_cells"] == 3 * 24 * 7
    rec = r["recalibration"]
    # 2 calibration origins, then daily origins with a day's horizon: each sees the last
    assert rec["recent"] == 2 and rec["own_forecasts_pooled"] == [0, 1, 2]
    assert rec["spread"][0] == r["calibration"]["forecast"]["spread"]
    assert r["targets_recalibrated"]["cov90_in_87_93"] == (0.87 <= rolled["cov90"] <= 0.93)
    page = (tmp_path / "forecast-etth1-tiny.md").read_text()
    assert "| tsdiff_recalibrated |" in page and "recalibrated as truths arrive" in page


def test_forecast_page_shows_the_model_scored_without_its_gate(tiny_forecast_bench) -> None:
    """A gated model's page has a row for the same model and draws without the gate
    (scores only: no timings of its own) and says what the gate was."""
    import copy

    from tsdiff.benchmarks import forecast

    r = copy.deepcopy(tiny_forecast_bench[0])
    ours = r["methods"]["tsdiff"]
    r["methods"]["tsdiff_ungated"] = {k: ours[k] for k in ("mae", "rmse", "crps", "crps_sum",
        "cov50", "width50", "cov90", "width90", "n_cells")}  # fmt: skip
    gate = {"gate": [1.0, 0.5], "n_cells": 10, "mae_model": 0.2, "mae_interpolation": 0.3,
            "mae_gated": 0.19, "kept": [1.0, 0.5]}  # fmt: skip
    r["calibration"]["forecast"]["gate"] = gate
    page = forecast.markdown(r)
    row = next(line for line in page.splitlines() if line.startswith("| tsdiff_ungated |"))
    assert row.endswith("| – |")  # no seconds of its own
    assert "forecast gate (per variable" in page and "1, 0.5" in page


@pytest.mark.slow
def test_autoarima_added_to_a_result_on_its_origins_without_retraining(
    tiny_forecast_bench, tmp_path
) -> None:
    from tsdiff.benchmarks import forecast

    r, out = tiny_forecast_bench
    path = tmp_path / "forecast-etth1-tiny.json"
    saved = json.loads((out / "forecast-etth1-tiny.json").read_text())
    # a row add_arima does not compute (a --recalibrate run's) is kept, its targets too
    rolled = {**saved["methods"]["tsdiff"], "crps": 0.5}
    saved["methods"] = {
        "tsdiff": saved["methods"]["tsdiff"],
        "tsdiff_recalibrated": rolled,
        **{k: v for k, v in saved["methods"].items() if k != "tsdiff"},
    }
    path.write_text(json.dumps(saved))
    added = forecast.add_arima(path, command="add")
    assert list(added["methods"]) == [
        "tsdiff",
        "tsdiff_recalibrated",
        "seasonal_naive",
        "autoets",
        "autoarima",
    ]
    assert added["methods"]["tsdiff_recalibrated"] == rolled
    assert added["targets_recalibrated"]["crps_gain_vs_autoarima"] == pytest.approx(
        1 - 0.5 / added["methods"]["autoarima"]["crps"], abs=1e-4
    )
    for label, entry in r["methods"].items():  # the rest untouched
        assert added["methods"][label] == entry
    arima = added["methods"]["autoarima"]
    assert arima["n_cells"] == r["methods"]["tsdiff"]["n_cells"]  # the same cells
    assert arima["mae"] != r["methods"]["autoets"]["mae"]
    assert added["targets"]["crps_gain_vs_autoarima"] == pytest.approx(
        1 - r["methods"]["tsdiff"]["crps"] / arima["crps"], abs=1e-4
    )
    assert json.loads(path.read_text()) == added
    page = path.with_suffix(".md").read_text()
    assert "| autoarima |" in page and "autoarima added later" in page and "`add`" in page
    # a result whose origins are not the data's is refused, and left as it was
    wrong = json.loads((out / "forecast-etth1-tiny.json").read_text())
    wrong["protocol"]["first_origin"] = "2017-01-01 00:00:00"
    path.write_text(json.dumps(wrong))
    with pytest.raises(DataError, match="first origin"):
        forecast.add_arima(path)
    assert json.loads(path.read_text()) == wrong


def test_add_arima_refuses_a_missing_or_foreign_result_with_exit_2(
    tiny_forecast_bench, tmp_path, capsys
) -> None:
    from tsdiff.benchmarks import forecast

    _, out = tiny_forecast_bench
    path = tmp_path / "forecast-etth1-tiny.json"
    text = (out / "forecast-etth1-tiny.json").read_text()
    path.write_text(text)
    assert forecast.main(["pm25", "--add-arima", str(path)]) == 2  # a result on etth1
    assert "a result on etth1, not pm25" in capsys.readouterr().err
    assert path.read_text() == text  # untouched
    assert forecast.main(["etth1", "--add-arima", str(tmp_path / "none.json")]) == 2
    assert "not a forecast benchmark result" in capsys.readouterr().err


def test_calibration_origins_see_nothing_after_the_first_test_origin(fitted, pm25) -> None:
    """Forecast calibration fits on earlier origins whose horizons end by the first test
    origin: changing every value after it leaves the fitted factor untouched."""
    times = pd.DatetimeIndex(pm25["timestamp"])
    pos = cutoffs(len(times), H, STEP, N)
    later = pm25.copy()
    station = [c for c in pm25.columns if c != "timestamp"]
    later.loc[later["timestamp"] > times[pos[0]], station] *= 3.0
    kw = {"horizon": H, "step": STEP, "windows": N, "seed": 2, "calibrate_windows": 4}
    base = backtest(fitted, pm25, **kw).summary
    hit = backtest(fitted, later, **kw).summary
    assert base["calibration"] == hit["calibration"]
    cal = base["calibration"]
    assert cal["windows"] == 4 and pd.Timestamp(cal["last_origin"]) == times[pos[0] - H]
    assert base["spread"] == cal["spread"] and fitted.forecast_spread is None  # not mutated
    assert cal["crps_after"] <= cal["crps_before"]
    # the test forecasts themselves did see the change (the check can fail)
    assert base["overall"]["mae"] != hit["overall"]["mae"]


def test_calibrate_forecast_is_saved_and_widens_forecasts_about_the_same_median(
    fitted, pm25, tmp_path
) -> None:
    from tsdiff.backtest import calibrate_forecast
    from tsdiff.model import TSDiff

    model = TSDiff.load(fitted.save(tmp_path / "m"))
    info = calibrate_forecast(model, pm25, horizon=H, step=STEP, windows=N, seed=2)
    assert model.forecast_spread == info["spread"] and info["n_cells"] > 0
    assert info["crps_after"] <= info["crps_before"]
    model.forecast_spread = 1.0  # known factors, to check how forecasts use them
    narrow = model.forecast(pm25, horizon=H, seed=5).frame
    model.forecast_spread = 3.0
    again = TSDiff.load(model.save(tmp_path / "m2"))
    assert again.forecast_spread == 3.0 and again.spread == fitted.spread
    wide = again.forecast(pm25, horizon=H, seed=5).frame
    var = [c for c in pm25.columns if c != "timestamp"][0]
    np.testing.assert_allclose(wide[var], narrow[var], rtol=1e-5)  # the median
    w_narrow = (narrow[f"{var}_hi_90"] - narrow[f"{var}_lo_90"]).sum()
    w_wide = (wide[f"{var}_hi_90"] - wide[f"{var}_lo_90"]).sum()
    assert 2.5 * w_narrow < w_wide < 3.5 * w_narrow
    # imputation keeps its own factor
    np.testing.assert_array_equal(
        again.impute(pm25.iloc[:100], seed=1).frame[var],
        fitted.impute(pm25.iloc[:100], seed=1).frame[var],
    )


def test_cli_calibrates_on_earlier_origins_and_reports_it(fitted, pm25, tmp_path) -> None:
    model_dir, data = _saved(fitted, pm25, tmp_path)
    out = tmp_path / "bt.parquet"
    argv = ["backtest", str(model_dir), str(data), "--horizon", str(H), "--step", str(STEP)]
    argv += ["--windows", str(N), "--out", str(out), "--n-samples", "8", "--seed", "5"]
    assert main([*argv, "--calibrate-windows", "3"]) == 0
    summary = json.loads(out.with_suffix(".json").read_text())
    cal = summary["calibration"]
    assert cal["windows"] == 3 and summary["spread"] == cal["spread"]
    assert pd.Timestamp(cal["last_origin"]) < pd.Timestamp(summary["first_origin"])
    width = summary["overall"]["width90"]
    assert main(argv) == 0  # uncalibrated: the model's spread, no calibration entry
    plain = json.loads(out.with_suffix(".json").read_text())
    assert plain["calibration"] is None and plain["spread"] == fitted.spread
    assert plain["overall"]["mae"] == pytest.approx(summary["overall"]["mae"], rel=1e-6)
    assert (width > plain["overall"]["width90"]) == (cal["spread"] > fitted.spread)


def test_cli_calibrate_forecast_writes_a_model_whose_forecasts_use_it(
    fitted, pm25, tmp_path
) -> None:
    from tsdiff.model import TSDiff

    model_dir, data = _saved(fitted, pm25, tmp_path)  # data held out from the model
    out = tmp_path / "calibrated"
    argv = ["calibrate-forecast", str(model_dir), str(data), "--horizon", str(H)]
    assert main([*argv, "--windows", "4", "--n-samples", "8", "--out", str(out)]) == 0
    calibrated = TSDiff.load(out)
    info = calibrated.info["forecast_calibration"]
    assert calibrated.forecast_spread == info["spread"] and info["windows"] == 4
    assert calibrated.spread == fitted.spread  # imputation keeps its own factor
    # a horizon the model cannot forecast: exit 2, nothing written
    bad = tmp_path / "bad"
    assert main([*argv[:3], "--horizon", "99", "--out", str(bad)]) == 2
    assert not bad.exists()


def test_forecast_interval_factors_widen_forecasts_and_backtests_about_the_same_median(
    fitted, pm25, tmp_path
) -> None:
    from tsdiff.model import TSDiff

    model = TSDiff.load(fitted.save(tmp_path / "m"))
    var = [c for c in pm25.columns if c != "timestamp"][0]
    plain = model.forecast(pm25, horizon=H, seed=5).frame
    kw = {"horizon": H, "step": STEP, "windows": N, "seed": 2}
    bt_plain = backtest(model, pm25, **kw)
    model.forecast_interval_scale = {50: 2.0, 90: 3.0}
    again = TSDiff.load(model.save(tmp_path / "m2"))
    assert again.forecast_interval_scale == {50: 2.0, 90: 3.0} and again.interval_scale is None
    wide = again.forecast(pm25, horizon=H, seed=5).frame
    np.testing.assert_array_equal(wide[var], plain[var])  # the median
    for lv in (50, 90):
        w_plain = plain[f"{var}_hi_{lv}"] - plain[f"{var}_lo_{lv}"]
        w_wide = wide[f"{var}_hi_{lv}"] - wide[f"{var}_lo_{lv}"]
        assert (w_wide >= w_plain - 1e-6).all() and w_wide.sum() > 1.5 * w_plain.sum()
        assert (wide[f"{var}_lo_{lv}"] >= again.spec[var].lower).all()  # never below 0
    bt = backtest(again, pm25, **kw)  # the model's factors: the summary is the table's
    observed = bt.forecasts[bt.forecasts["truth"].notna()]
    for key, value in _hand(observed).items():
        assert bt.summary["overall"][key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
    assert bt.summary["overall"]["mae"] == pytest.approx(bt_plain.summary["overall"]["mae"])
    assert bt.summary["overall"]["width90"] > 1.5 * bt_plain.summary["overall"]["width90"]
    # imputation keeps its own (none)
    np.testing.assert_array_equal(
        again.impute(pm25.iloc[:100], seed=1).frame[f"{var}_hi_90"],
        fitted.impute(pm25.iloc[:100], seed=1).frame[f"{var}_hi_90"],
    )


def test_calibrate_forecast_fits_interval_factors_on_its_origins(pm25) -> None:
    from tsdiff.backtest import calibrate_forecast
    from tsdiff.calibration import INTERVAL_LEVELS
    from tsdiff.model import TSDiff

    from .conftest import tiny_config

    model = TSDiff(tiny_config(epochs=1, calibrate_intervals=True)).fit(
        pm25.iloc[:500], progress=False
    )
    info = calibrate_forecast(model, pm25, horizon=H, step=STEP, windows=N, seed=2)
    cover = info["intervals"]
    assert model.forecast_interval_scale == cover["scale"]
    assert sorted(cover["scale"]) == list(INTERVAL_LEVELS) and cover["n_cells"] > 0
    assert cover["coverage_after"][90] >= 0.9 and cover["coverage_after"][50] >= 0.5
    # a backtest calibrated on earlier origins fits its own factors, not the model's
    bt = backtest(model, pm25, horizon=H, step=STEP, windows=2, seed=3, calibrate_windows=4)
    assert "intervals" in bt.summary["calibration"]


def test_fit_gives_forecasts_their_own_interval_factors_with_the_spread_kept(pm25) -> None:
    """Without forecast-spread calibration a fit still fits the forecasts' interval
    factors, for forecasts drawn with the spread it keeps: an undertrained model whose
    samples barely spread gets intervals that cover, its samples and CRPS unchanged."""
    from tsdiff.calibration import INTERVAL_LEVELS
    from tsdiff.model import TSDiff

    from .conftest import tiny_config

    cfg = tiny_config(epochs=1, calibrate_intervals=True)
    assert not cfg.train.calibrate_forecast  # the default
    model = TSDiff(cfg).fit(pm25.iloc[:500], progress=False)
    got = model.info["forecast_calibration"]
    assert got["kept"] and got["spread"] == model.spread and model.forecast_spread is None
    assert sorted(model.forecast_interval_scale) == list(INTERVAL_LEVELS)
    assert got["intervals"]["coverage_after"][90] >= 0.9
    plain = TSDiff(tiny_config(epochs=1)).fit(pm25.iloc[:500], progress=False)
    assert plain.forecast_interval_scale is None and "forecast_calibration" not in plain.info
    kw = {"horizon": H, "step": STEP, "windows": N, "seed": 3}
    wide, narrow = backtest(model, pm25, **kw), backtest(plain, pm25, **kw)
    assert wide.summary["overall"]["crps"] == pytest.approx(narrow.summary["overall"]["crps"])
    assert wide.summary["overall"]["cov90"] >= narrow.summary["overall"]["cov90"]
    assert wide.summary["overall"]["width90"] > narrow.summary["overall"]["width90"]


@pytest.mark.slow
def test_forecast_benchmark_draws_a_long_horizon_once_for_both_calibrations(tmp_path) -> None:
    """Beyond one window the recalibrated row comes from the same draws as the row
    calibrated once: the same medians (MAE), no second draw."""
    pytest.importorskip("statsforecast")
    from tsdiff.benchmarks import forecast
    from tsdiff.datasets import default_data_dir

    base = default_data_dir()
    if base is None or not (base / "etth1_2017_2018.parquet").is_file():
        pytest.skip("../shared/data/etth1_2017_2018.parquet is not available")
    over = {"recalibrate": 2, "baselines": False, "horizon": 36}  # the window is 30
    r = forecast.run("etth1", "tiny", out_dir=tmp_path, progress=False, overrides=over)
    once, rolled = r["methods"]["tsdiff"], r["methods"]["tsdiff_recalibrated"]
    assert once["n_cells"] == rolled["n_cells"] == 3 * 36 * 7
    assert rolled["mae"] == once["mae"]  # scaling about the median keeps it
    # daily origins, 36 h horizons: the third origin has seen the first's truths
    assert r["recalibration"]["own_forecasts_pooled"] == [0, 0, 1]
    assert rolled["backtest_s"] < 0.05 * once["backtest_s"]


def _coverage_table(inside: np.ndarray, cells: int) -> pd.DataFrame:
    """A forecast table of ``len(inside)`` origins, ``cells`` cells each, every cell of
    origin i inside its 50 % interval iff ``inside[i]``."""
    w = len(inside)
    origin = np.repeat(pd.date_range("2024-01-01", periods=w, freq="D"), cells)
    hit = np.repeat(inside, cells)
    return pd.DataFrame(
        {"origin": origin, "truth": np.where(hit, 0.0, 2.0), "lo_50": -1.0, "hi_50": 1.0}
    )


def test_coverage_se_of_independent_origins_is_the_binomial_one() -> None:
    inside = np.random.default_rng(0).random(400) < 0.5
    se = coverage_se(_coverage_table(inside, 3), [50], horizon=24, step=24)["cov50_se"]
    p = inside.mean()
    assert se == pytest.approx(np.sqrt(p * (1 - p) / 400), rel=0.15)
    # seeded: the same call gives the same number
    assert coverage_se(_coverage_table(inside, 3), [50], 24, 24)["cov50_se"] == se


def test_coverage_se_keeps_overlapping_horizons_together() -> None:
    """Week-ahead forecasts from daily origins share truths: runs of 7 origins that all
    miss or all cover are 7 times fewer independent units than the origins."""
    runs = np.random.default_rng(1).random(30) < 0.5
    inside = np.repeat(runs, 7)  # (210,) origins
    table = _coverage_table(inside, 2)
    weekly = coverage_se(table, [50], horizon=168, step=24)["cov50_se"]
    daily = coverage_se(table, [50], horizon=24, step=24)["cov50_se"]
    assert weekly > 2.0 * daily
    p = runs.mean()
    assert weekly == pytest.approx(np.sqrt(p * (1 - p) / 30), rel=0.3)


def test_coverage_se_needs_a_truth() -> None:
    table = _coverage_table(np.ones(3, bool), 1).assign(truth=np.nan)
    with pytest.raises(DataError, match="no forecast cell with a truth"):
        coverage_se(table, [50], 24, 24)
