"""Tests of tsdiff.metrics against hand-computed values and brute-force references."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tsdiff.errors import ConfigError, DataError, RangeError
from tsdiff.metrics import (
    coverage,
    crps_from_quantiles,
    crps_quantile,
    crps_sample,
    crps_sum,
    interval,
    interval_width,
    mae,
    quantile_levels,
    rmse,
    summarize,
)

# --------------------------------------------------------------------------- references


def _linear_quantile(xs: list[float], q: float) -> float:
    """Linear-interpolation quantile of a list, written out by hand (numpy 'linear')."""
    xs = sorted(xs)
    pos = q * (len(xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def _crps_quantile_loop(samples: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """CSDI quantile CRPS with plain Python loops over levels and cells."""
    n = samples.shape[0]
    flat_s = samples.reshape(n, -1)
    flat_y = truth.ravel()
    flat_m = mask.ravel()
    denom = sum(abs(flat_y[j]) for j in range(flat_y.size) if flat_m[j])
    total = 0.0
    levels = [i / 20 for i in range(1, 20)]
    for q in levels:
        loss = 0.0
        for j in range(flat_y.size):
            if not flat_m[j]:
                continue
            qp = _linear_quantile(list(flat_s[:, j]), q)
            y = flat_y[j]
            loss += abs((y - qp) * ((1.0 if y <= qp else 0.0) - q))
        total += 2.0 * loss / denom
    return total / len(levels)


def _crps_sample_brute(samples: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """Energy-form CRPS with the O(n^2) pairwise term, averaged over masked cells."""
    s = samples[:, mask]  # (n, m)
    y = truth[mask]  # (m,)
    term1 = np.abs(s - y).mean(axis=0)
    term2 = np.abs(s[:, None, :] - s[None, :, :]).mean(axis=(0, 1))
    return float(np.mean(term1 - 0.5 * term2))


# --------------------------------------------------------------------------- point metrics


def test_quantile_levels_are_the_19_csdi_levels() -> None:
    q = quantile_levels()
    assert q.shape == (19,)
    np.testing.assert_allclose(q, [0.05 * i for i in range(1, 20)])


def test_mae_rmse_hand_computed() -> None:
    pred = np.array([1.0, 2.0, 3.0, 10.0])
    truth = np.array([2.0, 2.0, 5.0, 0.0])
    mask = np.array([True, True, True, False])
    assert mae(pred, truth, mask) == pytest.approx((1 + 0 + 2) / 3)
    assert rmse(pred, truth, mask) == pytest.approx(math.sqrt((1 + 0 + 4) / 3))


def test_point_metrics_ignore_nan_outside_mask() -> None:
    pred = np.array([[1.0, np.nan], [3.0, 4.0]])
    truth = np.array([[np.nan, 0.0], [1.0, 4.0]])
    mask = np.array([[False, False], [True, True]])
    assert mae(pred, truth, mask) == pytest.approx(1.0)
    assert rmse(pred, truth, mask) == pytest.approx(math.sqrt(2.0))


def test_empty_mask_gives_nan() -> None:
    x = np.ones((3, 2))
    mask = np.zeros(2, dtype=bool)
    assert math.isnan(mae(x[0], x[0], mask))
    assert math.isnan(crps_quantile(x, x[0], mask))
    assert math.isnan(crps_sample(x, x[0], mask))
    assert math.isnan(coverage(x, x[0], mask, 90))


# --------------------------------------------------------------------------- quantile CRPS


def test_crps_quantile_point_mass_hand_computed() -> None:
    # 3 identical samples per cell: every quantile equals the point prediction 2.
    samples = np.full((3, 2), 2.0)
    truth = np.array([1.0, 4.0])
    mask = np.array([True, True])
    # level q: cell 1 has y <= 2 -> |1-2|(1-q); cell 2 has y > 2 -> |4-2| q
    # loss_q = 2 (1 - q + 2q) = 2 (1 + q); mean over q = 2 * 1.5 = 3; / sum|y| = 5
    assert crps_quantile(samples, truth, mask) == pytest.approx(3.0 / 5.0)


def test_crps_quantile_three_samples_hand_computed() -> None:
    samples = np.array([[0.0], [1.0], [2.0]])
    truth = np.array([1.0])
    mask = np.array([True])
    # q-quantile of {0, 1, 2} is 2q, so loss_q = 2 (1 - 2q) q below the median and
    # 2 (2q - 1)(1 - q) above it; both halves are mirror images.
    expected = np.mean(
        [2 * (1 - 2 * q) * q if q < 0.5 else 2 * (2 * q - 1) * (1 - q) for q in quantile_levels()]
    )
    # by hand: 2 halves * 2 * sum_{i=1..9} (1 - 0.1 i)(0.05 i) / 19 = 4 * 0.825 / 19
    assert expected == pytest.approx(3.3 / 19)
    assert crps_quantile(samples, truth, mask) == pytest.approx(expected)


def test_crps_quantile_matches_loop_reference() -> None:
    rng = np.random.default_rng(1)
    samples = rng.normal(size=(7, 3, 4))
    truth = rng.normal(size=(3, 4))
    mask = rng.random((3, 4)) < 0.6
    mask[0, 0] = True
    assert crps_quantile(samples, truth, mask) == pytest.approx(
        _crps_quantile_loop(samples, truth, mask)
    )


def test_crps_quantile_zero_denominator_is_nan() -> None:
    samples = np.ones((4, 3))
    truth = np.array([0.0, 0.0, 5.0])
    mask = np.array([True, True, False])
    assert math.isnan(crps_quantile(samples, truth, mask))


def test_crps_quantile_close_to_normalised_sample_crps() -> None:
    rng = np.random.default_rng(2)
    m = 200
    samples = rng.normal(loc=2.0, size=(1000, m))
    truth = rng.normal(loc=2.0, size=m)
    mask = np.ones(m, dtype=bool)
    approx = crps_sample(samples, truth, mask) * m / np.abs(truth).sum()
    # 19 levels miss the tails and average rather than integrate: a few % apart
    assert crps_quantile(samples, truth, mask) == pytest.approx(approx, rel=0.1)


# --------------------------------------------------------------------------- sample CRPS


def test_crps_sample_matches_brute_force() -> None:
    rng = np.random.default_rng(3)
    samples = rng.normal(size=(25, 4, 5))
    truth = rng.normal(size=(4, 5))
    mask = rng.random((4, 5)) < 0.5
    mask[1, 1] = True
    assert crps_sample(samples, truth, mask) == pytest.approx(
        _crps_sample_brute(samples, truth, mask)
    )


@settings(max_examples=50, deadline=None)
@given(
    arrays(
        np.float64,
        st.tuples(st.integers(1, 9), st.integers(1, 6)),
        elements=st.floats(-100, 100, allow_nan=False),
    ),
    st.floats(-100, 100, allow_nan=False),
)
def test_crps_sample_brute_force_property(samples: np.ndarray, shift: float) -> None:
    truth = samples[0] * 0.5 + shift
    mask = np.ones(samples.shape[1], dtype=bool)
    got = crps_sample(samples, truth, mask)
    assert got == pytest.approx(_crps_sample_brute(samples, truth, mask), abs=1e-9, rel=1e-9)
    assert got >= -1e-9


def test_crps_sample_point_mass_equals_mae() -> None:
    samples = np.array([[1.0, 5.0], [1.0, 5.0]])
    truth = np.array([3.0, 2.0])
    mask = np.array([True, True])
    assert crps_sample(samples, truth, mask) == pytest.approx((2 + 3) / 2)


def test_crps_honours_mask_with_nan_outside() -> None:
    rng = np.random.default_rng(4)
    samples = rng.normal(size=(10, 3))
    truth = rng.normal(size=3)
    mask = np.array([True, False, True])
    dirty_s = samples.copy()
    dirty_s[:, 1] = np.nan
    dirty_y = truth.copy()
    dirty_y[1] = np.nan
    for fn in (crps_sample, crps_quantile):
        assert fn(dirty_s, dirty_y, mask) == pytest.approx(
            fn(samples[:, [0, 2]], truth[[0, 2]], np.ones(2, dtype=bool))
        )


def test_nan_inside_mask_is_a_data_error() -> None:
    samples = np.ones((3, 2))
    truth = np.array([np.nan, 1.0])
    with pytest.raises(DataError, match="truth"):
        crps_sample(samples, truth, np.array([True, True]))


# --------------------------------------------------------------------------- CRPS-sum


def test_crps_sum_sums_masked_variables_only() -> None:
    rng = np.random.default_rng(5)
    samples = rng.normal(size=(30, 3, 4))  # (n, K, T)
    truth = rng.normal(size=(3, 4)) + 3.0
    mask = np.array(
        [
            [True, False, True, False],
            [True, True, False, False],
            [False, True, True, False],
        ]
    )  # time step 3 has no masked variable
    samples[:, 0, 1] = np.nan  # unmasked: must not leak into the sum
    truth[2, 0] = np.nan
    zs = np.where(mask, samples, 0.0).sum(axis=1)  # (n, T)
    zy = np.where(mask, truth, 0.0).sum(axis=0)  # (T,)
    expected = _crps_quantile_loop(zs[:, :3], zy[:3], np.ones(3, dtype=bool))
    assert crps_sum(samples, truth, mask) == pytest.approx(expected)
    assert crps_sum(samples, truth, mask, var_axis=0) == pytest.approx(expected)


def test_crps_sum_bad_axis() -> None:
    with pytest.raises(ConfigError):
        crps_sum(np.ones((2, 3, 4)), np.ones((3, 4)), np.ones((3, 4), dtype=bool), var_axis=2)


# --------------------------------------------------------------------------- intervals


def test_interval_hand_computed() -> None:
    samples = np.arange(101, dtype=np.float64)[:, None]  # (101, 1): 0..100
    lo, hi = interval(samples, 90)
    assert lo.shape == (1,) and hi.shape == (1,)
    assert lo[0] == pytest.approx(5.0) and hi[0] == pytest.approx(95.0)
    lo, hi = interval(samples, 50)
    assert lo[0] == pytest.approx(25.0) and hi[0] == pytest.approx(75.0)


def test_coverage_inclusive_and_width() -> None:
    samples = np.arange(101, dtype=np.float64)[:, None].repeat(4, axis=1)  # (101, 4)
    truth = np.array([5.0, 95.0, 4.0, 50.0])  # two on the bounds, one outside
    mask = np.array([True, True, True, True])
    assert coverage(samples, truth, mask, 90) == pytest.approx(0.75)
    assert interval_width(samples, mask, 90) == pytest.approx(90.0)
    assert interval_width(samples, np.array([True, False, False, False]), 50) == pytest.approx(50.0)


def test_coverage_of_calibrated_normal_is_near_level() -> None:
    rng = np.random.default_rng(6)
    m = 4000
    samples = rng.normal(size=(300, m))
    truth = rng.normal(size=m)
    mask = np.ones(m, dtype=bool)
    for level in (50, 80, 90):
        assert coverage(samples, truth, mask, level) == pytest.approx(level / 100, abs=0.03)
    assert interval_width(samples, mask, 90) == pytest.approx(2 * 1.6449, rel=0.05)


@pytest.mark.parametrize("level", [0, 100, -5, 50.5, True, "90"])
def test_bad_level_raises_config_error(level: object) -> None:
    samples = np.ones((3, 2))
    with pytest.raises(ConfigError):
        interval(samples, level)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        coverage(samples, np.ones(2), np.ones(2, dtype=bool), level)  # type: ignore[arg-type]


def test_out_of_range_level_is_range_error() -> None:
    with pytest.raises(RangeError, match="1..99"):
        interval_width(np.ones((3, 2)), np.ones(2, dtype=bool), 100)


def test_shape_mismatch_names_shapes() -> None:
    with pytest.raises(ConfigError, match=r"\(3, 2\).*\(3,\)"):
        crps_sample(np.ones((3, 2)), np.ones(3), np.ones(3, dtype=bool))
    with pytest.raises(ConfigError, match="mask"):
        crps_quantile(np.ones((3, 2)), np.ones(2), np.ones(3, dtype=bool))
    with pytest.raises(ConfigError):
        mae(np.ones(2), np.ones(3), np.ones(3, dtype=bool))


# --------------------------------------------------------------------------- summary


def test_summarize_keys_types_and_values() -> None:
    rng = np.random.default_rng(7)
    samples = rng.normal(size=(21, 2, 5))
    truth = rng.normal(size=(2, 5))
    mask = rng.random((2, 5)) < 0.7
    mask[0, 0] = True
    out = summarize(samples, truth, mask, levels=(50, 90))
    assert set(out) == {
        "mae",
        "rmse",
        "crps",
        "crps_sample",
        "cov50",
        "width50",
        "cov90",
        "width90",
        "n_cells",
    }
    assert type(out["n_cells"]) is int and out["n_cells"] == int(mask.sum())
    assert all(type(v) is float for k, v in out.items() if k != "n_cells")
    med = np.median(samples, axis=0)
    assert out["mae"] == pytest.approx(mae(med, truth, mask))
    assert out["rmse"] == pytest.approx(rmse(med, truth, mask))
    assert out["crps"] == pytest.approx(crps_quantile(samples, truth, mask))
    assert out["crps_sample"] == pytest.approx(crps_sample(samples, truth, mask))
    assert out["cov90"] == pytest.approx(coverage(samples, truth, mask, 90))
    assert out["width50"] == pytest.approx(interval_width(samples, mask, 50))
    assert json.loads(json.dumps(out)) == out


def test_crps_from_quantiles_equals_crps_quantile_on_sample_quantiles() -> None:
    rng = np.random.default_rng(3)
    samples = rng.normal(size=(50, 4, 6))
    truth = rng.normal(size=(4, 6)) + 0.5
    mask = rng.random((4, 6)) < 0.7
    q = np.quantile(samples, quantile_levels(), axis=0)  # (19, 4, 6)
    assert crps_from_quantiles(q, truth, mask) == pytest.approx(
        crps_quantile(samples, truth, mask), rel=1e-12
    )


def test_crps_from_quantiles_point_mass_and_bad_count() -> None:
    truth = np.array([1.0, -2.0, 4.0])
    q = np.broadcast_to(np.array([2.0, 0.0, 4.0]), (19, 3))  # every quantile at the point
    # a point forecast: sum_q 2|y - p| · |1[y <= p] - q| averages to |y - p| over q
    per_level = [
        2 * np.sum(np.abs(truth - q[0]) * np.abs((truth <= q[0]) - lv)) for lv in quantile_levels()
    ]
    expected = np.mean(per_level) / np.sum(np.abs(truth))
    assert crps_from_quantiles(q, truth, np.ones(3, bool)) == pytest.approx(expected)
    # = sum|y - p| / sum|y|
    assert crps_from_quantiles(q, truth, np.ones(3, bool)) == pytest.approx(3.0 / 7.0)
    with pytest.raises(ConfigError):
        crps_from_quantiles(np.zeros((9, 3)), truth, np.ones(3, bool))
