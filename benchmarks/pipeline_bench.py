"""Throughput and memory of the batch pipelines (``pipelines/``).

Measures, on a generated hive-partitioned input of PM2.5 station series:

* throughput (series-hours per second) of the local engine and of the Spark engine
  with ``local[1]`` and ``local[2]`` (session start-up reported apart), same input,
  same sampling settings, for each network size of ``--networks``: ``tiny`` (16
  channels, 1 block: a few ms of compute per series, so Spark's fixed and per-row costs
  show) and ``demo`` (the demo profile's 32 channels, 3 blocks: what is deployed);
* peak RSS of the local engine on an input whose in-memory size exceeds a memory
  budget (and on a quarter of it): the engine holds one batch of series and the row
  groups it touches, so its RSS growth above the baseline (interpreter, torch, model)
  must stay under the budget, and about the same for both sizes. These runs sample
  cheaply (1 sample, 1 step): memory is about handling the data, and the model's cost
  per cell would only make them longer.

The input replicates the real stations of ``../shared/data/pm25_ground.parquet`` (their
gaps included) under new ids, or a synthetic daily cycle with gaps when it is absent.
Each measurement runs in a fresh process. Writes ``benchmarks/results/pipeline.md`` and
``.json`` with the command used::

    .venv/bin/python benchmarks/pipeline_bench.py --series 288 --hours 720
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tsdiff.datasets import default_data_dir
from tsdiff.io import write_atomic, write_json


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--series", type=int, default=288, help="series in the input (288)")
    p.add_argument("--hours", type=int, default=720, help="hours per series (720)")
    p.add_argument("--files", type=int, default=8, help="hive partitions of the input (8)")
    p.add_argument("--mem-series", type=int, default=4000, help="memory run series (4000)")
    p.add_argument("--mem-hours", type=int, default=960, help="memory run hours (960)")
    p.add_argument("--row-group-rows", type=int, default=65536, help="parquet row groups")
    p.add_argument("--batch-series", type=int, default=16, help="local engine batch (16)")
    p.add_argument(
        "--budget-mb",
        type=float,
        default=128.0,
        help="memory budget (MB) for the local engine's RSS growth (128)",
    )
    p.add_argument("--n-samples", type=int, default=8)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--masters", default="local[1],local[2]", help="Spark masters ('' = none)")
    p.add_argument(
        "--networks", default="tiny,demo", help=f"throughput model sizes: {','.join(NETWORKS)}"
    )
    p.add_argument("--workdir", help="where inputs and outputs go (default: a temp dir)")
    p.add_argument("--results", default=str(Path("benchmarks", "results")))  # from here
    p.add_argument("--child", help=argparse.SUPPRESS)  # internal: one measurement
    p.add_argument("--child-args", help=argparse.SUPPRESS)
    return p.parse_args(argv)


# --------------------------------------------------------------------------- data
def generate(
    root: Path, series: int, hours: int, files: int, row_group_rows: int
) -> dict[str, Any]:
    """Long-by-series rows ``series_id, timestamp, pm25`` in ``files`` hive partitions."""
    data_dir = default_data_dir()
    src = data_dir / "pm25_ground.parquet" if data_dir else None
    if src is not None and src.is_file():
        wide = pd.read_parquet(src).iloc[:hours]
        stations = [c for c in wide.columns if c != "timestamp"]
        times = wide["timestamp"].to_numpy()
        source = str(src)
    else:
        rng = np.random.default_rng(0)
        times = pd.date_range("2014-05-01", periods=hours, freq="h").to_numpy()
        stations = [f"synthetic_{i:03d}" for i in range(36)]
        cycle = 80 + 40 * np.sin(np.arange(hours) * 2 * np.pi / 24)
        values = {s: cycle + rng.normal(0, 15, hours) for s in stations}
        for v in values.values():
            v[rng.random(hours) < 0.12] = np.nan
        wide = pd.DataFrame({"timestamp": times, **values})
        source = "synthetic"
    in_memory = 0
    per_file = -(-series // files)
    for f in range(files):
        ids = range(f * per_file, min(series, (f + 1) * per_file))
        if not ids:
            break
        frame = pd.concat(
            [
                pd.DataFrame(
                    {
                        "series_id": f"{stations[i % len(stations)]}_r{i // len(stations):03d}",
                        "timestamp": times,
                        "pm25": wide[stations[i % len(stations)]].to_numpy(),
                    }
                )
                for i in ids
            ],
            ignore_index=True,
        )
        in_memory += int(frame.memory_usage(deep=True).sum())
        (root / f"part={f}").mkdir(parents=True, exist_ok=True)
        path = root / f"part={f}" / "data.parquet"
        frame.to_parquet(path, index=False, row_group_size=row_group_rows)
    on_disk = sum(p.stat().st_size for p in root.rglob("*.parquet"))
    return {
        "source": source,
        "series": series,
        "hours": hours,
        "rows": series * hours,
        "files": files,
        "in_memory_mb": round(in_memory / 2**20, 2),
        "on_disk_mb": round(on_disk / 2**20, 2),
    }


NETWORKS = {
    "tiny": {"channels": 16, "blocks": 1, "heads": 2, "step_emb_dim": 32, "time_emb_dim": 16},
    "demo": {"channels": 32, "blocks": 3, "heads": 2},  # as tsdiff/profiles/demo.json
}


def train_model(data: Path, out: Path, network: str = "tiny") -> Path:
    """A univariate model of the given size, trained 1 epoch (the benchmark measures
    cost, not accuracy)."""
    import pyarrow.dataset as ds

    from tsdiff.config import TSDiffConfig
    from tsdiff.model import TSDiff

    frag = next(iter(ds.dataset(data, format="parquet", partitioning="hive").get_fragments()))
    df = frag.to_table().to_pandas()
    df = df[df["series_id"].isin(sorted(df["series_id"].unique())[:8])]
    cfg = TSDiffConfig().replace(
        data={"window": 24},
        network=NETWORKS[network],
        train={"epochs": 1, "batch_size": 16},
    )
    return TSDiff(cfg).fit(df.iloc[:4000], progress=False).save(out)


# --------------------------------------------------------------------------- children
def _rss_mb() -> float:
    """Resident memory now (Linux /proc), in MB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class RssSampler(threading.Thread):
    """Highest resident memory seen while running (sampled every 5 ms): unlike
    ``ru_maxrss`` it does not include the import-time peak before the run."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = _rss_mb()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(0.005):
            self.peak = max(self.peak, _rss_mb())

    def stop(self) -> float:
        self._stop_event.set()
        self.join()
        return max(self.peak, _rss_mb())


def child(kind: str, a: dict[str, Any]) -> dict[str, Any]:
    """One measurement in this (fresh) process; prints and returns its numbers."""
    import torch

    from tsdiff.pipelines import PipelineParams

    torch.set_num_threads(int(a.get("threads", 2)))
    params = PipelineParams(
        seed=0, n_samples=a["n_samples"], steps=a["steps"], batch_series=a["batch_series"]
    )
    if kind == "local":
        from tsdiff.model import TSDiff
        from tsdiff.pipelines.local import load, run_local

        model = load(a["model"])[0]
        # warm-up on a few series, so that the baseline includes what any run allocates
        warm = pd.DataFrame(
            {
                "series_id": "w",
                "timestamp": pd.date_range("2014-05-01", periods=48, freq="h"),
                "pm25": np.linspace(50, 90, 48),
            }
        )
        assert isinstance(model, TSDiff)
        model.impute(warm.assign(pm25=warm["pm25"].where(warm.index % 5 > 0)), n_samples=2)
        baseline = _rss_mb()
        sampler = RssSampler()
        sampler.start()
        t0 = time.perf_counter()
        man = run_local(
            a["input"], a["output"], model, params, model_uri=a["model"], progress=False
        )
        secs = time.perf_counter() - t0
        result = {
            "seconds": secs,
            "baseline_rss_mb": round(baseline, 1),
            "peak_rss_mb": round(sampler.stop(), 1),
            "process_max_rss_mb": round(
                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                1,  # Linux: KiB
            ),
        }
    else:
        from tsdiff.pipelines.spark import run_spark, spark_session

        t0 = time.perf_counter()
        session = spark_session(kind, progress=False)
        start = time.perf_counter() - t0
        t0 = time.perf_counter()
        man = run_spark(a["input"], a["output"], a["model"], params, spark=session, progress=False)
        secs = time.perf_counter() - t0
        session.stop()
        result = {"seconds": secs, "session_seconds": start, "buckets": man["spark"]["buckets"]}
    result.update(
        rows_in=man["rows_in"],
        rows_out=man["rows_out"],
        series_done=man["series_done"],
        series_failed=len(man["series_failed"]),
    )
    print(json.dumps(result))
    return result


def measure(kind: str, args: dict[str, Any]) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", kind, "--child-args", json.dumps(args)]
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"{kind} run failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- report
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        child(args.child, json.loads(args.child_args))
        return 0
    command = shlex.join([".venv/bin/python", "benchmarks/pipeline_bench.py", *sys.argv[1:]])
    work = Path(args.workdir or tempfile.mkdtemp(prefix="tsdiff-pipeline-bench-"))
    for d in ("input", "input-mem-large", "input-mem-quarter"):
        shutil.rmtree(work / d, ignore_errors=True)
    rg = args.row_group_rows
    data = generate(work / "input", args.series, args.hours, args.files, rg)
    sizes = {"large": args.mem_series, "quarter": max(1, args.mem_series // 4)}
    mem_inputs = {
        name: generate(work / f"input-mem-{name}", n, args.mem_hours, args.files, rg)
        for name, n in sizes.items()
    }
    budget = args.budget_mb
    networks = [n for n in args.networks.split(",") if n]
    unknown = sorted(set(networks) - set(NETWORKS))
    if unknown:
        raise SystemExit(f"unknown network sizes {unknown}; choose from {sorted(NETWORKS)}")
    models = {n: str(train_model(work / "input", work / f"model-{n}", n)) for n in networks}
    if "tiny" not in models:  # the memory runs use the tiny model
        models["tiny"] = str(train_model(work / "input", work / "model-tiny", "tiny"))
    common = {
        "input": str(work / "input"),
        "n_samples": args.n_samples,
        "steps": args.steps,
        "batch_series": args.batch_series,
    }
    load = os.getloadavg()
    series_hours = args.series * args.hours
    runs: dict[str, Any] = {}
    for net in networks:
        engines = {"local": 2, **{m: 1 for m in args.masters.split(",") if m}}
        for engine, threads in engines.items():
            out = work / f"out-{net}-{engine.replace('[', '').replace(']', '')}"
            shutil.rmtree(out, ignore_errors=True)
            a = {**common, "model": models[net], "output": str(out), "threads": threads}
            run = measure(engine, a)
            run.update(network=net, engine=engine)
            run["series_hours_per_s"] = round(series_hours / run["seconds"], 1)
            runs[f"{net}/{engine}"] = run
    mem_runs = {}
    for name, n in sizes.items():
        shutil.rmtree(work / f"out-mem-{name}", ignore_errors=True)
        run = measure(
            "local",
            {
                **common,
                "model": models["tiny"],
                "input": str(work / f"input-mem-{name}"),
                "output": str(work / f"out-mem-{name}"),
                "n_samples": 1,
                "steps": 1,
            },
        )
        run["series_hours_per_s"] = round(n * args.mem_hours / run["seconds"], 1)
        run["rss_growth_mb"] = round(run["peak_rss_mb"] - run["baseline_rss_mb"], 1)
        run["input"] = mem_inputs[name]
        mem_runs[name] = run
    large = mem_runs["large"]
    report = {
        "command": command,
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_at_start": [round(x, 2) for x in load],
            "python": platform.python_version(),
        },
        "input": data,
        "params": {k: v for k, v in common.items() if k != "input"},
        "networks": {n: NETWORKS[n] for n in networks},
        "runs": runs,
        "memory": {
            "params": {
                "n_samples": 1,
                "steps": 1,
                "batch_series": args.batch_series,
                "row_group_rows": rg,
            },
            "runs": mem_runs,
            "budget_mb": budget,
            "within_budget": large["rss_growth_mb"] < budget < large["input"]["in_memory_mb"],
            "input_to_budget": round(large["input"]["in_memory_mb"] / budget, 2),
        },
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    write_report(Path(args.results), report)
    if not args.workdir:  # a temp dir of ours: inputs and outputs are not kept
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, indent=2))
    return 0


def write_report(results: Path, r: dict[str, Any]) -> None:
    results.mkdir(parents=True, exist_ok=True)
    write_json(r, results / "pipeline.json")
    d = r["input"]
    lines = [
        "# Batch pipelines: throughput and memory",
        "",
        f"Command: `{r['command']}` ({r['date']}; {r['machine']['cpus']} CPUs, load average "
        f"{r['machine']['loadavg_at_start'][0]} at start: the machine is shared).",
        "",
        f"Input: {d['series']} series x {d['hours']} hours = {d['rows']:,} rows in "
        f"{d['files']} hive partitions ({d['on_disk_mb']} MB parquet, {d['in_memory_mb']} MB "
        f"as pandas), from {d['source']}. Univariate models (window 24) of each size "
        f"below, {r['params']['n_samples']} samples x {r['params']['steps']} steps, seed 0; "
        "the local engine runs 2 torch threads, each Spark worker 1.",
        "",
        "| network | engine | seconds | series-hours/s | notes |",
        "|---|---|---|---|---|",
    ]
    for run in r["runs"].values():
        net, engine = run["network"], run["engine"]
        if engine == "local":
            note = f"one process, batches of {r['params']['batch_series']} series"
        else:
            note = (
                f"Spark {engine}, {run['buckets']} groups of series; session start "
                f"{run['session_seconds']:.1f} s apart"
            )
        lines.append(
            f"| {net} | {engine if engine == 'local' else 'spark'} | {run['seconds']:.1f} | "
            f"{run['series_hours_per_s']:,} | {note} |"
        )
    lines.append("")
    for net, size in r["networks"].items():
        one, two = r["runs"].get(f"{net}/local[1]"), r["runs"].get(f"{net}/local[2]")
        if one and two:
            ratio = two["series_hours_per_s"] / one["series_hours_per_s"]
            verdict = "met" if ratio >= 1.7 else "NOT met"
            lines.append(
                f"- {net} network ({size['channels']} channels, {size['blocks']} block(s)): "
                f"Spark local[2] / local[1] = {ratio:.2f}x (target 1.7x, {verdict})"
            )
    m = r["memory"]
    p = m["params"]
    lines += [
        "",
        f"Memory of the local engine (batches of {p['batch_series']} series, parquet row "
        f"groups of {p['row_group_rows']:,} rows, 1 sample x 1 step), budget "
        f"{m['budget_mb']} MB for the RSS growth over the baseline measured just before the "
        "run (interpreter, torch, model loaded):",
        "",
        "| input | rows | parquet MB | pandas MB | seconds | baseline MB | peak MB | growth MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in m["runs"].values():
        d = run["input"]
        lines.append(
            f"| {d['series']} series x {d['hours']} h | {d['rows']:,} | {d['on_disk_mb']} | "
            f"{d['in_memory_mb']} | {run['seconds']:.1f} | {run['baseline_rss_mb']:.0f} | "
            f"{run['peak_rss_mb']:.0f} | {run['rss_growth_mb']} |"
        )
    verdict = "within" if m["within_budget"] else "NOT within"
    big = m["runs"]["large"]
    lines += [
        "",
        f"The larger input takes {big['input']['in_memory_mb']} MB as a pandas frame "
        f"({m['input_to_budget']}x the budget); the "
        f"engine grew by {big['rss_growth_mb']} MB: {verdict} the {m['budget_mb']} MB budget.",
        "",
    ]
    write_atomic(results / "pipeline.md", lambda tmp: tmp.write_text("\n".join(lines)))


if __name__ == "__main__":
    sys.exit(main())
