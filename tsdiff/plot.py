"""Pictures of results: imputations, forecast fan charts, and the diffusion itself.

Works on the frames :class:`~tsdiff.model.TSDiff` returns (impute and forecast outputs
in wide or long layout, trajectory and forward-process frames), so a plot can be drawn
from a parquet output long after the model is gone. Every function returns the figure
and, given ``path``, saves it as PNG or SVG (by suffix), atomically.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: CI, services and notebooks without a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from tsdiff.data import Columns  # noqa: E402
from tsdiff.errors import ConfigError, DataError  # noqa: E402
from tsdiff.io import write_atomic  # noqa: E402

_DEFAULT_COLUMNS = Columns()


def _long_view(frame: pd.DataFrame, columns: Columns) -> pd.DataFrame:
    """Impute output in long form: time, variable, value, imputed, lo_*, hi_*."""
    if columns.var_col in frame.columns:
        return frame
    suffixes = ("_imputed",)
    variables = [
        c[: -len(suffixes[0])]
        for c in frame.columns
        if isinstance(c, str) and c.endswith("_imputed")
    ]
    if not variables:
        raise DataError("not an imputation output: no '<var>_imputed' columns")
    parts = []
    keep = [c for c in (columns.id_col, columns.time_col) if c in frame.columns]
    for v in variables:
        sub = frame[keep].copy()
        sub[columns.var_col] = v
        sub[columns.value_col] = frame[v].to_numpy()
        sub["imputed"] = frame[f"{v}_imputed"].to_numpy()
        for c in frame.columns:
            if isinstance(c, str) and c.startswith(f"{v}_lo_") or c.startswith(f"{v}_hi_"):
                sub[c[len(v) + 1 :]] = frame[c].to_numpy()
        parts.append(sub)
    return pd.concat(parts, ignore_index=True)


def plot_imputation(
    frame: pd.DataFrame,
    *,
    series: object | None = None,
    variables: Sequence[str] | None = None,
    columns: Columns = _DEFAULT_COLUMNS,
    path: str | Path | None = None,
    title: str | None = None,
    max_variables: int = 8,
    time_unit: tuple[float, str] | None = None,
) -> Figure:
    """One panel per variable: observed points, imputed median, 50% and 90% bands.

    ``series`` picks one series of a multi-series output (default: the first).
    Imputed cells are marked with crosses so they never pass for measurements.
    ``time_unit`` = (divisor, label) shows numeric time in a readable unit, e.g.
    ``(60, "hours since admission")`` for minutes.
    """
    df, key = _pick_series(_long_view(frame, columns), columns, series)
    if key is not None:
        title = title or f"{columns.id_col} {key}"
    names = list(variables) if variables else list(dict.fromkeys(df[columns.var_col]))
    names = names[:max_variables]
    fig, axes = plt.subplots(
        len(names), 1, figsize=(8, 1.6 * len(names) + 0.6), sharex=True, squeeze=False
    )
    levels = sorted(int(c[3:]) for c in df.columns if isinstance(c, str) and c.startswith("lo_"))
    for ax, name in zip(axes[:, 0], names, strict=True):
        d = df[df[columns.var_col] == name].sort_values(columns.time_col)
        t = d[columns.time_col].to_numpy()
        if time_unit is not None:
            t = t / time_unit[0]
        imp = d["imputed"].to_numpy(bool)
        val = d[columns.value_col].to_numpy(float)
        for lv, alpha in zip(sorted(levels, reverse=True), (0.18, 0.32, 0.45), strict=False):
            # bounds equal the value on observed cells: the band pinches to each measurement
            lo, hi = d[f"lo_{lv}"].to_numpy(float), d[f"hi_{lv}"].to_numpy(float)
            ax.fill_between(t, lo, hi, color="tab:blue", alpha=alpha, lw=0, label=f"{lv}% band")
        ax.plot(t, val, color="tab:blue", lw=1.0, label="median")
        ax.scatter(t[~imp], val[~imp], s=12, color="black", zorder=3, label="observed")
        ax.scatter(t[imp], val[imp], s=10, marker="x", color="tab:red", lw=0.7, label="imputed")
        ax.set_ylabel(str(name), rotation=0, ha="right", va="center", fontsize=8)
        ax.tick_params(labelsize=7)
    xlabel = time_unit[1] if time_unit is not None else columns.time_col
    return _finish(fig, axes, xlabel, title, path)


FIGURE_SUFFIXES = (".png", ".svg")


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Save as PNG or SVG (by suffix), atomically."""
    if Path(path).suffix.lower() not in FIGURE_SUFFIXES:
        raise ConfigError(f"figure path must end in .png or .svg, got {str(path)!r}")
    return write_atomic(path, lambda p: fig.savefig(p, dpi=110))


# --------------------------------------------------------------------------- forecast
def _pick_series(df: pd.DataFrame, columns: Columns, series: object | None) -> tuple[Any, Any]:
    """Rows of one series (the first when ``series`` is None) and its key.

    Keys typed on a command line arrive as text: "7" finds series 7.
    """
    if columns.id_col not in df.columns:
        if series is not None:
            raise DataError(f"series {series!r} asked for, but the frame has no {columns.id_col!r}")
        return df, None
    ids = pd.unique(df[columns.id_col])
    if len(ids) == 0:
        raise DataError("the frame has no rows")
    if series is None:
        key = ids[0]
    else:
        match = [i for i in ids if i == series or str(i) == str(series)]
        if not match:
            shown = ", ".join(map(str, ids[:5])) + (", ..." if len(ids) > 5 else "")
            raise DataError(f"series {series!r} not in the frame (it has {shown})")
        key = match[0]
    return df[df[columns.id_col] == key], key


def _forecast_long(frame: pd.DataFrame, columns: Columns) -> pd.DataFrame:
    """Forecast output in long form: [id], time, variable, median, mean, lo_*, hi_*."""
    if columns.var_col in frame.columns:
        if "median" not in frame.columns:
            raise DataError("not a forecast output: no 'median' column")
        return frame
    variables = [
        c[: -len("_mean")]
        for c in frame.columns
        if isinstance(c, str) and c.endswith("_mean") and c[: -len("_mean")] in frame.columns
    ]
    if not variables:
        raise DataError("not a forecast output: no '<var>' and '<var>_mean' column pairs")
    keep = [c for c in (columns.id_col, columns.time_col) if c in frame.columns]
    parts = []
    for v in variables:
        sub = frame[keep].copy()
        sub[columns.var_col] = v
        sub["median"] = frame[v].to_numpy()
        sub["mean"] = frame[f"{v}_mean"].to_numpy()
        for c in frame.columns:
            if isinstance(c, str) and (c.startswith(f"{v}_lo_") or c.startswith(f"{v}_hi_")):
                sub[c[len(v) + 1 :]] = frame[c].to_numpy()
        parts.append(sub)
    return pd.concat(parts, ignore_index=True)


def _history_long(history: pd.DataFrame, columns: Columns) -> pd.DataFrame:
    """Input data (wide or long) in long form: [id], time, variable, value; NaN dropped."""
    if columns.time_col not in history.columns:
        raise DataError(f"history has no {columns.time_col!r} column")
    if columns.var_col in history.columns and columns.value_col in history.columns:
        long = history
    else:
        ids = [c for c in (columns.id_col, columns.time_col) if c in history.columns]
        long = history.melt(id_vars=ids, var_name=columns.var_col, value_name=columns.value_col)
    return long.dropna(subset=[columns.value_col])


def plot_forecast(
    frame: pd.DataFrame,
    *,
    history: pd.DataFrame | None = None,
    series: object | None = None,
    variables: Sequence[str] | None = None,
    context: int | None = None,
    columns: Columns = _DEFAULT_COLUMNS,
    path: str | Path | None = None,
    title: str | None = None,
    max_variables: int = 8,
) -> Figure:
    """Fan chart per variable: recent history, forecast median, 50% / 90% bands.

    ``history`` is the data the forecast was made from (wide or long); its last
    ``context`` observations per variable are drawn (default four horizons).
    """
    df, key = _pick_series(_forecast_long(frame, columns), columns, series)
    hist = None
    if history is not None:
        hist = _history_long(history, columns)
        if key is not None and columns.id_col in hist.columns:
            hist = hist[hist[columns.id_col].astype(str) == str(key)]
    if key is not None:
        title = title or f"{columns.id_col} {key}: forecast"
    names = list(variables) if variables else list(dict.fromkeys(df[columns.var_col]))
    missing = [n for n in names if n not in set(df[columns.var_col])]
    if missing:
        raise DataError(f"variables not in the forecast: {missing}")
    names = names[:max_variables]
    levels = sorted(int(c[3:]) for c in df.columns if isinstance(c, str) and c.startswith("lo_"))
    fig, axes = plt.subplots(
        len(names), 1, figsize=(8, 1.6 * len(names) + 0.6), sharex=True, squeeze=False
    )
    for ax, name in zip(axes[:, 0], names, strict=True):
        d = df[df[columns.var_col] == name].sort_values(columns.time_col)
        t = d[columns.time_col].to_numpy()
        if hist is not None:
            h = hist[hist[columns.var_col] == name].sort_values(columns.time_col)
            h = h[h[columns.time_col] < d[columns.time_col].min()]
            h = h.tail(context if context is not None else 4 * len(d))
            ht, hv = h[columns.time_col].to_numpy(), h[columns.value_col].to_numpy(float)
            ax.plot(ht, hv, color="black", lw=0.8)
            ax.scatter(ht, hv, s=8, color="black", zorder=3, label="history")
        for lv, alpha in zip(sorted(levels, reverse=True), (0.18, 0.32, 0.45), strict=False):
            lo, hi = d[f"lo_{lv}"].to_numpy(float), d[f"hi_{lv}"].to_numpy(float)
            ax.fill_between(t, lo, hi, color="tab:orange", alpha=alpha, lw=0, label=f"{lv}% band")
        ax.plot(t, d["median"].to_numpy(float), color="tab:red", lw=1.2, label="median")
        ax.axvline(t[0], color="grey", lw=0.6, ls=":")
        ax.set_ylabel(str(name), rotation=0, ha="right", va="center", fontsize=8)
        ax.tick_params(labelsize=7)
    return _finish(fig, axes, columns.time_col, title, path)


def _finish(fig: Figure, axes: np.ndarray, xlabel: str, title: str | None, path: Any) -> Figure:
    """Legend above the first panel, time label under the last, title, optional save."""
    axes[0, 0].legend(fontsize=6, ncol=5, loc="upper left", bbox_to_anchor=(0, 1.35))
    axes[-1, 0].set_xlabel(xlabel)
    if title:
        fig.suptitle(title, fontsize=9, y=0.995)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


# --------------------------------------------------------------------------- diffusion
def _check_path_frame(frame: pd.DataFrame, columns: Columns) -> None:
    need = [columns.time_col, columns.var_col, "step", "noise_std", "sample", columns.value_col]
    absent = [c for c in need if c not in frame.columns]
    if absent:
        raise DataError(
            f"not a trajectory or forward-process frame: missing columns {absent} "
            "(write one with `tsdiff impute ... --trajectory-out`)"
        )


def plot_trajectory(
    frame: pd.DataFrame,
    *,
    series: object | None = None,
    variable: str | None = None,
    sample: int = 0,
    columns: Columns = _DEFAULT_COLUMNS,
    path: str | Path | None = None,
    title: str | None = None,
    max_states: int = 8,
) -> Figure:
    """The denoising strip: one window's cells at each recorded reverse step.

    Panels run from the starting noise (step 0) to the result. ``sample`` is drawn
    bold with the other recorded samples faint behind it; observed cells are dots
    (they never change), cells the model draws are crosses. ``variable`` defaults
    to the one with the most drawn cells. The axes share one scale, so the collapse
    from noise onto the data is visible as it is.
    """
    _check_path_frame(frame, columns)
    df, key = _pick_series(frame, columns, series)
    if variable is None:
        flagged = df[df["imputed"]] if "imputed" in df.columns else df.iloc[:0]
        counts = flagged.groupby(columns.var_col).size()
        variable = str(counts.idxmax()) if len(counts) else str(df[columns.var_col].iloc[0])
    df = df[df[columns.var_col] == variable]
    if df.empty:
        raise DataError(f"variable {variable!r} not in the frame")
    samples = sorted(df["sample"].unique())
    if sample not in samples:
        raise DataError(f"sample {sample} not recorded (the frame has samples {samples})")
    steps = sorted(df["step"].unique())
    if len(steps) > max_states:
        pick = np.unique(np.linspace(0, len(steps) - 1, max_states).round().astype(int))
        steps = [steps[i] for i in pick]
    # ascending steps read left to right either way: reverse = noise → result,
    # forward (nothing drawn by the model) = data → noise
    forward = "imputed" not in df.columns or not df["imputed"].any()
    order = steps
    ncols = min(len(order), 4)
    nrows = math.ceil(len(order) / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(2.6 * ncols + 0.4, 2.1 * nrows + 0.7), sharey=True, squeeze=False
    )
    for ax in axes.ravel()[len(order) :]:
        ax.set_visible(False)
    for ax, step in zip(axes.ravel(), order, strict=False):
        d = df[df["step"] == step].sort_values(columns.time_col)
        for smp, g in d.groupby("sample"):
            if smp != sample:
                ax.plot(g[columns.time_col], g[columns.value_col], color="grey", lw=0.5, alpha=0.5)
        g = d[d["sample"] == sample]
        t, v = g[columns.time_col].to_numpy(), g[columns.value_col].to_numpy(float)
        ax.plot(t, v, color="tab:blue", lw=0.9)
        imp = g["imputed"].to_numpy(bool) if "imputed" in g.columns else np.zeros(len(g), bool)
        ax.scatter(t[~imp], v[~imp], s=7, color="black", zorder=3, label="observed")
        ax.scatter(t[imp], v[imp], s=9, marker="x", color="tab:red", lw=0.6, label="drawn")
        ax.set_title(f"step {step}  noise {g['noise_std'].iloc[0]:.2f}", fontsize=8)
        ax.tick_params(labelsize=6)
        for label in ax.get_xticklabels():
            label.set_rotation(30)
    axes[0, 0].set_ylabel(variable, fontsize=8)
    head = f"{columns.id_col} {key}, " if key is not None else ""
    kind = "forward process" if forward else f"reverse process, sample {sample}"
    fig.suptitle(title or f"{head}{variable}: {kind}", fontsize=9)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_forward(
    frame: pd.DataFrame,
    *,
    series: object | None = None,
    variable: str | None = None,
    columns: Columns = _DEFAULT_COLUMNS,
    path: str | Path | None = None,
    title: str | None = None,
    max_states: int = 8,
) -> Figure:
    """The forward process (``TSDiff.forward_process``): clean data → noise, left to right."""
    _check_path_frame(frame, columns)
    return plot_trajectory(
        frame,
        series=series,
        variable=variable,
        sample=0,
        columns=columns,
        path=path,
        title=title,
        max_states=max_states,
    )
