"""Fuzzing the HTTP service: requests generated from its OpenAPI schema, and hostile files.

Two sources, one verdict per response (:class:`Outcome`):

- **schema**: schemathesis reads ``/docs.json`` from the running server and generates
  valid and invalid requests for every ``/v1`` operation. The schema is first enriched
  with what it cannot express (record fields named after the model's variables and
  columns, a parquet generator for the ``data`` upload, small sample counts), so the
  generated requests reach the library instead of stopping at type validation.
- **corpus**: hand-made hostile inputs (truncated and corrupted parquet, CSV renamed
  ``.parquet``, zero rows, a million columns, NaN/inf everywhere, timestamps out of
  order or in the year 9999, mixed time zones, strings in numeric columns, a declared
  2 GB body, ...), each sent to the parquet and JSON endpoints.

Used by ``tests/test_fuzz.py`` (asserts the properties) and
``benchmarks/fuzz_bench.py`` (records the figures in ``benchmarks/results/fuzz.json``).
"""

from __future__ import annotations

import copy
import io
import json
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import requests

PARQUET_FORMAT = "x-tsdiff-parquet"
JSON_ROUTES = ("/v1/impute/json", "/v1/forecast/json")
FILE_ROUTES = ("/v1/impute", "/v1/forecast")


@dataclass
class Outcome:
    """One request and what came back."""

    source: str
    name: str
    path: str
    status: int
    error: str | None = None
    message: str | None = None
    seconds: float = 0.0

    @property
    def names_problem(self) -> bool:
        """A 4xx whose JSON body has an error type and a non-trivial message."""
        return bool(self.error) and bool(self.message) and len(str(self.message).strip()) >= 10


@dataclass
class FuzzReport:
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0
    readyz_after: int | None = None

    def add(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)

    def status_counts(self) -> dict[str, int]:
        counts = Counter(str(o.status) for o in self.outcomes)
        return dict(sorted(counts.items()))

    def server_errors(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status >= 500]

    def unnamed_4xx(self) -> list[Outcome]:
        return [o for o in self.outcomes if 400 <= o.status < 500 and not o.names_problem]

    def summary(self) -> dict[str, Any]:
        by_source = Counter(o.source for o in self.outcomes)
        errors = Counter(o.error for o in self.outcomes if o.error)
        return {
            "requests": len(self.outcomes),
            "status_counts": self.status_counts(),
            "by_source": dict(sorted(by_source.items())),
            "error_types": dict(errors.most_common()),
            "server_errors": len(self.server_errors()),
            "unnamed_4xx": len(self.unnamed_4xx()),
            "readyz_after": self.readyz_after,
            "seconds": round(self.seconds, 1),
        }


def outcome(source: str, name: str, path: str, resp: requests.Response, t0: float) -> Outcome:
    error = message = None
    if resp.status_code >= 400:
        try:
            body = resp.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            error, message = body.get("error"), body.get("message")
            error = str(error) if error is not None else None
            message = str(message) if message is not None else None
    return Outcome(source, name, path, resp.status_code, error, message, time.perf_counter() - t0)


# --------------------------------------------------------------------------- data
@dataclass(frozen=True)
class ModelShape:
    """What the served model expects, from ``GET /v1/model``."""

    variables: list[str]
    id_col: str
    time_col: str
    var_col: str
    value_col: str
    freq: str
    window: int

    @classmethod
    def from_info(cls, info: dict[str, Any]) -> ModelShape:
        c = info["columns"]
        return cls(
            list(info["variables"]),
            c["id"],
            c["time"],
            c["variable"],
            c["value"],
            info["frequency"],
            int(info["window"]),
        )


def good_frame(shape: ModelShape, rows: int = 30, series: int = 2, seed: int = 0) -> pd.DataFrame:
    """A valid wide panel with gaps, hourly datetimes (the fuzz model's kind of time)."""
    rng = np.random.default_rng(seed)
    times = pd.date_range("2014-05-01", periods=rows, freq=shape.freq)
    parts = []
    for s in range(series):
        vals = rng.normal(80, 30, (rows, len(shape.variables)))
        vals[rng.random(vals.shape) < 0.3] = np.nan
        part = pd.DataFrame(vals, columns=shape.variables)
        part.insert(0, shape.time_col, times)
        part.insert(0, shape.id_col, f"s{s}")
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def long_frame(shape: ModelShape, wide: pd.DataFrame) -> pd.DataFrame:
    out = wide.melt(
        id_vars=[shape.id_col, shape.time_col], var_name=shape.var_col, value_name=shape.value_col
    )
    return out.dropna(subset=[shape.value_col]).reset_index(drop=True)


def parquet(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    from tsdiff.services.payloads import to_records

    return to_records(df)


# --------------------------------------------------------------------------- corpus
@dataclass
class Probe:
    """One hostile request: route, what to send, and a short name for the report."""

    name: str
    path: str
    kwargs: dict[str, Any]
    raw: bytes | None = None  # a hand-written HTTP request, sent over a plain socket


def _corrupted(body: bytes, seed: int) -> bytes:
    """The file with a few bytes overwritten, magic bytes kept (so it passes the sniff)."""
    rng = np.random.default_rng(seed)
    b = bytearray(body)
    for i in rng.integers(4, len(b) - 4, size=1 + seed % 8):
        b[int(i)] = int(rng.integers(0, 256))
    return bytes(b)


def hostile_frames(shape: ModelShape) -> dict[str, pd.DataFrame | bytes]:
    """Hostile inputs, as frames (sent as parquet and as JSON records) or raw file bytes."""
    v, t, sid = shape.variables, shape.time_col, shape.id_col
    good = good_frame(shape)
    body = parquet(good)
    out: dict[str, pd.DataFrame | bytes] = {}
    for frac in (0.0, 0.1, 0.5, 0.9, 0.999):
        out[f"truncated-{frac}"] = body[: int(len(body) * frac)]
    out["truncated-keep-magic"] = body[: len(body) // 2] + b"PAR1"
    out["footer-only"] = b"PAR1" + body[-64:]
    for seed in range(24):
        out[f"corrupted-{seed}"] = _corrupted(body, seed)
    out["csv-renamed"] = good.to_csv(index=False).encode()
    out["json-renamed"] = good.to_json(orient="records").encode()
    out["empty-file"] = b""
    out["zero-rows"] = good.iloc[:0]
    out["zero-columns"] = pd.DataFrame(index=range(3))
    out["only-time"] = good[[t]]
    out["nan-everywhere"] = good.assign(**{c: np.nan for c in v})
    out["inf-everywhere"] = good.assign(**{c: np.inf for c in v})
    out["minus-inf-some"] = good.assign(**{v[0]: -np.inf})
    out["nan-timestamps"] = good.assign(**{t: pd.NaT})
    out["huge-values"] = good.assign(**{c: 1e308 for c in v})
    out["out-of-order"] = good.sample(frac=1.0, random_state=0)
    # microsecond timestamps: year 9999 is out of range at pandas 2's default nanoseconds
    good_us = good.astype({t: "datetime64[us]"})
    far = pd.Series([pd.Timestamp("9999-12-31 23:00")], dtype="datetime64[us]")
    out["year-9999"] = pd.concat([good_us, good_us.iloc[:1].assign(**{t: far.to_numpy()})])
    out["year-2200"] = pd.concat([good, good.iloc[:1].assign(**{t: pd.Timestamp("2200-01-01")})])
    out["year-1677"] = good.assign(**{t: pd.Timestamp("1677-09-22")})
    out["year-9999-text"] = good.assign(**{t: "9999-12-31T23:59:59"}).iloc[:1]
    out["mixed-zones"] = good.assign(
        **{
            t: [
                str(x) + ("+08:00" if i % 2 else "Z")
                for i, x in enumerate(good[t].dt.strftime("%Y-%m-%dT%H:%M:%S"))
            ]
        }
    )
    out["tz-and-naive"] = good.assign(
        **{t: [x.isoformat() + ("+00:00" if i % 3 else "") for i, x in enumerate(good[t])]}
    )
    out["numeric-timestamps"] = good.assign(**{t: np.arange(len(good)) * 60.0})
    out["bool-timestamps"] = good.assign(**{t: [True, False] * (len(good) // 2)})
    out["garbage-timestamps"] = good.assign(**{t: "not a time"})
    out["strings-in-values"] = good.assign(**{v[0]: "12.5 ug/m3"})
    out["numeric-strings"] = good.assign(**{c: "1.5" for c in v})
    out["mixed-types-values"] = good.assign(**{v[0]: ["x", 1.0] * (len(good) // 2)})
    out["bool-values"] = good.assign(**{v[0]: True})
    out["duplicate-rows"] = pd.concat([good, good.iloc[:3]])
    out["unknown-variable"] = good.assign(bogus=1.0)
    out["missing-time-column"] = good.drop(columns=[t])
    out["null-series-ids"] = good.assign(**{sid: None})
    out["many-series"] = good.assign(**{sid: [f"s{i}" for i in range(len(good))]})
    out["one-row"] = good.iloc[:1]
    out["long-layout"] = long_frame(shape, good)
    out["long-unknown-variable"] = long_frame(shape, good).assign(**{shape.var_col: "Foo"})
    out["long-null-values"] = long_frame(shape, good).assign(**{shape.value_col: np.nan})
    out["long-string-values"] = long_frame(shape, good).assign(**{shape.value_col: "high"})
    out["columns-2000"] = pd.DataFrame(
        np.ones((1, 2_000)), columns=[f"c{i}" for i in range(2_000)]
    ).assign(**{t: good[t].iloc[0]})
    return out


def million_columns_json(shape: ModelShape) -> bytes:
    """One record with a million keys (about 14 MB): refused by size, never parsed."""
    keys = ",".join(f'"c{i}":1' for i in range(1_000_000))
    return ('{"records":[{' + f'"{shape.time_col}":"2014-05-01T00:00:00",' + keys + "}]}").encode()


def many_columns_parquet(n: int) -> bytes:
    """A parquet file declaring ``n`` columns and no rows: its footer alone is large
    (a million columns take a minute to write and 155 MB)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([pa.field(f"c{i}", pa.int8()) for i in range(n)])
    buf = io.BytesIO()
    pq.write_table(schema.empty_table(), buf)
    return buf.getvalue()


def hostile_probes(shape: ModelShape, *, large: bool = True) -> list[Probe]:
    """Every hostile input to every endpoint it applies to, with a few parameter twists."""
    probes: list[Probe] = []
    frames = hostile_frames(shape)
    for name, item in frames.items():
        try:
            body = item if isinstance(item, bytes) else parquet(item)
        except (TypeError, ValueError):  # pyarrow.ArrowTypeError: no parquet for this one
            body = None
        for path in FILE_ROUTES if body is not None else ():
            form = {"n_samples": "2", "steps": "2"}
            if path.endswith("forecast"):
                form["horizon"] = "3"
            files = {"data": (f"{name}.parquet", body, "application/octet-stream")}
            probes.append(Probe(name, path, {"files": files, "data": form}))
        if isinstance(item, pd.DataFrame):
            try:
                recs = records(item)
            except (TypeError, ValueError):
                continue
            for path in JSON_ROUTES:
                payload: dict[str, Any] = {"records": recs, "n_samples": 2, "steps": 2}
                if path.endswith("forecast/json"):
                    payload["horizon"] = 3
                probes.append(Probe(name, path, {"data": _json(payload), "headers": _JSON}))
    good = records(good_frame(shape))
    body = parquet(good_frame(shape))
    twists: dict[str, dict[str, Any]] = {
        "n_samples-0": {"n_samples": 0},
        "n_samples-negative": {"n_samples": -5},
        "n_samples-huge": {"n_samples": 10**12},
        "steps-0": {"steps": 0},
        "steps-huge": {"steps": 10**9},
        "seed-huge": {"seed": 10**40},
        "seed-negative": {"seed": -(10**30)},
        "levels-0": {"levels": [0]},
        "levels-100": {"levels": "100"},
        "levels-text": {"levels": "a,b"},
        "levels-float": {"levels": [50.5]},
        "levels-nested": {"levels": [[50]]},
        "horizon-0": {"horizon": 0},
        "horizon-huge": {"horizon": 10**9},
        "horizon-negative": {"horizon": -1},
        "horizon-text": {"horizon": "six"},
        "model-uri-in-body": {"model": "/etc", "model_uri": "models:/other@champion"},
        "return-samples-text": {"return_samples": "maybe"},
    }
    for name, extra in twists.items():
        for path in JSON_ROUTES:
            payload = {"records": good, "n_samples": 2, "steps": 2, **extra}
            if path.endswith("forecast/json"):
                payload.setdefault("horizon", 3)
            probes.append(Probe(name, path, {"data": _json(payload), "headers": _JSON}))
        for path in FILE_ROUTES:
            form = {"n_samples": "2", "steps": "2"}
            if path.endswith("forecast"):
                form["horizon"] = "3"
            form.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in extra.items()})
            files = {"data": ("x.parquet", body, "application/octet-stream")}
            probes.append(Probe(f"form-{name}", path, {"files": files, "data": form}))
    bodies = {
        "not-json": b"{records: [",
        "json-array": b"[1, 2, 3]",
        "json-null": b"null",
        "records-not-list": b'{"records": {"a": 1}}',
        "records-of-lists": b'{"records": [[1, 2]]}',
        "records-nested-ids": b'{"records": [{"series_id": {"a": 1}, "timestamp": 1}]}',
        "records-list-ids": b'{"records": [{"series_id": [1], "timestamp": "2014-05-01"}]}',
        "records-list-times": b'{"records": [{"timestamp": [1, 2]}]}',
        "records-dict-values": b'{"records": [{"timestamp": "2014-05-01", "v": {"a": 1}}]}',
        "deeply-nested": b'{"records": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        "nan-literal": b'{"records": [{"timestamp": NaN}]}',
        "huge-number": b'{"records": [{"timestamp": 1e999999}]}',
        "invalid-utf8": b'{"records": [{"timestamp": "\xff\xfe"}]}',
    }
    for name, raw in bodies.items():
        for path in JSON_ROUTES:
            if path.endswith("forecast/json") and raw.startswith(b'{"records"'):
                raw = b'{"horizon": 3, ' + raw[1:]
            probes.append(Probe(name, path, {"data": raw, "headers": _JSON}))
    for path in FILE_ROUTES:
        probes += [
            Probe("no-content-type", path, {"data": b"PAR1xxxxPAR1"}),
            Probe("json-to-file-route", path, {"data": b"{}", "headers": _JSON}),
            Probe("bad-boundary", path, {"data": b"--x\r\n", "headers": _MULTIPART_BAD}),
            Probe("text-in-data", path, {"files": {"data": (None, "hello")}}),
            Probe("url-in-data", path, {"files": {"data": (None, "file:///etc/passwd")}}),
            Probe("two-files", path, {"files": [("data", ("a", body)), ("data", ("b", body))]}),
            Probe(
                "file-in-param", path, {"files": {"data": ("a", body), "n_samples": ("b", b"2")}}
            ),
        ]
    for path in (*FILE_ROUTES, *JSON_ROUTES):
        probes.append(Probe("declared-2GB", path, {}, raw=_declared_body(path, 2 * 1024**3)))
    big_json = million_columns_json(shape)
    for path in JSON_ROUTES:
        probes.append(Probe("million-columns", path, {"data": big_json, "headers": _JSON}))
    n = 1_000_000 if large else 100_000
    big_parquet = many_columns_parquet(n)
    for path in FILE_ROUTES:
        files = {"data": ("wide.parquet", big_parquet, "application/octet-stream")}
        probes.append(Probe(f"columns-{n}", path, {"files": files}))
    return probes


_JSON = {"Content-Type": "application/json"}
_MULTIPART_BAD = {"Content-Type": "multipart/form-data; boundary=x"}


def _json(obj: Any) -> bytes:
    return json.dumps(obj, allow_nan=True).encode()


def _declared_body(path: str, size: int) -> bytes:
    """Headers promising ``size`` bytes, followed by a few: the server must not wait for more."""
    ctype = "application/json" if path.endswith("/json") else "multipart/form-data; boundary=b"
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {ctype}\r\n"
        f"Content-Length: {size}\r\nConnection: close\r\n\r\n"
    ).encode() + b'{"records": ['


def send_raw(url: str, raw: bytes, timeout: float) -> tuple[int, bytes]:
    """Send a hand-written request; (status, body) of the answer, status 0 if none came."""
    host = urlsplit(url)
    with socket.create_connection((host.hostname, host.port), timeout=timeout) as s:
        s.sendall(raw)
        chunks = []
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except (TimeoutError, ConnectionResetError):
            pass
    data = b"".join(chunks)
    if not data.startswith(b"HTTP/"):
        return 0, data
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def run_corpus(
    url: str,
    session: requests.Session,
    shape: ModelShape,
    report: FuzzReport,
    *,
    large: bool = True,
    timeout: float = 60.0,
) -> None:
    for probe in hostile_probes(shape, large=large):
        t0 = time.perf_counter()
        if probe.raw is not None:
            auth = session.headers.get("Authorization")
            raw = probe.raw
            if auth:
                raw = raw.replace(b"\r\n\r\n", f"\r\nAuthorization: {auth}\r\n\r\n".encode(), 1)
            status, body = send_raw(url, raw, timeout)
            resp = requests.Response()
            resp.status_code, resp._content = status, body
            report.add(outcome("corpus", probe.name, probe.path, resp, t0))
            continue
        resp = session.post(url + probe.path, timeout=timeout, **probe.kwargs)
        report.add(outcome("corpus", probe.name, probe.path, resp, t0))


# --------------------------------------------------------------------------- schema
def enrich_schema(raw: dict[str, Any], shape: ModelShape, max_samples: int) -> dict[str, Any]:
    """The service's own schema plus what it cannot say, so requests get past validation.

    Types stay as the service declares them; enrichment only adds properties to the
    free-form records, small ranges as one option of the numeric parameters, and the
    parquet format for the upload.
    """
    schema = copy.deepcopy(raw)
    scalar = {"anyOf": [{"type": "number"}, {"type": "null"}, {"type": "string"}]}
    time_value = {
        "anyOf": [
            {"type": "string", "format": "date-time"},
            {"type": "string", "enum": ["2014-05-01T00:00:00", "2014-05-01T03:00:00+08:00"]},
            {"type": "integer"},
            {"type": "number"},
        ]
    }
    record = {
        "type": "object",
        "additionalProperties": True,
        "properties": {
            shape.time_col: time_value,
            shape.id_col: {"anyOf": [{"type": "string", "maxLength": 3}, {"type": "integer"}]},
            **{v: scalar for v in shape.variables},
        },
        "required": [shape.time_col],
    }
    small = {
        "n_samples": {"type": "integer", "minimum": 1, "maximum": max_samples},
        "steps": {"type": "integer", "minimum": 1, "maximum": 6},
        "horizon": {"type": "integer", "minimum": 1, "maximum": shape.window - 1},
        "levels": {"type": "string", "enum": ["50,90", "80", "10,50,99"]},
    }
    for path, ops in schema["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for op in ops.values():
            for media, content in op.get("requestBody", {}).get("content", {}).items():
                body = content["schema"]
                if "$ref" in body:
                    body = _resolve(schema, body["$ref"])
                props = body.get("properties", {})
                if "records" in props:
                    props["records"] = {"type": "array", "items": record, "maxItems": 40}
                if media.startswith("multipart/") and "data" in props:
                    props["data"] = {"type": "string", "format": PARQUET_FORMAT}
                for name, narrow in small.items():
                    if name in props:
                        props[name] = {"anyOf": [narrow, props[name]]}
    return schema


def _resolve(schema: dict[str, Any], ref: str) -> dict[str, Any]:
    node: Any = schema
    for part in ref.lstrip("#/").split("/"):
        node = node[part]
    return node


def parquet_strategy(shape: ModelShape) -> Any:
    """Parquet files of random panels: lengths, gaps, layouts, ids, odd values and times."""
    from hypothesis import strategies as st

    @st.composite
    def files(draw: Callable[[Any], Any]) -> bytes:
        rows = draw(st.integers(1, 40))
        series = draw(st.integers(1, 3))
        seed = draw(st.integers(0, 2**16))
        df = good_frame(shape, rows=rows, series=series, seed=seed)
        twist = draw(
            st.sampled_from(
                ["none", "none", "long", "empty", "nan", "inf", "strings", "drop-var"]
                + ["extra-var", "shuffle"]
                + ["dup", "numeric-time", "tz", "no-id", "bytes"]
            )
        )
        v = shape.variables
        if twist == "long":
            df = long_frame(shape, df)
        elif twist == "empty":
            df = df.iloc[:0]
        elif twist == "nan":
            df = df.assign(**{c: np.nan for c in v})
        elif twist == "inf" and len(df):
            df = df.assign(**{v[0]: np.inf})
        elif twist == "strings":
            df = df.assign(**{v[-1]: "x"})
        elif twist == "drop-var":
            df = df.drop(columns=v[: draw(st.integers(1, len(v)))])
        elif twist == "extra-var":
            df = df.assign(extra=1.0)
        elif twist == "shuffle":
            df = df.sample(frac=1.0, random_state=seed)
        elif twist == "dup":
            df = pd.concat([df, df.head(2)])
        elif twist == "numeric-time":
            df = df.assign(**{shape.time_col: np.arange(len(df), dtype=float)})
        elif twist == "tz":
            df = df.assign(**{shape.time_col: df[shape.time_col].dt.tz_localize("Asia/Shanghai")})
        elif twist == "no-id":
            df = df.drop(columns=[shape.id_col])
        elif twist == "bytes":
            return draw(st.binary(max_size=200))
        return parquet(df.reset_index(drop=True))

    return files()


def run_schema(
    url: str,
    session: requests.Session,
    shape: ModelShape,
    report: FuzzReport,
    *,
    examples: int,
    max_samples: int,
    seed: int = 0,
    timeout: float = 60.0,
) -> None:
    """``examples`` positive and ``examples`` negative requests per ``/v1`` operation."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed
    from schemathesis import GenerationMode

    schemathesis.openapi.format(PARQUET_FORMAT, parquet_strategy(shape))
    raw = session.get(f"{url}/docs.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(enrich_schema(raw, shape, max_samples))
    ops = [
        r.ok()
        for r in schema.get_all_operations()
        if r.ok().path.startswith("/v1/") and r.ok().method.upper() == "POST"
    ]
    for op in ops:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            test = _case_sender(op, mode, url, session, report, timeout)
            hseed(seed)(
                settings(
                    max_examples=examples,
                    deadline=None,
                    database=None,
                    phases=[Phase.generate],
                    suppress_health_check=list(HealthCheck),
                )(given(case=op.as_strategy(generation_mode=mode))(test))
            )()


def _case_sender(
    op: Any, mode: Any, url: str, session: requests.Session, report: FuzzReport, timeout: float
) -> Callable[[Any], None]:
    """The body of one generated test: send the case, record the answer, never raise."""

    def send(case: Any) -> None:
        t0 = time.perf_counter()
        kwargs = _as_upload(case.as_transport_kwargs(base_url=url))
        try:
            resp = session.request(**kwargs, timeout=timeout)
        except requests.RequestException as e:  # no answer at all: counted as a 599
            resp = requests.Response()
            resp.status_code, resp._content = 599, json.dumps({"message": str(e)}).encode()
        report.add(outcome(f"schema-{mode.value}", op.label, op.path, resp, t0))

    return send


def _as_upload(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Generated bytes in field ``data`` sent as a file (with a filename), as clients do;
    schemathesis sends a part without one, which the service reads as a text field."""
    files = kwargs.get("files")
    if isinstance(files, list):
        kwargs["files"] = [
            (name, ("data.parquet", *part[1:]))
            if name == "data" and isinstance(part, tuple) and isinstance(part[1], bytes)
            else (name, part)
            for name, part in files
        ]
    return kwargs


def iter_routes(raw_schema: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(method, path) of every ``/v1`` route in the schema, plus ``GET /v1/model``."""
    seen = set()
    for path, ops in raw_schema["paths"].items():
        if path.startswith("/v1/"):
            for method in ops:
                seen.add((method.upper(), path))
    seen.add(("GET", "/v1/model"))  # an ASGI route: BentoML's schema does not list it
    yield from sorted(seen)


def fuzz(
    url: str,
    session: requests.Session,
    *,
    examples: int,
    max_samples: int,
    seed: int = 0,
    large: bool = True,
) -> FuzzReport:
    """The whole fuzz run against a server at ``url``; the session carries any API key."""
    report = FuzzReport()
    t0 = time.perf_counter()
    shape = ModelShape.from_info(session.get(f"{url}/v1/model", timeout=30).json())
    run_corpus(url, session, shape, report, large=large)
    run_schema(url, session, shape, report, examples=examples, max_samples=max_samples, seed=seed)
    report.seconds = time.perf_counter() - t0
    report.readyz_after = requests.get(f"{url}/readyz", timeout=30).status_code
    return report
