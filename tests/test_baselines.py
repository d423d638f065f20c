"""Tests of tsdiff.baselines: hand-checked fills and data-preserving properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tsdiff.baselines import (
    BASELINES,
    iterative_impute,
    knn_impute,
    linear_impute,
    locf_impute,
    mean_impute,
)
from tsdiff.errors import ConfigError, RangeError

NAN = np.nan


@st.composite
def series_with_gaps(draw: st.DrawFn) -> np.ndarray:
    """A (K, T) float64 array with an arbitrary NaN pattern (rows may be all-NaN)."""
    k = draw(st.integers(1, 4))
    t = draw(st.integers(1, 12))
    vals = draw(
        arrays(
            np.float64,
            (k, t),
            elements=st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=True),
        )
    )
    holes = draw(arrays(np.bool_, (k, t)))
    return np.where(holes, NAN, vals)


@settings(max_examples=150, deadline=None)
@given(series_with_gaps(), st.booleans())
def test_observed_cells_bit_identical_and_no_nan_left(values: np.ndarray, use_means: bool) -> None:
    means = np.linspace(-1.0, 1.0, values.shape[0]) if use_means else None
    original = values.copy()
    obs = ~np.isnan(values)
    for name, fn in BASELINES.items():
        out = fn(values, means)
        assert out.shape == values.shape and out.dtype == np.float64, name
        assert np.array_equal(out[obs].view(np.uint64), values[obs].view(np.uint64)), name
        assert not np.isnan(out).any(), name
        # the input is never modified in place
        assert np.array_equal(values, original, equal_nan=True), name


@settings(max_examples=100, deadline=None)
@given(series_with_gaps())
def test_interpolated_values_stay_within_observed_range(values: np.ndarray) -> None:
    out_lin = linear_impute(values)
    out_locf = locf_impute(values)
    for k in range(values.shape[0]):
        row = values[k]
        if np.isnan(row).all():
            continue
        lo, hi = np.nanmin(row), np.nanmax(row)
        for out in (out_lin, out_locf):
            assert out[k].min() >= lo - 1e-9 * (1 + abs(lo))
            assert out[k].max() <= hi + 1e-9 * (1 + abs(hi))


def test_linear_hand_checked() -> None:
    values = np.array(
        [
            [NAN, 1.0, NAN, NAN, 4.0, NAN],
            [0.0, NAN, 10.0, NAN, NAN, NAN],
            [NAN, NAN, NAN, NAN, NAN, NAN],
        ]
    )
    out = linear_impute(values, means=np.array([9.0, 9.0, 7.0]))
    expected = np.array(
        [
            [1.0, 1.0, 2.0, 3.0, 4.0, 4.0],
            [0.0, 5.0, 10.0, 10.0, 10.0, 10.0],
            [7.0, 7.0, 7.0, 7.0, 7.0, 7.0],
        ]
    )
    np.testing.assert_allclose(out, expected)
    # without means, an empty variable falls back to 0
    np.testing.assert_array_equal(linear_impute(values)[2], np.zeros(6))


def test_locf_hand_checked() -> None:
    values = np.array(
        [
            [NAN, 1.0, NAN, 3.0, NAN],
            [2.0, NAN, NAN, NAN, NAN],
            [NAN, NAN, NAN, NAN, NAN],
        ]
    )
    out = locf_impute(values, means=np.array([0.0, 0.0, -1.5]))
    expected = np.array(
        [
            [1.0, 1.0, 1.0, 3.0, 3.0],
            [2.0, 2.0, 2.0, 2.0, 2.0],
            [-1.5, -1.5, -1.5, -1.5, -1.5],
        ]
    )
    np.testing.assert_array_equal(out, expected)


def test_mean_hand_checked() -> None:
    values = np.array([[1.0, NAN, 3.0], [NAN, NAN, NAN], [NAN, 4.0, NAN]])
    np.testing.assert_array_equal(
        mean_impute(values), [[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [4.0, 4.0, 4.0]]
    )
    # given training means win over the series' own mean; a NaN entry means "not given"
    out = mean_impute(values, means=np.array([10.0, 20.0, NAN]))
    np.testing.assert_array_equal(out, [[1.0, 10.0, 3.0], [20.0, 20.0, 20.0], [4.0, 4.0, 4.0]])


def test_per_series_bad_input() -> None:
    with pytest.raises(ConfigError, match=r"\(K, T\)"):
        linear_impute(np.ones(5))
    with pytest.raises(ConfigError, match="means"):
        mean_impute(np.ones((2, 3)), means=np.ones(3))
    assert set(BASELINES) == {"mean", "locf", "linear"}


def _correlated_windows(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Windows (N, K, L) where every cell is a multiple of one latent per window."""
    rng = np.random.default_rng(seed)
    n, k, length = 40, 2, 3
    latent = rng.normal(size=(n, 1, 1))
    scale = np.arange(1, k * length + 1, dtype=np.float64).reshape(1, k, length)
    full = latent * scale  # (N, K, L)
    holes = rng.random(full.shape) < 0.15
    holes[:, 0, 0] = False  # keep one observed cell per window
    return full, np.where(holes, NAN, full)


def test_knn_impute_small_random_set() -> None:
    full, windows = _correlated_windows(0)
    windows[:, 1, 2] = NAN  # an all-NaN column is filled with 0
    out = knn_impute(windows, n_neighbors=3)
    obs = ~np.isnan(windows)
    assert out.shape == windows.shape
    assert not np.isnan(out).any()
    assert np.array_equal(out[obs], windows[obs])
    np.testing.assert_array_equal(out[:, 1, 2], 0.0)
    # neighbours in a 1-D latent space are close: imputations track the truth
    miss = np.isnan(windows) & (np.arange(3)[None, None, :] != 2)
    err = np.abs(out - full)[miss].mean()
    assert err < 0.5 * np.abs(full[miss]).mean()


def test_knn_with_identical_twin_copies_its_value() -> None:
    windows = np.array(
        [[[1.0, 2.0], [3.0, 4.0]], [[1.0, 2.0], [3.0, NAN]], [[9.0, 9.0], [9.0, 9.0]]]
    )
    out = knn_impute(windows, n_neighbors=1)
    assert out[1, 1, 1] == 4.0


def test_iterative_impute_recovers_linear_structure() -> None:
    full, windows = _correlated_windows(1)
    out = iterative_impute(windows, max_iter=10, seed=0)
    obs = ~np.isnan(windows)
    assert out.shape == windows.shape
    assert not np.isnan(out).any()
    assert np.array_equal(out[obs], windows[obs])
    np.testing.assert_allclose(out[~obs], full[~obs], atol=0.05)
    # a fixed seed makes the baseline reproducible
    np.testing.assert_array_equal(out, iterative_impute(windows, max_iter=10, seed=0))


def test_window_imputers_bad_input() -> None:
    with pytest.raises(ConfigError, match=r"\(N, K, L\)"):
        knn_impute(np.ones((3, 4)))
    with pytest.raises(RangeError):
        knn_impute(np.ones((3, 2, 2)), n_neighbors=0)
    with pytest.raises(RangeError):
        iterative_impute(np.ones((3, 2, 2)), max_iter=0)
    # nothing missing: returned unchanged
    w = np.arange(12.0).reshape(3, 2, 2)
    np.testing.assert_array_equal(iterative_impute(w), w)
