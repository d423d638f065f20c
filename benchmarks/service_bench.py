"""Load test of the HTTP service: latency of one request, throughput under concurrency.

The request is one PhysioNet stay as a 48-step x 35-variable wide parquet window,
imputed with ``n_samples`` samples (50 by default) through ``POST /v1/impute``.
Latency percentiles (p50/p95/p99) are measured at concurrency 1; throughput at each of
``--concurrency`` (1, 4, 8 by default). Results go to ``benchmarks/results/service.md``
and ``.json`` with the command that produced them.

    python benchmarks/service_bench.py                      # starts its own server
    python benchmarks/service_bench.py --url http://127.0.0.1:3000 --api-key KEY

Without ``--url`` the script starts ``bentoml serve`` on a free local port with
``--model`` (a directory or registry URI); without ``--model`` it first trains a model of
the demo profile's size (1 epoch, so its quality is meaningless, its cost is not).

``--forecast H`` measures ``POST /v1/forecast`` instead: the last two weeks of the 36
PM2.5 stations (wide, hourly) forecast ``H`` steps ahead (168: a week), by default with
the shipped ``pm25-beijing`` model; results go to ``benchmarks/results/service-forecast``.

    python benchmarks/service_bench.py --forecast 168 --requests 5 --concurrency 1
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shlex
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import requests

from tsdiff.services.process import Server, ServerError, bentoml_serve, free_port

RESULTS = Path("benchmarks", "results")  # under the working directory
WINDOW = 48


# --------------------------------------------------------------------------- server
@contextmanager
def local_server(model: str, log: Path, threads: int) -> Iterator[str]:
    """``bentoml serve`` on a free 127.0.0.1 port for the duration of the benchmark."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "TSDIFF_API_KEYS"}
    env.update(
        TSDIFF_MODEL_URI=model,
        TSDIFF_THREADS=str(threads),
        BENTOML_DO_NOT_TRACK="true",
        TSDIFF_MAX_SAMPLES="1000",
    )
    server = Server(bentoml_serve(port), env, port, log)
    try:
        try:
            server.wait_ready(timeout=180)
        except ServerError:
            raise SystemExit(f"server did not become ready; see {log}") from None
        yield server.url
    finally:
        server.stop(grace=30)


def train_demo_sized(out: Path, stays: int) -> Path:
    """A model with the demo profile's architecture, trained one epoch (cost, not quality)."""
    from tsdiff.config import TSDiffConfig
    from tsdiff.datasets import physionet_slice
    from tsdiff.demo import PROFILE as DEMO_PROFILE
    from tsdiff.model import TSDiff

    data = physionet_slice()
    ids = data["series_id"].unique()
    train = set(ids[:stays])
    for var in sorted(
        set(data["variable"]) - set(data.loc[data["series_id"].isin(train), "variable"])
    ):
        train.add(data.loc[data["variable"] == var, "series_id"].iloc[0])
    cfg = TSDiffConfig.from_file(DEMO_PROFILE)
    cfg = cfg.replace(train={"epochs": 1})
    model = TSDiff(cfg).fit(data[data["series_id"].isin(train)], progress=False)
    return model.save(out)


# --------------------------------------------------------------------------- payload
def window_payload(variables: Sequence[str], id_col: str, time_col: str) -> bytes:
    """One stay with many observations, on a full 48-hour grid of every model variable."""
    from tsdiff.datasets import physionet_slice

    data = physionet_slice()
    sid = data.groupby("series_id").size().idxmax()
    stay = data[data["series_id"] == sid].assign(timestamp=lambda d: (d["timestamp"] // 60) * 60)
    stay = stay.drop_duplicates(["timestamp", "variable"], keep="last")
    wide = stay.pivot(index="timestamp", columns="variable", values="value")
    wide = wide.reindex(index=np.arange(WINDOW) * 60, columns=list(variables))
    wide = wide.rename_axis(index=time_col, columns=None).reset_index()
    wide.insert(0, id_col, int(sid))
    buf = io.BytesIO()
    wide.to_parquet(buf, index=False)
    return buf.getvalue()


# --------------------------------------------------------------------------- load
def forecast_payload(variables: Sequence[str], time_col: str) -> bytes:
    """The last two weeks of the PM2.5 stations, one wide hourly table (one series)."""
    from tsdiff.benchmarks.forecast import load_dataset

    df = load_dataset("pm25").iloc[-FORECAST_HISTORY:]
    df = df[["timestamp", *variables]].rename(columns={"timestamp": time_col})
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


FORECAST_HISTORY = 14 * 24  # steps of history a forecast request sends


class Client:
    """One request shape, sent from any number of threads (a session per thread)."""

    def __init__(
        self, url: str, body: bytes, form: dict[str, str], key: str | None, route: str
    ) -> None:
        self.url, self.body, self.form = f"{url}{route}", body, form
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.local = threading.local()

    def call(self) -> float:
        session = getattr(self.local, "session", None)
        if session is None:
            session = self.local.session = requests.Session()
        t0 = time.perf_counter()
        resp = session.post(
            self.url,
            files={"data": ("window.parquet", self.body, "application/octet-stream")},
            data=self.form,
            headers=self.headers,
            timeout=600,
        )
        elapsed = time.perf_counter() - t0
        if resp.status_code != 200:
            raise RuntimeError(f"HTTP {resp.status_code}: {resp.text[:300]}")
        return elapsed


def latency(client: Client, n: int) -> dict[str, float]:
    times = np.array([client.call() for _ in range(n)])
    return summarize(times)


def summarize(times: np.ndarray) -> dict[str, float]:
    p50, p95, p99 = np.percentile(times, [50, 95, 99])
    return {
        "n": int(times.size),
        "mean_s": float(times.mean()),
        "p50_s": float(p50),
        "p95_s": float(p95),
        "p99_s": float(p99),
    }


def throughput(client: Client, concurrency: int, per_worker: int) -> dict[str, float]:
    """Every worker sends ``per_worker`` requests back to back; rate = done / wall time."""
    total = concurrency * per_worker
    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        times = np.array(list(pool.map(lambda _: client.call(), range(total))))
    wall = time.perf_counter() - t0
    return {
        "concurrency": concurrency,
        "requests": total,
        "wall_s": wall,
        "req_per_s": total / wall,
        **{k: v for k, v in summarize(times).items() if k != "n"},
    }


# --------------------------------------------------------------------------- report
def markdown(result: dict[str, Any]) -> str:
    lat, p = result["latency_c1"], result["payload"]
    if p.get("horizon"):
        request = (
            f"Request: `POST /v1/forecast`, {p['history_steps']} hourly steps of "
            f"{p['variables']} variables ({p['bytes']} bytes of parquet), horizon "
            f"{p['horizon']}, n_samples={p['n_samples']}, steps={p['steps'] or 'model default'}."
        )
    else:
        request = (
            f"Request: `POST /v1/impute`, one {p['steps_in_window']}-step x {p['variables']}-"
            f"variable window ({p['observed_cells']} observed cells, {p['missing_cells']} to "
            f"impute, {p['bytes']} bytes of parquet), n_samples={p['n_samples']}, "
            f"steps={p['steps'] or 'model default'}."
        )
    lines = [
        "# HTTP service benchmark",
        "",
        f"Command: `{result['command']}`",
        "",
        f"Measured {result['when']} on {result['machine']['cpus']} CPU(s) "
        f"({result['machine']['platform']}), server on 127.0.0.1, model "
        f"`{result['model']['name']}` ({result['model']['note']}).",
        "",
        request,
        "",
        "## Latency at concurrency 1",
        "",
        "| requests | mean (s) | p50 (s) | p95 (s) | p99 (s) |",
        "|---:|---:|---:|---:|---:|",
        f"| {lat['n']} | {lat['mean_s']:.3f} | {lat['p50_s']:.3f} | {lat['p95_s']:.3f} "
        f"| {lat['p99_s']:.3f} |",
        "",
        "## Throughput",
        "",
        "| concurrency | requests | req/s | p50 (s) | p95 (s) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for t in result["throughput"]:
        lines.append(
            f"| {t['concurrency']} | {t['requests']} | {t['req_per_s']:.2f} | {t['p50_s']:.3f} "
            f"| {t['p95_s']:.3f} |"
        )
    lib = result["library_in_process"]
    if lib:
        lines += [
            "",
            f"The same call in-process (`TSDiff.{'forecast' if p.get('horizon') else 'impute'}`, "
            f"{lib['n']} calls after a warm-up): "
            f"p50 {lib['p50_s']:.3f} s, mean {lib['mean_s']:.3f} s.",
        ]
    before, after = result["machine"]["loadavg_1m_before_after"]
    lines += [
        "",
        result["note"],
        f"1-minute load average before / after: {before:.2f} / {after:.2f} (a shared machine: "
        "other work on the same cores shows up as latency).",
        "",
    ]
    return "\n".join(lines)


def library_reference(model_uri: str, body: bytes, args: argparse.Namespace) -> dict[str, float]:
    """The same call in-process, to tell the library's time from the service's overhead."""
    from tsdiff.registry import load_model

    model = load_model(model_uri)
    df = pd.read_parquet(io.BytesIO(body))
    kw = {"n_samples": args.n_samples, "steps": args.steps, "seed": 0}

    def call() -> None:
        if args.forecast:
            model.forecast(df, args.forecast, **kw)
        else:
            model.impute(df, **kw)

    call()  # warm-up
    times = []
    for _ in range(args.library_calls):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return summarize(np.array(times))


def run(
    args: argparse.Namespace, url: str, model_note: str, model_uri: str | None
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    info = requests.get(f"{url}/v1/model", headers=headers, timeout=30).json()
    cols = info["columns"]
    form = {"n_samples": str(args.n_samples), "seed": "0"}
    if args.steps:
        form["steps"] = str(args.steps)
    if args.forecast:
        body = forecast_payload(info["variables"], cols["time"])
        form["horizon"] = str(args.forecast)
        payload = {"history_steps": FORECAST_HISTORY, "horizon": args.forecast}
        route = "/v1/forecast"
    else:
        if info.get("window") != WINDOW:
            raise SystemExit(f"the benchmark needs a model with window {WINDOW}; got {info}")
        body = window_payload(info["variables"], cols["id"], cols["time"])
        frame = pd.read_parquet(io.BytesIO(body))
        observed = int(frame[info["variables"]].notna().to_numpy().sum())
        payload = {
            "steps_in_window": WINDOW,
            "observed_cells": observed,
            "missing_cells": WINDOW * len(info["variables"]) - observed,
        }
        route = "/v1/impute"
    client = Client(url, body, form, args.api_key, route)
    load_before = os.getloadavg()
    for _ in range(args.warmup):
        client.call()
    result: dict[str, Any] = {
        "command": " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv]),
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "model": {
            "name": info["name"],
            "version": info.get("version"),
            "window": info["window"],
            "variables": len(info["variables"]),
            "note": model_note,
        },
        "payload": {
            **payload,
            "variables": len(info["variables"]),
            "bytes": len(body),
            "n_samples": args.n_samples,
            "steps": args.steps,
        },
        "latency_c1": latency(client, args.requests),
        "throughput": [throughput(client, c, args.per_worker) for c in args.concurrency],
        "library_in_process": (
            library_reference(model_uri, body, args)
            if model_uri and args.library_calls > 0
            else None
        ),
        "note": (
            "Throughput runs send per-worker requests back to back; the server runs one "
            "worker process whose sync API thread pool has TSDIFF_THREADS threads, so on a "
            "CPU-bound model extra concurrency mostly queues. Every request was answered "
            "200: any other answer stops the benchmark with an error, so a written result "
            "means 0 errors at every concurrency."
        ),
    }
    result["machine"]["loadavg_1m_before_after"] = [load_before[0], os.getloadavg()[0]]
    return result


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--url", help="an already running service (default: start one)")
    p.add_argument("--api-key", default=os.environ.get("TSDIFF_API_KEY"))
    p.add_argument("--model", help="model dir or models:/NAME@ALIAS for the started server")
    p.add_argument("--train-stays", type=int, default=64, help="stays for the stand-in model")
    p.add_argument("--threads", type=int, default=1, help="TSDIFF_THREADS of the started server")
    p.add_argument("--n-samples", type=int, default=50)
    p.add_argument("--steps", type=int, help="reverse diffusion steps (default the model's)")
    p.add_argument("--requests", type=int, default=30, help="latency requests at concurrency 1")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8])
    p.add_argument("--per-worker", type=int, default=4, help="requests per worker (throughput)")
    p.add_argument("--library-calls", type=int, default=3, help="in-process reference calls")
    p.add_argument("--out", help="results path, no suffix (default results/service[-forecast])")
    p.add_argument(
        "--forecast", type=int, metavar="H", help="measure H-step forecasts of PM2.5 instead"
    )
    args = p.parse_args(argv)
    if args.out is None:
        args.out = str(RESULTS / ("service-forecast" if args.forecast else "service"))
    if args.forecast and not args.model and not args.url:
        args.model = "pm25-beijing"
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the started server is stopped

    with tempfile.TemporaryDirectory(prefix="tsdiff-bench-") as tmp:
        if args.url:
            result = run(args, args.url.rstrip("/"), "served by the given URL", args.model)
        else:
            model, note = args.model, "as given"
            if model is None:
                model = str(train_demo_sized(Path(tmp) / "model", args.train_stays))
                note = "demo-profile architecture trained 1 epoch: cost only, not quality"
            with local_server(model, Path(tmp) / "server.log", args.threads) as url:
                result = run(args, url, note, model)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
