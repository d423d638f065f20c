"""Batch pipelines over parquet datasets: impute or forecast every series of an input
that need not fit in memory, with the local engine (one process, resumable) or Spark.

Both engines are thin layers over :meth:`tsdiff.TSDiff.impute` / ``forecast``; a series
gets the same values from either, since the model seeds each window's noise from the
seed, the series key and the window's start. See ``tsdiff pipeline --help``.
"""

from __future__ import annotations

from typing import Any

from tsdiff.pipelines.common import (
    MANIFEST,
    PipelineParams,
    SchemaMismatchError,
    SeriesError,
    SeriesFailure,
    read_manifest,
)
from tsdiff.pipelines.local import run_local

__all__ = [
    "MANIFEST",
    "PipelineParams",
    "SchemaMismatchError",
    "SeriesError",
    "SeriesFailure",
    "read_manifest",
    "run_local",
    "run_pipeline",
    "run_spark",
]


def run_spark(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """:func:`tsdiff.pipelines.spark.run_spark`, imported on first use (pyspark is optional)."""
    from tsdiff.pipelines.spark import run_spark as run

    return run(*args, **kwargs)


def run_pipeline(
    input: Any,
    output: Any,
    model: Any,
    params: PipelineParams,
    *,
    engine: str = "local",
    **kwargs: Any,
) -> dict[str, Any]:
    """Run with the named engine (``local`` or ``spark``); returns the manifest."""
    if engine == "local":
        return run_local(input, output, model, params, **kwargs)
    if engine == "spark":
        return run_spark(input, output, model, params, **kwargs)
    from tsdiff.errors import ConfigError

    raise ConfigError(f"engine must be 'local' or 'spark', got {engine!r}")
