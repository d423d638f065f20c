"""The Spark engine: ``spark.read.parquet`` → ``groupBy(series).applyInPandas`` → a
partitioned parquet write, with the local engine's output schema and manifest.

Series are grouped by a hash bucket of their id, not one group per series: each
``applyInPandas`` call then carries about ``batch_series`` series, whose windows share
the sampler's batches as in the local engine. One group per series made every call a few
milliseconds of compute against fixed Arrow/JVM/Python hand-off costs that a second core
does not parallelise (``local[2]`` ran 1.18x ``local[1]``). Each Python worker loads the
model once (a module-level cache keyed by URI) and runs the same
:func:`tsdiff.pipelines.common.process_series` as the local engine, so both engines give the
same values for the same seed (noise is seeded per series, whatever it is batched
with). A series that fails comes back as data, a single row whose error columns hold
the error's type and reason: the driver records it in the manifest instead of writing
it, or with ``fail_fast`` raises the local engine's :class:`SeriesError` for it before
anything is written. Not resumable: a rerun redoes the whole job (Spark overwrites the
output directory), unless the manifest says the same job already completed.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

import tsdiff
from tsdiff.data import value_columns
from tsdiff.errors import ConfigError
from tsdiff.pipelines.common import (
    CovariateTables,
    PipelineParams,
    SeriesFailure,
    check_columns,
    check_output_dir,
    fingerprint,
    job_identity,
    manifest_head,
    model_info,
    now,
    output_columns,
    process_series,
    read_covariates,
    run_caveats,
    write_manifest,
)
from tsdiff.pipelines.dataset import (
    SeriesIndex,
    count_rows,
    open_input,
    plan_batches,
    scan_series,
)

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

    from tsdiff.model import TSDiff

ENGINE = "spark"
ERROR_COL = "_tsdiff_error"  # a failed series' error type (null on output rows)
REASON_COL = "_tsdiff_reason"  # and its message
BUCKET_COL = "_tsdiff_bucket"
PANDAS_WARNING = "PySpark does not yet fully support pandas"
LOG4J = Path(__file__).with_name("log4j2.properties")

_MODELS: dict[tuple[str, str], TSDiff] = {}  # per Python worker: each model loaded once


@dataclass(frozen=True)
class GroupTask:
    """What a worker needs to process one series (pickled once per task by Spark)."""

    model_uri: str
    params: PipelineParams
    partition_cols: tuple[str, ...]
    columns: tuple[str, ...]  # output columns (with partition columns), without the errors
    time_tz: str | None
    threads: int
    device: str = "cpu"  # resolved on each worker (``auto``: its GPU, if it has one)
    tables: CovariateTables | None = None  # the run's covariate tables, if any


def _quiet() -> None:
    warnings.filterwarnings("ignore", message=PANDAS_WARNING, category=FutureWarning)


def worker_model(uri: str, threads: int = 1, device: str = "cpu") -> TSDiff:
    """The model for ``uri``, loaded on first use in this process and kept."""
    model = _MODELS.get((uri, device))
    if model is None:
        import torch

        from tsdiff.registry import load_model

        torch.set_num_threads(max(1, threads))  # results do not depend on it
        model = _MODELS[(uri, device)] = load_model(uri, device=device)
    return model


def apply_group(task: GroupTask, pdf: pd.DataFrame) -> pd.DataFrame:
    """``applyInPandas`` body: one bucket of whole series in, their output rows (and one
    error row per failed series) out. A failure is returned, never raised, also with
    ``fail_fast``: the driver decides (an exception would reach it only as text)."""
    _quiet()
    params = task.params
    pdf = pdf.drop(columns=[BUCKET_COL], errors="ignore")
    model = worker_model(task.model_uri, task.threads, task.device)
    time_col = str(params.time_col)
    if task.time_tz is not None and getattr(pdf[time_col].dtype, "tz", None) is None:
        # Spark hands zoned timestamps over as naive session-time (UTC) values
        pdf[time_col] = pdf[time_col].dt.tz_localize("UTC").dt.tz_convert(task.time_tz)
    lenient = replace(params, fail_fast=False)
    out, failures = process_series(model, pdf, lenient, task.partition_cols, task.tables)
    cols = list(task.columns)
    frames = []
    if len(out):
        out = out[cols].copy()
        out[ERROR_COL] = out[REASON_COL] = None
        frames.append(out)
    if failures:
        err = pd.DataFrame({c: [None] * len(failures) for c in cols})
        err[params.id_col] = [f.series for f in failures]
        err[ERROR_COL] = [f.error for f in failures]
        err[REASON_COL] = [f.reason for f in failures]
        frames.append(err)
    if not frames:
        return pd.DataFrame({c: [] for c in [*cols, ERROR_COL, REASON_COL]})
    result = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return _plain_strings(result)


def _plain_strings(frame: pd.DataFrame) -> pd.DataFrame:
    """Object columns in place of pandas 3's Arrow-backed ``str``: a frame concatenated
    from several series holds chunked Arrow arrays, which PySpark 4.3 cannot serialise."""
    strings = [c for c in frame.columns if isinstance(frame[c].dtype, pd.StringDtype)]
    return frame.astype(dict.fromkeys(strings, object)) if strings else frame


def spark_session(
    master: str = "local[*]",
    *,
    shuffle_partitions: int = 4,
    driver_memory: str = "1g",
    progress: bool = True,
    conf: dict[str, str] | None = None,
) -> SparkSession:
    """A small, quiet session whose Python workers run this interpreter and can import
    ``tsdiff.pipelines`` (workers get their own environment, not the driver's ``sys.path``).

    In local mode the JVM only moves Arrow batches between files and the Python
    workers, so it runs with the quick JIT only (``-XX:TieredStopAtLevel=1``): on a few
    cores the optimising compiler otherwise competes with the workers for CPU (a small
    job took 41 s instead of 23 s on 2 cores). ``conf`` entries override all of these.
    """
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    if master.startswith("local"):  # else Spark warns when the hostname maps to loopback
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    _quiet()
    from pyspark.sql import SparkSession

    root = str(Path(tsdiff.__file__).resolve().parents[1])  # the folder holding tsdiff
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    java = f"-Dlog4j2.configurationFile={LOG4J.as_uri()}"
    if master.startswith("local"):
        java += " -XX:TieredStopAtLevel=1"
    settings = {
        "spark.sql.shuffle.partitions": str(shuffle_partitions),
        # the rows are few bytes but much compute: merging "small" partitions into one
        # would leave all but one core idle
        "spark.sql.adaptive.coalescePartitions.enabled": "false",
        "spark.driver.memory": driver_memory,
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": str(progress).lower(),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.parquet.inferTimestampNTZ.enabled": "true",
        "spark.executorEnv.PYTHONPATH": path,
        "spark.executorEnv.PYTHONWARNINGS": f"ignore:{PANDAS_WARNING}:FutureWarning",
        "spark.driver.extraJavaOptions": java,
        **(conf or {}),
    }
    builder = SparkSession.builder.master(master).appName("tsdiff-pipeline")
    for key, value in settings.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    return session


def run_spark(
    input: str | Path,
    output: str | Path,
    model: str | Path,
    params: PipelineParams | None = None,
    *,
    master: str = "local[*]",
    spark: SparkSession | None = None,
    shuffle_partitions: int = 4,
    driver_memory: str = "1g",
    worker_threads: int = 1,
    buckets: int | None = None,
    progress: bool = True,
    conf: dict[str, str] | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Impute or forecast every series of ``input`` with Spark; returns the manifest.

    ``model`` is a directory or ``models:/`` URI that every worker can load. A session
    is started (and stopped) unless ``spark`` is given. ``worker_threads``: torch
    threads per Python worker (``local[N]`` runs N workers). ``buckets``: how many
    groups the series are hashed into (default :func:`default_buckets`); a Python call
    holds one bucket in memory, so more buckets bound memory, fewer cut overhead.
    ``device``: where the workers run the network (``auto``: a worker's GPU if it has
    one); checked on the driver first.
    """
    from pyspark.sql import functions as F
    from pyspark.storagelevel import StorageLevel

    from tsdiff.device import resolve_device
    from tsdiff.model import TSDiff
    from tsdiff.registry import load_model

    _quiet()
    if buckets is not None and (isinstance(buckets, bool) or int(buckets) < 1):
        raise ConfigError(f"buckets must be an integer >= 1, got {buckets!r}")
    if isinstance(model, TSDiff):
        raise ConfigError("the Spark engine loads the model in its workers: pass its path or URI")
    text = str(model)
    uri = text if text.startswith("models:/") else str(Path(text).resolve())
    resolve_device(device)  # a device the driver lacks fails before Spark starts
    m = load_model(uri)
    params = (params or PipelineParams()).resolve(m)
    id_col, time_col = str(params.id_col), str(params.time_col)
    inp = open_input(input)  # schema mismatch stops here, before any write
    names = inp.schema.names
    check_columns(m, params, names, inp.partition_cols)
    tables = read_covariates(m, params)
    taken = sorted({BUCKET_COL, ERROR_COL, REASON_COL} & set(names))
    if taken:
        raise ConfigError(f"input columns {taken} are reserved by the Spark engine: rename them")
    columns = output_columns(m, params, names)
    out_names = [n for n, _ in columns]
    all_names = out_names + [c for c in inp.partition_cols if c not in out_names]
    minfo = model_info(m, text)
    out = Path(output)
    job = fingerprint(job_identity(ENGINE, params, minfo, inp))
    previous = check_output_dir(out, ENGINE, job)
    if previous is not None and previous.get("status") == "complete":
        return previous
    time_type = inp.schema.field(time_col).type
    task = GroupTask(
        model_uri=uri,
        params=params,
        partition_cols=tuple(inp.partition_cols),
        columns=tuple(all_names),
        time_tz=getattr(time_type, "tz", None),
        threads=worker_threads,
        device=device,
        tables=tables,
    )
    manifest: dict[str, Any] = {
        **manifest_head(ENGINE, inp, out, minfo, params, job),
        "warnings": run_caveats(m, params),
        "started_at": now(),
    }
    own = spark is None
    session = spark or spark_session(
        master,
        shuffle_partitions=shuffle_partitions,
        driver_memory=driver_memory,
        progress=progress,
        conf=conf,
    )
    try:
        manifest["spark"] = {
            "master": session.sparkContext.master,
            "version": session.version,
            "shuffle_partitions": int(session.conf.get("spark.sql.shuffle.partitions") or 0),
        }
        sdf = session.read.parquet(str(inp.path)).select(*names)
        schema = _spark_schema(sdf.schema, columns, inp.partition_cols, m.columns.var_col)
        inp_index = None
        if buckets is None:  # the id column alone, read here: cheaper than a Spark job
            inp_index = scan_series(inp, id_col)
            n_ids = len(inp_index.rows)
            n_buckets = default_buckets(n_ids, params.batch_series, _parallelism(session))
        else:
            n_buckets = int(buckets)
        manifest["spark"]["buckets"] = n_buckets
        keyed = sdf.withColumn(BUCKET_COL, F.pmod(F.xxhash64(F.col(id_col)), F.lit(n_buckets)))
        # one shuffle partition per bucket (hash collisions aside), not shuffle_partitions:
        # many small tasks let the scheduler balance uneven buckets across the cores
        keyed = keyed.repartition(n_buckets, BUCKET_COL)

        def run_group(pdf: pd.DataFrame) -> pd.DataFrame:  # typed, so Spark needs no guess
            return apply_group(task, pdf)

        result = keyed.groupBy(BUCKET_COL).applyInPandas(run_group, schema)
        result = result.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            # every bucket computed (one task each) and cached before anything is written:
            # a --fail-fast error stops the job here, with no partial output on disk
            result.count()
            error = F.col(ERROR_COL)
            failed = result.filter(error.isNotNull()).select(id_col, ERROR_COL, REASON_COL)
            fails = series_failures(failed.collect(), id_col)
            if fails:
                fails = in_local_order(fails, inp_index or scan_series(inp, id_col), params)
            if fails and params.fail_fast:
                raised = fails[0].to_error()
                manifest.update(status="failed", error=str(raised))
                write_manifest(out, manifest)
                raise raised
            ok = result.filter(error.isNull()).drop(ERROR_COL, REASON_COL)
            # the cached rows regrouped for the write: one file per output partition, not
            # one per bucket and partition (hundreds of small files, slow to write)
            if inp.partition_cols:
                ok = ok.repartition(*inp.partition_cols)
            else:
                ok = ok.coalesce(_parallelism(session))
            writer = ok.write.mode("overwrite")
            if inp.partition_cols:
                writer = writer.partitionBy(*inp.partition_cols)
            writer.parquet(str(out))
            open_cols = value_columns(out_names, m.variables, m.columns.value_col)
            if params.task != "impute":
                open_cols = []
            missing = [
                F.when(error.isNull() & (F.col(c).isNull() | F.isnan(F.col(c))), 1).otherwise(0)
                for c in open_cols
            ]
            stats = result.agg(
                F.count(F.when(error.isNull(), 1)).alias("rows"),
                F.countDistinct(F.when(error.isNull(), F.col(id_col))).alias("series"),
                F.sum(sum(missing, F.lit(0))).alias("left_open"),
            ).collect()[0]
        finally:
            result.unpersist()
    finally:
        if own:
            session.stop()
    manifest.update(
        status="complete",
        n_series=int(stats["series"]) + len(fails),
        rows_in=count_rows(inp),
        rows_out=int(stats["rows"]),
        cells_left_open=int(stats["left_open"] or 0),
        series_done=int(stats["series"]),
        series_failed=[f.to_dict() for f in fails],
        parts=sorted(
            str(p.relative_to(out)) for p in out.rglob("*.parquet") if p.name[0] not in "._"
        ),
        finished_at=now(),
    )
    write_manifest(out, manifest)
    return manifest


def default_buckets(n_series: int, batch_series: int, parallelism: int) -> int:
    """Buckets of about ``batch_series`` series (as the local engine's batches), but at
    least two per core so that an uneven bucket does not leave a core idle."""
    want = max(-(-n_series // max(1, batch_series)), 2 * max(1, parallelism))
    return max(1, min(n_series, want))


def _parallelism(session: SparkSession) -> int:
    return int(session.sparkContext.defaultParallelism or 1)


def _spark_schema(
    source: Any, columns: list[tuple[str, str]], partition_cols: list[str], var_col: str
) -> Any:
    """The declared output of ``applyInPandas``: id, time, variable and partition columns
    typed as Spark read them, values double, flags boolean, plus the error columns."""
    from pyspark.sql import types as T

    fields = []
    for name, kind in columns:
        if kind in ("id", "time"):
            fields.append(T.StructField(name, source[name].dataType))
        elif kind == "var":
            fields.append(T.StructField(name, source[var_col].dataType))
        elif kind == "bool":
            fields.append(T.StructField(name, T.BooleanType()))
        else:
            fields.append(T.StructField(name, T.DoubleType()))
    taken = {f.name for f in fields}
    fields += [T.StructField(c, source[c].dataType) for c in partition_cols if c not in taken]
    fields.append(T.StructField(ERROR_COL, T.StringType()))
    fields.append(T.StructField(REASON_COL, T.StringType()))
    return T.StructType(fields)


def series_failures(rows: Iterable[Any], id_col: str) -> list[SeriesFailure]:
    """The error rows of :func:`apply_group` (Spark rows or records) as failures."""
    return [SeriesFailure(r[id_col], str(r[ERROR_COL]), str(r[REASON_COL])) for r in rows]


def in_local_order(
    fails: list[SeriesFailure], index: SeriesIndex, params: PipelineParams
) -> list[SeriesFailure]:
    """``fails`` in the order the local engine meets them: its batches in turn (the same
    plan over the same input), by series key within a batch (missing key last)."""
    plan = plan_batches(index, params.batch_series)
    batch_of = {key: i for i, keys in enumerate(plan) for key in keys}

    def order(f: SeriesFailure) -> tuple[int, bool, Any]:
        return (batch_of.get(f.series, len(plan)), f.series is None, f.series)

    try:
        return sorted(fails, key=order)
    except TypeError:  # keys of mixed types (should not happen within one column)
        return sorted(fails, key=lambda f: (*order(f)[:2], str(f.series)))
