"""Classical imputers used as reference points for the diffusion model (pure numpy).

Per-series imputers take ``values (K, T)`` (variables on axis 0, time on axis 1) with NaN
marking missing cells and return a new ``(K, T)`` float64 array in which every NaN is
filled; observed cells are copied bit-identically, so the baselines never alter data.
The window imputers wrap scikit-learn on flattened windows ``(N, K * L)``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np

from tsdiff.errors import ConfigError, RangeError

__all__ = [
    "BASELINES",
    "iterative_impute",
    "knn_impute",
    "linear_impute",
    "locf_impute",
    "mean_impute",
    "seasonal_naive_forecast",
]


# --------------------------------------------------------------------------- helpers


def _as_series(values: np.ndarray) -> np.ndarray:
    """Return a float64 copy of a ``(K, T)`` series, rejecting other shapes."""
    a = np.asarray(values)
    if a.ndim != 2:
        raise ConfigError(f"values must have shape (K, T), got {a.shape}")
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
        raise ConfigError(f"values must be numeric, got dtype {a.dtype}")
    return np.array(a, dtype=np.float64, copy=True)


def _fallback_means(x: np.ndarray, means: np.ndarray | None, use_own: bool) -> np.ndarray:
    """Per-variable fill value ``(K,)``: given mean, else own observed mean, else 0.

    A NaN entry in ``means`` counts as "not given" for that variable.
    """
    k = x.shape[0]
    fill = np.full(k, np.nan)  # (K,)
    if means is not None:
        given = np.asarray(means, dtype=np.float64)
        if given.shape != (k,):
            raise ConfigError(f"means shape {given.shape} does not match (K,) = ({k},)")
        fill = given.copy()
    if use_own:
        obs = ~np.isnan(x)  # (K, T)
        counts = obs.sum(axis=1)  # (K,)
        sums = np.where(obs, x, 0.0).sum(axis=1)  # (K,)
        with np.errstate(invalid="ignore", divide="ignore"):
            own = sums / counts  # (K,); nan where no observation
        fill = np.where(np.isnan(fill), own, fill)
    return np.where(np.isnan(fill), 0.0, fill)


def neighbours(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the previous and next observation per cell, ``(K, T)`` each.

    ``prev`` is -1 before the first observation; ``nxt`` is T after the last one.
    An observed cell is its own previous and next observation.
    """
    t = obs.shape[1]
    idx = np.arange(t)  # (T,)
    prev = np.maximum.accumulate(np.where(obs, idx, -1), axis=1)  # (K, T)
    nxt = np.minimum.accumulate(np.where(obs, idx, t)[:, ::-1], axis=1)[:, ::-1]  # (K, T)
    return prev, nxt


# --------------------------------------------------------------------------- per series


def mean_impute(values: np.ndarray, means: np.ndarray | None = None) -> np.ndarray:
    """Fill each variable with a constant: the given training mean, else its own mean.

    A variable with neither an observation nor a given mean is filled with 0
    (the mean on the normalised scale).
    """
    x = _as_series(values)  # (K, T)
    miss = np.isnan(x)
    fill = _fallback_means(x, means, use_own=True)  # (K,)
    x[miss] = np.broadcast_to(fill[:, None], x.shape)[miss]
    return x


def locf_impute(values: np.ndarray, means: np.ndarray | None = None) -> np.ndarray:
    """Last observation carried forward; leading gaps take the next observation.

    Variables without any observation fall back to the given mean, else 0.
    """
    x = _as_series(values)  # (K, T)
    miss = np.isnan(x)
    if not miss.any():
        return x
    prev, nxt = neighbours(~miss)  # (K, T) each
    t = x.shape[1]
    src = np.where(prev >= 0, prev, nxt)  # (K, T); == T when the row is empty
    has_src = src < t
    carried = np.take_along_axis(x, np.minimum(src, t - 1), axis=1)  # (K, T)
    fill = _fallback_means(x, means, use_own=False)  # (K,)
    filled = np.where(has_src, carried, fill[:, None])  # (K, T)
    x[miss] = filled[miss]
    return x


def linear_impute(values: np.ndarray, means: np.ndarray | None = None) -> np.ndarray:
    """Linear interpolation in time per variable, flat extrapolation at both ends.

    Variables without any observation fall back to the given mean, else 0.
    """
    x = _as_series(values)  # (K, T)
    miss = np.isnan(x)
    if not miss.any():
        return x
    prev, nxt = neighbours(~miss)  # (K, T) each
    t = x.shape[1]
    has_prev = prev >= 0
    has_next = nxt < t
    v_prev = np.take_along_axis(x, np.maximum(prev, 0), axis=1)  # (K, T)
    v_next = np.take_along_axis(x, np.minimum(nxt, t - 1), axis=1)  # (K, T)
    both = has_prev & has_next & miss
    pos = np.arange(t, dtype=np.float64)[None, :]  # (1, T)
    span = np.where(both, nxt - prev, 1).astype(np.float64)  # (K, T)
    w = np.where(both, (pos - prev) / span, 0.0)  # (K, T)
    # convex combination (not v_prev + w * diff) so large finite values cannot overflow
    interp = (1.0 - w) * np.where(both, v_prev, 0.0) + w * np.where(both, v_next, 0.0)
    fill = _fallback_means(x, means, use_own=False)  # (K,)
    filled = np.where(
        both,
        interp,
        np.where(has_prev, v_prev, np.where(has_next, v_next, fill[:, None])),
    )  # (K, T)
    x[miss] = filled[miss]
    return x


def seasonal_naive_forecast(values: np.ndarray, season: int, horizon: int) -> np.ndarray:
    """Point forecast of ``horizon`` steps after the history ``values`` (K, T): each step
    repeats the last observed value at its phase of the season (``season`` steps back,
    or a whole number of seasons further back where that one is missing); a phase never
    observed, or ``season`` < 1 or longer than the history, takes the last observed value
    (naive). A variable never observed stays NaN: there is nothing to repeat. Returns
    (K, horizon) float64: what a forecaster must beat, and what an undertrained one
    falls back to."""
    x = _as_series(values)  # (K, T)
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise RangeError(f"horizon must be an integer >= 1, got {horizon!r}")
    k, t = x.shape
    obs = ~np.isnan(x)
    prev, _ = neighbours(obs)  # (K, T)
    last = np.full(k, np.nan)  # (K,) the naive forecast
    seen = prev[:, -1] >= 0 if t else np.zeros(k, dtype=bool)
    last[seen] = x[seen, prev[seen, -1]]
    out = np.broadcast_to(last[:, None], (k, horizon)).copy()  # (K, H)
    if season < 1 or season > t:
        return out
    reps = -(-t // season)  # whole seasons covering the history
    pad = np.full((k, reps * season - t), np.nan)
    cycles = np.concatenate([pad, x], axis=1).reshape(k, reps, season)  # (K, reps, S)
    have = ~np.isnan(cycles)
    # per phase, the latest cycle in which it was observed
    latest = np.where(have, np.arange(reps)[None, :, None], -1).max(axis=1)  # (K, S)
    phase = np.take_along_axis(cycles, np.maximum(latest, 0)[:, None, :], axis=1)[:, 0]  # (K, S)
    phase = np.where(latest >= 0, phase, last[:, None])  # (K, S)
    steps = np.arange(horizon) % season  # the phase of each forecast step
    return phase[:, steps]


BASELINES: dict[str, Callable[..., np.ndarray]] = {
    "mean": mean_impute,
    "locf": locf_impute,
    "linear": linear_impute,
}


# --------------------------------------------------------------------------- windows


def _flatten_windows(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``(N, K, L)`` windows; return the flat ``(N, K*L)`` copy and its NaN mask.

    All-NaN columns are set to 0 (the mean on the normalised scale) because the
    scikit-learn imputers would otherwise drop them.
    """
    w = np.asarray(windows)
    if w.ndim != 3:
        raise ConfigError(f"windows must have shape (N, K, L), got {w.shape}")
    if not (np.issubdtype(w.dtype, np.number) or w.dtype == np.bool_):
        raise ConfigError(f"windows must be numeric, got dtype {w.dtype}")
    flat = np.array(w.reshape(w.shape[0], -1), dtype=np.float64, copy=True)  # (N, K*L)
    miss = np.isnan(flat)
    empty = miss.all(axis=0)  # (K*L,)
    flat[:, empty] = 0.0
    return flat, miss


def _restore(
    flat_in: np.ndarray, imputed: np.ndarray, miss: np.ndarray, shape: tuple[int, ...]
) -> np.ndarray:
    """Keep observed cells bit-identical, take imputed values only where NaN was."""
    out = np.where(miss, imputed, flat_in)  # (N, K*L)
    return out.reshape(shape)  # (N, K, L)


def _fit_rows(fit: np.ndarray | None, like: np.ndarray) -> np.ndarray | None:
    """Flattened windows to fit on, with the columns that are empty in ``like`` zeroed."""
    if fit is None:
        return None
    flat, _ = _flatten_windows(fit)  # (M, K*L)
    if flat.shape[1] != like.shape[1]:
        raise ConfigError(f"fit windows have {flat.shape[1]} cells, windows {like.shape[1]}")
    flat[:, np.isnan(like).all(axis=0)] = 0.0
    return flat


def knn_impute(
    windows: np.ndarray, n_neighbors: int = 5, fit: np.ndarray | None = None
) -> np.ndarray:
    """scikit-learn KNNImputer on flattened windows; returns ``(N, K, L)``.

    ``fit`` (M, K, L): windows to find neighbours among (e.g. the training set);
    by default the windows themselves.
    """
    from sklearn.impute import KNNImputer

    if isinstance(n_neighbors, bool) or not isinstance(n_neighbors, (int, np.integer)):
        raise ConfigError(f"n_neighbors must be an integer, got {n_neighbors!r}")
    if n_neighbors < 1:
        raise RangeError(f"n_neighbors must be >= 1, got {n_neighbors}")
    shape = np.shape(windows)
    flat, miss = _flatten_windows(windows)  # (N, K*L), (N, K*L)
    if not np.isnan(flat).any() or flat.shape[0] == 0:
        return flat.reshape(shape)
    imputer = KNNImputer(n_neighbors=int(n_neighbors), keep_empty_features=True)
    ref = _fit_rows(fit, flat)
    imputed = imputer.fit(flat if ref is None else ref).transform(flat)  # (N, K*L)
    return _restore(flat, imputed, miss, shape)


def iterative_impute(
    windows: np.ndarray,
    max_iter: int = 10,
    seed: int = 0,
    fit: np.ndarray | None = None,
    n_nearest_features: int | None = None,
) -> np.ndarray:
    """scikit-learn IterativeImputer (MICE-style) on flattened windows; returns ``(N, K, L)``.

    Cost grows with the square of K*L columns: ``n_nearest_features`` bounds each
    column's regression to its most correlated columns. ``fit`` as in ``knn_impute``.
    Its thousands of small regressions run on one BLAS thread: with two (this 2-core
    machine's default), 3,000 PhysioNet-sized rows took 65 s per round instead of 12 s,
    and far longer beside a busy torch process.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401
    from sklearn.impute import IterativeImputer
    from threadpoolctl import threadpool_limits

    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)):
        raise ConfigError(f"max_iter must be an integer, got {max_iter!r}")
    if max_iter < 1:
        raise RangeError(f"max_iter must be >= 1, got {max_iter}")
    shape = np.shape(windows)
    flat, miss = _flatten_windows(windows)  # (N, K*L), (N, K*L)
    if not np.isnan(flat).any() or flat.shape[0] == 0:
        return flat.reshape(shape)
    imputer = IterativeImputer(
        max_iter=int(max_iter),
        random_state=seed,
        n_nearest_features=n_nearest_features,
        keep_empty_features=True,
    )
    ref = _fit_rows(fit, flat)
    with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):
        # a baseline that stops before convergence is still a valid baseline
        warnings.simplefilter("ignore", ConvergenceWarning)
        imputed = imputer.fit(flat if ref is None else ref).transform(flat)  # (N, K*L)
    return _restore(flat, imputed, miss, shape)
