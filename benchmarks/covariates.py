"""Covariates benchmark: do the stations' coordinates, as static covariates, help PM2.5
forecasts?

``python -m tsdiff.benchmarks.covariates run static --minutes 5 --out A.json`` (and
``none``) trains the default model (no profile: what ``tsdiff train`` gives) on PM2.5
with the 36 stations as *series* of one variable, with or without their latitude and
longitude (``../shared/data/pm25_stations.csv``) as static covariates; ``report A.json
B.json`` writes ``benchmarks/results/covariates.{json,md}``. Both variants follow the
forecast protocol of ``benchmarks.forecast`` (the last 60 days of ``pm25_ground``,
daily origins, horizon 24 h, forecast spread fitted on the 28 origins before the
first), so their cells are those of ``forecast-pm25`` and its deterministic seasonal
naive scores are comparable. Run the two variants side by side (same machine load),
one thread each.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from tsdiff.backtest import backtest, cutoffs
from tsdiff.benchmarks.common import (
    RESULTS,
    commit,
    fmt,
    log,
    module_command,
    page_header,
    stamp,
    write_results,
)
from tsdiff.benchmarks.forecast import DATASETS, LEVELS, load_dataset
from tsdiff.config import TSDiffConfig
from tsdiff.datasets import default_data_dir
from tsdiff.errors import ConfigError
from tsdiff.io import write_json
from tsdiff.model import TSDiff

VARIANTS = {"none": (), "static": ("latitude", "longitude")}


def station_series(data_dir: Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """PM2.5 as one series per station (``series_id``, ``timestamp``, ``pm25``) and the
    stations' coordinates (``series_id``, ``latitude``, ``longitude``)."""
    wide = load_dataset("pm25", data_dir)
    long = wide.melt(id_vars="timestamp", var_name="series_id", value_name="pm25")
    base = Path(data_dir) if data_dir else default_data_dir()
    assert base is not None
    st = pd.read_csv(base / "pm25_stations.csv")
    st["series_id"] = [f"station_{int(s):06d}" for s in st["sensor_id"]]
    missing = sorted(set(long["series_id"]) - set(st["series_id"]))
    if missing:
        raise ConfigError(f"stations without coordinates: {missing}")
    return long, st[["series_id", "latitude", "longitude"]]


def run(variant: str, minutes: float, *, seed: int = 0, n_samples: int = 50) -> dict[str, Any]:
    """Train the default model on the steps up to the first origin, backtest 60 origins."""
    measured = commit()
    long, stations = station_series()
    times = pd.Index(sorted(long["timestamp"].unique()))
    horizon, step, windows = 24, 24, DATASETS["pm25"][1]
    pos = cutoffs(len(times), horizon, step, windows)
    first = times[int(pos[0])]
    train = long[long["timestamp"] <= first]
    cfg = TSDiffConfig().replace(
        data={"freq": "1h", "static_covariates": VARIANTS[variant]},
        train={"seed": seed, "max_minutes": minutes},
    )
    static = stations if VARIANTS[variant] else None
    t0 = time.perf_counter()
    model = TSDiff(cfg).fit(train, static_df=static, progress=False)
    fit_s = time.perf_counter() - t0
    info = model.info
    log(f"{variant}: {info['epochs_run']} epochs in {fit_s:.0f} s")
    t0 = time.perf_counter()
    bt = backtest(
        model,
        long,
        horizon=horizon,
        step=step,
        windows=windows,
        levels=LEVELS,
        n_samples=n_samples,
        seed=seed,
        calibrate_windows=28,
        static_df=static,
    )
    o = bt.summary["overall"]
    log(f"{variant}: MAE {o['mae']:.2f} CRPS {o['crps']:.4f} cov90 {o['cov90']:.3f}")
    return {
        **stamp(module_command("tsdiff.benchmarks.covariates"), measured),
        "variant": variant,
        "seed": seed,
        "static_covariates": list(VARIANTS[variant]),
        "minutes": minutes,
        "fit_s": round(fit_s, 1),
        "epochs": info["epochs_run"],
        "prior_epochs": info.get("prior", {}).get("epochs_run"),
        "backtest_s": round(time.perf_counter() - t0, 1),
        "n_forecasts": bt.summary["n_forecasts"],
        "overall": {k: o[k] for k in ("mae", "crps", "cov50", "cov90", "n_cells")},
    }


def report(paths: list[str], out_dir: Path = RESULTS) -> dict[str, Any]:
    runs = [json.loads(Path(p).read_text()) for p in paths]
    peers = RESULTS / "forecast-pm25.json"
    naive = (
        json.loads(peers.read_text())["methods"].get("seasonal_naive") if peers.is_file() else None
    )
    result = {
        **stamp(module_command("tsdiff.benchmarks.covariates"), runs[0]["commit"]),
        "runs": runs,
        "seasonal_naive": naive,
    }
    write_results(result, out_dir, "covariates", markdown)
    return result


def markdown(r: dict[str, Any]) -> str:
    lines = page_header("Covariates: PM2.5 stations' coordinates as static inputs", r)
    lines += [
        "",
        "The default model (no profile) on PM2.5 with the 36 stations as series of one",
        "variable, trained on the steps before the first origin, with and without the",
        "stations' latitude and longitude as static covariates; 60 daily origins, horizon",
        "24 h, the same cells as `forecast-pm25` (seasonal naive from there: deterministic,",
        "so its scores hold for these cells). Each seed's pair ran side by side, one thread",
        "each.",
        "",
        "| static covariates | seed | budget (min) | epochs (prior / denoiser) | MAE | CRPS | "
        "cov50 | cov90 | cells |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for x in r["runs"]:
        o = x["overall"]
        names = ", ".join(x["static_covariates"]) or "none"
        lines.append(
            f"| {names} | {_seed(x)} | {x['minutes']} | {x['prior_epochs']} / {x['epochs']} | "
            f"{fmt(o['mae'], 2)} | {fmt(o['crps'], 4)} | {fmt(o['cov50'])} | "
            f"{fmt(o['cov90'])} | {o['n_cells']} |"
        )
    sn = r.get("seasonal_naive")
    if sn:
        lines.append(
            f"| seasonal naive (24 h) | – | – | – | {fmt(sn['mae'], 2)} | {fmt(sn['crps'], 4)} | "
            f"{fmt(sn['cov50'])} | {fmt(sn['cov90'])} | {sn['n_cells']} |"
        )
    return "\n".join(lines) + "\n"


def _seed(run: dict[str, Any]) -> int:
    """A run's seed (runs before it was recorded: from their command, default 0)."""
    if "seed" in run:
        return int(run["seed"])
    words = run["command"].split()
    return int(words[words.index("--seed") + 1]) if "--seed" in words else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tsdiff.benchmarks.covariates")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train and backtest one variant")
    r.add_argument("variant", choices=sorted(VARIANTS))
    r.add_argument("--minutes", type=float, default=5.0, help="training budget (5)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--n-samples", type=int, default=50, help="samples per forecast (50)")
    r.add_argument("--threads", type=int, default=1, help="torch threads (1)")
    r.add_argument("--out", required=True, help="JSON result of this variant")
    s = sub.add_parser("report", help="the variants' results as one table")
    s.add_argument("runs", nargs="+", help="JSON results of `run`")
    args = p.parse_args(argv)
    if args.cmd == "run":
        torch.set_num_threads(args.threads)
        write_json(
            run(args.variant, args.minutes, seed=args.seed, n_samples=args.n_samples), args.out
        )
    else:
        report(args.runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
