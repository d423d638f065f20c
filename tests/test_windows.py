"""Windows over a series and stitching them back: every step covered, nothing lost."""

from __future__ import annotations

import numpy as np
import pytest

from tsdiff.data.windows import extract_windows, owner, stitch, window_starts
from tsdiff.errors import ConfigError

CASES = [  # (T, L, stride): T < L, T == L, T > L, odd strides, stride == L, stride 1
    (5, 8, 3),
    (8, 8, 8),
    (9, 8, 8),
    (37, 8, 3),
    (100, 36, 7),
    (101, 36, 36),
    (12, 5, 1),
    (1, 4, 2),
]


def _series(k: int, t: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(k, t))
    x[rng.random((k, t)) < 0.3] = np.nan  # missing cells must survive too
    return x


def _nearest_owner(length: int, window: int, starts: np.ndarray) -> np.ndarray:
    """Reference owner: loop over steps and windows."""
    out = np.empty(length, dtype=np.int64)
    for t in range(length):
        best, best_d = -1, np.inf
        for w, s in enumerate(starts):
            if s <= t < s + window or (length <= window and s == 0):
                d = abs(t - (s + (window - 1) / 2))
                if d < best_d:
                    best, best_d = w, d
        out[t] = best
    return out


@pytest.mark.parametrize(("length", "window", "stride"), CASES)
def test_window_starts_cover_every_index(length: int, window: int, stride: int) -> None:
    starts = window_starts(length, window, stride)
    assert starts.dtype == np.int64
    assert starts[0] == 0
    assert np.all(np.diff(starts) > 0)
    covered = np.zeros(length, dtype=bool)
    for s in starts:
        covered[s : s + window] = True
    assert covered.all()
    if length > window:
        assert starts[-1] == length - window
        assert np.all(np.diff(starts)[:-1] == stride)
    else:
        assert starts.tolist() == [0]


def test_window_starts_examples() -> None:
    assert window_starts(10, 4, 3).tolist() == [0, 3, 6]
    assert window_starts(11, 4, 3).tolist() == [0, 3, 6, 7]
    assert window_starts(4, 4, 1).tolist() == [0]
    assert window_starts(0, 4, 1).tolist() == [0]


@pytest.mark.parametrize("stride", [0, 5, -1])
def test_window_starts_rejects_bad_stride(stride: int) -> None:
    with pytest.raises(ConfigError, match="stride"):
        window_starts(10, 4, stride)


def test_window_starts_rejects_bad_window() -> None:
    with pytest.raises(ConfigError, match="window"):
        window_starts(10, 0, 1)


@pytest.mark.parametrize(("length", "window", "stride"), CASES)
def test_extract_then_stitch_round_trips(length: int, window: int, stride: int) -> None:
    x = _series(3, length, seed=length)  # (K, T)
    starts = window_starts(length, window, stride)
    windows, valid = extract_windows(x, window, starts)
    assert windows.shape == (len(starts), 3, window)
    assert windows.dtype == np.float64
    assert valid.shape == (len(starts), window)
    back = stitch(windows, starts, length)
    assert back.shape == x.shape
    np.testing.assert_array_equal(back, x)  # NaN in the same places, values bit-identical
    mask_back = stitch(np.broadcast_to(valid[:, None, :], windows.shape), starts, length)
    assert mask_back.dtype == bool and mask_back.all()


def test_extract_pads_short_series_with_nan() -> None:
    x = np.arange(10, dtype=np.float64).reshape(2, 5)
    windows, valid = extract_windows(x, 8, np.array([0]))
    assert windows.shape == (1, 2, 8)
    np.testing.assert_array_equal(windows[0, :, :5], x)
    assert np.isnan(windows[0, :, 5:]).all()
    assert valid[0].tolist() == [True] * 5 + [False] * 3


def test_extract_windows_slices_the_right_cells() -> None:
    x = np.arange(24, dtype=np.float64).reshape(2, 12)
    starts = window_starts(12, 5, 3)  # [0, 3, 6, 7]
    windows, valid = extract_windows(x, 5, starts)
    for w, s in enumerate(starts):
        np.testing.assert_array_equal(windows[w], x[:, s : s + 5])
    assert valid.all()


@pytest.mark.parametrize(("length", "window", "stride"), CASES)
def test_owner_picks_nearest_centre(length: int, window: int, stride: int) -> None:
    starts = window_starts(length, window, stride)
    got = owner(length, window, starts)
    np.testing.assert_array_equal(got, _nearest_owner(length, window, starts))


def test_owner_ties_go_to_earlier_window() -> None:
    # L=4: centres 1.5 and 3.5; step 2 is nearer 1.5, step 3 nearer 3.5
    got = owner(6, 4, np.array([0, 2]))
    assert got.tolist() == [0, 0, 0, 1, 1, 1]
    # L=5, starts 0 and 2: centres 2 and 4; step 3 is equidistant -> the earlier window
    assert owner(7, 5, np.array([0, 2]))[3] == 0


def test_owner_rejects_uncovered_steps() -> None:
    with pytest.raises(ConfigError, match="not covered"):
        owner(20, 4, np.array([0, 10]))


@pytest.mark.parametrize(("length", "window", "stride"), CASES)
def test_stitched_values_come_from_the_owning_window(length: int, window: int, stride: int) -> None:
    starts = window_starts(length, window, stride)
    rng = np.random.default_rng(1)
    per_window = rng.normal(size=(len(starts), 4, 2, window))  # (W, n, K, L): distinct per window
    out = stitch(per_window, starts, length)
    assert out.shape == (4, 2, length)
    own = owner(length, window, starts)
    for w, s in enumerate(starts):
        cells = np.flatnonzero(own == w)
        np.testing.assert_array_equal(out[..., cells], per_window[w][..., cells - s])
        # the window only owns cells it covers
        assert np.all((cells >= s) & (cells < s + window))


def test_stitch_rejects_mismatched_window_count() -> None:
    with pytest.raises(ConfigError, match="per_window"):
        stitch(np.zeros((3, 2, 4)), np.array([0, 2]), 6)
