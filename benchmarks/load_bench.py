"""Sustained load on the HTTP service: errors, latency percentiles, throughput, server RSS.

``--concurrency`` clients (8) send requests back to back for ``--seconds`` (300) after
``--warmup`` seconds (30), cycling over the parquet and JSON endpoints (impute and
forecast). The server's resident memory (the ``bentoml serve`` process and all its
workers, from /proc via psutil) is sampled every second; ``rss_start_mb`` is taken when
the warm-up ends and ``rss_end_mb`` at the end, and growth beyond 20% is flagged.
Results: ``benchmarks/results/load.{json,md}`` with the command, commit, machine and date.

    python benchmarks/load_bench.py                          # 8 clients, 5 minutes
    python benchmarks/load_bench.py --seconds 20 --warmup 5 --out /tmp/load   # a quick look

Not part of the test suite (minutes of CPU). Without ``--model`` a tiny PM2.5 model is
trained first (the model's size sets the cost per request, not the server's behaviour).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shlex
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import requests

ROOT = Path(__file__).resolve().parents[1]
if (ROOT / "pyproject.toml").is_file():  # a source checkout: tests/ is importable
    sys.path.insert(0, str(ROOT))

from tsdiff.provenance import git_commit  # noqa: E402
from tsdiff.services.process import Server, bentoml_serve, free_port, server_env  # noqa: E402

RESULTS = Path("benchmarks", "results")  # under the working directory
ENDPOINTS = ("/v1/impute", "/v1/impute/json", "/v1/forecast", "/v1/forecast/json")


def server_rss_mb(pid: int) -> float:
    """Resident memory of the server process and all its descendants (workers)."""
    import psutil

    root = psutil.Process(pid)
    total = 0
    for p in [root, *root.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


def payload(info: dict[str, Any], rows: int, seed: int) -> pd.DataFrame:
    """One series of ``rows`` steps of every model variable, 20% of cells missing."""
    rng = np.random.default_rng(seed)
    variables = info["variables"]
    vals = rng.normal(80, 30, (rows, len(variables)))
    vals[rng.random(vals.shape) < 0.2] = np.nan
    df = pd.DataFrame(vals, columns=variables)
    if info["time_kind"] == "datetime":
        times: Any = pd.date_range("2014-05-01", periods=rows, freq=info["frequency"])
    else:
        times = np.arange(rows) * float(info["frequency"])
    df.insert(0, info["columns"]["time"], times)
    df.insert(0, info["columns"]["id"], 1)
    return df


def request_kwargs(path: str, df: pd.DataFrame, params: dict[str, Any], horizon: int) -> dict:
    from tsdiff.services.payloads import to_records

    extra = {"horizon": horizon} if "forecast" in path else {}
    if path.endswith("/json"):
        return {"json": {"records": to_records(df), **params, **extra}}
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    form = {k: str(v) for k, v in {**params, **extra}.items()}
    return {"files": {"data": ("x.parquet", buf.getvalue())}, "data": form}


def pct(xs: list[float], q: float) -> float | None:
    return round(float(np.percentile(xs, q)), 4) if xs else None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--seconds", type=float, default=300.0, help="measured duration (300)")
    p.add_argument("--warmup", type=float, default=30.0, help="unmeasured start (30)")
    p.add_argument("--model", help="model directory or registry URI (default: train a tiny one)")
    p.add_argument("--rows", type=int, default=48, help="time steps per request (48)")
    p.add_argument("--n-samples", type=int, default=8)
    p.add_argument("--horizon", type=int, default=6)
    p.add_argument("--threads", type=int, default=1, help="TSDIFF_THREADS of the server")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args()

    commit = git_commit(short=True)
    work = Path(tempfile.mkdtemp(prefix="tsdiff-load-"))
    model = args.model
    model_note = model
    if model is None:
        from tests.conftest import tiny_config
        from tsdiff.datasets import pm25_slice
        from tsdiff.model import TSDiff

        fitted = TSDiff(tiny_config()).fit(pm25_slice("ground").iloc[:500], progress=False)
        model = str(fitted.save(work / "pm25"))
        model_note = "tiny PM2.5 model (tests' tiny_config, 2 epochs on 500 hours)"
    port = free_port()
    env = server_env(work / "home", TSDIFF_MODEL_URI=model, TSDIFF_THREADS=str(args.threads))
    server = Server(bentoml_serve(port), env, port, work / "server.log")
    rss: list[tuple[float, float]] = []
    results: list[tuple[float, str, float, int]] = []  # (start, endpoint, seconds, status)
    stop = threading.Event()
    try:
        server.wait_ready(180)
        info = requests.get(f"{server.url}/v1/model", timeout=30).json()
        params = {"n_samples": args.n_samples, "seed": 0}
        t_begin = time.monotonic()
        measure_from = t_begin + args.warmup
        deadline = measure_from + args.seconds

        def sample_rss() -> None:
            while not stop.is_set():
                rss.append((time.monotonic() - t_begin, server_rss_mb(server.proc.pid)))
                stop.wait(1.0)

        def client(worker: int) -> None:
            with requests.Session() as s:
                i = worker
                while time.monotonic() < deadline:
                    path = ENDPOINTS[i % len(ENDPOINTS)]
                    kw = request_kwargs(path, payload(info, args.rows, i), params, args.horizon)
                    t0 = time.monotonic()
                    try:
                        status = s.post(server.url + path, timeout=600, **kw).status_code
                    except requests.RequestException:
                        status = 0
                    results.append((t0, path, time.monotonic() - t0, status))
                    i += args.concurrency

        sampler = threading.Thread(target=sample_rss, daemon=True)
        sampler.start()
        clients = [threading.Thread(target=client, args=(w,)) for w in range(args.concurrency)]
        for c in clients:
            c.start()
        for c in clients:
            c.join()
        elapsed = time.monotonic() - measure_from
        stop.set()
        sampler.join(5)
        readyz = requests.get(f"{server.url}/readyz", timeout=30).status_code
    finally:
        stop.set()
        server.stop()

    measured = [r for r in results if r[0] >= measure_from]
    ok = [r[2] for r in measured if r[3] == 200]
    warm = [m for t, m in rss if t >= args.warmup] or [m for _, m in rss]
    rss_start, rss_end = warm[0], warm[-1]
    per_endpoint = {
        path: {
            "requests": len(rs := [r for r in measured if r[1] == path]),
            "errors": sum(r[3] != 200 for r in rs),
            "p50_s": pct([r[2] for r in rs if r[3] == 200], 50),
            "p95_s": pct([r[2] for r in rs if r[3] == 200], 95),
        }
        for path in ENDPOINTS
    }
    summary = {
        "concurrency": args.concurrency,
        "seconds": round(elapsed, 1),
        "warmup_s": args.warmup,
        "requests": len(measured),
        "errors": sum(r[3] != 200 for r in measured),
        "status_counts": {
            str(k): v
            for k, v in sorted(
                {s: sum(r[3] == s for r in measured) for s in {r[3] for r in measured}}.items()
            )
        },
        "p50_s": pct(ok, 50),
        "p95_s": pct(ok, 95),
        "p99_s": pct(ok, 99),
        "throughput_rps": round(len(ok) / elapsed, 3) if elapsed > 0 else None,
        "rss_before_warmup_mb": round(rss[0][1], 1) if rss else None,
        "rss_start_mb": round(rss_start, 1),
        "rss_end_mb": round(rss_end, 1),
        "rss_max_mb": round(max(warm), 1),
        "rss_growth_after_warmup": round(rss_end / rss_start - 1, 4),
        "rss_bounded": rss_end <= 1.2 * rss_start,
        "readyz_after": readyz,
        "per_endpoint": per_endpoint,
        "request": {
            "rows": args.rows,
            "variables": len(info["variables"]),
            "n_samples": args.n_samples,
            "steps": "model default",
            "horizon": args.horizon,
            "endpoints": list(ENDPOINTS),
        },
        "server_threads": args.threads,
        "model": model_note,
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "commit": commit,
        "machine": f"{platform.platform()}, {os.cpu_count()} CPU(s)",
        "load_average_after": os.getloadavg()[0],
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "load.json").write_text(json.dumps(summary, indent=2) + "\n")
    rows = "\n".join(
        f"| `{k}` | {v['requests']} | {v['errors']} | {v['p50_s']} | {v['p95_s']} |"
        for k, v in per_endpoint.items()
    )
    (args.out / "load.md").write_text(
        f"# Load test of the HTTP service\n\nCommand: `{summary['command']}` at commit "
        f"{commit}, {summary['date']}, {summary['machine']} (1-minute load average at the "
        f"end: {summary['load_average_after']:.2f}). Model: {model_note}.\n\n"
        f"{args.concurrency} clients for {summary['seconds']} s after a {args.warmup:g} s "
        f"warm-up, cycling over {', '.join(f'`{e}`' for e in ENDPOINTS)}; each request one "
        f"series of {args.rows} steps x {len(info['variables'])} variables, "
        f"n_samples={args.n_samples}, horizon {args.horizon} for forecasts.\n\n"
        "| requests | errors | p50 (s) | p95 (s) | p99 (s) | req/s |\n"
        "|---:|---:|---:|---:|---:|---:|\n"
        f"| {summary['requests']} | {summary['errors']} | {summary['p50_s']} | "
        f"{summary['p95_s']} | {summary['p99_s']} | {summary['throughput_rps']} |\n\n"
        "| endpoint | requests | errors | p50 (s) | p95 (s) |\n|---|---:|---:|---:|---:|\n"
        f"{rows}\n\n"
        f"Server RSS (all processes): {summary['rss_before_warmup_mb']} MB before the warm-up, "
        f"{summary['rss_start_mb']} MB after it, {summary['rss_end_mb']} MB at the end "
        f"(max {summary['rss_max_mb']} MB; growth {100 * summary['rss_growth_after_warmup']:.1f}%"
        f", bounded by 20%: {summary['rss_bounded']}). `/readyz` afterwards: {readyz}.\n"
    )
    print(json.dumps({k: summary[k] for k in list(summary)[:14]}))
    return 0 if summary["errors"] == 0 and summary["rss_bounded"] else 1


if __name__ == "__main__":
    sys.exit(main())
