"""Fixed-length windows over a series, and stitching per-window results back together.

The model sees windows of L steps. Windows overlap when the stride is below L; each time
step is then taken from the window whose centre is nearest, where the model has the
most context on both sides.
"""

from __future__ import annotations

import numpy as np

from tsdiff.errors import ConfigError


def _check_window(window: int) -> int:
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise ConfigError(f"window must be a positive integer, got {window!r}")
    return int(window)


def _check_starts(starts: np.ndarray) -> np.ndarray:
    starts = np.asarray(starts)
    if starts.ndim != 1 or starts.size == 0 or not np.issubdtype(starts.dtype, np.integer):
        raise ConfigError("starts must be a non-empty 1-D integer array")
    if (starts < 0).any():
        raise ConfigError(f"window starts must be >= 0, got {starts.min()}")
    return starts.astype(np.int64)


def window_starts(length: int, window: int, stride: int) -> np.ndarray:
    """(W,) int64 starts whose windows cover [0, length); the last window ends at length."""
    window = _check_window(window)
    if (
        isinstance(stride, bool)
        or not isinstance(stride, (int, np.integer))
        or not 1 <= stride <= window
    ):
        raise ConfigError(f"stride must be an integer in [1, window={window}], got {stride!r}")
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 0:
        raise ConfigError(f"length must be a non-negative integer, got {length!r}")
    if length <= window:
        return np.zeros(1, dtype=np.int64)
    last = int(length) - window
    starts = np.arange(0, last + 1, int(stride), dtype=np.int64)
    if starts[-1] != last:
        starts = np.append(starts, np.int64(last))
    return starts


def extract_windows(
    values: np.ndarray, window: int, starts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(K, T) -> windows (W, K, L) float64, NaN past the end, and valid (W, L) bool."""
    window = _check_window(window)
    starts = _check_starts(starts)
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise ConfigError(f"values must be (K, T), got shape {values.shape}")
    k, t = values.shape
    end = max(t, int(starts.max()) + window)
    padded = np.full((k, end), np.nan, dtype=np.float64)  # (K, T')
    padded[:, :t] = values
    idx = starts[:, None] + np.arange(window, dtype=np.int64)  # (W, L)
    windows = np.ascontiguousarray(padded[:, idx].transpose(1, 0, 2))  # (W, K, L)
    return windows, idx < t


def owner(length: int, window: int, starts: np.ndarray) -> np.ndarray:
    """(T,) index of the covering window whose centre is nearest to each step (ties: earlier)."""
    window = _check_window(window)
    starts = _check_starts(starts)
    order = np.argsort(starts, kind="stable")
    centres = starts[order] + (window - 1) / 2.0  # (W,) sorted
    t = np.arange(int(length), dtype=np.float64)  # (T,)
    right = np.searchsorted(centres, t, side="left")  # first centre >= t
    left = np.clip(right - 1, 0, None)
    right = np.clip(right, None, len(centres) - 1)
    d_left = np.abs(t - centres[left])
    d_right = np.abs(centres[right] - t)
    best = np.where(d_left <= d_right, left, right)  # (T,) tie -> the earlier centre
    # among windows sharing that centre, the first in the caller's order
    best = np.searchsorted(centres, centres[best], side="left")
    uncovered = np.abs(t - centres[best]) > (window - 1) / 2.0
    if uncovered.any():
        raise ConfigError(
            f"time step {int(np.flatnonzero(uncovered)[0])} is not covered by any window"
        )
    return order[best]


def stitch(per_window: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """(W, ..., L) -> (..., T): each step from the window that owns it (see :func:`owner`)."""
    per_window = np.asarray(per_window)
    starts = _check_starts(starts)
    if per_window.ndim < 2 or per_window.shape[0] != starts.size:
        raise ConfigError(f"per_window must be (W={starts.size}, ..., L), got {per_window.shape}")
    window = per_window.shape[-1]
    own = owner(length, window, starts)  # (T,)
    pos = np.arange(int(length), dtype=np.int64) - starts[own]  # (T,)
    if length and (pos >= window).any():
        raise ConfigError("a time step lies beyond the window that owns it")
    picked = per_window[own, ..., pos]  # (T, ...)
    return np.moveaxis(picked, 0, -1)  # (..., T)
