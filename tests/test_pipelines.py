"""Batch pipelines over a multi-file PM2.5 dataset where stations are series.

The data: the first 300 hours of the 8-station slice, reshaped long-by-series
(``series_id`` = station, ``timestamp``, ``pm25``) and written as 4 hive partitions
``group=g0..g3`` of 2 stations each; a univariate tiny model is trained on it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pytest

from tsdiff.cli import main
from tsdiff.errors import CalibrationWarning, ConfigError
from tsdiff.masks import open_gaps
from tsdiff.model import TSDiff
from tsdiff.pipelines import (
    MANIFEST,
    PipelineParams,
    SchemaMismatchError,
    SeriesError,
    read_manifest,
    run_local,
)
from tsdiff.pipelines.common import CRASH_ENV

from .conftest import tiny_config

ROOT = Path(__file__).resolve().parents[1]
KEY = ["series_id", "timestamp"]
HOURS = 300
PARAMS = PipelineParams(seed=7, batch_series=3)


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def stations(pm25: pd.DataFrame) -> pd.DataFrame:
    """Wide (timestamp + one column per station) to rows ``series_id, timestamp, pm25``."""
    wide = pm25.iloc[:HOURS]
    long = wide.melt(id_vars="timestamp", var_name="series_id", value_name="pm25")
    return long[["series_id", "timestamp", "pm25"]].reset_index(drop=True)


@pytest.fixture(scope="module")
def model_dir(stations: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    first_days = stations[stations["timestamp"] < stations["timestamp"].min() + pd.Timedelta("96h")]
    model = TSDiff(tiny_config(epochs=1)).fit(first_days, progress=False)
    return model.save(tmp_path_factory.mktemp("model") / "pm25")


def group_of(stations: pd.DataFrame) -> dict[str, str]:
    names = sorted(stations["series_id"].unique())
    return {s: f"g{i // 2}" for i, s in enumerate(names)}


def write_partitioned(df: pd.DataFrame, root: Path) -> Path:
    groups = df["series_id"].map(group_of(df))
    for g, part in df.groupby(groups):
        (root / f"group={g}").mkdir(parents=True)
        part.to_parquet(root / f"group={g}" / "data.parquet", index=False)
    return root


@pytest.fixture(scope="module")
def dataset(stations: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_partitioned(stations, tmp_path_factory.mktemp("data") / "pm25")


@pytest.fixture(scope="module")
def reference(dataset: Path, model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted local run (seed 7) that other runs must reproduce."""
    out = tmp_path_factory.mktemp("ref") / "out"
    run_local(dataset, out, model_dir, PARAMS, progress=False)
    return out


def read_out(path: Path) -> pd.DataFrame:
    table = ds.dataset(path, format="parquet", partitioning="hive").to_table()
    return table.to_pandas().sort_values(KEY).reset_index(drop=True)


def files_on_disk(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*.parquet"))


# --------------------------------------------------------------------------- local engine
def test_local_engine_writes_every_row_once_partitioned_with_a_manifest(
    dataset: Path,
    model_dir: Path,
    stations: pd.DataFrame,
    reference: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out"
    argv = ["pipeline", "impute", "--input", str(dataset), "--output", str(out)]
    argv += ["--model", str(model_dir), "--seed", "7", "--batch-series", "3", "--quiet"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["status"] == "complete" and summary["rows_out"] == len(stations)

    got = read_out(out)
    inp = stations.sort_values(KEY).reset_index(drop=True)
    # each input row exactly once
    assert not got.duplicated(KEY).any()
    assert set(map(tuple, got[KEY].to_numpy())) == set(map(tuple, inp[KEY].to_numpy()))
    # observed values bit-identical, gaps flagged and filled inside their bounds
    observed = inp["pm25"].notna().to_numpy()
    assert np.array_equal(got["pm25"].to_numpy()[observed], inp["pm25"].to_numpy()[observed])
    assert np.array_equal(got["pm25_imputed"].to_numpy(), ~observed)
    assert (~observed).sum() > 0 and np.isfinite(got["pm25"]).all()
    for level in (50, 90):
        lo, hi = got[f"pm25_lo_{level}"], got[f"pm25_hi_{level}"]
        assert (lo <= got["pm25"] + 1e-9).all() and (got["pm25"] <= hi + 1e-9).all()
    # partitioned like the input
    assert (got["group"] == got["series_id"].map(group_of(stations))).all()
    # the CLI and an in-process run with the same seed agree
    pd.testing.assert_frame_equal(got, read_out(reference), check_exact=True)

    man = json.loads((out / MANIFEST).read_text())
    assert man["status"] == "complete" and man["engine"] == "local" and man["task"] == "impute"
    assert man["rows_in"] == man["rows_out"] == len(stations)
    assert man["n_series"] == man["series_done"] == 8 and man["series_failed"] == []
    assert man["input_files"] == 4 and man["partition_cols"] == ["group"]
    assert man["n_batches"] == man["batches_done"] == 3 and all(
        b["complete"] for b in man["batches"]
    )
    assert man["parts"] == files_on_disk(out) and len(man["parts"]) == 5  # batch 0 spans 2 groups
    assert man["model"]["uri"] == str(model_dir) and len(man["model"]["sha256"]) == 64
    assert man["model"]["variables"] == ["pm25"]
    assert man["seed"] == 7 and man["params"]["levels"] == [50, 90]
    assert man["params"]["n_samples"] == 4 and man["params"]["steps"] == 3  # model defaults
    assert man["warnings"] == []  # the model's own sampler: nothing to warn about

    # a rerun of the finished job redoes nothing; another job is refused, not mixed in
    assert main(argv) == 0
    assert json.loads((out / MANIFEST).read_text())["runs"][-1]["batches_skipped"] == 3
    assert main([*argv[:-5], "--seed", "8", "--batch-series", "3", "--quiet"]) == 2
    assert "different job" in capsys.readouterr().err


def test_killed_run_resumes_to_the_output_of_an_uninterrupted_run(
    dataset: Path, model_dir: Path, reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    script = (
        "import sys, time\n"
        "from tsdiff.pipelines import PipelineParams, run_local\n"
        "run_local(sys.argv[1], sys.argv[2], sys.argv[3], PipelineParams(seed=7, batch_series=1),"
        " progress=False, on_part=lambda info: time.sleep(0.3))\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(dataset), str(out), str(model_dir)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            man = read_manifest(out) if (out / MANIFEST).exists() else None
            if man is not None and man["batches_done"] >= 1:
                break
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL

    killed = read_manifest(out)
    assert killed is not None and killed["status"] == "running"
    assert 1 <= killed["batches_done"] < killed["n_batches"] == 8
    # what a kill in the middle of a write leaves: a half-written temporary file, and a
    # part of an unfinished batch that is not in the manifest
    (out / "group=g3").mkdir(exist_ok=True)
    (out / "group=g3" / ".part-00007.x1y2.parquet").write_bytes(b"PAR1 half")
    (out / "group=g3" / "part-00007.parquet").write_bytes(b"garbage")

    man = run_local(dataset, out, model_dir, PipelineParams(seed=7, batch_series=1), progress=False)
    assert man["status"] == "complete" and man["batches_done"] == 8
    assert man["runs"][-1]["batches_skipped"] == killed["batches_done"]
    assert man["parts"] == files_on_disk(out)
    assert not [p for p in out.rglob(".*") if p.is_file()]
    pd.testing.assert_frame_equal(read_out(out), read_out(reference), check_exact=True)


@pytest.mark.parametrize(
    "point, nth",
    [("part", 3), ("manifest", 4)],
    ids=["during-part-write", "during-manifest-update"],
)
def test_kill_inside_a_write_resumes_to_the_uninterrupted_output(
    dataset: Path, model_dir: Path, reference: Path, tmp_path: Path, point: str, nth: int
) -> None:
    """SIGKILL at an exact point (the pipeline's crash hook): after a part or the manifest
    is written under its temporary name and before the rename."""
    out = tmp_path / "out"
    script = (
        "import sys\n"
        "from tsdiff.pipelines import PipelineParams, run_local\n"
        "run_local(sys.argv[1], sys.argv[2], sys.argv[3], PipelineParams(seed=7, batch_series=1),"
        " progress=False)\n"
    )
    env = {**os.environ, CRASH_ENV: f"{point}:{nth}"}
    proc = subprocess.run(
        [sys.executable, "-c", script, str(dataset), str(out), str(model_dir)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    temporaries = [p.name for p in out.rglob(".*") if p.is_file()]
    prefix = ".part-" if point == "part" else "._manifest."
    assert [t for t in temporaries if t.startswith(prefix)], temporaries  # killed mid-write
    killed = read_manifest(out)  # the previous manifest, whole
    assert killed is not None and killed["status"] == "running"
    assert killed["batches_done"] < killed["n_batches"]

    man = run_local(dataset, out, model_dir, PipelineParams(seed=7, batch_series=1), progress=False)
    assert man["status"] == "complete" and man["batches_done"] == man["n_batches"] == 8
    assert man["runs"][-1]["batches_skipped"] == killed["batches_done"]
    assert man["parts"] == files_on_disk(out)
    assert not [p for p in out.rglob(".*") if p.is_file()]
    pd.testing.assert_frame_equal(read_out(out), read_out(reference), check_exact=True)


def test_bad_series_are_recorded_while_the_rest_continue(
    stations: pd.DataFrame,
    model_dir: Path,
    reference: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    df = stations.copy()
    names = sorted(df["series_id"].unique())
    empty, bad_time = names[1], names[4]
    df.loc[df["series_id"] == empty, "pm25"] = np.nan  # nothing observed
    df.loc[df.index[df["series_id"] == bad_time][10], "timestamp"] = pd.NaT
    src = tmp_path / "flat"  # unpartitioned: two files side by side
    src.mkdir()
    half = df["series_id"].isin(names[:4])
    df[half].to_parquet(src / "a.parquet", index=False)
    df[~half].to_parquet(src / "b.parquet", index=False)

    man = run_local(src, tmp_path / "out", model_dir, PARAMS, progress=False)
    assert man["status"] == "complete" and man["series_done"] == 6
    failed = {f["series"]: f for f in man["series_failed"]}
    assert set(failed) == {empty, bad_time}
    assert failed[empty]["error"] == "NoObservedValuesError"
    assert failed[bad_time]["error"] == "TimestampError" and "NaT" in failed[bad_time]["reason"]
    assert (
        man["parts"]
        == files_on_disk(tmp_path / "out")
        == [f"part-0000{i}.parquet" for i in range(3)]
    )
    got = read_out(tmp_path / "out")
    ref = read_out(reference).drop(columns="group")
    ref = ref[~ref["series_id"].isin([empty, bad_time])].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, ref, check_exact=True)  # the others as if alone
    assert man["rows_in"] == len(df) and man["rows_out"] == len(ref)

    argv = ["pipeline", "impute", "--input", str(src), "--output", str(tmp_path / "ff")]
    argv += ["--model", str(model_dir), "--fail-fast", "--quiet"]
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert empty in err and "no observed value" in err
    assert json.loads((tmp_path / "ff" / MANIFEST).read_text())["status"] == "failed"


def test_schema_mismatch_stops_before_writing_and_names_the_files(
    dataset: Path, model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "mixed"
    shutil.copytree(dataset, src)
    odd = src / "group=g2" / "data.parquet"
    df = pd.read_parquet(odd)
    df.astype({"pm25": "float32"}).to_parquet(odd, index=False)

    out = tmp_path / "out"
    argv = ["pipeline", "impute", "--input", str(src), "--output", str(out)]
    assert main([*argv, "--model", str(model_dir), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "group=g2/data.parquet" in err and "group=g0/data.parquet" in err
    assert "'pm25'" in err and "float" in err and "double" in err
    assert not out.exists()
    with pytest.raises(SchemaMismatchError, match="nothing was written"):
        run_local(src, out, model_dir, PARAMS, progress=False)
    assert not out.exists()


def test_forecast_pipeline_gives_each_series_its_horizon_in_its_partition(
    dataset: Path, model_dir: Path, stations: pd.DataFrame, tmp_path: Path
) -> None:
    out = tmp_path / "fc"
    argv = ["pipeline", "forecast", "--input", str(dataset), "--output", str(out)]
    argv += ["--model", str(model_dir), "--horizon", "6", "--seed", "7", "--quiet"]
    assert main(argv) == 0
    got = read_out(out)
    assert len(got) == 8 * 6
    last = stations.groupby("series_id")["timestamp"].max()
    steps = (got["timestamp"] - got["series_id"].map(last)) / pd.Timedelta("1h")
    assert sorted(steps.unique()) == [1, 2, 3, 4, 5, 6]
    assert (got["group"] == got["series_id"].map(group_of(stations))).all()
    direct = TSDiff.load(model_dir).forecast(stations, 6, seed=7).frame
    direct = direct.sort_values(KEY).reset_index(drop=True)
    pd.testing.assert_frame_equal(got.drop(columns="group"), direct, check_dtype=False)

    assert json.loads((out / MANIFEST).read_text())["warnings"] == []
    # another sampler than the calibration's: the warning is in the job's record
    moved = tmp_path / "fc-steps"
    argv2 = ["pipeline", "forecast", "--input", str(dataset), "--output", str(moved)]
    argv2 += ["--model", str(model_dir), "--horizon", "6", "--steps", "2", "--quiet"]
    with pytest.warns(CalibrationWarning):
        assert main(argv2) == 0
    (said,) = json.loads((moved / MANIFEST).read_text())["warnings"]
    assert "steps 3 -> 2" in said

    bad = ["pipeline", "forecast", "--input", str(dataset), "--output", str(tmp_path / "x")]
    assert main([*bad, "--model", str(model_dir), "--horizon", "0", "--quiet"]) == 2
    assert not (tmp_path / "x").exists()


# --------------------------------------------------------------------------- spark
@pytest.mark.slow
def test_spark_engine_matches_the_local_engine(
    dataset: Path, model_dir: Path, reference: Path, tmp_path: Path
) -> None:
    pytest.importorskip("pyspark")
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("Spark needs Java")
    from tsdiff.pipelines.spark import run_spark, spark_session

    src = tmp_path / "in"
    shutil.copytree(dataset, src)
    (src / "group=g4").mkdir()
    times = pd.date_range("2014-05-01", periods=30, freq="h", unit="us")
    no_data = pd.DataFrame({"series_id": "no_data", "timestamp": times, "pm25": np.nan})
    bad_time = pd.DataFrame({"series_id": "bad_time", "timestamp": times, "pm25": 1.0})
    bad_time.loc[10, "timestamp"] = pd.NaT
    bad = pd.concat([no_data, bad_time], ignore_index=True)
    bad.to_parquet(src / "group=g4" / "data.parquet", index=False)
    fail_fast = replace(PARAMS, fail_fast=True)
    local = run_local(src, tmp_path / "local", model_dir, PARAMS, progress=False)
    with pytest.raises(SeriesError) as local_error:
        run_local(src, tmp_path / "local-ff", model_dir, fail_fast, progress=False)

    out = tmp_path / "spark"
    session = spark_session("local[2]", progress=False)
    try:
        man = run_spark(src, out, model_dir, PARAMS, spark=session)
        # every series (the bad ones too) in one group: the values must not depend on it
        one = run_spark(src, tmp_path / "one", model_dir, PARAMS, spark=session, buckets=1)
        with pytest.raises(SeriesError) as spark_error:
            run_spark(src, tmp_path / "ff", model_dir, fail_fast, spark=session)
        gapped = replace(PARAMS, max_gap=1)
        spark_gaps = run_spark(src, tmp_path / "gaps", model_dir, gapped, spark=session)
    finally:
        session.stop()
    # both engines count the cells left open on request alike
    local_gaps = run_local(src, tmp_path / "local-gaps", model_dir, gapped, progress=False)
    assert spark_gaps["cells_left_open"] == local_gaps["cells_left_open"] > 0
    assert man["cells_left_open"] == local["cells_left_open"] == 0
    # a failing series is reported as the local engine reports it, text and order alike
    assert str(spark_error.value) == str(local_error.value)
    assert "'bad_time' failed (TimestampError)" in str(spark_error.value)
    assert read_manifest(tmp_path / "ff")["status"] == "failed"
    assert read_manifest(tmp_path / "ff")["error"] == read_manifest(tmp_path / "local-ff")["error"]
    assert not files_on_disk(tmp_path / "ff")
    assert man["series_failed"] == local["series_failed"]
    assert man["status"] == "complete" and man["engine"] == "spark"
    assert man["warnings"] == local["warnings"] == []
    assert man["rows_in"] == 8 * HOURS + 60 and man["rows_out"] == 8 * HOURS
    assert man["series_done"] == 8 and man["n_series"] == 10
    assert [(f["series"], f["error"]) for f in man["series_failed"]] == [
        ("bad_time", "TimestampError"),
        ("no_data", "NoObservedValuesError"),
    ]
    assert man["spark"]["master"] == "local[2]" and man["parts"] == files_on_disk(out)

    def schema(path: Path) -> object:
        return ds.dataset(path, format="parquet", partitioning="hive").schema.remove_metadata()

    assert schema(out).equals(schema(reference))
    pd.testing.assert_frame_equal(read_out(out), read_out(reference), check_exact=False, atol=1e-6)
    assert man["spark"]["buckets"] == 4  # 10 series in batches of PARAMS.batch_series, >= 2/core
    assert one["spark"]["buckets"] == 1 and one["series_failed"] == man["series_failed"]
    pd.testing.assert_frame_equal(
        read_out(tmp_path / "one"), read_out(reference), check_exact=False, atol=1e-6
    )


def test_spark_worker_returns_failures_as_data_that_read_as_the_local_engines(
    stations: pd.DataFrame, model_dir: Path, tmp_path: Path
) -> None:
    """The Spark engine's worker and driver steps, without Spark: a failed series comes
    back as a row with its error type and reason (also with fail_fast: nothing raised in
    a worker, nothing parsed from exception text), which the driver turns into the local
    engine's manifest entries and SeriesError."""
    from tsdiff.pipelines.common import output_columns
    from tsdiff.pipelines.dataset import open_input, scan_series
    from tsdiff.pipelines.spark import (
        ERROR_COL,
        REASON_COL,
        GroupTask,
        apply_group,
        in_local_order,
        series_failures,
    )

    df = stations.copy()
    names = sorted(df["series_id"].unique())
    empty, bad_time = names[1], names[4]
    df.loc[df["series_id"] == empty, "pm25"] = np.nan
    df.loc[df.index[df["series_id"] == bad_time][10], "timestamp"] = pd.NaT
    src = tmp_path / "flat"
    src.mkdir()
    df.to_parquet(src / "a.parquet", index=False)
    fail_fast = replace(PARAMS, fail_fast=True).resolve(TSDiff.load(model_dir))
    local = run_local(src, tmp_path / "out", model_dir, PARAMS, progress=False)
    with pytest.raises(SeriesError) as local_error:
        run_local(src, tmp_path / "ff", model_dir, fail_fast, progress=False)

    columns = output_columns(TSDiff.load(model_dir), fail_fast, list(df.columns))
    task = GroupTask(str(model_dir), fail_fast, (), tuple(n for n, _ in columns), None, 1)
    rows = apply_group(task, df)  # one bucket holding every series
    errors = rows[rows[ERROR_COL].notna()]
    assert sorted(errors["series_id"]) == sorted([empty, bad_time])
    assert errors.drop(columns=["series_id", ERROR_COL, REASON_COL]).isna().all().all()
    assert rows[rows[ERROR_COL].isna()][REASON_COL].isna().all()
    assert len(rows) - len(errors) == int((~df["series_id"].isin([empty, bad_time])).sum())

    records = errors.iloc[::-1].to_dict("records")  # in whatever order the buckets come
    fails = in_local_order(
        series_failures(records, "series_id"), scan_series(open_input(src), "series_id"), fail_fast
    )
    assert [f.to_dict() for f in fails] == local["series_failed"]
    assert [f["series"] for f in local["series_failed"]] == [empty, bad_time]
    assert str(fails[0].to_error()) == str(local_error.value)


def test_default_buckets_hold_about_a_batch_and_keep_every_core_busy() -> None:
    from tsdiff.pipelines.spark import default_buckets

    assert default_buckets(10_000, 64, 2) == 157  # ceil(10000 / 64)
    assert default_buckets(100, 64, 8) == 16  # two per core beat two big buckets
    assert default_buckets(3, 64, 8) == 3  # never more buckets than series
    assert default_buckets(0, 64, 2) == 1


def test_spark_bad_bucket_count_is_refused_before_any_work(tmp_path: Path) -> None:
    pytest.importorskip("pyspark")
    from tsdiff.pipelines.spark import run_spark

    with pytest.raises(ConfigError, match="buckets must be an integer >= 1"):
        run_spark(tmp_path / "in", tmp_path / "out", tmp_path / "model", buckets=0)
    assert not (tmp_path / "out").exists()


def test_pipeline_impute_leaves_long_gaps_open_and_records_it(
    dataset: Path, model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = ["pipeline", "impute", "--input", str(dataset), "--output", str(out), "--model"]
    argv += [str(model_dir), "--seed", "7", "--batch-series", "3", "--quiet", "--max-gap", "1"]
    assert main(argv) == 0
    got = read_out(out).sort_values(KEY).reset_index(drop=True)
    for _, s in got.groupby("series_id"):
        gaps = open_gaps(s["pm25"].where(~s["pm25_imputed"]).to_numpy()[None], 1)[0]
        assert s["pm25"].isna().to_numpy()[gaps].all()  # runs of 2+ missing stay missing
        assert not s["pm25_imputed"].to_numpy()[gaps].any()
    assert got["pm25"].isna().any() and got["pm25_imputed"].any()  # short gaps still filled
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["params"]["max_gap"] == 1
    assert manifest["cells_left_open"] == int(got["pm25"].isna().sum()) > 0
    bad = ["pipeline", "impute", "--input", str(dataset), "--output", str(tmp_path / "o2")]
    assert main([*bad, "--model", str(model_dir), "--max-gap", "-1", "--quiet"]) == 2
    assert "max_gap" in capsys.readouterr().err and not (tmp_path / "o2").exists()
