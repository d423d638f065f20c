"""Spread calibration: the CRPS-optimal factor about the median."""

from __future__ import annotations

import numpy as np
import pytest

from tsdiff.calibration import SPREAD_GRID, fit_spread, rescale
from tsdiff.errors import DataError


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
