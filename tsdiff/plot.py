"""Pictures of results: observed points, imputed medians and their bands.

Works on the frames :meth:`TSDiff.impute` returns (wide or long layout), so a plot
can be drawn from a parquet output long after the model is gone.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: CI, services and notebooks without a display

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from tsdiff.data import Columns  # noqa: E402
from tsdiff.errors import DataError  # noqa: E402
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
) -> Figure:
    """One panel per variable: observed points, imputed median, 50% and 90% bands.

    ``series`` picks one series of a multi-series output (default: the first).
    Imputed cells are marked with crosses so they never pass for measurements.
    """
    df = _long_view(frame, columns)
    if columns.id_col in df.columns:
        ids = df[columns.id_col].unique()
        key = ids[0] if series is None else series
        df = df[df[columns.id_col] == key]
        if df.empty:
            raise DataError(f"series {series!r} not in the frame")
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
    axes[0, 0].legend(fontsize=6, ncol=5, loc="upper left", bbox_to_anchor=(0, 1.35))
    axes[-1, 0].set_xlabel(columns.time_col)
    if title:
        fig.suptitle(title, fontsize=9, y=0.995)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Save as PNG or SVG (by suffix), atomically."""
    return write_atomic(path, lambda p: fig.savefig(p, dpi=110))
