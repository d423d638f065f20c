"""Batch pipelines with covariates: the tables reach every series as in the library call,
on either engine, and a missing covariate is named before or instead of being guessed."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from tests.test_covariates import _config, _frame, _future
from tsdiff.cli import EXIT_INPUT, main
from tsdiff.errors import ConfigError, MissingCovariateError
from tsdiff.model import TSDiff
from tsdiff.pipelines import PipelineParams, read_manifest, run_local

HORIZON = 5
FORECAST = PipelineParams(task="forecast", horizon=HORIZON, n_samples=4, steps=2, seed=3)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    df = _frame(steps=240)
    df["timestamp"] = df["timestamp"].astype("datetime64[us]")  # as Spark reads it
    return df


@pytest.fixture(scope="module")
def model(frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cov-model") / "m"
    TSDiff(_config(epochs=1)).fit(frame, progress=False).save(out)
    return out


@pytest.fixture(scope="module")
def tables(frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The input without its static column, the static table and the horizon's plan."""
    root = tmp_path_factory.mktemp("cov-data")
    paths = {n: root / f"{n}.parquet" for n in ("input", "static", "future")}
    frame.drop(columns="level").to_parquet(paths["input"], index=False)
    frame.groupby("series_id", as_index=False)["level"].first().to_parquet(
        paths["static"], index=False
    )
    _future(frame, HORIZON).to_parquet(paths["future"], index=False)
    return paths


def _read(out: Path) -> pd.DataFrame:
    df = pd.read_parquet(out)
    return df.sort_values(["series_id", "timestamp"]).reset_index(drop=True)


def _forecast_params(tables: dict[str, Path], **kw) -> PipelineParams:
    return replace(FORECAST, future=str(tables["future"]), static=str(tables["static"]), **kw)


def test_local_forecast_reads_the_covariate_tables_as_the_library_does(model, tables, tmp_path):
    params = _forecast_params(tables, batch_series=2)  # two batches: tables cut per batch
    man = run_local(tables["input"], tmp_path / "out", model, params, progress=False)
    assert man["status"] == "complete" and man["series_done"] == 3
    got = _read(tmp_path / "out")
    m = TSDiff.load(model)
    want = m.forecast(
        pd.read_parquet(tables["input"]),
        HORIZON,
        future_df=pd.read_parquet(tables["future"]),
        static_df=pd.read_parquet(tables["static"]),
        n_samples=4,
        steps=2,
        seed=3,
    ).frame
    want = want.sort_values(["series_id", "timestamp"]).reset_index(drop=True)
    assert list(got.columns) == list(want.columns)
    assert not [c for c in got.columns if "load" in c or "level" in c]
    pd.testing.assert_frame_equal(got, want, check_dtype=False, atol=1e-6)
    # the tables are part of the job: a different plan into the same directory is refused
    other = tmp_path / "other.parquet"
    _future(pd.read_parquet(tables["input"]), HORIZON + 1).to_parquet(other, index=False)
    with pytest.raises(ConfigError):
        run_local(
            tables["input"],
            tmp_path / "out",
            model,
            replace(params, future=str(other)),
            progress=False,
        )


def test_a_series_without_its_plan_is_recorded_and_the_rest_forecast(model, tables, tmp_path):
    fut = pd.read_parquet(tables["future"])
    cut = tmp_path / "cut.parquet"
    fut[~((fut["series_id"] == "s1") & (fut.groupby("series_id").cumcount() == 2))].to_parquet(
        cut, index=False
    )
    params = replace(_forecast_params(tables), future=str(cut))
    man = run_local(tables["input"], tmp_path / "out", model, params, progress=False)
    assert [(f["series"], f["error"]) for f in man["series_failed"]] == [
        ("s1", "MissingCovariateError")
    ]
    assert "'load' at" in man["series_failed"][0]["reason"]
    assert sorted(_read(tmp_path / "out")["series_id"].unique()) == ["s0", "s2"]


def test_impute_takes_static_covariates_from_the_input_columns(model, frame, tmp_path):
    src = tmp_path / "in.parquet"
    holed = frame.copy()
    holed.loc[holed.index % 7 == 3, "y"] = float("nan")
    holed.to_parquet(src, index=False)
    params = PipelineParams(n_samples=4, steps=2, seed=1)
    man = run_local(src, tmp_path / "out", model, params, progress=False)
    assert man["status"] == "complete"
    got = _read(tmp_path / "out")
    want = TSDiff.load(model).impute(holed, n_samples=4, steps=2, seed=1).frame
    want = want.sort_values(["series_id", "timestamp"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, check_dtype=False, atol=1e-6)


@pytest.mark.parametrize(
    ("change", "error", "text"),
    [
        ({"future": None}, MissingCovariateError, "--future"),
        ({"task": "impute", "horizon": None}, ConfigError, "forecast only"),
    ],
)
def test_bad_covariate_options_fail_before_anything_is_written(
    model, tables, tmp_path, change, error, text
):
    params = replace(_forecast_params(tables), **change)
    with pytest.raises(error, match=text):
        run_local(tables["input"], tmp_path / "out", model, params, progress=False)
    assert not (tmp_path / "out").exists()


def test_missing_covariate_columns_are_named_before_anything_is_written(model, tables, tmp_path):
    src = tmp_path / "in.parquet"
    pd.read_parquet(tables["input"]).drop(columns="load").to_parquet(src, index=False)
    with pytest.raises(MissingCovariateError, match="'load'"):
        run_local(src, tmp_path / "out", model, _forecast_params(tables), progress=False)
    no_static = replace(_forecast_params(tables), static=None)  # nor column nor table
    with pytest.raises(MissingCovariateError, match="'level'"):
        run_local(tables["input"], tmp_path / "out", model, no_static, progress=False)
    bad = tmp_path / "bad.parquet"
    pd.read_parquet(tables["future"]).drop(columns="load").to_parquet(bad, index=False)
    with pytest.raises(MissingCovariateError, match="lacks column"):
        run_local(
            tables["input"],
            tmp_path / "out",
            model,
            replace(_forecast_params(tables), future=str(bad)),
            progress=False,
        )
    assert not (tmp_path / "out").exists()


def test_a_model_without_covariates_refuses_covariate_tables(fitted, tables, tmp_path):
    with pytest.raises(ConfigError, match="reads none"):
        run_local(
            tables["input"],
            tmp_path / "out",
            fitted,
            PipelineParams(static=str(tables["static"])),
            progress=False,
        )


def test_cli_pipeline_forecast_passes_the_covariate_files(model, tables, tmp_path, capsys):
    base = ["pipeline", "forecast", "--input", str(tables["input"]), "--model", str(model)]
    opts = ["--horizon", str(HORIZON), "--n-samples", "4", "--steps", "2", "--seed", "3"]
    rc = main([*base, *opts, "--output", str(tmp_path / "none"), "--quiet"])
    assert rc == EXIT_INPUT and "--future" in capsys.readouterr().err
    out = tmp_path / "out"
    rc = main(
        [
            *base,
            *opts,
            "--output",
            str(out),
            "--quiet",
            "--future",
            str(tables["future"]),
            "--static",
            str(tables["static"]),
        ]
    )
    assert rc == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["status"] == "complete"
    assert read_manifest(out)["params"]["future"] == str(tables["future"])
    assert len(_read(out)) == 3 * HORIZON


def test_spark_engine_ships_the_tables_to_its_workers(model, tables, tmp_path):
    pytest.importorskip("pyspark")
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("Spark needs Java")
    from tsdiff.pipelines.spark import run_spark, spark_session

    params = _forecast_params(tables, batch_series=1)
    local = run_local(tables["input"], tmp_path / "local", model, params, progress=False)
    session = spark_session("local[2]", progress=False)
    try:
        man = run_spark(tables["input"], tmp_path / "spark", model, params, spark=session)
    finally:
        session.stop()
    assert man["status"] == local["status"] == "complete"
    pd.testing.assert_frame_equal(
        _read(tmp_path / "spark"), _read(tmp_path / "local"), check_exact=False, atol=1e-6
    )
