"""The data contract: user tables in, regular (K, T) grids to the model, tables out."""

from __future__ import annotations

from tsdiff.data.columns import Columns
from tsdiff.data.frames import (
    forecast_frame,
    impute_frame,
    left_open,
    samples_frame,
    trajectory_frame,
    value_columns,
)
from tsdiff.data.grid import (
    Freq,
    Panel,
    Series,
    TimeKind,
    calendar_features,
    future_index,
    infer_freq,
    to_panel,
)
from tsdiff.data.scaler import Scaler
from tsdiff.data.windows import extract_windows, owner, stitch, window_starts

__all__ = [
    "Columns",
    "Freq",
    "Panel",
    "Scaler",
    "Series",
    "TimeKind",
    "calendar_features",
    "extract_windows",
    "forecast_frame",
    "future_index",
    "impute_frame",
    "left_open",
    "value_columns",
    "infer_freq",
    "owner",
    "samples_frame",
    "stitch",
    "to_panel",
    "trajectory_frame",
    "window_starts",
]
