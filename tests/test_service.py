"""The HTTP service, driven over real sockets as clients will drive it.

Two ``bentoml serve`` processes run for the module, started side by side:

- ``auth``: a tiny PhysioNet model (window 48) from a directory, with API keys and
  small limits, so every guard rail can be hit with small requests;
- ``open``: a tiny PM2.5 model from an MLflow registry (``models:/pm25-svc@champion``
  through ``TSDIFF_MODEL_NAME``, the default URI), no keys, started by ``tsdiff serve``.

Results are compared with the library called in-process with the same seed: the
service must add transport, not arithmetic.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests

from tsdiff.cli import build_parser, main, serve_command
from tsdiff.datasets import physionet_slice
from tsdiff.device import resolve_device
from tsdiff.errors import ConfigError
from tsdiff.model import TSDiff
from tsdiff.pretrained import SHIPPED_DIR
from tsdiff.services.payloads import (
    WARNINGS_HEADER,
    ServiceError,
    parse_levels,
    to_records,
    trajectory_options,
)
from tsdiff.services.process import Server, bentoml_serve
from tsdiff.services.process import free_port as _free_port
from tsdiff.services.process import server_env as _server_env
from tsdiff.services.settings import Settings

from .conftest import tiny_config

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("key-one", "key-two")
SAMPLING = {"n_samples": 4, "steps": 3, "seed": 7, "levels": "50,90"}
LIMITS = {
    "TSDIFF_MAX_UPLOAD_MB": "1",
    "TSDIFF_MAX_ROWS": "20000",
    "TSDIFF_MAX_SERIES": "5",
    "TSDIFF_MAX_SAMPLES": "16",
    "TSDIFF_MAX_HORIZON": "12",
}
slow = pytest.mark.slow


# --------------------------------------------------------------------------- servers
def _hourly(df: pd.DataFrame) -> pd.DataFrame:
    """PhysioNet rows moved onto the model's hourly grid, one value per cell (the last)."""
    out = df.assign(timestamp=(df["timestamp"] // 60) * 60)
    out = out.drop_duplicates(["series_id", "timestamp", "variable"], keep="last")
    return out.reset_index(drop=True)


@pytest.fixture(scope="module")
def physio() -> dict[str, Any]:
    """Training stays and three held-out stays (long layout, on the hourly grid)."""
    data = physionet_slice()
    ids = data["series_id"].unique()
    train = set(ids[:24])
    seen = set(data.loc[data["series_id"].isin(train), "variable"])
    for var in sorted(set(data["variable"]) - seen):  # every one of the 35 variables
        train.add(data.loc[data["variable"] == var, "series_id"].iloc[0])
    return {
        "train": data[data["series_id"].isin(train)],
        "test": _hourly(data[data["series_id"].isin(ids[-3:])]),
    }


@pytest.fixture(scope="module")
def models(tmp_path_factory, physio, pm25) -> dict[str, Any]:
    """Two tiny models: PhysioNet in a directory, PM2.5 registered in a private store."""
    from tsdiff.registry import register_model

    d = tmp_path_factory.mktemp("service-models")
    cfg = tiny_config(epochs=1, val_crps_every=0)
    phys = TSDiff(cfg.replace(data={"window": 48, "freq": "60"})).fit(
        physio["train"], progress=False
    )
    phys.save(d / "physionet")
    air = TSDiff(cfg).fit(pm25.iloc[:300], progress=False)
    air.save(d / "pm25")
    store = f"sqlite:///{d}/mlflow.db"
    run_id, version = register_model(d / "pm25", "pm25-svc", pm25.iloc[:50], uri=store)
    return {"dir": d, "store": store, "run_id": run_id, "version": version}


@pytest.fixture(scope="module")
def servers(tmp_path_factory, models) -> Iterator[dict[str, Server]]:
    """Both servers, started together (startup is mostly imports, so they overlap well)."""
    d = tmp_path_factory.mktemp("service-run")
    auth_port, open_port = _free_port(), _free_port()
    auth_env = _server_env(
        d / "home-auth",
        TSDIFF_MODEL_URI=str(models["dir"] / "physionet"),
        TSDIFF_API_KEYS=",".join(KEYS),
        **LIMITS,
    )
    auth_argv = bentoml_serve(auth_port)
    open_env = _server_env(
        d / "home-open", MLFLOW_TRACKING_URI=models["store"], TSDIFF_MODEL_NAME="pm25-svc"
    )
    open_argv = [sys.executable, "-m", "tsdiff.cli", "serve", "--port", str(open_port)]
    started = []
    try:
        for name, argv, env, port in (
            ("auth", auth_argv, auth_env, auth_port),
            ("open", open_argv, open_env, open_port),
        ):
            started.append((name, Server(argv, env, port, d / f"{name}.log")))
        for _, server in started:
            server.wait_ready()
        yield dict(started)
    finally:
        for _, server in started:
            server.stop()


@pytest.fixture(scope="module")
def auth(servers) -> Server:
    return servers["auth"]


@pytest.fixture(scope="module")
def open_server(servers) -> Server:
    return servers["open"]


@pytest.fixture(scope="module")
def client() -> Iterator[requests.Session]:
    """A client of the ``auth`` server that sends a valid key."""
    with requests.Session() as s:
        s.headers["Authorization"] = f"Bearer {KEYS[0]}"
        yield s


@pytest.fixture(scope="module")
def physio_model(models) -> TSDiff:
    return TSDiff.load(models["dir"] / "physionet")


@pytest.fixture(scope="module")
def pm25_model(models) -> TSDiff:
    return TSDiff.load(models["dir"] / "pm25")


def _parquet(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def _read(resp: requests.Response) -> pd.DataFrame:
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/vnd.apache.parquet")
    return pd.read_parquet(io.BytesIO(resp.content))


def _upload(body: bytes) -> dict[str, Any]:
    return {"data": ("input.parquet", body, "application/octet-stream")}


def _wide(long: pd.DataFrame, variables: list[str]) -> pd.DataFrame:
    wide = long.pivot(index=["series_id", "timestamp"], columns="variable", values="value")
    return wide.reindex(columns=variables).reset_index().rename_axis(columns=None)


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(
        a.reset_index(drop=True), b.reset_index(drop=True), check_dtype=False
    )


def _check_bounds(frame: pd.DataFrame, value: str, prefix: str = "") -> None:
    lo90, lo50 = frame[f"{prefix}lo_90"], frame[f"{prefix}lo_50"]
    hi50, hi90 = frame[f"{prefix}hi_50"], frame[f"{prefix}hi_90"]
    v = frame[value]
    tol = 1e-9 * (1 + v.abs())
    assert (lo90 <= lo50 + tol).all() and (lo50 <= v + tol).all()
    assert (v <= hi50 + tol).all() and (hi50 <= hi90 + tol).all()


# --------------------------------------------------------------------------- health, auth
@slow
def test_health_and_metrics_stay_open_when_keys_are_required(auth):
    for path in ("/livez", "/readyz", "/metrics"):
        assert requests.get(auth.url + path, timeout=10).status_code == 200, path


@slow
@pytest.mark.parametrize(
    "headers, message",
    [
        ({}, "Authorization: Bearer"),
        ({"Authorization": "Bearer not-a-key"}, "not valid"),
        ({"Authorization": f"Basic {KEYS[0]}"}, "Authorization: Bearer"),
    ],
    ids=["missing", "wrong", "not-bearer"],
)
def test_v1_without_a_valid_key_is_401(auth, physio, headers, message):
    for resp in (
        requests.get(f"{auth.url}/v1/model", headers=headers, timeout=10),
        requests.post(
            f"{auth.url}/v1/impute",
            headers=headers,
            files=_upload(_parquet(physio["test"])),
            timeout=30,
        ),
    ):
        assert resp.status_code == 401
        assert resp.json()["error"] == "Unauthorized"
        assert message in resp.json()["message"]
        assert resp.headers["www-authenticate"] == "Bearer"


@slow
def test_every_configured_key_is_accepted(auth):
    for key in KEYS:
        resp = requests.get(
            f"{auth.url}/v1/model", headers={"Authorization": f"Bearer {key}"}, timeout=10
        )
        assert resp.status_code == 200, resp.text


@slow
def test_without_keys_v1_is_open(open_server):
    resp = requests.get(f"{open_server.url}/v1/model", timeout=10)
    assert resp.status_code == 200
    assert resp.json()["auth"] is False
    # TSDIFF_DEVICE unset: auto, the GPU when there is one (device reported as cuda:0)
    assert resp.json()["device"].split(":")[0] == resolve_device("auto").type
    assert requests.get(f"{open_server.url}/readyz", timeout=10).status_code == 200


@slow
def test_a_model_that_cannot_load_is_never_ready(tmp_path):
    port = _free_port()
    missing = tmp_path / "no-such-model"
    env = _server_env(tmp_path / "home", TSDIFF_MODEL_URI=str(missing))
    server = Server(bentoml_serve(port), env, port, tmp_path / "server.log")
    try:
        deadline, live = time.monotonic() + 120, None
        while time.monotonic() < deadline and live != 503:
            time.sleep(0.3)
            try:
                live = requests.get(f"{server.url}/livez", timeout=2).status_code
            except requests.RequestException:
                pass
        assert live == 503, server.tail()
        assert requests.get(f"{server.url}/readyz", timeout=5).status_code == 503
        resp = requests.get(f"{server.url}/v1/model", timeout=5)
        assert resp.status_code == 503 and resp.json()["error"] == "ModelUnavailable"
        assert "no-such-model" in resp.json()["message"]
    finally:
        server.stop()


# --------------------------------------------------------------------------- model info
@slow
def test_model_info_from_a_directory(auth, client, physio_model):
    info = client.get(f"{auth.url}/v1/model", timeout=10).json()
    assert info["name"] == "physionet" and info["version"] is None
    assert info["variables"] == physio_model.variables and len(info["variables"]) == 35
    assert info["window"] == 48 and info["history_steps"] == 0
    assert info["frequency"] == physio_model.freq.to_str() == "60"
    assert info["metrics"]["val_loss"] == pytest.approx(physio_model.info["final"]["val_loss"])
    assert info["limits"]["max_samples"] == 16 and info["limits"]["one_window_horizon"] == 47
    assert info["auth"] is True


@slow
def test_model_info_from_the_registry_default_uri(open_server, models, pm25_model):
    info = requests.get(f"{open_server.url}/v1/model", timeout=10).json()
    assert info["uri"] == "models:/pm25-svc@champion"
    assert (info["name"], info["version"], info["alias"]) == (
        "pm25-svc",
        models["version"],
        "champion",
    )
    assert info["run_id"] == models["run_id"]
    assert set(info["aliases"]) == {"champion", "challenger"}
    assert "val_loss" in info["metrics"]
    assert info["variables"] == pm25_model.variables
    assert (info["window"], info["frequency"]) == (24, pm25_model.freq.to_str())


# --------------------------------------------------------------------------- impute
@slow
def test_impute_parquet_keeps_observed_values_and_matches_the_library(
    auth, client, physio, physio_model
):
    df = physio["test"]
    form = {k: str(v) for k, v in SAMPLING.items()}
    out = _read(client.post(f"{auth.url}/v1/impute", files=_upload(_parquet(df)), data=form))

    key = ["series_id", "timestamp", "variable"]
    merged = df.merge(out, on=key, how="left", suffixes=("_in", ""))
    assert (merged["value"].to_numpy() == merged["value_in"].to_numpy()).all()  # bit-identical
    assert not merged["imputed"].any()
    assert out["imputed"].sum() == len(out) - len(df) > 0
    assert out["value"].notna().all()
    _check_bounds(out, "value")
    observed = out[~out["imputed"]]
    assert (observed["lo_90"] == observed["value"]).all()

    expected = physio_model.impute(df, levels=[50, 90], n_samples=4, steps=3, seed=7).frame
    _same(out, expected)


@slow
def test_impute_json_gives_the_parquet_columns_and_values(auth, client, physio, physio_model):
    wide = _wide(physio["test"], physio_model.variables)
    body = {"records": to_records(wide), **SAMPLING}
    resp = client.post(f"{auth.url}/v1/impute/json", json=body, timeout=60)
    assert resp.status_code == 200, resp.text
    payload = resp.json()
    assert payload["model"]["name"] == "physionet"
    got = pd.DataFrame(payload["records"])

    via_parquet = _read(
        client.post(
            f"{auth.url}/v1/impute",
            files=_upload(_parquet(wide)),
            data={k: str(v) for k, v in SAMPLING.items()},
        )
    )
    assert list(got.columns) == list(via_parquet.columns)
    _same(got, via_parquet)
    hr = got.set_index(["series_id", "timestamp"])
    given = wide.set_index(["series_id", "timestamp"])["HR"].dropna()
    assert (hr.loc[given.index, "HR"] == given).all()
    assert not hr.loc[given.index, "HR_imputed"].any() and hr["HR_imputed"].any()
    _check_bounds(got, "HR", "HR_")


@slow
def test_impute_leaves_long_gaps_open_on_request(auth, client, physio, physio_model):
    wide = _wide(physio["test"], physio_model.variables)
    body = {"records": to_records(wide), **SAMPLING, "max_gap": 2, "open_edges": True}
    resp = client.post(f"{auth.url}/v1/impute/json", json=body, timeout=60)
    assert resp.status_code == 200, resp.text
    payload = resp.json()
    got = pd.DataFrame(payload["records"])
    expected = physio_model.impute(
        wide, levels=[50, 90], n_samples=4, steps=3, seed=7, max_gap=2, fill_edges=False
    ).frame
    _same(got, expected)
    left = int(expected[physio_model.variables].isna().to_numpy().sum())
    assert payload["left_open"] == left > 0
    via_parquet = _read(
        client.post(
            f"{auth.url}/v1/impute",
            files=_upload(_parquet(wide)),
            data={**{k: str(v) for k, v in SAMPLING.items()}, "max_gap": "2", "open_edges": "true"},
        )
    )
    _same(via_parquet, expected)
    bad = client.post(f"{auth.url}/v1/impute/json", json={**body, "max_gap": -1}, timeout=60)
    assert 400 <= bad.status_code < 500 and "max_gap" in bad.text


@slow
def test_return_samples_as_json_and_as_a_zip(auth, client, physio):
    df = physio["test"][physio["test"]["series_id"] == physio["test"]["series_id"].iloc[0]]
    form = {**{k: str(v) for k, v in SAMPLING.items()}, "return_samples": "true"}
    resp = client.post(f"{auth.url}/v1/impute", files=_upload(_parquet(df)), data=form)
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(resp.content)) as zf:
        assert sorted(zf.namelist()) == ["result.parquet", "samples.parquet"]
        result = pd.read_parquet(io.BytesIO(zf.read("result.parquet")))
        samples = pd.read_parquet(io.BytesIO(zf.read("samples.parquet")))
    assert len(samples) == 4 * len(result)

    body = {"records": to_records(df), **SAMPLING, "return_samples": True}
    payload = client.post(f"{auth.url}/v1/impute/json", json=body, timeout=60).json()
    assert len(payload["samples"]) == len(samples)
    assert len(payload["records"]) == len(result)


@slow
def test_impute_json_returns_the_trajectory_the_library_records(auth, client, physio, physio_model):
    df = physio["test"][physio["test"]["series_id"] == physio["test"]["series_id"].iloc[0]]
    body = {"records": to_records(df), **SAMPLING, "return_trajectory": True}
    body["trajectory_steps"] = [0, 1, 3]
    resp = client.post(f"{auth.url}/v1/impute/json", json=body, timeout=60)
    assert resp.status_code == 200, resp.text
    got = pd.DataFrame(resp.json()["trajectory"])
    expected = physio_model.impute(
        df, levels=[50, 90], n_samples=4, steps=3, seed=7, return_trajectory=True,
        trajectory_steps=[0, 1, 3],
    ).trajectory  # fmt: skip
    assert sorted(got["step"].unique()) == [0, 1, 3] and got["sample"].max() == 2
    _same(got, expected)


# --------------------------------------------------------------------------- forecast
@slow
def test_forecast_pm25_parquet(open_server, pm25, pm25_model):
    df = pm25.iloc[500:600]
    form = {**{k: str(v) for k, v in SAMPLING.items()}, "horizon": "6"}
    out = _read(
        requests.post(f"{open_server.url}/v1/forecast", files=_upload(_parquet(df)), data=form)
    )
    last = df["timestamp"].max()
    assert list(out["timestamp"]) == [last + pd.Timedelta(hours=h) for h in range(1, 7)]
    for station in pm25_model.variables:
        assert out[station].notna().all() and f"{station}_mean" in out
        _check_bounds(out, station, f"{station}_")
    expected = pm25_model.forecast(df, 6, levels=[50, 90], n_samples=4, steps=3, seed=7).frame
    _same(out, expected)


@slow
def test_forecast_pm25_json(open_server, pm25, pm25_model):
    df = pm25.iloc[500:600]
    body = {"records": to_records(df), "horizon": 6, **SAMPLING}
    resp = requests.post(f"{open_server.url}/v1/forecast/json", json=body, timeout=60)
    assert resp.status_code == 200, resp.text
    payload = resp.json()
    model = payload["model"]
    assert (model["name"], model["version"], model["alias"]) == ("pm25-svc", "1", "champion")
    got = pd.DataFrame(payload["records"])
    assert got["timestamp"].iloc[0] == (df["timestamp"].max() + pd.Timedelta(hours=1)).isoformat()
    expected = pm25_model.forecast(df, 6, levels=[50, 90], n_samples=4, steps=3, seed=7).frame
    _same(got.assign(timestamp=pd.to_datetime(got["timestamp"])), expected)


@slow
def test_what_the_library_warns_about_reaches_the_caller(auth, client, physio, physio_model):
    wide = _wide(physio["test"], physio_model.variables)
    body = {"records": to_records(wide), **SAMPLING}
    resp = client.post(f"{auth.url}/v1/impute/json", json=body, timeout=60)
    assert resp.status_code == 200 and resp.json()["warnings"] == []  # its own sampler
    moved = {**SAMPLING, "steps": 2}  # the calibration was fitted with 3 steps
    resp = client.post(f"{auth.url}/v1/impute/json", json={**body, **moved}, timeout=60)
    assert resp.status_code == 200, resp.text
    said = resp.json()["warnings"]
    assert said == physio_model.caveats("impute", n_samples=4, steps=2, seed=7)
    assert len(said) == 1 and "steps 3 -> 2" in said[0]
    resp = client.post(
        f"{auth.url}/v1/forecast",
        files=_upload(_parquet(wide)),
        data={**{k: str(v) for k, v in moved.items()}, "horizon": "3"},
    )
    _read(resp)
    assert "steps 3 -> 2" in resp.headers[WARNINGS_HEADER]
    assert json.loads(resp.headers[WARNINGS_HEADER]) == physio_model.caveats(
        "forecast", n_samples=4, steps=2, seed=7
    )
    resp = client.post(
        f"{auth.url}/v1/impute",
        files=_upload(_parquet(wide)),
        data={k: str(v) for k, v in SAMPLING.items()},
    )
    _read(resp)
    assert WARNINGS_HEADER not in resp.headers


@slow
def test_horizon_below_one_step_is_400(open_server, pm25):
    form = {"horizon": "0", "n_samples": "2"}
    resp = requests.post(
        f"{open_server.url}/v1/forecast", files=_upload(_parquet(pm25.iloc[:100])), data=form
    )
    assert resp.status_code == 400
    assert resp.json()["error"] == "RangeError" and "horizon" in resp.json()["message"]


# --------------------------------------------------------------------------- guard rails
def _cases() -> dict[str, Callable[[pd.DataFrame], dict[str, Any]]]:
    """Request keyword arguments per bad request, built from the held-out stays."""

    def upload(df: pd.DataFrame | bytes, path: str = "/v1/impute", **form: Any) -> dict:
        body = df if isinstance(df, bytes) else _parquet(df)
        return {"path": path, "files": _upload(body), "data": form}

    def unknown(df: pd.DataFrame) -> dict:
        extra = df.iloc[:2].assign(variable="Foo")
        return upload(pd.concat([df, extra]))

    def duplicate(df: pd.DataFrame) -> dict:
        return upload(pd.concat([df, df.iloc[:1].assign(value=-1.0)]))

    def many_rows(df: pd.DataFrame) -> dict:
        n = 20_001
        rows = {"series_id": 1, "timestamp": np.arange(n), "variable": "HR", "value": 1.0}
        return upload(pd.DataFrame(rows))

    def many_series(df: pd.DataFrame) -> dict:
        return upload(df.iloc[:6].assign(series_id=range(6)))

    rng = np.random.default_rng(0)
    big = b"PAR1" + rng.bytes(1_200_000) + b"PAR1"
    return {
        "not-parquet": lambda df: upload(b"series_id,timestamp\n1,2\n"),
        "unreadable-parquet": lambda df: upload(b"PAR1" + b"\x00garbage" * 10 + b"PAR1"),
        "missing-column": lambda df: upload(df.drop(columns=["timestamp"])),
        "unknown-variable": unknown,
        "extra-wide-column": lambda df: upload(
            pd.DataFrame({"series_id": [1], "timestamp": [0], "HR": [80.0], "bogus": [1.0]})
        ),
        "duplicate-timestamps": duplicate,
        "too-large": lambda df: upload(big),
        "too-many-rows": many_rows,
        "too-many-series": many_series,
        "too-many-samples": lambda df: upload(df, n_samples="17"),
        "horizon-over-limit": lambda df: upload(df, "/v1/forecast", horizon="13"),
        "bad-steps": lambda df: upload(df, steps="0"),
        "bad-levels": lambda df: upload(df, levels="fifty"),
        "bad-type": lambda df: upload(df, n_samples="many"),
        "url-instead-of-file": lambda df: {
            "path": "/v1/impute",
            "files": {"data": (None, "https://example.com/x.parquet")},
        },
        "text-instead-of-file": lambda df: {
            "path": "/v1/impute",
            "files": {"data": (None, "series_id,timestamp")},
        },
        "no-file": lambda df: {"path": "/v1/impute", "files": {"n_samples": (None, "4")}},
        "form-urlencoded": lambda df: {"path": "/v1/impute", "data": {"data": "https://x.y/z"}},
        "json-to-file-route": lambda df: {"path": "/v1/impute", "json": {"data": "x"}},
        "json-without-records": lambda df: {"path": "/v1/impute/json", "json": {"rows": []}},
        "json-unknown-variable": lambda df: {
            "path": "/v1/impute/json",
            "json": {"records": [{"series_id": 1, "timestamp": 0, "Foo": 1.0}]},
        },
        "trajectory-too-many-states": lambda df: {
            "path": "/v1/impute/json",
            "json": {"records": to_records(df.iloc[:50]), "return_trajectory": True}
            | {"trajectory_steps": 30},
        },
    }


GUARDS = {  # case: (status, error, words the message must contain)
    "not-parquet": (400, "NotParquet", "not a parquet file"),
    "unreadable-parquet": (400, "UnreadableParquet", "cannot read the parquet"),
    "missing-column": (422, "MissingColumnError", "'timestamp'"),
    "unknown-variable": (422, "UnknownVariableError", "Foo"),
    "extra-wide-column": (422, "UnknownVariableError", "bogus"),
    "duplicate-timestamps": (422, "DuplicateTimestampError", "duplicate"),
    "too-large": (413, "PayloadTooLarge", "TSDIFF_MAX_UPLOAD_MB"),
    "too-many-rows": (413, "TooManyRows", "20001 rows"),
    "too-many-series": (413, "TooManySeries", "6 series"),
    "too-many-samples": (400, "LimitExceeded", "n_samples 17"),
    "horizon-over-limit": (400, "LimitExceeded", "horizon 13"),
    "bad-steps": (400, "SamplingOptionError", "steps"),
    "bad-levels": (400, "ConfigError", "levels"),
    "bad-type": (400, "ValidationError", "n_samples"),
    "url-instead-of-file": (400, "UrlNotAccepted", "does not fetch URLs"),
    "text-instead-of-file": (400, "NotAFile", "must be a file upload"),
    "no-file": (400, "MissingFile", "'data'"),
    "form-urlencoded": (415, "UnsupportedMediaType", "multipart/form-data"),
    "json-to-file-route": (415, "UnsupportedMediaType", "multipart/form-data"),
    "json-without-records": (400, "ValidationError", "records"),
    "json-unknown-variable": (422, "UnknownVariableError", "Foo"),
    "trajectory-too-many-states": (400, "LimitExceeded", "at most 21 states"),
}


@slow
@pytest.mark.parametrize("case", sorted(GUARDS))
def test_guard_rails_answer_4xx_naming_the_problem(auth, client, physio, case):
    status, error, words = GUARDS[case]
    kw = _cases()[case](physio["test"])
    resp = client.post(auth.url + kw.pop("path"), timeout=60, **kw)
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error"] == error
    assert words in body["message"]


@slow
def test_metrics_count_imputed_cells_and_request_rows(auth, client, physio):
    df = physio["test"]
    form = {k: str(v) for k, v in SAMPLING.items()}
    out = _read(client.post(f"{auth.url}/v1/impute", files=_upload(_parquet(df)), data=form))
    text = requests.get(f"{auth.url}/metrics", timeout=10).text
    cells = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith('tsdiff_imputed_cells_total{endpoint="impute"}')
    ]
    assert cells and cells[0] >= out["imputed"].sum() > 0
    assert 'tsdiff_request_rows_bucket{endpoint="impute",le="10000.0"}' in text


# --------------------------------------------------------------------------- packaging
@slow
def test_bentoml_build_packages_service_library_and_model(tmp_path, models):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    shutil.copy(ROOT / "bentofile.yaml", ctx)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for pkg in ("services", "tsdiff"):
        shutil.copytree(ROOT / pkg, ctx / pkg, ignore=ignore)
    shutil.copytree(models["dir"] / "physionet", ctx / "build" / "bento-model")
    env = _server_env(tmp_path / "home")
    proc = subprocess.run(
        [sys.executable, "-m", "bentoml", "build", str(ctx)],
        cwd=ctx,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    store = tmp_path / "home" / "bentos" / "tsdiff"
    (bento,) = [p for p in store.iterdir() if p.is_dir() and not p.is_symlink()]
    src = bento / "src"
    for rel in ("services/service.py", "tsdiff/model.py", "build/bento-model/weights.safetensors"):
        assert (src / rel).is_file(), rel
    meta = (bento / "bento.yaml").read_text()
    assert "service: tsdiff.services.service:TSDiffService" in meta
    for route in ("/v1/impute", "/v1/forecast", "/v1/impute/json", "/v1/forecast/json"):
        assert f"route: {route}\n" in meta


# --------------------------------------------------------------------------- fast units
def test_settings_from_env_defaults_and_errors():
    s = Settings.from_env({})
    assert s.model_uri == "models:/physionet-demo@champion" and s.api_keys == ()
    s = Settings.from_env(
        {"TSDIFF_MODEL_NAME": "air", "TSDIFF_API_KEYS": " a, ,b ", "TSDIFF_MAX_ROWS": "10"}
    )
    assert (s.model_uri, s.api_keys, s.max_rows) == ("models:/air@champion", ("a", "b"), 10)
    assert Settings.from_env({"TSDIFF_MODEL_URI": "/m"}).model_uri == "/m"
    with pytest.raises(ConfigError, match="TSDIFF_MAX_SAMPLES"):
        Settings.from_env({"TSDIFF_MAX_SAMPLES": "lots"})
    with pytest.raises(ConfigError, match="positive"):
        Settings.from_env({"TSDIFF_MAX_HORIZON": "0"})


def test_levels_and_records_helpers():
    assert parse_levels("50, 90") == [50, 90] and parse_levels(80) == [80]
    assert parse_levels([50, 90]) == [50, 90] and parse_levels(None) is None
    with pytest.raises(ConfigError, match="levels"):
        parse_levels("a,b")
    df = pd.DataFrame(
        {"t": pd.to_datetime(["2024-01-01 01:00"]).tz_localize("Asia/Shanghai"), "x": [np.nan]}
    )
    assert to_records(df) == [{"t": "2024-01-01T01:00:00+08:00", "x": None}]
    json.dumps(to_records(df.assign(flag=np.array([True]), n=np.int64(3))))


def test_trajectory_options_defaults_and_limits():
    assert trajectory_options(False, None, None) == {}
    assert trajectory_options(True, None, None) == {
        "return_trajectory": True,
        "trajectory_steps": 6,
        "trajectory_samples": 3,
    }
    assert trajectory_options(True, [0, 5], 8)["trajectory_steps"] == [0, 5]
    for args in ((True, 22, None), (True, list(range(22)), 1), (True, 2, 9), (False, 4, None)):
        with pytest.raises(ServiceError):
            trajectory_options(*args)


def test_serve_command_resolves_paths_and_targets_the_service(tmp_path, monkeypatch):
    (tmp_path / "m").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    args = build_parser().parse_args(["serve", "--model", "m", "--port", "4321"])
    argv, env = serve_command(args)
    assert argv[1:5] == ["-m", "bentoml", "serve", "tsdiff.services.service:TSDiffService"]
    assert Path(argv[argv.index("--working-dir") + 1]).resolve() == tmp_path.resolve()  # cwd
    assert argv[-4:] == ["--host", "127.0.0.1", "--port", "4321"]
    assert env["TSDIFF_MODEL_URI"] == str(tmp_path / "m")
    assert env["MLFLOW_TRACKING_URI"].endswith(f"{tmp_path}/.tsdiff/mlflow.db")
    assert main(["serve", "--model", str(tmp_path / "absent")]) == 2
    # a shipped model by its short name
    argv, env = serve_command(build_parser().parse_args(["serve", "--model", "pm25-beijing"]))
    assert env["TSDIFF_MODEL_URI"] == str((SHIPPED_DIR / "pm25-beijing").resolve())
