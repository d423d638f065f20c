"""What the service's latency target costs in quality: network size and reverse steps.

The service answers one 48-step x 35-variable PhysioNet window with 50 samples; its
cost is (network cost per row-step) x (50 rows) x (steps). For each network size the
script trains a model on the PhysioNet slice for the same wall-clock budget (as
``tsdiff demo``: the same split, 40 held-out stays), then for each number of DDIM steps
measures on the same weights:

* quality on the held-out stays: 10 % of their observed values hidden (seed 0) and
  imputed with 50 samples — MAE, CRPS (normalised units), 50 % / 90 % coverage;
* in-process latency of ``TSDiff.impute`` on the service benchmark's window (the same
  request body), 50 samples, after a warm-up: p50 / p95 of ``--calls`` calls.

Writes ``benchmarks/results/serving.md`` and ``.json`` with the command::

    python benchmarks/serving_tradeoff.py --minutes 4
"""

from __future__ import annotations

import argparse
import io
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
if (ROOT / "pyproject.toml").is_file():  # a source checkout: runs without installing
    sys.path.insert(0, str(ROOT))

from tsdiff.benchmarks.common import commit, fmt, log, machine  # noqa: E402
from tsdiff.benchmarks.service_bench import window_payload  # noqa: E402
from tsdiff.config import TSDiffConfig  # noqa: E402
from tsdiff.demo import PROFILE, demo_split  # noqa: E402
from tsdiff.io import write_atomic, write_json  # noqa: E402
from tsdiff.model import TSDiff  # noqa: E402

NETWORKS = {"3 blocks": {"blocks": 3}, "2 blocks": {"blocks": 2}}
TARGET_P95 = 1.0


def latency(model: TSDiff, steps: int, n_samples: int, calls: int) -> dict[str, float]:
    body = window_payload(model.variables, model.columns.id_col, model.columns.time_col)
    frame = pd.read_parquet(io.BytesIO(body))
    model.impute(frame, n_samples=n_samples, steps=steps)  # warm-up
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        model.impute(frame, n_samples=n_samples, steps=steps)
        times.append(time.perf_counter() - t0)
    t = np.asarray(times)
    return {"p50": round(float(np.median(t)), 3), "p95": round(float(np.quantile(t, 0.95)), 3)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=4.0, help="training budget per network")
    p.add_argument("--steps", type=int, nargs="+", default=[5, 4, 3])
    p.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=list(NETWORKS))
    p.add_argument("--n-samples", type=int, default=50)
    p.add_argument("--calls", type=int, default=10, help="timed calls per setting")
    p.add_argument("--test-stays", type=int, default=40)
    p.add_argument("--threads", type=int, default=2, help="torch threads (the service's)")
    p.add_argument("--out", default=str(Path("benchmarks", "results", "serving")))
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    train, test = demo_split(0, a.test_stays)
    rows: list[dict[str, Any]] = []
    trained: dict[str, Any] = {}
    for name in a.networks:
        cfg = TSDiffConfig.from_file(PROFILE).replace(
            network=NETWORKS[name], train={"seed": 0, "max_minutes": a.minutes}
        )
        log(f"training {name} for {a.minutes} min")
        model = TSDiff(cfg).fit(train, progress=False)
        trained[name] = {
            "epochs": model.info["epochs_run"],
            "seconds": round(model.info["train_seconds"], 1),
            "parameters": sum(x.numel() for x in model.net.parameters()),
            "spread": model.spread,
        }
        for steps in a.steps:
            report = model.evaluate(test, missing=0.1, n_samples=a.n_samples, steps=steps)
            q = report["model_normalized"]
            lat = latency(model, steps, a.n_samples, a.calls)
            row = {"network": name, "steps": steps, **lat}
            row.update({k: round(float(q[k]), 4) for k in ("mae", "crps", "cov50", "cov90")})
            row["n_cells"] = int(report.get("n_cells", 0) or 0)
            rows.append(row)
            log(f"  {name}, {steps} steps: {row}")
    result = {
        "command": shlex.join(
            ["python", "benchmarks/serving_tradeoff.py", *(argv or sys.argv[1:])]
        ),
        "commit": commit(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(),
        "settings": {
            "minutes": a.minutes,
            "n_samples": a.n_samples,
            "calls": a.calls,
            "threads": a.threads,
            "test_stays": a.test_stays,
            "profile": str(PROFILE.relative_to(PROFILE.parents[2])),
        },
        "trained": trained,
        "rows": rows,
        "target_p95_s": TARGET_P95,
    }
    out = Path(a.out)
    write_json(result, out.with_suffix(".json"))
    write_atomic(out.with_suffix(".md"), lambda f: f.write_text(markdown(result)))
    log(f"results: {out}.json, .md")
    return 0


def markdown(r: dict[str, Any]) -> str:
    s, m = r["settings"], r["machine"]
    lines = [
        "# Serving: latency against quality",
        "",
        f"Command: `{r['command']}`  ",
        f"Commit {r['commit']}, {r['date']}; {m['cpus']} CPUs, {s['threads']} torch threads, "
        f"load average {m['load_avg']} at start (shared machine); torch {m['torch']}.",
        "",
        f"Each network (the demo profile otherwise: 32 channels, bfloat16 sampling) trained "
        f"{s['minutes']} min on the PhysioNet slice minus {s['test_stays']} held-out stays. "
        f"Quality: 10 % of the held-out stays' observed values hidden and imputed with "
        f"{s['n_samples']} samples (normalised units). Latency: in-process `TSDiff.impute` "
        f"of the service benchmark's 48 x 35 window, {s['n_samples']} samples, "
        f"{s['calls']} calls after a warm-up (HTTP adds its own share).",
        "",
        "| network | epochs | steps | MAE | CRPS | cov50 | cov90 | p50 (s) | p95 (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        t = r["trained"][row["network"]]
        lines.append(
            f"| {row['network']} | {t['epochs']} | {row['steps']} | {fmt(row['mae'])} | "
            f"{fmt(row['crps'])} | {fmt(row['cov50'])} | {fmt(row['cov90'])} | "
            f"{fmt(row['p50'])} | {fmt(row['p95'])} |"
        )
    ok = [x for x in r["rows"] if x["p95"] <= r["target_p95_s"]]
    lines += [""]
    if ok:
        best = min(ok, key=lambda x: x["crps"])
        lines.append(
            f"Best CRPS within p95 <= {r['target_p95_s']} s: {best['network']}, "
            f"{best['steps']} steps (CRPS {best['crps']}, p95 {best['p95']} s)."
        )
    else:
        lines.append(f"No setting has p95 <= {r['target_p95_s']} s in process.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
