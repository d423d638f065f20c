"""Model results back to DataFrames in the layout, column names and dtypes of the input."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from tsdiff.data.grid import Panel
from tsdiff.errors import ConfigError, RangeError

Bounds = dict[int, tuple[list[np.ndarray], list[np.ndarray]]]


# --------------------------------------------------------------------------- dtypes


def _restore_time(index: pd.Index, time_dtype: Any) -> pd.Index:
    """Grid times in the input's dtype where that is exact (int minutes stay int64)."""
    if isinstance(index, pd.DatetimeIndex):
        unit = getattr(time_dtype, "unit", None)
        if unit is None and ptypes.is_datetime64_dtype(time_dtype):
            unit = np.datetime_data(time_dtype)[0]
        if unit in ("s", "ms", "us", "ns") and unit != index.unit:
            conv = index.as_unit(unit)
            if np.array_equal(conv.as_unit("ns").asi8, index.as_unit("ns").asi8):
                return conv
        return index
    vals = np.asarray(index, dtype=np.float64)  # (T,)
    if ptypes.is_bool_dtype(time_dtype) or not (
        ptypes.is_integer_dtype(time_dtype) or ptypes.is_float_dtype(time_dtype)
    ):
        return pd.Index(vals, dtype="float64")
    if ptypes.is_integer_dtype(time_dtype) and not (
        np.all(np.isfinite(vals)) and np.all(vals == np.round(vals))
    ):
        return pd.Index(vals, dtype="float64")
    try:
        cast = pd.Index(vals).astype(time_dtype)
    except (TypeError, ValueError, OverflowError):
        return pd.Index(vals, dtype="float64")
    if np.array_equal(np.asarray(cast, dtype=np.float64), vals):
        return cast
    return pd.Index(vals, dtype="float64")


def _time_column(panel: Panel, indexes: Sequence[pd.Index], repeats: Sequence[int]) -> pd.Index:
    """(rows,) each series' grid times, each repeated ``repeats[i]`` times in place."""
    parts = [
        _restore_time(idx, panel.time_dtype).repeat(r)
        for idx, r in zip(indexes, repeats, strict=False)
    ]
    if not parts:
        return pd.Index([])
    return parts[0].append(parts[1:]) if len(parts) > 1 else parts[0]


def _id_column(panel: Panel, rows: Sequence[int]) -> pd.Index:
    """(rows,) the series keys in the input's id dtype, ``rows[i]`` copies of key i."""
    keys = pd.Index([s.key for s in panel.series])
    if panel.id_dtype is not None:
        try:
            keys = keys.astype(panel.id_dtype)
        except (TypeError, ValueError):
            pass  # keep the inferred dtype rather than fail on output
    return keys.repeat(np.asarray(rows, dtype=np.int64))


# --------------------------------------------------------------------------- checks


def _check_series(
    panel: Panel,
    arrays: Sequence[np.ndarray],
    name: str,
    lengths: Sequence[int] | None = None,
    lead: int = 0,
) -> list[np.ndarray]:
    """Per-series arrays of shape (lead dims..., K, T_i), T_i from the grid or ``lengths``."""
    if len(arrays) != len(panel.series):
        raise ConfigError(f"{name}: {len(arrays)} arrays for {len(panel.series)} series")
    k = len(panel.variables)
    out = []
    for i, a in enumerate(arrays):
        a = np.asarray(a)
        t = len(panel.series[i].index) if lengths is None else lengths[i]
        if a.ndim != 2 + lead or a.shape[-2:] != (k, t):
            raise ConfigError(
                f"{name}[{i}] has shape {a.shape}; expected (..., {k}, {t})"
                f" with {2 + lead} dimensions"
            )
        out.append(a)
    return out


def _check_bounds(
    panel: Panel, bounds: Bounds | None, lengths: Sequence[int] | None
) -> list[tuple[int, list[np.ndarray], list[np.ndarray]]]:
    """Levels ascending with their checked (lo, hi) lists."""
    out = []
    for level, pair in (bounds or {}).items():
        if (
            isinstance(level, bool)
            or not isinstance(level, (int, np.integer, float))
            or float(level) != int(level)
            or not 1 <= int(level) <= 99
        ):
            raise RangeError(f"interval level must be an integer in [1, 99], got {level!r}")
        lo, hi = pair
        out.append(
            (
                int(level),
                _check_series(panel, lo, f"lo_{int(level)}", lengths),
                _check_series(panel, hi, f"hi_{int(level)}", lengths),
            )
        )
    levels = [x[0] for x in out]
    if len(set(levels)) != len(levels):
        raise ConfigError(f"interval levels repeat: {levels}")
    return sorted(out, key=lambda x: x[0])


def _frame(cols: dict[str, Any], names: list[str]) -> pd.DataFrame:
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ConfigError(f"output column names collide: {dup}; rename the variables")
    return pd.DataFrame({n: cols[n] for n in names})


def _wide_stack(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """Per-series (K, T_i) -> (K, sum T)."""
    return np.concatenate(arrays, axis=1)


def _long_stack(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """Per-series (K, T_i) -> (sum T * K,) ordered by series, time, variable."""
    return np.concatenate([a.T.ravel() for a in arrays])


def _head(
    panel: Panel, indexes: Sequence[pd.Index], repeats: Sequence[int]
) -> tuple[dict[str, Any], list[str]]:
    """The id (when the input had one) and time columns."""
    c = panel.columns
    rows = [len(idx) * r for idx, r in zip(indexes, repeats, strict=False)]
    cols: dict[str, Any] = {}
    names: list[str] = []
    if panel.has_id:
        cols[c.id_col] = _id_column(panel, rows)
        names.append(c.id_col)
    cols[c.time_col] = _time_column(panel, indexes, repeats)
    names.append(c.time_col)
    return cols, names


def _var_column(panel: Panel, n_groups: int) -> np.ndarray:
    """(n_groups * K,) variable names cycling in panel order."""
    return np.tile(np.asarray(panel.variables, dtype=object), n_groups)


# --------------------------------------------------------------------------- public


def impute_frame(
    panel: Panel, filled: list[np.ndarray], imputed: list[np.ndarray], bounds: Bounds
) -> pd.DataFrame:
    """Imputed series as a table shaped like the input, with a flag and interval per cell.

    Wide: ``<var>``, ``<var>_imputed``, ``<var>_lo_<l>``, ``<var>_hi_<l>``; long: one row
    per (series, time, variable) with ``imputed``, ``lo_<l>``, ``hi_<l>``.
    """
    filled = _check_series(panel, filled, "filled")
    imputed = _check_series(panel, imputed, "imputed")
    levels = _check_bounds(panel, bounds, None)
    indexes = [s.index for s in panel.series]
    return _cells_frame(
        panel, indexes, [("", filled, np.float64), ("imputed", imputed, bool)], levels
    )


def forecast_frame(
    panel: Panel,
    index: list[pd.Index],
    median: list[np.ndarray],
    mean: list[np.ndarray],
    bounds: Bounds,
) -> pd.DataFrame:
    """Forecasts over each series' future ``index`` (K, H_i) as a table shaped like the input.

    Wide: ``<var>`` (median), ``<var>_mean``, ``<var>_lo_<l>``, ``<var>_hi_<l>``; long:
    ``median``, ``mean``, ``lo_<l>``, ``hi_<l>`` per (series, time, variable).
    """
    if len(index) != len(panel.series):
        raise ConfigError(f"index: {len(index)} indexes for {len(panel.series)} series")
    lengths = [len(idx) for idx in index]
    median = _check_series(panel, median, "median", lengths)
    mean = _check_series(panel, mean, "mean", lengths)
    levels = _check_bounds(panel, bounds, lengths)
    return _cells_frame(
        panel, index, [("median", median, np.float64), ("mean", mean, np.float64)], levels
    )


def _cells_frame(
    panel: Panel,
    indexes: Sequence[pd.Index],
    fields: list[tuple[str, list[np.ndarray], Any]],
    levels: list[tuple[int, list[np.ndarray], list[np.ndarray]]],
) -> pd.DataFrame:
    """One column per (variable, field) in wide layout, one per field in long layout.

    ``fields`` are (name, per-series (K, T_i) arrays, dtype); the first field's wide
    column is the bare variable name, a field named "" is the long value column.
    Interval bounds follow as ``lo_<level>`` / ``hi_<level>``.
    """
    per_field = fields + [
        (f"{side}_{lv}", arrays, np.float64)
        for lv, lo, hi in levels
        for side, arrays in (("lo", lo), ("hi", hi))
    ]
    if panel.layout == "wide":
        cols, names = _head(panel, indexes, [1] * len(indexes))
        stacked = [(n, _wide_stack(a).astype(dt, copy=False)) for n, a, dt in per_field]
        for j, var in enumerate(panel.variables):
            for pos, (name, arr) in enumerate(stacked):
                col = var if pos == 0 else f"{var}_{name}"
                cols[col] = arr[j]  # (sum T,)
                names.append(col)
        return _frame(cols, names)
    c = panel.columns
    k = len(panel.variables)
    cols, names = _head(panel, indexes, [k] * len(indexes))
    cols[c.var_col] = _var_column(panel, sum(len(idx) for idx in indexes))
    names.append(c.var_col)
    for name, arrays, dt in per_field:
        col = name or c.value_col
        cols[col] = _long_stack(arrays).astype(dt, copy=False)
        names.append(col)
    return _frame(cols, names)


def samples_frame(panel: Panel, samples: list[np.ndarray], index: list[pd.Index]) -> pd.DataFrame:
    """Raw sample paths (n, K, T_i) per series, rows ordered by series, time, sample.

    Wide: ``sample`` plus one column per variable; long: ``sample``, variable, value.
    """
    if len(index) != len(panel.series):
        raise ConfigError(f"index: {len(index)} indexes for {len(panel.series)} series")
    lengths = [len(idx) for idx in index]
    samples = _check_series(panel, samples, "samples", lengths, lead=1)
    k = len(panel.variables)
    counts = [a.shape[0] for a in samples]
    # (T, n, K) per series: time-major, then sample, then variable
    per_time = [np.asarray(a, dtype=np.float64).transpose(2, 0, 1) for a in samples]
    sample_ids = np.concatenate(
        [np.tile(np.arange(n, dtype=np.int64), t) for n, t in zip(counts, lengths, strict=False)]
        or [np.zeros(0, dtype=np.int64)]
    )  # (sum T*n,)
    if panel.layout == "wide":
        cols, names = _head(panel, index, counts)
        cols["sample"] = sample_ids
        names.append("sample")
        flat = np.concatenate([a.reshape(-1, k) for a in per_time], axis=0)  # (rows, K)
        for j, var in enumerate(panel.variables):
            cols[var] = flat[:, j]
            names.append(var)
        return _frame(cols, names)
    c = panel.columns
    cols, names = _head(panel, index, [n * k for n in counts])
    cols["sample"] = np.repeat(sample_ids, k)
    cols[c.var_col] = _var_column(panel, int(sample_ids.size))
    cols[c.value_col] = np.concatenate([a.ravel() for a in per_time])
    names += ["sample", c.var_col, c.value_col]
    return _frame(cols, names)


def trajectory_frame(
    panel: Panel,
    index: list[pd.Index],
    states: list[np.ndarray],
    steps: Sequence[int],
    noise_std: Sequence[float],
    imputed: list[np.ndarray],
) -> pd.DataFrame:
    """States of a diffusion path, always long: one row per (series, step, sample, time, var).

    ``states`` per series (S, m, K, T_i) over ``index``; ``steps`` and ``noise_std`` (S,)
    label each state; ``imputed`` (K, T_i) marks the cells the model drew (observed ones
    hold their value in every state). Columns: id (when the input had one), time,
    variable, ``step``, ``noise_std``, ``sample``, value, ``imputed``. Long whatever the
    input layout, because a path adds two axes a wide table has no room for.
    """
    if len(index) != len(panel.series):
        raise ConfigError(f"index: {len(index)} indexes for {len(panel.series)} series")
    lengths = [len(idx) for idx in index]
    states = _check_series(panel, states, "states", lengths, lead=2)
    imputed = _check_series(panel, imputed, "imputed", lengths)
    s_count = len(steps)
    if len(noise_std) != s_count or any(a.shape[0] != s_count for a in states):
        raise ConfigError("states, steps and noise_std disagree on the number of states")
    k = len(panel.variables)
    times, step_col, level_col, sample_col, value_col, flag_col, rows = [], [], [], [], [], [], []
    for idx, a, imp in zip(index, states, imputed, strict=True):
        _, m, _, t = a.shape
        per_state = m * t * k
        cell = np.repeat(np.arange(t), k)  # (T*K,) time-major, then variable
        times.append(_restore_time(idx, panel.time_dtype).take(np.tile(cell, s_count * m)))
        step_col.append(np.repeat(np.asarray(steps, dtype=np.int64), per_state))
        level_col.append(np.repeat(np.asarray(noise_std, dtype=np.float64), per_state))
        sample_col.append(np.tile(np.repeat(np.arange(m, dtype=np.int64), t * k), s_count))
        value_col.append(np.asarray(a, dtype=np.float64).transpose(0, 1, 3, 2).ravel())
        flag_col.append(np.tile(np.asarray(imp, dtype=bool).T.ravel(), s_count * m))
        rows.append(s_count * per_state)
    c = panel.columns
    cols: dict[str, Any] = {}
    names: list[str] = []
    if panel.has_id:
        cols[c.id_col] = _id_column(panel, rows)
        names.append(c.id_col)
    cols[c.time_col] = times[0].append(times[1:]) if times else pd.Index([])
    names.append(c.time_col)
    cols[c.var_col] = _var_column(panel, sum(rows) // max(k, 1))
    cols["step"] = np.concatenate(step_col) if step_col else np.zeros(0, np.int64)
    cols["noise_std"] = np.concatenate(level_col) if level_col else np.zeros(0)
    cols["sample"] = np.concatenate(sample_col) if sample_col else np.zeros(0, np.int64)
    cols[c.value_col] = np.concatenate(value_col) if value_col else np.zeros(0)
    cols["imputed"] = np.concatenate(flag_col) if flag_col else np.zeros(0, bool)
    names += [c.var_col, "step", "noise_std", "sample", c.value_col, "imputed"]
    return _frame(cols, names)


def value_columns(columns: Sequence[str], variables: Sequence[str], value_col: str) -> list[str]:
    """The columns holding an imputation's values: the variables' (wide) or ``value_col``
    (long), whichever ``columns`` has."""
    present = [v for v in variables if v in columns]
    return present or ([value_col] if value_col in columns else [])


def left_open(frame: pd.DataFrame, variables: Sequence[str], value_col: str) -> int:
    """Cells of an imputation frame with no value: the gaps ``max_gap`` / open edges
    left missing on request."""
    cols = value_columns(list(frame.columns), variables, value_col)
    return int(frame[cols].isna().to_numpy().sum()) if cols else 0
