"""Request and response bodies: parquet and JSON records in, parquet and JSON out.

Everything here turns a client mistake into a :class:`ServiceError` that names it, so
the service answers 4xx with ``{"error": type, "message": text}`` instead of a 500.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from starlette.responses import JSONResponse, Response

from tsdiff.errors import ConfigError, DataError
from tsdiff.services.settings import Settings

if TYPE_CHECKING:  # pragma: no cover
    from tsdiff.model import TSDiff

PARQUET_TYPE = "application/vnd.apache.parquet"
ZIP_TYPE = "application/zip"
MAGIC = b"PAR1"


class ServiceError(Exception):
    """A request the service refuses, with the HTTP status and a short error type."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message


def error_response(status: int, error: str, message: str) -> JSONResponse:
    return JSONResponse({"error": error, "message": message}, status_code=status)


def response_for(exc: Exception) -> JSONResponse | None:
    """The 4xx answer for an error a client caused; None for anything else (a real 500).

    Data that break the contract are 422 (well-formed request, unusable content);
    bad options, including tsdiff's ``RangeError``, are 400.
    """
    if isinstance(exc, ServiceError):
        return error_response(exc.status, exc.error, exc.message)
    if isinstance(exc, DataError):
        return error_response(422, type(exc).__name__, str(exc))
    if isinstance(exc, ConfigError):
        return error_response(400, type(exc).__name__, str(exc))
    return None


# --------------------------------------------------------------------------- inputs
def read_parquet(path: Path, settings: Settings) -> pd.DataFrame:
    """The uploaded file as a frame, refusing non-parquet and oversized tables early.

    The row count comes from the footer, so a large (or highly compressed) table is
    refused before it is decompressed.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(4)
        f.seek(max(size - 4, 0))
        tail = f.read(4)
    if size < 12 or head != MAGIC or tail != MAGIC:
        raise ServiceError(
            400,
            "NotParquet",
            "field 'data' is not a parquet file (it lacks the PAR1 magic bytes); "
            "upload a .parquet file",
        )
    try:
        pf = pq.ParquetFile(path)
        check_rows(pf.metadata.num_rows, settings)
        df = pf.read().to_pandas()
    except ServiceError:
        raise
    except (pa.ArrowException, OSError, ValueError) as e:
        raise ServiceError(400, "UnreadableParquet", f"cannot read the parquet file: {e}") from e
    return df


def records_frame(records: Sequence[dict[str, Any]], settings: Settings) -> pd.DataFrame:
    """JSON records (one object per row, wide or long layout) as a frame."""
    check_rows(len(records), settings)
    return pd.DataFrame.from_records(list(records))


def check_rows(n: int, settings: Settings) -> None:
    if n > settings.max_rows:
        raise ServiceError(
            413,
            "TooManyRows",
            f"the input has {n} rows; this service accepts at most {settings.max_rows} "
            f"(TSDIFF_MAX_ROWS)",
        )


def check_series(df: pd.DataFrame, id_col: str, settings: Settings) -> int:
    """Number of series in ``df`` (1 without an id column), refused beyond the limit."""
    try:
        n = int(df[id_col].nunique(dropna=True)) if id_col in df.columns else 1
    except TypeError:  # lists or objects as ids (JSON records): not a key
        raise DataError(
            f"column {id_col!r} holds series ids that are not numbers or strings"
        ) from None
    if n > settings.max_series:
        raise ServiceError(
            413,
            "TooManySeries",
            f"the input has {n} series; this service accepts at most {settings.max_series} "
            f"(TSDIFF_MAX_SERIES)",
        )
    return n


def check_cells(df: pd.DataFrame, model: TSDiff, settings: Settings) -> None:
    """Refuse a grid (time steps x variables) beyond the limit before it is built.

    Rows alone do not bound the work: two rows a century apart span 876,000 hourly steps.
    """
    from tsdiff.data.grid import grid_steps

    assert model.freq is not None
    steps = grid_steps(df, columns=model.columns, freq=model.freq, time_kind=model.freq.kind)
    cells = steps * len(model.variables)
    if cells > settings.max_cells:
        raise ServiceError(
            413,
            "GridTooLarge",
            f"the input spans {steps} time steps at the model's frequency "
            f"{model.freq.to_str()!r} ({cells} cells with {len(model.variables)} variables); "
            f"this service accepts at most {settings.max_cells} cells (TSDIFF_MAX_CELLS): "
            f"look for stray timestamps far from the others, or split the request",
        )


def parse_levels(value: str | int | Sequence[int] | None) -> list[int] | None:
    """``"50,90"``, ``90`` or ``[50, 90]``; None keeps the model's default levels."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        items: list[Any] = value.split(",")
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        items = [value]
    out = []
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        try:
            out.append(int(text))
        except ValueError:
            raise ConfigError(
                f"levels must be comma-separated integers such as '50,90', got {value!r}"
            ) from None
    return out or None


def check_n_samples(n_samples: int | None, settings: Settings) -> None:
    if n_samples is not None and n_samples > settings.max_samples:
        raise ServiceError(
            400,
            "LimitExceeded",
            f"n_samples {n_samples} exceeds this service's maximum of {settings.max_samples} "
            f"(TSDIFF_MAX_SAMPLES)",
        )


TRAJECTORY_MAX_STATES = 21
TRAJECTORY_MAX_SAMPLES = 8


def trajectory_options(
    return_trajectory: bool, steps: int | Sequence[int] | None, samples: int | None
) -> dict[str, Any]:
    """Keyword arguments for the library's trajectory option, within the service's limits.

    A trajectory is a full copy of the grid per state and sample, so both are capped
    (at most 21 states, 8 samples); the default is 6 states of 3 samples.
    """
    if not return_trajectory:
        if steps is not None or samples is not None:
            raise ServiceError(
                400,
                "BadParameter",
                "trajectory_steps and trajectory_samples need return_trajectory: true",
            )
        return {}
    steps = 6 if steps is None else steps
    samples = 3 if samples is None else samples
    count = steps if isinstance(steps, int) else len(list(steps))
    if count > TRAJECTORY_MAX_STATES or samples > TRAJECTORY_MAX_SAMPLES:
        raise ServiceError(
            400,
            "LimitExceeded",
            f"a trajectory may keep at most {TRAJECTORY_MAX_STATES} states of "
            f"{TRAJECTORY_MAX_SAMPLES} samples; asked for {count} states of {samples}",
        )
    return {
        "return_trajectory": True,
        "trajectory_steps": steps,
        "trajectory_samples": samples,
    }


def check_output_rows(n: int, what: str, settings: Settings) -> None:
    """Refuse an answer larger than the inputs the service accepts (TSDIFF_MAX_ROWS)."""
    if n > settings.max_rows:
        raise ServiceError(
            413,
            "ResultTooLarge",
            f"the {what} has {n} rows; this service answers at most {settings.max_rows} "
            f"(TSDIFF_MAX_ROWS): ask for fewer states, samples or series",
        )


def check_horizon(horizon: int, settings: Settings) -> None:
    if horizon > settings.max_horizon:
        raise ServiceError(
            400,
            "LimitExceeded",
            f"horizon {horizon} exceeds this service's maximum of {settings.max_horizon} "
            f"(TSDIFF_MAX_HORIZON)",
        )


# --------------------------------------------------------------------------- outputs
def parquet_bytes(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


# a parquet answer's caveats as a JSON list (ASCII-escaped: a header carries no more;
# a list, because the texts themselves hold "; " and ", ")
WARNINGS_HEADER = "X-TSDiff-Warnings"


def parquet_response(
    frame: pd.DataFrame, samples: pd.DataFrame | None, caveats: Sequence[str] = ()
) -> Response:
    """One parquet file; with samples, a zip of ``result.parquet`` and ``samples.parquet``;
    ``caveats`` (what the library warned about) in the ``X-TSDiff-Warnings`` header."""
    headers = {WARNINGS_HEADER: json.dumps(list(caveats))} if caveats else {}
    if samples is None:
        return Response(parquet_bytes(frame), media_type=PARQUET_TYPE, headers=headers)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("result.parquet", parquet_bytes(frame))
        zf.writestr("samples.parquet", parquet_bytes(samples))
    return Response(
        buf.getvalue(),
        media_type=ZIP_TYPE,
        headers={"Content-Disposition": 'attachment; filename="tsdiff-result.zip"', **headers},
    )


def to_records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-safe dicts: NaN becomes null, datetimes ISO 8601 (zone kept)."""
    cols: dict[str, list[Any]] = {}
    for name in df.columns:
        col = df[name]
        if isinstance(col.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(col):
            cols[str(name)] = [None if pd.isna(t) else t.isoformat() for t in col]
        else:
            cols[str(name)] = [_plain(v) for v in col.tolist()]
    keys = list(cols)
    return [dict(zip(keys, row, strict=True)) for row in zip(*cols.values(), strict=True)]


def _plain(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, np.generic):
        return _plain(v.item())
    if v is pd.NA or v is pd.NaT:
        return None
    return v
