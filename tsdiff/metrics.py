"""Evaluation metrics for probabilistic imputation (pure numpy).

Conventions shared by every function:

* ``samples`` has shape ``(n, ...)``: the sample axis first, any cell shape after;
* ``truth`` and ``mask`` have the cell shape ``(...)``;
* ``mask`` is boolean and selects the evaluated cells (e.g. the held-out ones).
  Cells outside the mask are ignored, even when they hold NaN.

The quantile-based CRPS follows CSDI (Tashiro et al., 2021) exactly so that numbers are
comparable with the paper; the sample-based CRPS is the usual energy form.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tsdiff.errors import ConfigError, DataError, RangeError

__all__ = [
    "coverage",
    "crps_from_quantiles",
    "crps_quantile",
    "crps_sample",
    "crps_sum",
    "interval",
    "interval_width",
    "mae",
    "quantile_levels",
    "rmse",
    "summarize",
]


# --------------------------------------------------------------------------- validation


def _as_mask(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Return ``mask`` as a bool array of ``shape``; 0/1 numbers are accepted too."""
    m = np.asarray(mask)
    if m.shape != shape:
        raise ConfigError(f"mask shape {m.shape} does not match the cell shape {shape}")
    if m.dtype != np.bool_:
        if not (np.issubdtype(m.dtype, np.number) and np.isin(m, (0, 1)).all()):
            raise ConfigError(f"mask must be boolean (or 0/1), got dtype {m.dtype}")
        m = m.astype(bool)
    return m


def _as_float(x: np.ndarray, name: str) -> np.ndarray:
    """Return ``x`` as a float64 array, naming the argument when it is not numeric."""
    a = np.asarray(x)
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
        raise ConfigError(f"{name} must be numeric, got dtype {a.dtype}")
    return a.astype(np.float64, copy=False)


def _check_finite(x: np.ndarray, name: str) -> None:
    """Refuse NaN/inf in evaluated cells: a silent NaN score would hide the bug upstream."""
    if not np.isfinite(x).all():
        raise DataError(f"{name} has non-finite values in masked (evaluated) cells")


def _select_point(
    pred: np.ndarray, truth: np.ndarray, mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Validate a point prediction and return the masked ``(pred, truth)`` as ``(m,)``."""
    p = _as_float(pred, "pred")
    y = _as_float(truth, "truth")
    if p.shape != y.shape:
        raise ConfigError(f"pred shape {p.shape} does not match truth shape {y.shape}")
    m = _as_mask(mask, y.shape).ravel()
    p_m = p.ravel()[m]  # (m,)
    y_m = y.ravel()[m]  # (m,)
    _check_finite(p_m, "pred")
    _check_finite(y_m, "truth")
    return p_m, y_m


def _select(
    samples: np.ndarray, truth: np.ndarray, mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Validate samples/truth/mask and return masked ``samples (n, m)`` and ``truth (m,)``."""
    s = _as_float(samples, "samples")
    y = _as_float(truth, "truth")
    if s.ndim < 1 or s.shape[0] < 1:
        raise ConfigError(f"samples must have a non-empty leading sample axis, got {s.shape}")
    if s.shape[1:] != y.shape:
        raise ConfigError(
            f"samples shape {s.shape} does not match truth shape {y.shape} "
            "(expected samples = (n, *truth.shape))"
        )
    m = _as_mask(mask, y.shape).ravel()
    s_m = s.reshape(s.shape[0], -1)[:, m]  # (n, m)
    y_m = y.ravel()[m]  # (m,)
    _check_finite(s_m, "samples")
    _check_finite(y_m, "truth")
    return s_m, y_m


def _check_level(level: int) -> int:
    """Interval levels are whole percentages in 1..99; anything else is a caller bug."""
    if isinstance(level, bool) or not isinstance(level, (int, np.integer)):
        raise ConfigError(f"level must be an integer percentage, got {level!r}")
    if not 1 <= int(level) <= 99:
        raise RangeError(f"level must lie in 1..99, got {int(level)}")
    return int(level)


# --------------------------------------------------------------------------- point metrics


def mae(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """Mean absolute error over the masked cells (nan when the mask is empty)."""
    p, y = _select_point(pred, truth, mask)
    return float(np.mean(np.abs(p - y))) if y.size else float("nan")


def rmse(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """Root mean squared error over the masked cells (nan when the mask is empty)."""
    p, y = _select_point(pred, truth, mask)
    return float(np.sqrt(np.mean((p - y) ** 2))) if y.size else float("nan")


# --------------------------------------------------------------------------- CRPS


def quantile_levels() -> np.ndarray:
    """The 19 levels 0.05, 0.10, ..., 0.95 used by CSDI's quantile CRPS."""
    return np.arange(1, 20, dtype=np.float64) / 20.0  # (19,)


def _crps_quantile_selected(s: np.ndarray, y: np.ndarray) -> float:
    """CSDI quantile CRPS on already-selected ``s (n, m)`` and ``y (m,)``."""
    if y.size == 0:
        return float("nan")
    return _crps_from_quantiles_selected(np.quantile(s, quantile_levels(), axis=0), y)


def _crps_from_quantiles_selected(q_pred: np.ndarray, y: np.ndarray) -> float:
    """CSDI quantile CRPS of predicted quantiles ``q_pred (19, m)`` against ``y (m,)``."""
    denom = float(np.sum(np.abs(y)))
    if y.size == 0 or denom == 0.0:
        return float("nan")
    qs = quantile_levels()  # (19,)
    indicator = (y[None, :] <= q_pred).astype(np.float64)  # (19, m)
    loss = 2.0 * np.sum(np.abs((y[None, :] - q_pred) * (indicator - qs[:, None])), axis=1)
    return float(np.mean(loss / denom))


def crps_quantile(samples: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """CRPS approximated by 19 quantile losses, normalised by sum |truth| (as in CSDI).

    For each level q the per-cell q-quantile of the samples (linear interpolation) is
    scored with ``2 * sum |(y - q_pred) * (1[y <= q_pred] - q)|``, divided by
    ``sum |y|`` over the masked cells; the result is the mean over the 19 levels.
    Returns nan when the denominator is 0 (or no cell is masked).
    """
    s, y = _select(samples, truth, mask)
    return _crps_quantile_selected(s, y)


def crps_from_quantiles(quantiles: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """CSDI's quantile CRPS from predicted quantiles instead of samples.

    For forecasters that give quantiles or intervals rather than samples (statistical
    baselines, a saved backtest): ``quantiles`` has shape ``(19, ...)``, the levels of
    :func:`quantile_levels` in order. On the quantiles of a sample set it equals
    :func:`crps_quantile` on those samples.
    """
    q, y = _select(quantiles, truth, mask)  # (19, m), (m,)
    if q.shape[0] != len(quantile_levels()):
        raise ConfigError(f"need the 19 quantiles 0.05..0.95 on axis 0, got {q.shape[0]}")
    return _crps_from_quantiles_selected(q, y)


def _crps_sample_selected(s: np.ndarray, y: np.ndarray) -> float:
    """Energy-form CRPS on ``s (n, m)`` and ``y (m,)``, averaged over the m cells."""
    if y.size == 0:
        return float("nan")
    n = s.shape[0]
    term1 = np.mean(np.abs(s - y[None, :]), axis=0)  # (m,)
    # E|X - X'| over all n^2 ordered pairs from sorted samples:
    # sum_{i,j} |x_i - x_j| = 2 * sum_i (2i - n + 1) x_(i)  (0-based ranks)
    xs = np.sort(s, axis=0)  # (n, m)
    weights = 2.0 * np.arange(n, dtype=np.float64) - n + 1.0  # (n,)
    term2 = 2.0 * (weights @ xs) / float(n * n)  # (m,)
    return float(np.mean(term1 - 0.5 * term2))


def crps_sample(samples: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """Sample CRPS ``E|X - y| - 0.5 E|X - X'|`` per masked cell, averaged over the cells.

    This is the exact CRPS of the empirical sample distribution; E|X - X'| is computed
    from sorted samples in O(n log n) time and O(n) memory per cell.
    """
    s, y = _select(samples, truth, mask)
    return _crps_sample_selected(s, y)


def crps_sum(samples: np.ndarray, truth: np.ndarray, mask: np.ndarray, var_axis: int = -2) -> float:
    """CRPS-sum: quantile CRPS of the sum over variables (multivariate forecasting / CSDI).

    Unmasked cells are zeroed, samples and truth are summed over ``var_axis`` (an axis of
    the cell shape), and :func:`crps_quantile` is applied to the sums over the remaining
    cells where at least one variable was masked.
    """
    s = _as_float(samples, "samples")
    y = _as_float(truth, "truth")
    if s.ndim < 1 or s.shape[1:] != y.shape:
        raise ConfigError(
            f"samples shape {s.shape} does not match truth shape {y.shape} "
            "(expected samples = (n, *truth.shape))"
        )
    m = _as_mask(mask, y.shape)
    if y.ndim == 0 or not -y.ndim <= var_axis < y.ndim:
        raise ConfigError(f"var_axis {var_axis} is out of range for truth shape {y.shape}")
    ax = var_axis % y.ndim
    y_sum = np.where(m, y, 0.0).sum(axis=ax)  # (... without var axis)
    s_sum = np.where(m[None], s, 0.0).sum(axis=ax + 1)  # (n, ... without var axis)
    m_sum = m.any(axis=ax)
    return crps_quantile(s_sum, y_sum, m_sum)


# --------------------------------------------------------------------------- intervals


def interval(samples: np.ndarray, level: int) -> tuple[np.ndarray, np.ndarray]:
    """Central ``level`` % interval per cell: quantiles ``(1 - level/100)/2`` and ``1 - that``.

    Returns ``(lo, hi)``, each of the cell shape ``samples.shape[1:]``.
    """
    lev = _check_level(level)
    s = _as_float(samples, "samples")
    if s.ndim < 1 or s.shape[0] < 1:
        raise ConfigError(f"samples must have a non-empty leading sample axis, got {s.shape}")
    alpha = (1.0 - lev / 100.0) / 2.0
    lo, hi = np.quantile(s, [alpha, 1.0 - alpha], axis=0)  # each (...)
    return lo, hi


def _coverage_selected(s: np.ndarray, y: np.ndarray, level: int) -> float:
    if y.size == 0:
        return float("nan")
    lo, hi = interval(s, level)  # (m,), (m,)
    return float(np.mean((y >= lo) & (y <= hi)))


def _width_selected(s: np.ndarray, level: int) -> float:
    if s.shape[1] == 0:
        return float("nan")
    lo, hi = interval(s, level)  # (m,), (m,)
    return float(np.mean(hi - lo))


def coverage(samples: np.ndarray, truth: np.ndarray, mask: np.ndarray, level: int) -> float:
    """Fraction of masked truths inside the central ``level`` % interval (inclusive)."""
    _check_level(level)
    s, y = _select(samples, truth, mask)
    return _coverage_selected(s, y, level)


def interval_width(samples: np.ndarray, mask: np.ndarray, level: int) -> float:
    """Mean width ``hi - lo`` of the central ``level`` % interval over the masked cells."""
    _check_level(level)
    s = _as_float(samples, "samples")
    if s.ndim < 1 or s.shape[0] < 1:
        raise ConfigError(f"samples must have a non-empty leading sample axis, got {s.shape}")
    m = _as_mask(mask, s.shape[1:]).ravel()
    s_m = s.reshape(s.shape[0], -1)[:, m]  # (n, m)
    _check_finite(s_m, "samples")
    return _width_selected(s_m, level)


# --------------------------------------------------------------------------- summary


def summarize(
    samples: np.ndarray,
    truth: np.ndarray,
    mask: np.ndarray,
    levels: Sequence[int] = (50, 90),
) -> dict[str, float]:
    """All metrics at once as plain Python numbers, ready for JSON output.

    Keys: ``mae``, ``rmse`` (of the per-cell sample median), ``crps`` (CSDI quantile
    CRPS), ``crps_sample``, ``cov<level>`` and ``width<level>`` for each level, and
    ``n_cells`` (an ``int``). Scores are nan when no cell is masked.
    """
    levs = [_check_level(lev) for lev in levels]
    s, y = _select(samples, truth, mask)  # (n, m), (m,)
    n_cells = int(y.size)
    if n_cells:
        med = np.median(s, axis=0)  # (m,)
        out: dict[str, float] = {
            "mae": float(np.mean(np.abs(med - y))),
            "rmse": float(np.sqrt(np.mean((med - y) ** 2))),
        }
    else:
        out = {"mae": float("nan"), "rmse": float("nan")}
    out["crps"] = _crps_quantile_selected(s, y)
    out["crps_sample"] = _crps_sample_selected(s, y)
    for lev in levs:
        out[f"cov{lev}"] = _coverage_selected(s, y, lev)
        out[f"width{lev}"] = _width_selected(s, lev)
    out["n_cells"] = n_cells  # an int on purpose: it is a count
    return out
