"""Regular time grids: the data contract between user tables and the model.

Raw tables (wide or long, regular or not) are checked, their timestamps binned onto a
fixed-step grid and turned into one ``(K, T)`` float64 array per series. Every problem
raises a typed error from :mod:`tsdiff.errors` that names the offending column, values
or series, so that a service can hand it back to the caller unchanged.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from pandas.api import types as ptypes
from pandas.tseries.frequencies import to_offset

from tsdiff.data.columns import Columns
from tsdiff.errors import (
    ConfigError,
    DataError,
    DuplicateTimestampError,
    EmptyInputError,
    FrequencyError,
    MissingColumnError,
    NonNumericError,
    NoObservedValuesError,
    RangeError,
    TimestampError,
    UnknownVariableError,
)

TimeKind = Literal["datetime", "numeric"]

_TIME_KINDS = ("datetime", "numeric")
_AGGS = ("last", "mean")
_LAYOUTS = ("auto", "wide", "long")
_DEFAULT_COLUMNS = Columns()
# Largest grid (cells over all series) we build before asking for a coarser freq.
_MAX_CELLS = 400_000_000
# Units used to spell a fixed step, largest first (pandas offset aliases).
_NS_UNITS = (
    ("D", 86_400_000_000_000),
    ("h", 3_600_000_000_000),
    ("min", 60_000_000_000),
    ("s", 1_000_000_000),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("ns", 1),
)
_UNIT_NS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


def _examples(items: Sequence[Any], limit: int = 5) -> str:
    """At most ``limit`` items for an error message, with the total when cut."""
    shown = ", ".join(repr(_plain(x)) for x in items[:limit])
    if len(items) > limit:
        shown += f", ... ({len(items)} in total)"
    return shown


def _plain(x: Any) -> Any:
    """NumPy scalars as Python scalars, so messages read ``42`` and not ``np.int64(42)``."""
    return x.item() if isinstance(x, np.generic) else x


# --------------------------------------------------------------------------- frequency


@dataclass(frozen=True)
class Freq:
    """A fixed grid step: a positive Timedelta for datetimes, a positive float otherwise."""

    kind: TimeKind
    step: pd.Timedelta | float

    def __post_init__(self) -> None:
        if self.kind not in _TIME_KINDS:
            raise ConfigError(f"time kind must be one of {_TIME_KINDS}, got {self.kind!r}")
        if self.kind == "datetime":
            if not isinstance(self.step, pd.Timedelta) or pd.isna(self.step):
                raise FrequencyError(
                    f"a datetime frequency needs a pd.Timedelta step, got {self.step!r}"
                )
            if self.step <= pd.Timedelta(0):
                raise FrequencyError(f"frequency must be positive, got {self.step}")
        else:
            if isinstance(self.step, bool) or not isinstance(self.step, (int, float, np.number)):
                raise FrequencyError(f"a numeric frequency needs a number, got {self.step!r}")
            step = float(self.step)
            if not math.isfinite(step) or step <= 0:
                raise FrequencyError(f"frequency must be a positive finite number, got {step!r}")
            object.__setattr__(self, "step", step)

    @property
    def step_ns(self) -> int:
        """The datetime step in integer nanoseconds (exact binning arithmetic)."""
        if self.kind != "datetime":
            raise FrequencyError("step_ns is only defined for datetime frequencies")
        return int(self.step.value)

    def to_str(self) -> str:
        """Compact text that :meth:`parse` turns back into the same Freq ("1h", "15min", "60")."""
        if self.kind == "datetime":
            ns = self.step_ns
            for unit, size in _NS_UNITS:
                if ns % size == 0:
                    return f"{ns // size}{unit}"
        step = float(self.step)
        return str(int(step)) if step.is_integer() and abs(step) < 2**53 else repr(step)

    @staticmethod
    def parse(value: str | float | pd.Timedelta | Freq, kind: TimeKind) -> Freq:
        """Read a user frequency for timestamps of ``kind``; non-fixed or non-positive fails."""
        if kind not in _TIME_KINDS:
            raise ConfigError(f"time kind must be one of {_TIME_KINDS}, got {kind!r}")
        if isinstance(value, Freq):
            if value.kind != kind:
                raise FrequencyError(
                    f"frequency {value.to_str()!r} is for {value.kind} "
                    f"timestamps, but the timestamps are {kind}"
                )
            return value
        if isinstance(value, (bool, np.bool_)) or value is None:
            raise FrequencyError(f"invalid frequency {value!r}")
        if kind == "numeric":
            return Freq("numeric", _parse_numeric_step(value))
        return Freq("datetime", _parse_datetime_step(value))


def _parse_numeric_step(value: Any) -> float:
    if isinstance(value, (int, float, np.integer, np.floating)):
        step = float(value)
    elif isinstance(value, str):
        try:
            step = float(value.strip())
        except ValueError:
            raise FrequencyError(
                f"numeric timestamps need a numeric frequency (e.g. 60), got {value!r}"
            ) from None
    else:
        raise FrequencyError(
            f"numeric timestamps need a numeric frequency (e.g. 60), got {value!r}"
        )
    if not math.isfinite(step) or step <= 0:
        raise FrequencyError(f"frequency must be a positive finite number, got {value!r}")
    return step


def _parse_datetime_step(value: Any) -> pd.Timedelta:
    if isinstance(value, (int, float, np.integer, np.floating)):
        raise FrequencyError(
            f"datetime timestamps need a time frequency such as '1h' or "
            f"'15min', got the number {value!r}"
        )
    if isinstance(value, (pd.Timedelta, _dt.timedelta, np.timedelta64)):
        step = pd.Timedelta(value)
    else:
        if isinstance(value, str):
            try:
                offset = to_offset(value.strip())
            except (ValueError, TypeError):
                raise FrequencyError(
                    f"cannot read frequency {value!r}; use a fixed step "
                    f"such as '1h', '30min' or '1D'"
                ) from None
        elif isinstance(value, pd.DateOffset) or hasattr(value, "freqstr"):
            offset = value
        else:
            raise FrequencyError(f"invalid frequency {value!r}")
        if isinstance(offset, pd.offsets.Week):
            step = pd.Timedelta(days=7 * offset.n)
        else:
            try:
                step = pd.Timedelta(offset)
            except (ValueError, TypeError):
                raise FrequencyError(
                    f"frequency {value!r} has no fixed length (months, quarters, years and "
                    f"business days vary); use a fixed step such as '1h' or '1D'"
                ) from None
    if pd.isna(step) or step <= pd.Timedelta(0):
        raise FrequencyError(f"frequency must be positive, got {value!r}")
    return step


# --------------------------------------------------------------------------- containers


@dataclass
class Series:
    """One series on its regular grid."""

    key: object  # the series id as in the input (None when the input has no id column)
    index: pd.Index  # (T,) DatetimeIndex (time zone kept) or float64 Index
    values: np.ndarray  # (K, T) float64, NaN = missing
    # inputs only, never imputed (see tsdiff.covariates): known-future covariates on the
    # same grid (C, T), NaN = not given; static covariates (S,)
    covariates: np.ndarray | None = None
    static: np.ndarray | None = None

    def part(self, lo: int, hi: int) -> Series:
        """Steps ``lo:hi`` of the series, its covariates with them."""
        cov = None if self.covariates is None else self.covariates[:, lo:hi]
        return dataclasses.replace(
            self, index=self.index[lo:hi], values=self.values[:, lo:hi], covariates=cov
        )


@dataclass
class Panel:
    """All series of one table on regular grids, plus what is needed to write results back."""

    series: list[Series]
    variables: list[str]
    freq: Freq
    columns: Columns
    layout: Literal["wide", "long"]
    has_id: bool
    time_dtype: object  # dtype of the input time column, restored on output where exact
    id_dtype: object | None


# --------------------------------------------------------------------------- timestamps


@dataclass
class _Times:
    kind: TimeKind
    values: np.ndarray  # (N,) int64 ns since the Unix epoch (UTC) or float64
    tz: Any
    unit: str | None


def _is_number_dtype(dtype: Any) -> bool:
    """int or float, excluding bool and complex."""
    return not ptypes.is_bool_dtype(dtype) and (
        ptypes.is_integer_dtype(dtype) or ptypes.is_float_dtype(dtype)
    )


def _object_is_numeric(col: pd.Series) -> bool:
    return pd.api.types.infer_dtype(col, skipna=True) in (
        "integer",
        "floating",
        "mixed-integer-float",
        "empty",
    )


def _is_numeric_column(col: pd.Series) -> bool:
    """A number column, or an object column holding numbers only (as JSON records give)."""
    dtype = col.dtype
    return _is_number_dtype(dtype) or (
        pd.api.types.is_object_dtype(dtype) and _object_is_numeric(col)
    )


def _parse_times(col: pd.Series, name: str) -> _Times:
    """Timestamps as exact numbers: int64 UTC nanoseconds or float64."""
    dtype = col.dtype
    n_null = int(col.isna().sum())
    if n_null:
        raise TimestampError(
            f"{n_null} missing timestamp(s) (NaT/NaN) in column {name!r}; every row needs a time"
        )
    if ptypes.is_bool_dtype(dtype):
        raise TimestampError(f"time column {name!r} is boolean; expected datetimes or numbers")
    if ptypes.is_timedelta64_dtype(dtype):
        raise TimestampError(
            f"time column {name!r} holds timedeltas; convert them to numbers "
            f"(e.g. minutes) or to datetimes"
        )
    if _is_numeric_column(col):
        vals = col.to_numpy(dtype="float64", na_value=np.nan)  # (N,)
        bad = ~np.isfinite(vals)
        if bad.any():
            raise TimestampError(
                f"time column {name!r} holds {int(bad.sum())} non-finite "
                f"value(s), e.g. {vals[bad][0]!r}"
            )
        return _Times("numeric", vals, None, None)
    if not (isinstance(dtype, pd.DatetimeTZDtype) or ptypes.is_datetime64_dtype(dtype)):
        col = _strings_to_datetime(col, name)
        n_nat = int(col.isna().sum())
        if n_nat:
            raise TimestampError(
                f"{n_nat} timestamp(s) in column {name!r} parse as missing "
                f"(NaT); every row needs a time"
            )
    try:
        ns = col.dt.as_unit("ns")
    except (ValueError, OverflowError) as e:
        raise TimestampError(f"timestamps in column {name!r} are out of range: {e}") from None
    unit = getattr(col.dtype, "unit", None) or np.datetime_data(col.dtype)[0]
    return _Times("datetime", np.asarray(ns.array.asi8, dtype=np.int64), col.dt.tz, unit)


# what pandas raises on a value it cannot read as a time: its object parser has also
# raised a bare RuntimeError ("No active exception to reraise") on a fuzzed request
_PARSE_ERRORS = (ValueError, TypeError, OverflowError, RuntimeError)


def _strings_to_datetime(col: pd.Series, name: str) -> pd.Series:
    """pd.to_datetime, with errors that say what went wrong (bad value, mixed zones)."""
    err: Exception | None = None
    for fmt in (None, "mixed"):
        try:
            with np.errstate(all="ignore"):
                out = pd.to_datetime(col) if fmt is None else pd.to_datetime(col, format=fmt)
            if isinstance(out, pd.Series) and (
                ptypes.is_datetime64_dtype(out.dtype) or isinstance(out.dtype, pd.DatetimeTZDtype)
            ):
                return out
        except _PARSE_ERRORS as e:
            err = e
    msg = str(err).lower() if err is not None else ""
    if "out of bounds" in msg:  # pandas 2 parses at nanoseconds, which end in 2262
        raise TimestampError(f"timestamps in column {name!r} are out of range: {err}") from None
    if not msg:  # pandas 2 parses mixed offsets to objects; one zone makes them datetimes
        try:
            with np.errstate(all="ignore"):
                pd.to_datetime(col, utc=True, format="mixed")
            msg = "offset"
        except _PARSE_ERRORS:
            pass
    if any(s in msg for s in ("timezone", "tz-aware", "tz-naive", "utc=true", "offset")):
        raise TimestampError(
            f"time column {name!r} mixes time zones (or tz-aware with naive timestamps); "
            f"convert it to one zone first, e.g. pd.to_datetime(..., utc=True)"
        ) from None
    bad = _first_unparseable(col)
    raise TimestampError(
        f"cannot parse time column {name!r} as datetimes: bad value {bad!r}"
    ) from None


def _first_unparseable(col: pd.Series) -> Any:
    """The first value pandas cannot read as a datetime (error path only)."""
    values = col.to_numpy(dtype=object)
    try:
        values = pd.unique(values)
    except TypeError:  # lists or dicts (from JSON records) cannot be hashed
        pass
    for value in values[:100_000]:
        try:
            pd.Timestamp(value)
        except _PARSE_ERRORS:
            return value
    return col.iloc[0]


# --------------------------------------------------------------------------- values


def _numeric_values(col: pd.Series, name: str) -> np.ndarray:
    """A value column as float64 (N,), exact; non-numbers and infinities are errors."""
    dtype = col.dtype
    if not _is_numeric_column(col):
        nonnull = col[col.notna()]
        if pd.api.types.is_object_dtype(dtype):
            is_num = nonnull.map(
                lambda x: (
                    isinstance(x, (int, float, np.integer, np.floating))
                    and not isinstance(x, (bool, np.bool_))
                )
            )
            nonnull = nonnull[~is_num.astype(bool)]
        example = (
            f"; e.g. {_plain(nonnull.iloc[0])!r} at row {_plain(nonnull.index[0])!r}"
            if len(nonnull)
            else ""
        )
        raise NonNumericError(f"column {name!r} is not numeric (dtype {dtype}){example}")
    vals = col.to_numpy(dtype="float64", na_value=np.nan)  # (N,)
    inf = np.isinf(vals)
    if inf.any():
        i = int(np.flatnonzero(inf)[0])
        raise NonNumericError(
            f"column {name!r} holds {int(inf.sum())} infinite value(s), "
            f"e.g. {float(vals[i])!r} at row {_plain(col.index[i])!r}"
        )
    return vals


# --------------------------------------------------------------------------- helpers


def _available(df: pd.DataFrame) -> str:
    """The table's columns, for a missing-column message."""
    return f"available columns: {_examples(list(df.columns), 20)}"


def _table_times(df: pd.DataFrame, c: Columns, time_kind: TimeKind | None) -> _Times:
    """The time column parsed, of the kind the model was fitted on (when given)."""
    times = _parse_times(df[c.time_col], c.time_col)
    if time_kind is not None and times.kind != time_kind:
        raise TimestampError(
            f"expected {time_kind} timestamps (as the model was fitted on) in "
            f"column {c.time_col!r}, got {times.kind} ones (dtype {df[c.time_col].dtype})"
        )
    return times


def _table_series(df: pd.DataFrame, c: Columns) -> tuple[np.ndarray, list[Any]]:
    """:func:`_series_codes` of the id column; one series (key None) without one."""
    if c.id_col in df.columns:
        return _series_codes(df[c.id_col], c.id_col)
    return np.zeros(len(df), dtype=np.int64), [None]


def _series_codes(ids: pd.Series, name: str) -> tuple[np.ndarray, list[Any]]:
    """(N,) int64 series codes in sorted-key order, and the keys."""
    n_null = int(ids.isna().sum())
    if n_null:
        raise DataError(f"{n_null} row(s) have a missing series id in column {name!r}")
    codes, uniques = _factorize(ids, name)
    keys = pd.Index(uniques).tolist()
    try:
        order = sorted(range(len(keys)), key=lambda i: keys[i])
    except TypeError:
        order = sorted(range(len(keys)), key=lambda i: str(keys[i]))
    rank = np.empty(len(keys), dtype=np.int64)
    rank[np.asarray(order, dtype=np.int64)] = np.arange(len(keys))
    return rank[codes], [keys[i] for i in order]


def _factorize(col: pd.Series, name: str) -> tuple[np.ndarray, Any]:
    """``pd.factorize`` that names the column when a value cannot be a key (a list, a dict:
    what JSON records may hold), instead of letting pandas' ``TypeError`` out."""
    try:
        return pd.factorize(col)
    except TypeError:
        bad = next((x for x in col if not isinstance(x, Hashable)), None)
        raise DataError(
            f"column {name!r} holds values that are not numbers or strings, e.g. {bad!r}"
        ) from None


def _check_model_variables(variables: Sequence[str] | None) -> list[str] | None:
    if variables is None:
        return None
    if isinstance(variables, str):
        raise ConfigError("variables must be a sequence of names, not a single string")
    names = [str(v) for v in variables]
    if not names:
        raise ConfigError("variables must not be empty")
    dup = sorted({v for v in names if names.count(v) > 1})
    if dup:
        raise ConfigError(f"variables are repeated: {_examples(dup)}")
    return names


def _long_variables(
    col: pd.Series, name: str, model_vars: list[str] | None
) -> tuple[np.ndarray, list[str]]:
    """(N,) variable codes into the returned variable list."""
    n_null = int(col.isna().sum())
    if n_null:
        raise DataError(f"{n_null} row(s) have a missing variable name in column {name!r}")
    codes, uniques = _factorize(col, name)
    names = [str(u) for u in pd.Index(uniques).tolist()]
    if len(set(names)) != len(names):
        raise DataError(f"variable names in column {name!r} collide once written as text")
    if model_vars is None:
        variables = sorted(names)
    else:
        unknown = sorted(set(names) - set(model_vars))
        if unknown:
            raise UnknownVariableError(
                f"unknown variable(s) in column {name!r}: {_examples(unknown)}; the model "
                f"knows {_examples(model_vars)}"
            )
        variables = model_vars
    pos = {v: i for i, v in enumerate(variables)}
    remap = np.asarray([pos[n] for n in names], dtype=np.int64)
    return remap[codes], variables


def _wide_values(
    df: pd.DataFrame, value_cols: list[Any], model_vars: list[str] | None
) -> tuple[np.ndarray, list[str]]:
    """(N, K) float64 values in variable order."""
    names = [str(c) for c in value_cols]
    if not names:
        raise EmptyInputError("the wide table has no value columns besides the id and time")
    if len(set(names)) != len(names):
        raise DataError(f"value columns collide once written as text: {_examples(names)}")
    if model_vars is None:
        variables = names
    else:
        extra = [n for n in names if n not in set(model_vars)]
        if extra:
            raise UnknownVariableError(
                f"column(s) not among the model's variables: {_examples(extra)}"
            )
        missing = [v for v in model_vars if v not in set(names)]
        if missing:
            raise UnknownVariableError(
                f"the table lacks the model's variable column(s): {_examples(missing)}"
            )
        variables = model_vars
    pos = {v: i for i, v in enumerate(variables)}
    out = np.empty((len(df), len(variables)), dtype=np.float64)  # (N, K)
    for j, name in enumerate(names):
        out[:, pos[name]] = _numeric_values(df.iloc[:, df.columns.get_loc(value_cols[j])], name)
    return out, variables


def _duplicate_rows(keys: Sequence[np.ndarray]) -> np.ndarray:
    """Row positions that repeat an earlier combination of ``keys`` (all (N,) arrays)."""
    order = np.lexsort(tuple(reversed(keys)))
    same = np.ones(len(order) - 1, dtype=bool)
    for k in keys:
        ks = k[order]
        same &= ks[1:] == ks[:-1]
    return np.sort(order[1:][same])


def _round_sig(x: np.ndarray, digits: int = 12) -> np.ndarray:
    """Round positive floats to ``digits`` significant digits (hides float noise in diffs)."""
    mag = np.floor(np.log10(x))
    scale = 10.0 ** (digits - 1 - mag)
    return np.round(x * scale) / scale


def _infer_step(times: _Times, codes: np.ndarray) -> Freq:
    """Mode of the positive gaps between consecutive distinct timestamps within series."""
    t = times.values
    order = np.lexsort((t, codes))
    ts, cs = t[order], codes[order]
    d = np.diff(ts)  # (N-1,)
    d = d[(cs[1:] == cs[:-1]) & (d > 0)]
    if d.size == 0:
        raise FrequencyError(
            "cannot infer the frequency: no series has two distinct "
            "timestamps; pass freq explicitly (e.g. freq='1h' or freq=60)"
        )
    if times.kind == "numeric":
        d = _round_sig(d)
    vals, counts = np.unique(d, return_counts=True)
    step = vals[int(np.argmax(counts))]  # ties -> the smallest gap
    if times.kind == "datetime":
        return Freq("datetime", pd.Timedelta(int(step), unit="ns"))
    return Freq("numeric", float(f"{float(step):.12g}"))


def infer_freq(
    times: pd.Series | pd.Index | np.ndarray | Sequence[Any],
    groups: pd.Series | np.ndarray | Sequence[Any] | None = None,
) -> Freq:
    """Most common positive step between consecutive distinct timestamps of each group.

    ``times`` are raw timestamps (datetimes, strings or numbers); ``groups`` the series id
    of each (None: one series). Raises FrequencyError when no group has two distinct times.
    """
    col = times if isinstance(times, pd.Series) else pd.Series(times)
    parsed = _parse_times(col.reset_index(drop=True), str(col.name or "timestamp"))
    if groups is None:
        codes = np.zeros(len(parsed.values), dtype=np.int64)
    else:
        codes = pd.factorize(pd.Series(groups).reset_index(drop=True))[0].astype(np.int64)
        if len(codes) != len(parsed.values):
            raise ConfigError(
                f"times ({len(parsed.values)}) and groups ({len(codes)}) differ in length"
            )
    return _infer_step(parsed, codes)


def _decimals(step: float) -> int | None:
    """Decimal places of a numeric step as written (0.25 -> 2); None for exponent forms."""
    if float(step).is_integer():
        return 0
    text = repr(float(step))
    if "e" in text or "E" in text:
        return None
    places = len(text.split(".")[1])
    return places if places <= 15 else None


def _numeric_grid(bins: np.ndarray, step: float) -> np.ndarray:
    """Grid times bin*step, rounded to the step's decimals so 3 * 0.1 reads 0.3."""
    vals = bins.astype(np.float64) * step
    places = _decimals(step)
    if places:
        vals = np.round(vals, places)
    return vals


def _bins(times: _Times, freq: Freq) -> np.ndarray:
    """(N,) int64 grid bin of each timestamp: floor((t - origin) / step)."""
    if times.kind == "datetime":
        return np.floor_divide(times.values, freq.step_ns)
    with np.errstate(all="ignore"):
        q = times.values / float(freq.step)
    if not np.all(np.abs(q) < 2.0**62):
        raise FrequencyError(f"frequency {freq.to_str()!r} is far too small for the timestamps")
    r = np.rint(q)
    near = np.abs(q - r) <= 1e-9 * np.maximum(1.0, np.abs(q))
    return np.where(near, r, np.floor(q)).astype(np.int64)


def _grid_index(b0: int, b1: int, times: _Times, freq: Freq) -> pd.Index:
    """(T,) grid times of bins b0..b1, in the input's time zone and unit where exact."""
    bins = np.arange(b0, b1 + 1, dtype=np.int64)
    if times.kind == "numeric":
        return pd.Index(_numeric_grid(bins, float(freq.step)), dtype="float64")
    return _datetime_index(bins * freq.step_ns, times.tz, times.unit, freq)


def _datetime_index(ns: np.ndarray, tz: Any, unit: str | None, freq: Freq) -> pd.DatetimeIndex:
    """(T,) UTC nanoseconds as datetimes in zone ``tz``, at ``unit`` where the step is a
    whole number of it (else nanoseconds)."""
    idx = pd.DatetimeIndex(ns.view("datetime64[ns]"))
    if tz is not None:
        idx = idx.tz_localize("UTC").tz_convert(tz)
    if unit in _UNIT_NS and unit != "ns" and freq.step_ns % _UNIT_NS[unit] == 0:
        idx = idx.as_unit(unit)
    return idx


# --------------------------------------------------------------------------- to_panel


def _extent(bins: np.ndarray, s_codes: np.ndarray, n_series: int) -> tuple[np.ndarray, np.ndarray]:
    """(S,) first and last grid bin of each series."""
    b0 = np.full(n_series, np.iinfo(np.int64).max, dtype=np.int64)
    b1 = np.full(n_series, np.iinfo(np.int64).min, dtype=np.int64)
    np.minimum.at(b0, s_codes, bins)
    np.maximum.at(b1, s_codes, bins)
    return b0, b1


def grid_steps(
    df: pd.DataFrame,
    *,
    columns: Columns = _DEFAULT_COLUMNS,
    freq: str | float | pd.Timedelta | Freq,
    time_kind: TimeKind | None = None,
) -> int:
    """Time steps, over all series, of the grid :func:`to_panel` would build at ``freq``.

    Cheap (timestamps and series ids only, no value arrays), so that a server can refuse
    a request whose grid is huge (one stray timestamp in the year 2200 turns 30 hourly
    rows into 1.6 million steps) before building it. Raises the same typed errors as
    :func:`to_panel` for the time and id columns.
    """
    c = columns
    if len(df) == 0:
        raise EmptyInputError("the input table has no rows")
    if c.time_col not in df.columns:
        raise MissingColumnError(f"time column {c.time_col!r} not found; {_available(df)}")
    times = _table_times(df, c, time_kind)
    s_codes, keys = _table_series(df, c)
    b0, b1 = _extent(_bins(times, Freq.parse(freq, times.kind)), s_codes, len(keys))
    return int((b1 - b0 + 1).sum())


def to_panel(
    df: pd.DataFrame,
    *,
    columns: Columns = _DEFAULT_COLUMNS,
    freq: str | float | pd.Timedelta | Freq | None = None,
    agg: str = "last",
    layout: str = "auto",
    variables: Sequence[str] | None = None,
    time_kind: TimeKind | None = None,
    require_observed: bool = True,
) -> Panel:
    """Check a user table and put every series on a regular grid.

    Wide tables have one column per variable; long tables have variable/value columns.
    Timestamps in one grid bin are aggregated per variable ("last" non-missing value in
    time order, or "mean"). ``variables`` and ``time_kind`` come from a fitted model and
    make the data match it or fail with a typed error.
    """
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"expected a pandas DataFrame, got {type(df).__name__}")
    if columns is None:
        columns = _DEFAULT_COLUMNS
    if not isinstance(columns, Columns):
        raise ConfigError(f"columns must be a Columns, got {type(columns).__name__}")
    if agg not in _AGGS:
        raise ConfigError(f"agg must be one of {_AGGS}, got {agg!r}")
    if layout not in _LAYOUTS:
        raise ConfigError(f"layout must be one of {_LAYOUTS}, got {layout!r}")
    if time_kind is not None and time_kind not in _TIME_KINDS:
        raise ConfigError(f"time_kind must be one of {_TIME_KINDS} or None, got {time_kind!r}")
    model_vars = _check_model_variables(variables)
    if len(df) == 0:
        raise EmptyInputError("the input table has no rows")
    dup_cols = df.columns[df.columns.duplicated()].unique().tolist()
    if dup_cols:
        raise DataError(f"the input has repeated column names: {_examples(dup_cols)}")

    c = columns
    present = set(df.columns)
    if layout == "auto":
        layout = "long" if c.var_col in present and c.value_col in present else "wide"
    available = _available(df)
    if c.time_col not in present:
        raise MissingColumnError(f"time column {c.time_col!r} not found; {available}")
    if layout == "long":
        for col in (c.var_col, c.value_col):
            if col not in present:
                raise MissingColumnError(f"long layout needs column {col!r}; {available}")

    times = _table_times(df, c, time_kind)
    has_id = c.id_col in present
    s_codes, keys = _table_series(df, c)
    n_series = len(keys)

    if layout == "long":
        k_codes, var_names = _long_variables(df[c.var_col], c.var_col, model_vars)
        v = _numeric_values(df[c.value_col], c.value_col)  # (N,)
        dup = _duplicate_rows([s_codes, times.values, k_codes])
        what = "(series, timestamp, variable)"
        dup_cols_ = [c.id_col, c.time_col, c.var_col] if has_id else [c.time_col, c.var_col]
    else:
        value_cols = [col for col in df.columns if col not in (c.id_col, c.time_col)]
        wide, var_names = _wide_values(df, value_cols, model_vars)  # (N, K)
        dup = _duplicate_rows([s_codes, times.values])
        what = "(series, timestamp)"
        dup_cols_ = [c.id_col, c.time_col] if has_id else [c.time_col]
    if dup.size:
        sample = df.iloc[dup[:5]][dup_cols_]
        ex = [tuple(_plain(x) for x in row) for row in sample.itertuples(index=False)]
        ex_text = ", ".join(str(e if len(e) > 1 else e[0]) for e in ex)
        more = f", ... ({dup.size} repeated rows in total)" if dup.size > 5 else ""
        raise DuplicateTimestampError(
            f"duplicate {what} rows in columns {dup_cols_}: {ex_text}{more}"
        )

    step = Freq.parse(freq, times.kind) if freq is not None else _infer_step(times, s_codes)
    bins = _bins(times, step)  # (N,)
    b0, b1 = _extent(bins, s_codes, n_series)
    lengths = b1 - b0 + 1  # (S,)
    n_vars = len(var_names)
    cells = lengths * n_vars
    if float(cells.sum()) > _MAX_CELLS:
        raise FrequencyError(
            f"frequency {step.to_str()!r} gives a grid of {int(cells.sum())} "
            f"cells; pass a coarser freq"
        )
    base = np.concatenate([[0], np.cumsum(cells)])  # (S+1,)

    if layout == "long":
        obs = ~np.isnan(v)
        rows, k_o, v_o = np.flatnonzero(obs), k_codes[obs], v[obs]
    else:
        rows, k_o = np.nonzero(~np.isnan(wide))
        v_o = wide[rows, k_o]
    s_o = s_codes[rows]
    t_o = times.values[rows]
    flat = base[s_o] + k_o * lengths[s_o] + (bins[rows] - b0[s_o])  # (M,) cell of each obs

    total = int(base[-1])
    if agg == "last":
        big = np.full(total, np.nan, dtype=np.float64)
        order = np.lexsort((t_o, flat))
        fs = flat[order]
        last = np.ones(fs.size, dtype=bool)
        last[:-1] = fs[1:] != fs[:-1]
        big[fs[last]] = v_o[order][last]
    else:
        sums = np.bincount(flat, weights=v_o, minlength=total)
        counts = np.bincount(flat, minlength=total)
        big = np.full(total, np.nan, dtype=np.float64)
        np.divide(sums, counts, out=big, where=counts > 0)

    if require_observed:
        n_obs = np.bincount(s_o, minlength=n_series)
        empty = [keys[i] for i in np.flatnonzero(n_obs == 0)]
        if empty:
            raise NoObservedValuesError(
                f"series with no observed value at all: {_examples([_plain(k) for k in empty])}"
            )

    series = [
        Series(
            key=keys[i],
            index=_grid_index(int(b0[i]), int(b1[i]), times, step),
            values=big[base[i] : base[i + 1]].reshape(n_vars, int(lengths[i])),
        )
        for i in range(n_series)
    ]
    return Panel(
        series=series,
        variables=list(var_names),
        freq=step,
        columns=c,
        layout=layout,
        has_id=has_id,
        time_dtype=df[c.time_col].dtype,
        id_dtype=df[c.id_col].dtype if has_id else None,
    )


# --------------------------------------------------------------------------- calendar


def calendar_features(index: pd.Index) -> np.ndarray:
    """(4, T) float32 sin/cos of hour-of-day and day-of-week; zeros for numeric time.

    Both are fractional (14:30 is hour 14.5, Tuesday noon is day 1.5) so that sub-hourly
    and sub-daily grids get distinct features.
    """
    n = len(index)
    if not isinstance(index, pd.DatetimeIndex):
        return np.zeros((4, n), dtype=np.float32)
    hour = (
        index.hour.to_numpy(np.float64)
        + index.minute.to_numpy(np.float64) / 60.0
        + index.second.to_numpy(np.float64) / 3600.0
    )  # (T,)
    day = index.day_of_week.to_numpy(np.float64) + hour / 24.0  # (T,)
    h, d = 2 * np.pi * hour / 24.0, 2 * np.pi * day / 7.0
    return np.stack([np.sin(h), np.cos(h), np.sin(d), np.cos(d)]).astype(np.float32)


def future_index(index: pd.Index, freq: Freq, horizon: int) -> pd.Index:
    """(H,) the ``horizon`` grid times after ``index[-1]``, same kind, zone and unit."""
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 0:
        raise RangeError(f"horizon must be a non-negative integer, got {horizon!r}")
    if len(index) == 0:
        raise EmptyInputError("cannot extend an empty time index")
    steps = np.arange(1, int(horizon) + 1, dtype=np.int64)
    if isinstance(index, pd.DatetimeIndex):
        if freq.kind != "datetime":
            raise FrequencyError("a datetime index needs a datetime frequency")
        ns = int(index[-1:].as_unit("ns").asi8[0])  # UTC nanoseconds
        return _datetime_index(ns + steps * freq.step_ns, index.tz, index.unit, freq)
    if freq.kind != "numeric":
        raise FrequencyError("a numeric index needs a numeric frequency")
    step = float(freq.step)
    last = float(index[-1])
    q = last / step
    if abs(q - round(q)) <= 1e-9 * max(1.0, abs(q)):
        return pd.Index(_numeric_grid(round(q) + steps, step), dtype="float64")
    return pd.Index(last + steps * step, dtype="float64")
