"""Forecasting through the command line with no profile, as a new user meets it.

``python -m tsdiff.benchmarks.forecast_defaults --minutes 2`` takes three plain frames
(one ETTh1 sensor alone, the seven ETTh1 sensors, the 36 PM2.5 stations), each the
last 11 weeks before 14 daily origins, and runs as processes
``tsdiff train TRAIN --out MODEL --max-minutes M`` (nothing else: window, season, lags,
stride and epochs are the defaults) and ``tsdiff backtest MODEL DATA --horizon H
--step 24`` for H = 24 (14 origins) and H = 168 (the last 4 origins whose week fits).
Seasonal naive (the last day repeated) is scored on exactly the cells of the same
table. Results: ``benchmarks/results/forecast-defaults.{json,md}``. ``--frames pm25
--seed S``: one frame, the fit seeded (a candidate that changes one frame, repeated
with other seeds, since a 2-minute fit's ratio moves by 0.1 from run to run).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tsdiff.benchmarks.common import RESULTS, commit, log, machine, module_command
from tsdiff.benchmarks.forecast import load_dataset
from tsdiff.io import write_atomic, write_json

ORIGINS = 14  # daily origins at h = 24
HISTORY = 11 * 168  # training steps before the first origin
HORIZONS = {24: ORIGINS, 168: 4}
FRAMES = ("etth1-OT", "etth1", "pm25")  # the frames of :func:`frames`, in order


def _cli(*args: str) -> str:
    r = subprocess.run([sys.executable, "-m", "tsdiff.cli", *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"tsdiff {' '.join(args[:1])} failed: {r.stderr[-2000:]}")
    return r.stdout


def frames(data_dir: str | None) -> dict[str, pd.DataFrame]:
    """The three plain frames: the end of each data set, wide, hourly."""
    etth1 = load_dataset("etth1", data_dir)
    pm25 = load_dataset("pm25", data_dir)
    need = HISTORY + 168 + 24 * ORIGINS
    return {
        "etth1-OT": etth1[["timestamp", "OT"]].iloc[-need:].reset_index(drop=True),
        "etth1": etth1.iloc[-need:].reset_index(drop=True),
        "pm25": pm25.iloc[-need:].reset_index(drop=True),
    }


def seasonal_naive(table: pd.DataFrame, data: pd.DataFrame) -> np.ndarray:
    """The value one whole number of days before each forecast cell, seen at its origin."""
    wide = data.set_index("timestamp")
    back = pd.to_timedelta(np.ceil(table["step"] / 24) * 24, unit="h")
    when = pd.to_datetime(table["timestamp"]) - back
    return np.asarray(
        [wide.at[t, v] for t, v in zip(when, table["variable"], strict=True)], dtype=float
    )


def score(table: pd.DataFrame, data: pd.DataFrame) -> dict[str, Any]:
    sn = seasonal_naive(table, data)
    y, med = table["truth"].to_numpy(float), table["median"].to_numpy(float)
    ok = ~np.isnan(y) & ~np.isnan(sn)
    mae, sn_mae = float(np.abs(med - y)[ok].mean()), float(np.abs(sn - y)[ok].mean())
    inside = (table["lo_90"] <= table["truth"]) & (table["truth"] <= table["hi_90"])
    return {
        "n_cells": int(ok.sum()),
        "mae": round(mae, 4),
        "seasonal_naive_mae": round(sn_mae, 4),
        "mae_ratio": round(mae / sn_mae, 4),
        "cov90": round(float(inside[ok].mean()), 4),
    }


def run(
    minutes: float,
    out_dir: Path,
    data_dir: str | None = None,
    config: str | None = None,
    stem: str = "forecast-defaults",
    only: Sequence[str] | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """``config``: a config file ``tsdiff train`` also gets (a candidate default);
    ``only``: these frames alone (a candidate that changes one of them, repeated);
    ``seed``: ``tsdiff train --seed`` (repeats of a pair differ in it)."""
    measured = commit()
    results: dict[str, Any] = {}
    for name, df in frames(data_dir).items():
        if only and name not in only:
            continue
        first = len(df) - 24 * ORIGINS - 1
        with tempfile.TemporaryDirectory(prefix="tsdiff-fc-defaults-") as tmp:
            t = Path(tmp)
            df.iloc[: first + 1].to_parquet(t / "train.parquet")
            df.to_parquet(t / "data.parquet")
            t0 = time.perf_counter()
            extra = ["--config", config] if config else []
            extra += ["--seed", str(seed)] if seed is not None else []
            _cli("train", str(t / "train.parquet"), "--out", str(t / "m"), "--max-minutes",
                 str(minutes), *extra)  # fmt: skip
            train_s = time.perf_counter() - t0
            cfg = json.loads((t / "m" / "config.json").read_text())
            meta = json.loads((t / "m" / "model.json").read_text())
            far = (meta["info"].get("forecast_calibration") or {}).get("far_gate")
            row: dict[str, Any] = {
                "train_command_s": round(train_s, 1),
                # the fit alone (the budget covers it), without the process' start
                "fit_s": meta["info"].get("fit_seconds"),
                "defaults_used": {
                    "window": cfg["data"]["window"],
                    "training_stride": cfg["data"]["training_stride"],
                    "season": cfg["network"]["season"],
                    "lags": cfg["network"]["lags"],
                },
                "forecast_gate": meta.get("forecast_gate"),
                "forecast_gate_far": meta.get("forecast_gate_far"),
                "far_gate_fit": None
                if far is None
                else {k: far.get(k) for k in ("horizon", "leads_from", "units", "seconds")},
            }
            for h, windows in HORIZONS.items():
                out = t / f"bt{h}.parquet"
                bt = ["backtest", str(t / "m"), str(t / "data.parquet"), "--horizon", str(h),
                      "--step", "24", "--windows", str(windows)]  # fmt: skip
                _cli(*bt, "--out", str(out))
                summary = json.loads(out.with_suffix(".json").read_text())
                row[f"h{h}"] = {
                    "origins": windows,
                    **score(pd.read_parquet(out), df),
                    "crps": round(summary["overall"]["crps"], 4),
                }
                gated = summary.get("gate") is not None or summary.get("gate_far") is not None
                if gated:  # what the gates did: the same model and draws alone
                    alone = t / f"alone{h}.parquet"
                    _cli(*bt, "--out", str(alone), "--no-gate")
                    got = score(pd.read_parquet(alone), df)
                    crps = json.loads(alone.with_suffix(".json").read_text())["overall"]["crps"]
                    row[f"h{h}"]["ungated"] = {
                        "mae_ratio": got["mae_ratio"],
                        "crps": round(crps, 4),
                        "cov90": got["cov90"],
                    }
            results[name] = row
            log(f"{name}: {json.dumps(row)}")
    report = {
        "command": module_command("tsdiff.benchmarks.forecast_defaults"),
        "cli": f"tsdiff train TRAIN --out MODEL --max-minutes {minutes}"
        + (f" --config {Path(config).name}" if config else "")
        + (f" --seed {seed}" if seed is not None else "")
        + "; "
        "tsdiff backtest MODEL DATA --horizon H --step 24 --windows W",
        "commit": measured,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "results": results,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(report, out_dir / f"{stem}.json")
    write_atomic(out_dir / f"{stem}.md", lambda p: p.write_text(markdown(report)))
    return report


def markdown(r: dict[str, Any]) -> str:
    lines = [
        "# Forecasting with the CLI defaults, as a new user meets them",
        "",
        f"Command: `{r['command']}`  ",
        f"Commit {r['commit']}, {r['date']}; {r['machine']['cpus']} CPUs.",
        "",
        f"`{r['cli']}`; each frame the last {HISTORY} hourly steps before the first origin, "
        f"origins daily. Seasonal naive (the last day repeated) on the same cells.",
        "",
        "| frame | h | origins | tsdiff MAE | seasonal naive MAE | ratio | tsdiff CRPS | "
        "tsdiff cov90 | without the forecast gate: ratio / CRPS / cov90 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in r["results"].items():
        for h in HORIZONS:
            s = row[f"h{h}"]
            u = s.get("ungated")
            alone = f"{u['mae_ratio']:.2f} / {u['crps']:.4f} / {u['cov90']:.2f}" if u else "–"
            lines.append(
                f"| {name} | {h} | {s['origins']} | {s['mae']:.3f} | "
                f"{s['seasonal_naive_mae']:.3f} | **{s['mae_ratio']:.2f}** | "
                f"{s.get('crps', float('nan')):.4f} | {s['cov90']:.2f} | {alone} |"
            )
    lines += [
        "",
        "The forecast gate (per variable, the weight of the model's median against seasonal "
        "naive, fitted on validation origins; – : the model alone, every weight 1) and, for "
        "the leads beyond the first chunk, the far gate (fitted on one long validation "
        "forecast per series, each chunk one unit of evidence): where either moved a "
        "forecast, the same model and draws are also scored without them "
        "(`tsdiff backtest --no-gate`).",
    ]
    lines += ["", "Defaults the fits recorded (window, training stride, season, lags):", ""]
    for name, row in r["results"].items():
        d = row["defaults_used"]
        fit = row.get("far_gate_fit")
        far = "not fitted (the first gate at every lead)"
        if fit:
            far = (
                f"{_alphas(row.get('forecast_gate_far'))} (leads {fit['leads_from']}.."
                f"{fit['horizon']}, {fit['units']} units, {fit['seconds']} s)"
            )
        lines.append(
            f"- {name}: window {d['window']}, stride {d['training_stride']}, season "
            f"{d['season']}, lags {d['lags']}; train command {row['train_command_s']} s; "
            f"forecast gate {_alphas(row.get('forecast_gate'))}; far gate {far}"
        )
    return "\n".join(lines) + "\n"


def _alphas(g: list[float] | None) -> str:
    if g is None or set(g) == {1.0}:
        return "none (the model alone)"
    if len(set(g)) == 1:
        return f"α {g[0]:g} for every variable"
    return "[" + ", ".join(f"{a:g}" for a in g) + "]"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m tsdiff.benchmarks.forecast_defaults")
    ap.add_argument("--minutes", type=float, default=2.0)
    ap.add_argument("--data-dir")
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--config", help="config file passed to tsdiff train (a candidate)")
    ap.add_argument("--stem", default="forecast-defaults", help="results file name")
    ap.add_argument("--frames", help="comma-separated frames to run (default all three)")
    ap.add_argument("--seed", type=int, help="tsdiff train --seed (default its own)")
    a = ap.parse_args(argv)
    only = [f for f in a.frames.split(",") if f] if a.frames else None
    unknown = sorted(set(only or ()) - set(FRAMES))
    if unknown:  # before any data is read or model trained
        ap.error(f"--frames: unknown frame(s) {unknown}; the frames are {', '.join(FRAMES)}")
    run(a.minutes, Path(a.out), a.data_dir, a.config, a.stem, only=only, seed=a.seed)


if __name__ == "__main__":
    main()
