"""Covariates through the HTTP service: a real ``bentoml serve`` of a model that reads a
known-future and a static covariate, driven over parquet and JSON."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pandas as pd
import pytest
import requests

from tests.test_covariates import _config, _frame, _future
from tsdiff.model import TSDiff
from tsdiff.services.payloads import to_records
from tsdiff.services.process import Server, bentoml_serve, free_port, server_env

SAMPLING = {"n_samples": 4, "steps": 3, "seed": 5, "levels": "50,90"}
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    d = tmp_path_factory.mktemp("cov-model")
    TSDiff(_config(epochs=1)).fit(_frame(steps=240), progress=False).save(d / "m")
    return str(d / "m")


@pytest.fixture(scope="module")
def server(tmp_path_factory, model_dir) -> Iterator[Server]:
    d = tmp_path_factory.mktemp("cov-run")
    port = free_port()
    s = Server(
        bentoml_serve(port),
        server_env(d / "home", TSDIFF_MODEL_URI=model_dir),
        port,
        d / "serve.log",
    )
    try:
        s.wait_ready()
        yield s
    finally:
        s.stop()


def _parquet(df: pd.DataFrame) -> tuple[str, bytes, str]:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return ("t.parquet", buf.getvalue(), "application/octet-stream")


def test_parquet_forecast_with_future_and_static_tables(server, model_dir):
    df = _frame(steps=240)
    static = df.groupby("series_id", as_index=False)["level"].first()
    history = df.drop(columns="level")
    fut = _future(df, 4)
    files = {"data": _parquet(history), "future": _parquet(fut), "static": _parquet(static)}
    form = {**{k: str(v) for k, v in SAMPLING.items()}, "horizon": "4"}
    resp = requests.post(f"{server.url}/v1/forecast", files=files, data=form, timeout=120)
    assert resp.status_code == 200, resp.text
    got = pd.read_parquet(io.BytesIO(resp.content))
    expected = TSDiff.load(model_dir).forecast(
        history, 4, future_df=fut, static_df=static, levels=[50, 90], n_samples=4, steps=3, seed=5
    )
    pd.testing.assert_frame_equal(
        got.reset_index(drop=True), expected.frame.reset_index(drop=True), check_dtype=False
    )
    assert not [c for c in got.columns if "load" in c or "level" in c]


def test_json_forecast_and_the_missing_step_is_422(server):
    df = _frame(steps=240)
    fut = _future(df, 4)
    body = {"records": to_records(df), "horizon": 4, "future": to_records(fut), **SAMPLING}
    resp = requests.post(f"{server.url}/v1/forecast/json", json=body, timeout=120)
    assert resp.status_code == 200, resp.text
    assert len(resp.json()["records"]) == 3 * 4
    body["future"] = to_records(fut.iloc[1:])  # s0's first step to forecast has no plan
    resp = requests.post(f"{server.url}/v1/forecast/json", json=body, timeout=120)
    assert resp.status_code == 422, resp.text
    err = resp.json()
    assert err["error"] == "MissingCovariateError" and "'s0'" in err["message"]
    del body["future"]
    resp = requests.post(f"{server.url}/v1/forecast/json", json=body, timeout=120)
    assert resp.status_code == 422 and "future" in resp.json()["message"]


def test_model_info_lists_the_covariates(server):
    info = requests.get(f"{server.url}/v1/model", timeout=30).json()
    assert info["covariates"] == {"future": ["load"], "static": ["level"]}
    assert info["variables"] == ["y"]
