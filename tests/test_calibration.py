"""Spread calibration: the CRPS-optimal factor about the median."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from tsdiff.calibration import (
    INTERVAL_LEVELS,
    MIN_HALF_WIDTH,
    SPREAD_GRID,
    Support,
    cell_support,
    choose_base,
    fit_gate,
    fit_interval_scale,
    fit_spread,
    fit_variable_spread,
    interval_factor,
    rescale,
    scaled_interval,
)
from tsdiff.errors import DataError
from tsdiff.model import TSDiff


def test_too_narrow_samples_are_widened_to_about_the_true_spread() -> None:
    rng = np.random.default_rng(0)
    m = 4000
    truth = rng.normal(10.0, 1.0, m)  # far from 0: CRPS normalised by sum |y| stays tame
    samples = 10.0 + 0.4 * rng.normal(size=(64, m))  # the right centre, 0.4x the spread
    fit = fit_spread(samples, truth)
    assert 2.0 <= fit.spread <= 3.2  # about 1 / 0.4
    assert fit.crps_after < fit.crps_before
    assert fit.cov90_before < 0.6 and 0.85 <= fit.cov90_after <= 0.95
    assert 0.42 <= fit.cov50_after <= 0.58


def test_too_wide_samples_are_narrowed_and_nan_truths_ignored() -> None:
    rng = np.random.default_rng(1)
    truth = rng.normal(10.0, 1.0, 3000)
    samples = 10.0 + 1.6 * rng.normal(size=(64, 3000))
    truth[:100] = np.nan
    fit = fit_spread(samples, truth)
    assert fit.n_cells == 2900
    assert SPREAD_GRID.min() <= fit.spread <= 0.75  # about 1 / 1.6
    assert fit.cov90_after < fit.cov90_before and fit.crps_after < fit.crps_before


def test_rescale_keeps_the_median() -> None:
    rng = np.random.default_rng(2)
    s = rng.normal(size=(33, 5, 7))
    out = rescale(s, 2.5)
    np.testing.assert_allclose(np.median(out, axis=0), np.median(s, axis=0))
    np.testing.assert_allclose(out.std(axis=0), 2.5 * s.std(axis=0))


def test_bad_shapes_and_no_truth_are_data_errors() -> None:
    with pytest.raises(DataError, match="need samples"):
        fit_spread(np.zeros((4, 3)), np.zeros(5))
    with pytest.raises(DataError, match="no held-out cell"):
        fit_spread(np.zeros((4, 3)), np.full(3, np.nan))


def test_calibration_stops_at_its_deadline_after_one_batch(monkeypatch):
    """``--max-minutes`` bounds the whole fit: past its deadline the calibration fits on
    the series sampled so far (one batch at least), else on all of them."""
    import time

    from tsdiff import estimator
    from tsdiff.datasets import physionet_slice
    from tsdiff.estimator import calibrate_imputation
    from tsdiff.model import TSDiff

    monkeypatch.setattr(estimator, "CALIBRATION_BATCH", 2)  # a few stays suffice
    model = TSDiff.load("physionet-vitals")
    model.config = model.config.replace(sample={"n_samples": 8}, train={"gate_by_gap": False})
    data = physionet_slice()
    ids = data["series_id"].unique()[:5]
    panel = model.panel(data[data["series_id"].isin(ids)])
    full = calibrate_imputation(model, panel, seed=0)
    late = calibrate_imputation(model, panel, seed=0, deadline=time.perf_counter() - 1)
    assert 0 < late["n_cells"] < full["n_cells"]
    first = dataclasses.replace(panel, series=panel.series[:2])
    assert late == calibrate_imputation(model, first, seed=0)  # exactly the first batch


def test_calibration_draws_pool_each_seeds_cells_and_stop_at_the_deadline():
    """``train.calibrate_draws`` d: the fit sees the cells of seeds seed..seed+d-1 at
    once; past its deadline only the first draw (as one draw would be)."""
    import time

    from tsdiff.config import TrainConfig
    from tsdiff.datasets import physionet_slice
    from tsdiff.errors import ConfigError
    from tsdiff.estimator import calibrate_imputation
    from tsdiff.model import TSDiff

    model = TSDiff.load("physionet-vitals")  # a quantile prior and the interpolation base
    model.config = model.config.replace(sample={"n_samples": 8})
    data = physionet_slice()
    panel = model.panel(data[data["series_id"].isin(data["series_id"].unique()[:3])])
    first, second = (calibrate_imputation(model, panel, seed=s) for s in (0, 1))
    past = time.perf_counter() - 1
    late_one = calibrate_imputation(model, panel, seed=0, deadline=past)
    model.config = model.config.replace(train={"calibrate_draws": 2})
    both = calibrate_imputation(model, panel, seed=0)
    assert both["n_cells"] == first["n_cells"] + second["n_cells"] and both["draws"] == 2
    assert "draws" not in first and both["spread"] > 0 and "quantile_blend" in both
    assert calibrate_imputation(model, panel, seed=0, deadline=past) == late_one
    with pytest.raises(ConfigError, match="calibrate_draws"):
        TrainConfig(calibrate_draws=0)


def test_a_pattern_holdout_calibrates_on_the_cells_the_patterns_lack():
    """``train.holdout`` "pattern": the calibration's cells are the observed cells that
    a stretch of the given missing patterns lacks (here one donor as long as the stay,
    so exactly its outage), not 10 % of the cells at random."""
    from tsdiff.datasets import physionet_slice
    from tsdiff.estimator import calibrate_imputation

    model = TSDiff.load("physionet-vitals")
    model.config = model.config.replace(sample={"n_samples": 8}, train={"gate_by_gap": False})
    data = physionet_slice()
    panel = model.panel(data[data["series_id"] == data["series_id"].iloc[0]])
    values = panel.series[0].values  # (K, T)
    donor = np.zeros(values.shape, dtype=bool)
    donor[:, 10:30] = True  # every variable out for 20 steps
    want = int((donor & ~np.isnan(values)).sum())
    random = calibrate_imputation(model, panel, seed=0, patterns=[donor])
    assert random["n_cells"] == int(np.ceil(0.1 * (~np.isnan(values)).sum()))  # default
    model.config = model.config.replace(train={"holdout": "pattern"})
    got = calibrate_imputation(model, panel, seed=0, patterns=[donor])
    assert 0 < want != random["n_cells"] and got["n_cells"] == want


def test_a_model_no_better_than_its_base_anywhere_says_so():
    """Its imputations are the base's: a user should hear it, and how to check whether
    the validation cells were the wrong ones (PM2.5's random cells)."""
    import warnings

    import torch

    from tsdiff.datasets import physionet_slice
    from tsdiff.estimator import calibrate_imputation

    model = TSDiff.load("physionet-vitals")
    model.config = model.config.replace(sample={"n_samples": 8}, train={"gate_by_gap": False})
    data = physionet_slice()
    panel = model.panel(data[data["series_id"].isin(data["series_id"].unique()[:40])])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the trained model: some variables on it, no warning
        assert max(calibrate_imputation(model, panel, seed=0)["gate"]["gate"]) > 0
    with torch.no_grad():
        for p in model.net.parameters():
            p.zero_()  # a network that predicts the mean everywhere
    with pytest.warns(UserWarning, match="holdout pattern"):
        fit = calibrate_imputation(model, panel, seed=0)
    assert max(fit["gate"]["gate"]) == 0
    model.config = model.config.replace(train={"gate_by_gap": True})  # the same, by distance
    with pytest.warns(UserWarning, match="holdout pattern"):
        fit = calibrate_imputation(model, panel, seed=0)
    assert np.max(fit["gap_gate"]["gap_gate"]["weight"]) == 0


def test_each_variable_gets_its_own_factor_where_it_has_the_cells() -> None:
    rng = np.random.default_rng(2)
    m = 3000
    var = np.repeat([0, 1, 2], [m, m, 20])  # variable 2: too few cells for its own factor
    truth = rng.normal(10.0, 1.0, var.size)
    width = np.array([0.4, 1.0, 0.4])[var]  # variable 0 too narrow, 1 right
    samples = 10.0 + width * rng.normal(size=(64, var.size))
    fit = fit_variable_spread(samples, truth, var, 3, overall=1.7)
    assert 2.0 <= fit.spread[0] <= 3.2
    assert 0.8 <= fit.spread[1] <= 1.25
    assert fit.spread[2] == 1.7 and fit.n_own == 2
    one = fit_spread(samples, truth)
    assert fit.crps_after < one.crps_after  # better than the one factor for all
    assert 0.85 <= fit.cov90_after <= 0.95
    with pytest.raises(DataError):
        fit_variable_spread(samples, truth, var[:-1], 3, overall=1.0)


def test_impute_applies_per_variable_factors(fitted, pm25, tmp_path) -> None:
    frame = pm25.iloc[500:560].copy()
    gappy = fitted.variables[1]
    frame.iloc[10:30, frame.columns.get_loc(gappy)] = np.nan  # a gap to impute
    k = len(fitted.variables)
    saved = fitted.spread, fitted.variable_spread
    try:
        fitted.variable_spread = None
        by_one = {}
        for f in (1.6, 3.0):
            fitted.spread = f
            by_one[f] = fitted.impute(frame, seed=1, return_samples=True).samples
        assert not by_one[1.6][gappy].equals(by_one[3.0][gappy])  # the factor shows
        fitted.variable_spread = [3.0 if i == 1 else 1.6 for i in range(k)]
        mixed = fitted.impute(frame, seed=1, return_samples=True).samples
        others = [v for v in fitted.variables if v != gappy]
        pd.testing.assert_frame_equal(mixed[others], by_one[1.6][others])  # their factor
        pd.testing.assert_series_equal(mixed[gappy], by_one[3.0][gappy])  # its own
        fitted.save(tmp_path / "m")
        assert TSDiff.load(tmp_path / "m").variable_spread == fitted.variable_spread
    finally:
        fitted.spread, fitted.variable_spread = saved


def test_the_better_base_is_chosen_per_variable() -> None:
    rng = np.random.default_rng(3)
    var = np.repeat([0, 1, 2], [400, 400, 10])
    truth = rng.normal(size=var.size)
    prior = truth + np.where(var == 0, 0.1, 0.5) * rng.normal(size=var.size)
    alt = truth + np.where(var == 0, 0.5, 0.1) * rng.normal(size=var.size)
    got = choose_base(prior, alt, truth, var, 3)
    assert got.use_alternative[:2] == (False, True)
    assert got.use_alternative[2] == (got.mae_alternative < got.mae_prior)  # too few: overall
    assert got.mae_chosen < min(got.mae_prior, got.mae_alternative)
    with pytest.raises(DataError):
        choose_base(prior[:-1], alt, truth, var, 3)


def test_gate_interpolation_survives_save_and_load(fitted, tmp_path) -> None:
    saved = fitted.gate_interpolation
    try:
        fitted.gate_interpolation = [i % 2 == 0 for i in range(len(fitted.variables))]
        fitted.save(tmp_path / "m")
        assert TSDiff.load(tmp_path / "m").gate_interpolation == fitted.gate_interpolation
    finally:
        fitted.gate_interpolation = saved


def test_the_gate_moves_off_its_base_only_on_evidence() -> None:
    rng = np.random.default_rng(1)
    var = np.zeros(30, dtype=int)
    truth = rng.normal(size=30)
    base = truth + 0.3 * rng.normal(size=30)
    median = base + 0.05 * rng.normal(size=30)  # the base, jittered: any gain is noise
    loose = fit_gate(median, base, truth, var, 1, min_cells=10)
    strict = fit_gate(median, base, truth, var, 1, min_cells=10, evidence=2.0)
    assert loose.gate[0] > 0 and strict.gate[0] == 0.0
    big = np.zeros(2000, dtype=int)
    truth = rng.normal(size=2000)
    base = truth + 0.5 * rng.normal(size=2000)
    median = truth + 0.1 * rng.normal(size=2000)  # clearly better: the gate follows it
    assert fit_gate(median, base, truth, big, 1, evidence=2.0).gate[0] >= 0.8


def test_forecast_spread_fitted_on_validation_forecasts_when_asked(pm25) -> None:
    from tsdiff.forecasting import chunk_length
    from tsdiff.model import TSDiff

    from .conftest import tiny_config

    model = TSDiff(tiny_config(epochs=1, calibrate_forecast=True)).fit(
        pm25.iloc[:600], progress=False
    )
    info = model.info["forecast_calibration"]
    assert info["horizon"] == chunk_length(model) and info["windows"] >= 1
    assert model.forecast_spread == info["spread"] and info["n_cells"] > 0
    assert model.task_spread("forecast") == info["spread"]
    off = TSDiff(tiny_config(epochs=1)).fit(pm25.iloc[:600], progress=False)
    assert off.forecast_spread is None and "forecast_calibration" not in off.info


def test_interval_factors_make_narrow_intervals_cover_what_they_claim() -> None:
    rng = np.random.default_rng(3)
    m = 4000
    truth = rng.normal(10.0, 1.0, m)
    samples = 10.0 + 0.5 * rng.normal(size=(64, m))  # half the true spread
    fit = fit_interval_scale(samples, truth)
    assert fit.coverage_before[90] < 0.65 and 0.89 <= fit.coverage_after[90] <= 0.92
    assert 1.7 <= fit.scale[90] <= 2.3  # about 1 / 0.5
    fresh = rng.normal(10.0, 1.0, m)  # new cells from the same distributions
    new = 10.0 + 0.5 * rng.normal(size=(64, m))
    for lv in (50, 80, 90):
        lo, hi = scaled_interval(new, lv, fit.scale)
        assert abs(float(((fresh >= lo) & (fresh <= hi)).mean()) - lv / 100) < 0.03, lv
    right = fit_interval_scale(10.0 + rng.normal(size=(64, m)), truth)  # calibrated
    assert all(0.85 <= right.scale[lv] <= 1.15 for lv in INTERVAL_LEVELS if lv <= 90)


def _served_coverage(samples, truth, scale, lower, lv):
    """Coverage of the intervals a model serves: from samples clipped at ``lower``."""
    lo, hi = scaled_interval(np.maximum(samples, lower), lv, scale)
    return float(((np.maximum(lo, lower) <= truth) & (truth <= hi)).mean())


def test_interval_factors_fitted_on_clipped_samples_cover_what_the_served_intervals_claim():
    # a variable bounded at 0 (PM2.5): wide samples about a median near the bound are
    # served clipped there, which narrows their lower half; truths spread on both sides
    rng = np.random.default_rng(5)
    m = 6000
    med = rng.uniform(0.2, 1.5, m)
    truth = np.maximum(med + rng.normal(0.0, 0.6, m), 0.0)
    samples = med + 0.6 * rng.normal(size=(64, m))  # the right spread, unclipped
    support = Support.of((np.array([0.0]), np.array([np.inf])), np.zeros(m, dtype=int))
    plain = fit_interval_scale(samples, truth).scale
    clipped = fit_interval_scale(samples, truth, support=support).scale
    for lv in (50, 90):
        # fitted unclipped, the served intervals cover less than they claim ...
        assert _served_coverage(samples, truth, plain, 0.0, lv) < lv / 100 - 0.02, lv
        # ... fitted on what is served, they cover it (conformal: at least L in-sample)
        got = _served_coverage(samples, truth, clipped, 0.0, lv)
        assert lv / 100 <= got <= lv / 100 + 0.02, (lv, got)  # ties: truths at 0
    # without a bound in reach, the support changes nothing
    far = Support.of((np.array([-50.0]), np.array([np.inf])), np.zeros(m, dtype=int))
    assert fit_interval_scale(samples, truth, support=far).scale == plain


def test_support_maps_each_variable_bounds_onto_its_cells_and_checks_their_count() -> None:
    bounds = (np.array([0.0, -np.inf]), np.array([np.inf, 1.0]))
    sup = cell_support(bounds, np.array([1, 0, 1]))
    assert sup is not None
    np.testing.assert_array_equal(sup.lower, [-np.inf, 0.0, -np.inf])
    np.testing.assert_array_equal(sup.clip(np.array([[-3.0, -3.0, 3.0]])), [[-3.0, 0.0, 1.0]])
    assert cell_support(None, np.array([0])) is None
    with pytest.raises(DataError, match="support must bound"):
        fit_interval_scale(np.zeros((4, 2)), np.zeros(2), support=sup)


def test_interval_factors_interpolate_and_survive_zero_width_cells() -> None:
    scale = {50: 1.0, 90: 2.0}
    assert interval_factor(scale, 70) == pytest.approx(1.5)
    assert interval_factor(scale, 99) == 2.0 and interval_factor(scale, 10) == 1.0
    assert interval_factor(None, 90) == 1.0
    # samples without spread (an undertrained model): the intervals of the errors
    fit = fit_interval_scale(np.zeros((8, 4)), np.array([0.0, 0.5, -0.2, 0.0]), levels=(50, 90))
    # errors in half-widths: 0, 50, 20, 0 → the 3rd smallest for 50 %, the 4th for 90 %
    assert fit.scale == {50: pytest.approx(0.2 / MIN_HALF_WIDTH), 90: pytest.approx(50.0)}
    lo, hi = scaled_interval(np.zeros((8, 4)), 90, fit.scale)
    np.testing.assert_allclose(lo, -0.5)
    np.testing.assert_allclose(hi, 0.5)
    with pytest.raises(DataError):
        fit_interval_scale(np.zeros((8, 3)), np.zeros(2))


def test_imputed_intervals_widen_by_their_factor_within_the_variables_bounds(
    fitted, pm25, tmp_path
) -> None:
    import copy

    model = copy.deepcopy(fitted)
    frame = pm25.iloc[500:560].copy()
    v = model.variables[1]
    frame.iloc[10:30, frame.columns.get_loc(v)] = np.nan  # a gap to impute
    plain = model.impute(frame, seed=1).frame
    model.interval_scale = {50: 2.0, 90: 4.0}
    wide = model.impute(frame, seed=1).frame
    gap = wide[f"{v}_imputed"].to_numpy()
    for lv in (50, 90):
        w_plain = plain[f"{v}_hi_{lv}"] - plain[f"{v}_lo_{lv}"]
        w_wide = wide[f"{v}_hi_{lv}"] - wide[f"{v}_lo_{lv}"]
        assert (w_wide[gap] >= w_plain[gap] - 1e-9).all() and (w_wide[gap] > w_plain[gap]).any()
        assert (wide[f"{v}_lo_{lv}"] >= model.spec[v].lower).all()  # never below 0 µg/m³
    pd.testing.assert_series_equal(wide[v], plain[v])  # medians and observed values kept
    seen = ~gap
    for side in ("lo", "hi"):  # observed cells: their value, bit for bit
        np.testing.assert_array_equal(wide.loc[seen, f"{v}_{side}_90"], wide.loc[seen, v])
    model.save(tmp_path / "m")
    loaded = TSDiff.load(tmp_path / "m")
    assert loaded.interval_scale == model.interval_scale
    pd.testing.assert_frame_equal(loaded.impute(frame, seed=1).frame, wide)


def test_fit_calibrates_the_intervals_and_a_loaded_model_can_be_recalibrated(pm25) -> None:
    from tsdiff.estimator import calibrate_intervals

    from .conftest import tiny_config

    model = TSDiff(tiny_config(epochs=1, calibrate_intervals=True)).fit(
        pm25.iloc[:600], progress=False
    )
    info = model.info["calibration"]["intervals"]
    assert sorted(model.interval_scale) == list(INTERVAL_LEVELS)
    assert info["coverage_after"][90] >= 0.9 and info["n_cells"] > 0
    again = calibrate_intervals(model, model.panel(pm25.iloc[600:900]), seed=2)
    assert model.interval_scale == again["scale"] and again["coverage_after"][50] >= 0.5


def test_evaluate_scores_the_intervals_impute_reports(fitted, pm25) -> None:
    import copy

    model = copy.deepcopy(fitted)
    frame = pm25.iloc[400:520]
    plain = model.evaluate(frame, seed=6)
    model.interval_scale = {50: 2.0, 90: 3.0}
    wide = model.evaluate(frame, seed=6)
    for part in ("model", "model_normalized"):
        assert wide[part]["mae"] == plain[part]["mae"]  # the same samples and medians
        assert wide[part]["width90"] > 1.5 * plain[part]["width90"]
        assert wide[part]["cov90"] >= plain[part]["cov90"]
    assert wide["model"]["cov90"] == wide["model_normalized"]["cov90"]  # one set of bounds
