"""Reliability and trust of the HTTP service, against real ``bentoml serve`` processes.

- fuzzing: over 1,000 requests generated from the server's own OpenAPI schema plus a
  corpus of hostile files; no answer is a 5xx, every 4xx names its problem, and the
  server is still ready afterwards;
- access: every ``/v1`` route needs the key; the model comes from configuration only;
  nothing a request can reach unpickles;
- crashes: a server killed mid-request leaves no file behind once restarted.
"""

from __future__ import annotations

import ast
import io
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests

from tsdiff.model import TSDiff
from tsdiff.services.process import Server, bentoml_serve, free_port, server_env

from .fuzzing import ModelShape, fuzz, good_frame, iter_routes, parquet, records

ROOT = Path(__file__).resolve().parents[1]

KEY = "fuzz-key"
FUZZ_LIMITS = {
    "TSDIFF_MAX_UPLOAD_MB": "2",
    "TSDIFF_MAX_ROWS": "2000",
    "TSDIFF_MAX_SERIES": "20",
    "TSDIFF_MAX_SAMPLES": "4",
    "TSDIFF_MAX_CELLS": "50000",
}
slow = pytest.mark.slow


@pytest.fixture(scope="module")
def model_dir(fitted: TSDiff, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fitted.save(tmp_path_factory.mktemp("robust-model") / "pm25")


@pytest.fixture(scope="module")
def server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A keyed server with small limits, so that every generated request stays cheap."""
    d = tmp_path_factory.mktemp("robust-run")
    port = free_port()
    env = server_env(
        d / "home", TSDIFF_MODEL_URI=str(model_dir), TSDIFF_API_KEYS=KEY, **FUZZ_LIMITS
    )
    srv = Server(bentoml_serve(port), env, port, d / "server.log")
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def client() -> Iterator[requests.Session]:
    with requests.Session() as s:
        s.headers["Authorization"] = f"Bearer {KEY}"
        yield s


# --------------------------------------------------------------------------- fuzzing
@slow
def test_fuzzed_and_hostile_requests_never_get_a_5xx(server: Server, client: requests.Session):
    report = fuzz(server.url, client, examples=90, max_samples=4, seed=0, large=False)
    summary = report.summary()
    assert summary["requests"] >= 1000, summary
    assert not report.server_errors(), [vars(o) for o in report.server_errors()[:10]]
    assert not report.unnamed_4xx(), [vars(o) for o in report.unnamed_4xx()[:10]]
    assert report.readyz_after == 200
    counts = report.status_counts()
    assert counts.get("200", 0) > 20 and counts.get("422", 0) > 50, counts  # both paths reached

    # the hostile corpus: the answer that names each problem
    got = {(o.name, o.path): o for o in report.outcomes if o.source == "corpus"}
    expected = {
        "truncated-0.5": (400, "NotParquet", "not a parquet file"),
        "truncated-keep-magic": (400, "UnreadableParquet", "cannot read the parquet"),
        "csv-renamed": (400, "NotParquet", "PAR1"),
        "zero-rows": (422, "EmptyInputError", "no rows"),
        "nan-everywhere": (422, "NoObservedValuesError", "no observed value"),
        "inf-everywhere": (422, "NonNumericError", "infinite"),  # JSON has no inf: see below
        "strings-in-values": (422, "NonNumericError", "not numeric"),
        "year-9999": (422, "TimestampError", "out of range"),
        "year-2200": (413, "GridTooLarge", "TSDIFF_MAX_CELLS"),
        "mixed-zones": (422, "TimestampError", "time zones"),
        "declared-2GB": (413, "PayloadTooLarge", "TSDIFF_MAX_UPLOAD_MB"),
        "million-columns": (413, "PayloadTooLarge", "TSDIFF_MAX_UPLOAD_MB"),
        "columns-2000": (422, "UnknownVariableError", "'c0'"),
        "records-list-ids": (422, "DataError", "not numbers or strings"),
        "out-of-order": (200, None, None),
    }
    for name, (status, error, words) in expected.items():
        hits = [o for (n, path), o in got.items() if n == name]
        if name == "inf-everywhere":  # JSON cannot carry inf; records send it as null
            json_hits = [o for o in hits if o.path.endswith("/json")]
            assert {(o.status, o.error) for o in json_hits} == {(422, "NoObservedValuesError")}
            hits = [o for o in hits if o not in json_hits]
        assert hits, name
        for o in hits:
            assert (o.status, o.error) == (status, error), (name, vars(o))
            assert words is None or words in (o.message or ""), (name, o.message)


# --------------------------------------------------------------------------- access
@slow
def test_every_v1_route_needs_a_valid_key(server: Server, client: requests.Session):
    schema = requests.get(f"{server.url}/docs.json", timeout=10).json()
    routes = list(iter_routes(schema))
    assert {p for _, p in routes} >= {
        "/v1/impute",
        "/v1/forecast",
        "/v1/impute/json",
        "/v1/forecast/json",
        "/v1/model",
    }
    for method, path in routes:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {KEY}"}):
            resp = requests.request(method, server.url + path, headers=headers, timeout=10)
            assert resp.status_code == 401, (method, path, headers, resp.text)
            assert resp.json()["error"] == "Unauthorized" and resp.json()["message"]
        resp = client.request(method, server.url + path, timeout=30)
        assert resp.status_code != 401, (method, path, resp.text)


@slow
def test_the_model_comes_from_configuration_never_from_a_request(
    server: Server, client: requests.Session, model_dir: Path, tmp_path: Path
):
    schema = requests.get(f"{server.url}/docs.json", timeout=10).json()
    for path, ops in schema["paths"].items():
        for op in ops.values():
            for content in op.get("requestBody", {}).get("content", {}).values():
                props = _properties(schema, content["schema"])
                suspicious = [p for p in props if re.search(r"model|uri|url|path|dir", p, re.I)]
                assert not suspicious, (path, suspicious)
    # a request that names another model is answered by the configured one
    other = tmp_path / "other"
    TSDiff.load(model_dir).save(other)
    info = client.get(f"{server.url}/v1/model", timeout=10).json()
    shape = ModelShape.from_info(info)
    body = {"records": records(good_frame(shape)), "horizon": 3, "n_samples": 2}
    body.update(model=str(other), model_uri=str(other), uri="models:/x@champion")
    resp = client.post(f"{server.url}/v1/forecast/json", json=body, timeout=60)
    assert resp.status_code == 200, resp.text
    assert resp.json()["model"]["name"] == "pm25"
    form = {"model_uri": str(other), "horizon": "3"}
    files = {"data": ("x.parquet", parquet(good_frame(shape)), "application/octet-stream")}
    assert client.post(f"{server.url}/v1/forecast", files=files, data=form).status_code == 200
    log = server.log.read_text(errors="replace")
    assert log.count("loading tsdiff model from") == 1 and str(other) not in log


def _properties(schema: dict[str, Any], node: dict[str, Any]) -> list[str]:
    if "$ref" in node:
        for part in node["$ref"].lstrip("#/").split("/"):
            schema = schema[part]
        node = schema
    return list(node.get("properties", {}))


UNPICKLERS = {
    ("pickle", "load"),
    ("pickle", "loads"),
    ("cloudpickle", "load"),
    ("cloudpickle", "loads"),
    ("joblib", "load"),
    ("pd", "read_pickle"),
    ("pandas", "read_pickle"),
    ("dill", "load"),
    ("dill", "loads"),
}


def test_nothing_a_request_reaches_unpickles() -> None:
    """Static: the service and the library never unpickle, and ``torch.load`` (training
    checkpoints) always passes ``weights_only=True``; ``np.load`` never allows pickles."""
    files = [*sorted((ROOT / "services").glob("*.py")), *sorted((ROOT / "tsdiff").rglob("*.py"))]
    files += sorted((ROOT / "pipelines").glob("*.py"))
    assert len(files) > 20
    problems = []
    for f in files:
        tree = ast.parse(f.read_text(), str(f))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                if any(n.split(".")[0] in ("pickle", "cloudpickle", "dill") for n in names):
                    problems.append(f"{f}:{node.lineno} imports an unpickler")
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            owner = node.func.value
            name = (owner.id if isinstance(owner, ast.Name) else "", node.func.attr)
            kw = {k.arg: k.value for k in node.keywords}
            if name in UNPICKLERS:
                problems.append(f"{f}:{node.lineno} calls {'.'.join(name)}")
            if name == ("torch", "load"):
                wo = kw.get("weights_only")
                if not (isinstance(wo, ast.Constant) and wo.value is True):
                    problems.append(f"{f}:{node.lineno} torch.load without weights_only=True")
            if name[1] == "load" and name[0] in ("np", "numpy"):
                ap = kw.get("allow_pickle")
                if ap is not None and not (isinstance(ap, ast.Constant) and ap.value is False):
                    problems.append(f"{f}:{node.lineno} np.load with allow_pickle")
    assert not problems, problems


# --------------------------------------------------------------------------- crashes
def _leftovers(tmp: Path, alive: set[int]) -> list[str]:
    """Files under ``tmp`` not inside the scratch folder of a live worker."""
    out = []
    for p in tmp.rglob("*"):
        rel = p.relative_to(tmp)
        top = rel.parts[0]
        if top.startswith("tsdiff-serve-") and int(top.rsplit("-", 1)[1]) in alive:
            continue
        if p.is_file():
            out.append(str(rel))
    return sorted(out)


def _scratch_pids(tmp: Path) -> set[int]:
    return {int(p.name.rsplit("-", 1)[1]) for p in tmp.glob("tsdiff-serve-*")}


@slow
def test_a_server_killed_mid_request_leaves_nothing_and_serves_again(
    model_dir: Path, tmp_path: Path
):
    tmp, home, cwd = tmp_path / "tmp", tmp_path / "home", tmp_path / "cwd"
    tmp.mkdir()
    cwd.mkdir()
    env = server_env(home, TSDIFF_MODEL_URI=str(model_dir), TMPDIR=str(tmp))

    def start(name: str) -> Server:
        port = free_port()
        argv = [*bentoml_serve(port), "--working-dir", str(ROOT)]
        srv = Server(argv, env, port, tmp_path / f"{name}.log", cwd=cwd)
        srv.wait_ready()
        return srv

    info = None
    first = start("first")
    try:
        info = requests.get(f"{first.url}/v1/model", timeout=10).json()
        shape = ModelShape.from_info(info)
        heavy = good_frame(shape, rows=400, series=12)  # seconds of sampling at 50 steps
        files = {"data": ("big.parquet", parquet(heavy), "application/octet-stream")}
        form = {"n_samples": "100", "steps": "50"}
        answers: list[Any] = []

        def call() -> None:
            try:
                answers.append(
                    requests.post(f"{first.url}/v1/impute", files=files, data=form, timeout=120)
                )
            except requests.RequestException as e:
                answers.append(e)

        thread = threading.Thread(target=call)
        thread.start()
        deadline = time.monotonic() + 60
        while not list(tmp.rglob("*.parquet")) and time.monotonic() < deadline:
            time.sleep(0.05)
        uploads = [str(p.relative_to(tmp)) for p in tmp.rglob("*.parquet")]
        assert uploads, "the request never reached the server"
        time.sleep(0.5)  # the request is now computing
        assert not answers, "the request finished before the kill; make it heavier"
        first.kill()
        thread.join(60)
    finally:
        first.stop()
    assert answers and isinstance(answers[0], requests.RequestException)
    dead = _scratch_pids(tmp)
    assert dead and _leftovers(tmp, set()), "the killed request left its upload (expected)"

    second = start("second")
    try:
        live = _scratch_pids(tmp) - dead
        assert live and not (_scratch_pids(tmp) & dead), "dead workers' folders removed"
        assert _leftovers(tmp, live) == []
        small = good_frame(ModelShape.from_info(info), rows=30, series=1)
        files = {"data": ("x.parquet", parquet(small), "application/octet-stream")}
        resp = requests.post(f"{second.url}/v1/impute", files=files, timeout=60)
        assert resp.status_code == 200, resp.text
        assert len(pd.read_parquet(io.BytesIO(resp.content))) == 30
    finally:
        second.stop()
    assert _leftovers(tmp, set()) == []  # a clean stop removes its own folder too
    assert list(cwd.iterdir()) == []


# --------------------------------------------------------------------------- fast units
def test_grid_steps_and_unhashable_values_are_typed_errors() -> None:
    from tsdiff.data.grid import grid_steps, to_panel
    from tsdiff.errors import DataError, TimestampError
    from tsdiff.services.settings import Settings

    df = pd.DataFrame(
        {
            "series_id": ["a", "a", "b"],
            "timestamp": pd.to_datetime(["2014-05-01", "2014-05-02", "2200-01-01"]),
            "v": [1.0, 2.0, 3.0],
        }
    )
    assert grid_steps(df.iloc[:2], freq="1h") == 25
    assert grid_steps(df, freq="1h") == 25 + 1  # series b: one step
    assert grid_steps(df.assign(series_id="a"), freq="1h") > 1_600_000  # one stray row
    for col, value, err in (
        ("series_id", [1], DataError),
        ("series_id", {"a": 1}, DataError),
        ("timestamp", [1, 2], TimestampError),
    ):
        bad = df.astype({col: object})
        bad[col] = [value] * len(df)
        with pytest.raises(err):
            to_panel(bad)
    assert Settings.from_env({"TSDIFF_MAX_CELLS": "10"}).limits()["max_cells"] == 10
