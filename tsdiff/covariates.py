"""Covariates: inputs the model reads but never imputes or forecasts.

Two kinds, as forecasters such as DeepAR and NHITS take them:

- **known-future** covariates (``data.future_covariates``): columns given for the
  history *and for every step to forecast* — a holiday flag, a planned load, a weather
  forecast. In a wide table they are columns beside the variables; in a long table,
  rows whose variable is the covariate's name. The steps to forecast come from a
  separate ``future_df`` (id, time and the covariate columns), since the main table
  ends where the history ends.
- **static** covariates (``data.static_covariates``): one number per series — a
  station's coordinates — from a ``static_df`` (id column + the named columns) or from
  columns of the main table that are constant within each series.

Both enter the network as side information beside the calendar, one row per covariate
(``calendar`` is then (W, 4 + C + S, L)), z-scored with the training data's statistics
(saved with the model). A history step whose future covariate is missing reads as the
training mean; a step to forecast must have every value (:class:`MissingCovariateError`
names the missing steps otherwise). A static value is the same at every step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tsdiff.data import Columns, Panel, Scaler, Series, calendar_features, to_panel
from tsdiff.data.grid import future_index
from tsdiff.errors import DataError, MissingCovariateError


@dataclass(frozen=True)
class Covariates:
    """The covariates a model reads, and the statistics they are z-scored with."""

    future: tuple[str, ...] = ()
    static: tuple[str, ...] = ()
    future_scaler: Scaler | None = None  # fitted on the training series; None: not yet
    static_scaler: Scaler | None = None

    def __len__(self) -> int:
        return len(self.future) + len(self.static)

    @property
    def names(self) -> tuple[str, ...]:
        return (*self.future, *self.static)

    def fit(self, series: Sequence[Series]) -> Covariates:
        """These covariates with scalers fitted on ``series`` (the training series)."""
        fut = (
            Scaler.fit([s.covariates for s in series if s.covariates is not None])
            if self.future
            else None
        )
        sta = (
            Scaler.fit([s.static[:, None] for s in series if s.static is not None])
            if self.static
            else None
        )
        return dataclasses.replace(self, future_scaler=fut, static_scaler=sta)

    def features(self, series: Series, lo: int, n: int) -> np.ndarray:
        """(C + S, n) float32 normalised covariates of steps ``lo .. lo + n`` of
        ``series``; steps outside its covariates (padding) and missing values read 0."""
        rows = []
        if self.future:
            assert self.future_scaler is not None and series.covariates is not None
            rows.append(self.future_scaler.transform(padded_slice(series.covariates, lo, n)))
        if self.static:
            assert self.static_scaler is not None and series.static is not None
            z = self.static_scaler.transform(series.static[:, None])  # (S, 1)
            rows.append(np.repeat(z, n, axis=1))
        return np.nan_to_num(np.concatenate(rows)).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        def sc(s: Scaler | None) -> dict[str, Any] | None:
            return None if s is None else s.to_dict()

        return {
            "future": list(self.future),
            "static": list(self.static),
            "future_scaler": sc(self.future_scaler),
            "static_scaler": sc(self.static_scaler),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Covariates:
        def sc(x: dict[str, Any] | None) -> Scaler | None:
            return None if x is None else Scaler.from_dict(x)

        return cls(
            tuple(d.get("future", ())),
            tuple(d.get("static", ())),
            sc(d.get("future_scaler")),
            sc(d.get("static_scaler")),
        )


def padded_slice(a: np.ndarray, lo: int, n: int) -> np.ndarray:
    """Columns ``lo .. lo + n`` of ``a`` (C, T), NaN where they fall outside it."""
    out = np.full((a.shape[0], n), np.nan)
    got = a[:, max(lo, 0) : max(lo + n, 0)]
    out[:, max(-lo, 0) : max(-lo, 0) + got.shape[1]] = got
    return out


def time_features(
    series: Series, index: pd.Index, lo: int, covariates: Covariates | None
) -> np.ndarray:
    """(4 + C + S, T) side information of the steps ``index`` (T steps, the first at
    position ``lo`` of ``series``, which may be negative or run past its end): the
    calendar, then the normalised covariates."""
    cal = calendar_features(index)  # (4, T)
    if not covariates:
        return cal
    return np.concatenate([cal, covariates.features(series, lo, len(index))])


def split_frame(
    df: pd.DataFrame, columns: Columns, future: Sequence[str], static: Sequence[str]
) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None]:
    """``df`` without its covariates, the future covariates as a wide frame (id, time,
    one column each) and the static columns found in ``df`` (id + columns, or None).

    Future covariates must be present: a column of a wide table, or a variable name of a
    long one. Static ones may instead come from a ``static_df`` (see :func:`attach`).
    """
    c = columns
    long = c.var_col in df.columns and c.value_col in df.columns
    keys = [k for k in (c.id_col, c.time_col) if k in df.columns]
    cov = None
    if future and long:
        names = df[c.var_col].astype(str)
        absent = [f for f in future if not (names == f).any()]
        if absent:
            raise MissingCovariateError(
                f"future covariate(s) {absent} not found: a long table gives them as rows "
                f"whose {c.var_col!r} is the covariate's name"
            )
        is_cov = names.isin(list(future))
        rows = df[is_cov]
        cov = rows.pivot_table(
            index=keys, columns=c.var_col, values=c.value_col, aggfunc="last", dropna=False
        )
        cov = cov.reindex(columns=list(future)).reset_index()
        df = df[~is_cov]
    elif future:
        absent = [f for f in future if f not in df.columns]
        if absent:
            raise MissingCovariateError(
                f"future covariate column(s) {absent} not found in the table; it has "
                f"{[str(x) for x in df.columns]}"
            )
        cov = df[keys + list(future)]
        df = df.drop(columns=list(future))
    here = [s for s in static if s in df.columns]
    st = df[[c.id_col, *here]] if here and c.id_col in df.columns else (df[here] if here else None)
    if here:
        df = df.drop(columns=here)
    return df, cov, st


def grid_with_covariates(
    df: pd.DataFrame,
    covariates: Covariates | None,
    *,
    columns: Columns,
    freq: Any,
    agg: str,
    static_df: pd.DataFrame | None = None,
    future_df: pd.DataFrame | None = None,
    horizon: int = 0,
    **to_panel_args: Any,
) -> Panel:
    """``df`` on its grid (:func:`~tsdiff.data.to_panel`) with its covariates:
    known-future ones from ``df`` and, with ``horizon``, from ``future_df`` for the
    steps to forecast, which extend each series; static ones from ``df``'s columns or
    ``static_df``."""
    if not covariates:
        if future_df is not None or static_df is not None:
            raise DataError("this model reads no covariates: future_df/static_df not used")
        return to_panel(df, columns=columns, freq=freq, agg=agg, **to_panel_args)
    df, fut, stat = split_frame(df, columns, covariates.future, covariates.static)
    panel = to_panel(df, columns=columns, freq=freq, agg=agg, **to_panel_args)
    horizon = horizon if covariates.future else 0
    if horizon:
        if future_df is None:
            raise MissingCovariateError(
                f"forecasting needs the future covariates {list(covariates.future)} for "
                "each step to forecast: pass future_df (id, time and one column each)"
            )
        absent = [c for c in covariates.future if c not in future_df.columns]
        if absent:
            raise MissingCovariateError(f"future_df lacks covariate column(s) {absent}")
        assert fut is not None
        fut = pd.concat([fut, future_df[fut.columns.intersection(future_df.columns)]])
    stat = static_df if static_df is not None else stat
    return attach(panel, covariates, fut, stat, agg=agg, horizon=horizon)


def attach(
    panel: Panel,
    covariates: Covariates,
    future_frame: pd.DataFrame | None,
    static_frame: pd.DataFrame | None,
    *,
    agg: str = "last",
    horizon: int = 0,
) -> Panel:
    """``panel`` with each series' covariates; with ``horizon``, each series is extended
    by that many empty steps to forecast, whose future covariates must all be given."""
    if not covariates:
        return panel
    cov_series: dict[Any, Series] = {}
    if covariates.future:
        if future_frame is None:
            raise MissingCovariateError(f"future covariates {list(covariates.future)} not given")
        grid = to_panel(
            future_frame,
            columns=panel.columns,
            freq=panel.freq,
            agg=agg,
            layout="wide",
            variables=list(covariates.future),
            time_kind=panel.freq.kind,
            require_observed=False,
        )
        cov_series = {s.key: s for s in grid.series}
    statics = _static_values(panel, covariates.static, static_frame)
    out = []
    for s in panel.series:
        if horizon:
            idx = s.index.append(future_index(s.index, panel.freq, horizon))
            k = s.values.shape[0]
            s = dataclasses.replace(
                s, index=idx, values=np.concatenate([s.values, np.full((k, horizon), np.nan)], 1)
            )
        cov = None
        if covariates.future:
            cov = _aligned(cov_series.get(s.key), s.index, len(covariates.future))
            if horizon:
                _check_future(cov[:, -horizon:], s, covariates.future, horizon, panel.has_id)
        out.append(dataclasses.replace(s, covariates=cov, static=statics.get(s.key)))
    return dataclasses.replace(panel, series=out)


def _aligned(grid: Series | None, index: pd.Index, n: int) -> np.ndarray:
    """(n, T) the covariates of ``grid`` at the times ``index`` (NaN where not given)."""
    out = np.full((n, len(index)), np.nan)
    if grid is None:
        return out
    pos = pd.Index(grid.index).get_indexer(index)  # -1 where the covariate grid lacks a step
    hit = pos >= 0
    out[:, hit] = grid.values[:, pos[hit]]
    return out


def _check_future(
    cov: np.ndarray, s: Series, names: Sequence[str], horizon: int, has_id: bool
) -> None:
    """Every covariate of every step to forecast must be given."""
    missing = np.isnan(cov)  # (C, horizon)
    if not missing.any():
        return
    times = s.index[-horizon:]
    parts = []
    for name, row in zip(names, missing, strict=True):
        if row.any():
            steps = [str(t) for t in times[row]]
            shown = ", ".join(steps[:3]) + (f", ... ({len(steps)} steps)" if len(steps) > 3 else "")
            parts.append(f"{name!r} at {shown}")
    where = f"series {s.key!r}: " if has_id else ""
    raise MissingCovariateError(
        f"{where}future covariates missing for steps to forecast: {'; '.join(parts)} "
        "(give them in the future frame, one row per step)"
    )


def _static_values(
    panel: Panel, names: Sequence[str], frame: pd.DataFrame | None
) -> dict[Any, np.ndarray]:
    """Series key → (S,) static covariates, each given once per series."""
    if not names:
        return {}
    if frame is None:
        raise MissingCovariateError(
            f"static covariates {list(names)} not given: pass columns constant within each "
            "series or a static table (id column + one column each)"
        )
    absent = [n for n in names if n not in frame.columns]
    if absent:
        raise MissingCovariateError(f"static covariate column(s) {absent} not found")
    id_col = panel.columns.id_col
    try:
        vals = frame[list(names)].apply(pd.to_numeric).to_numpy(np.float64)  # (N, S)
    except (ValueError, TypeError) as e:
        raise DataError(f"static covariates must be numeric: {e}") from None
    ids = frame[id_col].to_numpy() if id_col in frame.columns else np.full(len(frame), None)
    out: dict[Any, np.ndarray] = {}
    for key in (s.key for s in panel.series):
        rows = vals[ids == key] if key is not None else vals  # (n, S)
        given = ~np.isnan(rows)
        if rows.size == 0 or not given.any(axis=0).all():
            lacking = [n for n, g in zip(names, given.any(axis=0), strict=True) if not g]
            raise MissingCovariateError(
                f"series {key!r} has no value of static covariate(s) {lacking or list(names)}"
            )
        first = np.array([col[ok][0] for col, ok in zip(rows.T, given.T, strict=True)])
        if (given & (rows != first)).any():
            raise DataError(
                f"series {key!r}: a static covariate takes several values; each of "
                f"{list(names)} must be constant within a series"
            )
        out[key] = first
    return out


def from_config(future: Sequence[str], static: Sequence[str]) -> Covariates | None:
    """The unfitted covariates of a config (``DataConfig`` checked the names), or None
    when it names none."""
    return Covariates(tuple(future), tuple(static)) if (future or static) else None
