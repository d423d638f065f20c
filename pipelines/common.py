"""What the local and Spark engines share: parameters, the model call per group of series,
the output schema, partition assignment and the manifest.

Both engines call :func:`process_series` on pandas frames of whole series, so that a
series gets the same output whichever engine, batch or worker handles it (the model seeds
each window's noise from the seed, the series key and the window start).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from tsdiff import __version__
from tsdiff.data import left_open
from tsdiff.errors import (
    ConfigError,
    DataError,
    MissingColumnError,
    MissingCovariateError,
    UnknownVariableError,
)
from tsdiff.io import read_frame, write_atomic

if TYPE_CHECKING:  # pragma: no cover
    from tsdiff.model import TSDiff
    from tsdiff.pipelines.dataset import InputDataset

TASKS = ("impute", "forecast")
MANIFEST = "_manifest.json"  # leading "_": parquet readers (pyarrow, Spark) skip it
MANIFEST_FORMAT = 1
HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"


class SeriesError(DataError):
    """A series could not be processed and ``fail_fast`` was asked for."""


class SchemaMismatchError(DataError):
    """Input files disagree on their columns or types; nothing is written."""


@dataclass(frozen=True)
class SeriesFailure:
    """One series that was skipped, and why (recorded in the manifest)."""

    series: Any
    error: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"series": jsonable(self.series), "error": self.error, "reason": self.reason}

    def to_error(self) -> SeriesError:
        """What ``fail_fast`` raises for this failure (the same text from either engine)."""
        return SeriesError(f"series {self.series!r} failed ({self.error}): {self.reason}")


@dataclass(frozen=True)
class PipelineParams:
    """Options of a pipeline run; ``None`` means the model's default (see :meth:`resolve`)."""

    task: str = "impute"
    horizon: int | None = None
    levels: tuple[int, ...] | None = None
    n_samples: int | None = None
    steps: int | None = None
    seed: int = 0
    batch_series: int = 64
    id_col: str | None = None
    time_col: str | None = None
    fail_fast: bool = False
    max_gap: int | None = None  # impute: runs of more missing steps stay missing
    fill_edges: bool = True  # impute: False leaves leading/trailing runs missing
    future: str | None = None  # forecast: parquet of known-future covariates to forecast with
    static: str | None = None  # parquet of static covariates (else: columns of the input)

    def resolve(self, model: TSDiff) -> PipelineParams:
        """Fill defaults from the model and check ranges up front, so that a bad option
        fails before any input is read or output written (not once per series)."""
        if self.task not in TASKS:
            raise ConfigError(f"task must be one of {TASKS}, got {self.task!r}")
        opts = model.options(  # the library's own check of sampling options
            n_samples=self.n_samples, steps=self.steps, levels=self.levels, seed=self.seed
        )
        out = replace(
            self,
            levels=opts.levels,
            n_samples=opts.n_samples,
            steps=opts.steps,
            seed=opts.seed,
            id_col=self.id_col or model.columns.id_col,
            time_col=self.time_col or model.columns.time_col,
        )
        if out.batch_series < 1:
            raise ConfigError(f"batch_series must be >= 1, got {out.batch_series}")
        if out.task == "forecast":
            if out.horizon is None:
                raise ConfigError("forecast needs a horizon (steps >= 1)")
            out = replace(out, horizon=model.check_horizon(out.horizon))
        elif out.horizon is not None:
            raise ConfigError("horizon is only used by forecast")
        if out.max_gap is not None or not out.fill_edges:
            if out.task != "impute":
                raise ConfigError("max_gap and open edges are only used by impute")
            if out.max_gap is not None and (isinstance(out.max_gap, bool) or out.max_gap < 0):
                raise ConfigError(f"max_gap must be an integer >= 0, got {out.max_gap}")
        if out.id_col == out.time_col:
            raise ConfigError(f"id and time columns must differ, both are {out.id_col!r}")
        cov = model.covariates
        if out.static is not None and not (cov and cov.static):
            raise ConfigError("a static covariate table was given, but the model reads none")
        if out.future is not None:
            if out.task != "forecast":
                raise ConfigError("known-future covariates of a horizon: forecast only")
            if not (cov and cov.future):
                raise ConfigError("a future covariate table was given, but the model reads none")
        elif out.task == "forecast" and cov and cov.future:
            raise MissingCovariateError(
                f"the model reads the known-future covariates {list(cov.future)}: forecasting "
                "needs them for the steps to forecast (--future FILE: id, time and one column each)"
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["levels"] = list(self.levels) if self.levels is not None else None
        return d


# --------------------------------------------------------------------------- covariates
@dataclass(frozen=True)
class CovariateTables:
    """The run's covariate tables (pipeline column names), read once before any output
    is written and cut to each group's series at every model call. They are small
    beside the input (one row per series, or per series and step to forecast), so
    each engine holds them whole; Spark ships them to the workers with the task."""

    future: pd.DataFrame | None = None  # id, time, one column per known-future covariate
    static: pd.DataFrame | None = None  # id, one column per static covariate

    def of(self, ids: Sequence[Any], id_col: str) -> tuple[pd.DataFrame | None, ...]:
        """(future, static) rows of the series ``ids``."""
        return tuple(
            None if t is None else t[t[id_col].isin(list(ids))] for t in (self.future, self.static)
        )


def read_covariates(model: TSDiff, params: PipelineParams) -> CovariateTables:
    """The tables ``params`` names, checked against the model's covariates."""
    cov = model.covariates
    id_col, time_col = str(params.id_col), str(params.time_col)

    def table(
        path: str | None, keys: list[str], names: Sequence[str], what: str
    ) -> pd.DataFrame | None:
        if path is None:
            return None
        frame = read_frame(path)
        absent = [c for c in (*keys, *names) if c not in frame.columns]
        if absent:
            raise MissingCovariateError(
                f"the {what} covariate table {path} lacks column(s) {absent}; it has "
                f"{[str(c) for c in frame.columns]}"
            )
        return frame[[*keys, *names]]

    return CovariateTables(
        future=table(params.future, [id_col, time_col], cov.future if cov else (), "future"),
        static=table(params.static, [id_col], cov.static if cov else (), "static"),
    )


def covariate_files(params: PipelineParams) -> list[list[Any]]:
    """(path, size) of the covariate tables, for a job's fingerprint."""
    paths = [p for p in (params.future, params.static) if p is not None]
    return [[str(Path(p).resolve()), _size(Path(p))] for p in paths]


def _size(p: Path) -> int:
    if p.is_dir():
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return p.stat().st_size


# --------------------------------------------------------------------------- model calls
def run_model(
    model: TSDiff,
    frame: pd.DataFrame,
    params: PipelineParams,
    tables: CovariateTables | None = None,
) -> pd.DataFrame:
    """Impute or forecast ``frame`` (whole series), with the pipeline's column names."""
    names = {params.id_col: model.columns.id_col, params.time_col: model.columns.time_col}
    names = {k: v for k, v in names.items() if k != v}

    def own(t: pd.DataFrame | None) -> pd.DataFrame | None:
        return t.rename(columns=names) if names and t is not None else t

    df = own(frame)
    ids = frame[params.id_col].unique()
    future, static = (tables or CovariateTables()).of(ids, str(params.id_col))
    kw: dict[str, Any] = {
        "levels": params.levels,
        "n_samples": params.n_samples,
        "steps": params.steps,
        "seed": params.seed,
        "static_df": own(static),
    }
    if params.task == "forecast":
        assert params.horizon is not None
        out = model.forecast(df, params.horizon, future_df=own(future), **kw).frame
    else:
        out = model.impute(df, max_gap=params.max_gap, fill_edges=params.fill_edges, **kw).frame
    return out.rename(columns={v: k for k, v in names.items()}) if names else out


def process_series(
    model: TSDiff,
    frame: pd.DataFrame,
    params: PipelineParams,
    partition_cols: Sequence[str] = (),
    tables: CovariateTables | None = None,
) -> tuple[pd.DataFrame, list[SeriesFailure]]:
    """Run the model on a frame of whole series; a series breaking the data contract is
    skipped and reported (or raises :class:`SeriesError` with ``fail_fast``).

    All series go through one call first (windows of all of them share the sampler's
    batches); only when that raises a :class:`DataError` are they redone one by one to
    find the culprits, which gives the same values since noise is seeded per series.
    Hive partition columns are dropped before the call and put back on the output.
    """
    id_col = params.id_col
    assert id_col is not None and params.time_col is not None
    drop = [c for c in partition_cols if c not in (id_col, params.time_col)]
    data = frame.drop(columns=drop) if drop else frame
    failures: list[SeriesFailure] = []
    try:
        out = run_model(model, data, params, tables)
    except DataError:
        parts = []
        for key, group in data.groupby(id_col, sort=True, dropna=False):
            try:
                parts.append(run_model(model, group, params, tables))
            except DataError as e:
                fail = SeriesFailure(_plain(key), type(e).__name__, str(e))
                if params.fail_fast:
                    raise fail.to_error() from e
                failures.append(fail)
        out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if partition_cols and len(out):
        out = attach_partitions(out, frame, id_col, params.time_col, partition_cols)
    return out, failures


def attach_partitions(
    out: pd.DataFrame,
    source: pd.DataFrame,
    id_col: str,
    time_col: str,
    partition_cols: Sequence[str],
) -> pd.DataFrame:
    """Give each output row the partition values of its series' input rows.

    A series inside one partition (the usual case: partitioned by region, by source)
    takes that partition's values. A series spread over several (partitioned by date)
    maps each output row to the partition of the latest input row at or before it
    (the first input row for rows before it, the last for forecasts), so that output
    partitions line up with input partitions.
    """
    extra = [c for c in partition_cols if c not in (id_col, time_col)]
    if not extra:
        return out
    keys = source[[id_col, *extra]].drop_duplicates()
    if not keys[id_col].duplicated().any():
        merged = out.merge(keys, on=id_col, how="left", sort=False)
        merged.index = out.index
        return merged
    left = out.reset_index(drop=True).reset_index(names="_row")
    right = source[[id_col, time_col, *extra]].dropna(subset=[time_col])
    if left[time_col].dtype != right[time_col].dtype:  # e.g. float grid over int minutes
        left[time_col] = left[time_col].astype("float64")
        right = right.assign(**{time_col: right[time_col].astype("float64")})
    left_s = left.sort_values(time_col, kind="stable")
    right_s = right.sort_values(time_col, kind="stable")
    back = pd.merge_asof(left_s, right_s, on=time_col, by=id_col, direction="backward")
    fwd = pd.merge_asof(left_s, right_s, on=time_col, by=id_col, direction="forward")
    for c in extra:
        back[c] = back[c].where(back[c].notna(), fwd[c].to_numpy())
    back = back.sort_values("_row").reset_index(drop=True)
    result = out.reset_index(drop=True)
    for c in extra:
        result[c] = back[c].to_numpy()
    return result


# --------------------------------------------------------------------------- schema
def layout_of(model: TSDiff, columns: Iterable[str]) -> str:
    """``long`` when the input has the model's variable and value columns (as the model
    itself decides), else ``wide``."""
    cols = set(columns)
    c = model.columns
    return "long" if c.var_col in cols and c.value_col in cols else "wide"


def check_columns(
    model: TSDiff, params: PipelineParams, columns: Sequence[str], partition_cols: Sequence[str]
) -> None:
    """Fail before anything is written when the input cannot fit the model at all."""
    cols = list(columns)
    for name, what in ((params.id_col, "series id"), (params.time_col, "time")):
        if name not in cols:
            raise MissingColumnError(
                f"{what} column {name!r} not found in the input; columns: {cols} "
                f"(set it with --id-col / --time-col)"
            )
    cov = model.covariates
    if layout_of(model, cols) == "long":
        return
    future, static = (cov.future, cov.static) if cov else ((), ())
    absent = [c for c in future if c not in cols]
    if params.static is None:
        absent += [c for c in static if c not in cols]
    if absent:
        raise MissingCovariateError(
            f"covariate column(s) {absent} not found in the input (the model reads "
            f"{list(future)} as known-future and {list(static)} as static covariates; "
            "static ones may come from --static instead)"
        )
    skip = {params.id_col, params.time_col, *partition_cols, *future, *static}
    found = [c for c in cols if c not in skip]
    extra = sorted(set(found) - set(model.variables))
    missing = sorted(set(model.variables) - set(found))
    if extra or missing:
        raise UnknownVariableError(
            f"the input's variables do not match the model's {model.variables}: "
            f"extra {extra}, missing {missing}"
        )


def output_columns(
    model: TSDiff, params: PipelineParams, input_columns: Sequence[str]
) -> list[tuple[str, str]]:
    """The output's columns as ``(name, kind)``, kind one of id, time, var, float, bool.

    This is the data contract of ``TSDiff.impute`` / ``forecast`` (README); engines that
    must declare a schema before running (Spark) use it, the local engine checks
    every batch against it.
    """
    assert params.levels is not None
    bounds = [f"{side}_{lv}" for lv in params.levels for side in ("lo", "hi")]
    head = [(str(params.id_col), "id"), (str(params.time_col), "time")]
    if layout_of(model, input_columns) == "long":
        c = model.columns
        if params.task == "impute":
            body = [(c.var_col, "var"), (c.value_col, "float"), ("imputed", "bool")]
        else:
            body = [(c.var_col, "var"), ("median", "float"), ("mean", "float")]
        return head + body + [(b, "float") for b in bounds]
    body = []
    second = ("imputed", "bool") if params.task == "impute" else ("mean", "float")
    for v in model.variables:
        body += [(v, "float"), (f"{v}_{second[0]}", second[1])]
        body += [(f"{v}_{b}", "float") for b in bounds]
    return head + body


def arrow_output_schema(
    columns: Sequence[tuple[str, str]], input_schema: pa.Schema, var_col: str
) -> pa.Schema:
    """Arrow types of the output files: id, time and variable typed as in the input
    (large strings as plain strings, as Spark writes them), values float64, flags bool."""

    def plain(t: pa.DataType) -> pa.DataType:
        if pa.types.is_large_string(t):
            return pa.string()
        if pa.types.is_large_binary(t):
            return pa.binary()
        if pa.types.is_dictionary(t):
            return plain(t.value_type)
        return t

    fields = []
    for name, kind in columns:
        if kind in ("id", "time"):
            fields.append(pa.field(name, plain(input_schema.field(name).type)))
        elif kind == "var":
            fields.append(pa.field(name, plain(input_schema.field(var_col).type)))
        elif kind == "bool":
            fields.append(pa.field(name, pa.bool_()))
        else:
            fields.append(pa.field(name, pa.float64()))
    return pa.schema(fields)


# --------------------------------------------------------------------------- manifest
def run_caveats(model: TSDiff, params: PipelineParams) -> list[str]:
    """What the library warns about for this run (:meth:`TSDiff.caveats`), for the
    manifest: a batch job's warnings scroll past in a log nobody reads."""
    return model.caveats(params.task, n_samples=params.n_samples, steps=params.steps)


def model_info(model: TSDiff, uri: str) -> dict[str, Any]:
    """What identifies the model: its URI, a hash of config and weights, and for
    registry URIs the version the alias pointed to."""
    assert model.net is not None
    h = hashlib.sha256()
    h.update(model.config.to_json().encode())
    h.update(json.dumps(model.variables).encode())
    for name, tensor in sorted(model.net.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    info: dict[str, Any] = {
        "uri": uri,
        "sha256": h.hexdigest(),
        "variables": list(model.variables),
        "freq": model.freq.to_str() if model.freq is not None else None,
        "window": model.window,
        "history_steps": model.history_steps,
        "tsdiff_version": __version__,
    }
    if uri.startswith("models:/"):
        info.update(registry_version(uri))
    return info


def registry_version(uri: str) -> dict[str, Any]:
    """Registered name, version and run behind a ``models:/`` URI (best effort: the
    alias may move after loading, and the store may be gone)."""
    try:
        from tsdiff.registry import list_models, parse_model_uri

        name, ref = parse_model_uri(uri)
        for row in list_models(name):
            if row["version"] == ref or ref in row["aliases"]:
                return {"registered_name": name, "version": row["version"], "run_id": row["run_id"]}
    except Exception as e:  # noqa: BLE001 - the manifest must not fail the run
        return {"registry_lookup_error": str(e)}
    return {}


def fingerprint(obj: Any) -> str:
    """A short stable hash of a JSON-able object (to recognise the same run on resume)."""
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def job_identity(
    engine: str, params: PipelineParams, minfo: dict[str, Any], inp: InputDataset
) -> dict[str, Any]:
    """What makes a rerun the same job (hashed by :func:`fingerprint` into the
    manifest): engine, settings (``fail_fast`` aside), model weights, input files and
    their sizes, covariate files. An engine adds what else it splits the work by."""
    return {
        "engine": engine,
        "params": {k: v for k, v in params.to_dict().items() if k != "fail_fast"},
        "model": minfo["sha256"],
        "input": str(inp.path.resolve()),
        "files": [[str(Path(f).resolve()), Path(f).stat().st_size] for f in inp.files],
        "covariates": covariate_files(params),
    }


def manifest_head(
    engine: str,
    inp: InputDataset,
    out: Path,
    minfo: dict[str, Any],
    params: PipelineParams,
    job: str,
) -> dict[str, Any]:
    """The fields every engine's new manifest starts with (status ``running``)."""
    return {
        "format": MANIFEST_FORMAT,
        "engine": engine,
        "task": params.task,
        "status": "running",
        "input": str(inp.path.resolve()),
        "input_files": len(inp.files),
        "partition_cols": list(inp.partition_cols),
        "output": str(out.resolve()),
        "model": minfo,
        "params": params.to_dict(),
        "seed": params.seed,
        "fingerprint": job,
    }


def read_manifest(out_dir: str | Path) -> dict[str, Any] | None:
    p = Path(out_dir) / MANIFEST
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text())
    except ValueError as e:
        raise ConfigError(f"{p} is not a pipeline manifest ({e}); remove it to start over") from e


def write_manifest(out_dir: str | Path, manifest: dict[str, Any]) -> Path:
    """Atomically (temporary file, then rename): a reader never sees half a manifest."""
    manifest["updated_at"] = now()
    text = json.dumps(manifest, indent=2) + "\n"

    def write(tmp: Path) -> None:
        tmp.write_text(text)
        crash_point("manifest")

    return write_atomic(Path(out_dir) / MANIFEST, write)


CRASH_ENV = "TSDIFF_PIPELINE_CRASH_AT"
_crash_counts: dict[str, int] = {}


def crash_point(name: str) -> None:
    """Test hook: with ``TSDIFF_PIPELINE_CRASH_AT=<name>:<n>`` the process SIGKILLs itself
    the n-th time it reaches point ``name`` (``part``: a part written to its temporary
    name, not yet renamed; ``manifest``: the same for the manifest). Unset, it does nothing.
    Crash tests use it to stop a run at an exact point instead of racing it with a timer.
    """
    spec = os.environ.get(CRASH_ENV)
    if not spec:
        return
    where, _, nth = spec.partition(":")
    if where != name:
        return
    _crash_counts[name] = _crash_counts.get(name, 0) + 1
    if _crash_counts[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)


def check_output_dir(out_dir: Path, engine: str, job: str) -> dict[str, Any] | None:
    """The manifest of a previous run of the same job in ``out_dir`` (to resume), or None
    for a new or empty directory; anything else there is refused rather than mixed in."""
    manifest = read_manifest(out_dir)
    if manifest is not None:
        if manifest.get("engine") != engine or manifest.get("fingerprint") != job:
            raise ConfigError(
                f"{out_dir} holds the output of a different job (engine "
                f"{manifest.get('engine')!r}, other input, model or parameters); "
                f"choose a new --output directory or remove this one"
            )
        return manifest
    if out_dir.exists():
        if not out_dir.is_dir():
            raise ConfigError(f"output {out_dir} exists and is not a directory")
        leftovers = [p.name for p in out_dir.iterdir() if p.name != "_temporary"]
        if leftovers:
            raise ConfigError(
                f"output directory {out_dir} is not empty and has no {MANIFEST} "
                f"(found {sorted(leftovers)[:5]}); choose a new one"
            )
    return None


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def jsonable(v: Any) -> Any:
    """A series key as JSON: numbers and strings as they are, anything else as text."""
    v = _plain(v)
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    return str(v)


def _plain(v: Any) -> Any:
    if isinstance(v, tuple) and len(v) == 1:  # groupby keys of one column
        v = v[0]
    if isinstance(v, np.generic):
        return v.item()
    if v is pd.NaT or (isinstance(v, float) and math.isnan(v)):
        return None
    return v


def cells_left_open(model: TSDiff, params: PipelineParams, result: pd.DataFrame) -> int:
    """Output cells an imputation left missing on request (``--max-gap``, open edges),
    as the manifest reports them; 0 for forecasts."""
    if params.task != "impute":
        return 0
    return left_open(result, model.variables, model.columns.value_col)
