"""The per-cell spread benchmark's scoring: the same CRPS as the metrics module, and a fit
that finds the factor the cells need."""

from __future__ import annotations

import numpy as np
import pytest

from tsdiff.benchmarks.cell_spread import VARIANTS, fit_factor, run, scaled_crps, standardized
from tsdiff.errors import ConfigError
from tsdiff.metrics import crps_from_quantiles, quantile_levels


def _normal_quantiles(m: int, scale: np.ndarray) -> np.ndarray:
    from scipy.stats import norm

    return norm.ppf(quantile_levels())[:, None] * scale[None, :]  # (19, m)


def test_scaled_crps_at_factor_one_is_the_metrics_crps() -> None:
    rng = np.random.default_rng(0)
    q = np.sort(rng.normal(size=(19, 50)), axis=0)
    y = rng.normal(size=50)
    want = crps_from_quantiles(q, y, np.ones(50, dtype=bool))
    assert scaled_crps(q, y, 1.0) == pytest.approx(want, rel=1e-12)


def test_the_fit_widens_the_cells_a_feature_marks_as_harder() -> None:
    """Cells drawn with twice the predicted spread where a feature is 1: the fitted
    factor is about 2 there and about 1 elsewhere."""
    rng = np.random.default_rng(1)
    m = 4000
    hard = rng.random(m) < 0.5
    y = rng.normal(size=m) * np.where(hard, 2.0, 1.0) + 3.0  # away from 0: sum |y| > 0
    q = _normal_quantiles(m, np.ones(m)) + 3.0
    b = fit_factor(q, y, hard[:, None].astype(float))
    assert np.exp(b[0]) == pytest.approx(1.0, abs=0.15)
    assert np.exp(b[0] + b[1]) == pytest.approx(2.0, abs=0.3)
    assert scaled_crps(q, y, np.exp(b[0] + b[1] * hard)) < scaled_crps(q, y, 1.0)


def test_a_model_not_trained_on_physionet_is_refused() -> None:
    with pytest.raises(ConfigError, match="PhysioNet"):
        run("pm25-beijing")


def test_each_variant_reads_its_own_feature_columns() -> None:
    f = np.arange(20, dtype=float).reshape(5, 4)
    mu, sd = f.mean(axis=0), f.std(axis=0)
    for cols in VARIANTS.values():
        x = standardized(f, cols, mu, sd)
        assert x.shape == (5, len(cols))
        np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=1e-12)
