"""The command line as a new user meets it: ``tsdiff train`` with no profile and a short
budget, then ``tsdiff evaluate`` on unseen series, beside linear interpolation.

``python -m tsdiff.benchmarks.defaults physionet --minutes 2 --test-series 80`` writes the
protocol's fold-0 training stays (raw: minutes since admission, long layout) to
parquet, runs ``tsdiff train DATA --out MODEL --freq 60 --max-minutes M`` and
``tsdiff evaluate MODEL TEST --missing 0.1`` as processes, and records both with the
command, commit and machine in ``benchmarks/results/defaults-<dataset>.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from tsdiff.benchmarks.common import RESULTS, commit, log, machine
from tsdiff.benchmarks.csdi import fold_split
from tsdiff.config import TASKS
from tsdiff.datasets import load_physionet
from tsdiff.io import write_atomic, write_json


def _cli(*args: str) -> str:
    cmd = [sys.executable, "-m", "tsdiff.cli", *args]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:2])} failed: {r.stderr[-2000:]}")
    return r.stdout


def _gate(cal: dict[str, Any]) -> dict[str, Any] | None:
    """The gate the calibration fitted: per variable, or per distance (its summary)."""
    return cal.get("gate") or cal.get("gap_gate")


def run(
    minutes: float,
    test_series: int,
    out_dir: Path,
    seed: int = 0,
    config: str | None = None,
    stem: str = "defaults-physionet",
    task: str | None = None,
) -> dict[str, Any]:
    """``config``: a config file ``tsdiff train`` also gets (a candidate default);
    ``task``: its ``--task``; results written as ``stem``.md/.json."""
    raw = load_physionet()
    ids = np.sort(raw["series_id"].unique())
    train_ids, _, test_ids = fold_split(ids, 0, seed)
    with tempfile.TemporaryDirectory(prefix="tsdiff-defaults-") as tmp:
        t = Path(tmp)
        raw[raw["series_id"].isin(train_ids)].to_parquet(t / "train.parquet")
        raw[raw["series_id"].isin(test_ids[:test_series])].to_parquet(t / "test.parquet")
        args = [
            "train",
            str(t / "train.parquet"),
            "--out",
            str(t / "model"),
            "--freq",
            "60",
            "--max-minutes",
            str(minutes),
            "--seed",
            str(seed),
            *(["--config", config] if config else []),
            *(["--task", task] if task else []),
        ]
        log("tsdiff " + " ".join(args[:1] + ["DATA"] + args[2:3] + ["MODEL"] + args[4:]))
        t0 = time.perf_counter()
        _cli(*args)
        train_s = time.perf_counter() - t0
        report = json.loads(
            _cli(
                "evaluate",
                str(t / "model"),
                str(t / "test.parquet"),
                "--missing",
                "0.1",
                "--seed",
                str(seed),
            )
        )
        meta = json.loads((t / "model" / "model.json").read_text())
        network = json.loads((t / "model" / "config.json").read_text())["network"]
    m, lin = report["model_normalized"], report["baselines_normalized"]["linear"]
    given = f" --config {Path(config).name}" if config else ""  # the candidate, if any
    given += f" --task {task}" if task else ""
    result = {
        "dataset": "physionet",
        "command": f"python -m tsdiff.benchmarks.defaults physionet --minutes {minutes} "
        f"--test-series {test_series}{given}",
        "cli": f"tsdiff train TRAIN --out MODEL --freq 60 --max-minutes {minutes}{given}; "
        "tsdiff evaluate MODEL TEST --missing 0.1",
        "network": network,
        "commit": commit(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "train_stays": len(train_ids),
        "test_stays": min(test_series, len(test_ids)),
        "n_cells": report["n_cells"],
        "train_command_s": round(train_s, 1),
        "epochs": meta["info"].get("epochs_run"),
        "prior": meta["info"].get("prior"),
        "gate": _gate(meta["info"].get("calibration") or {}),
        "model": m,
        "linear": lin,
        "mae_ratio_to_linear": round(m["mae"] / lin["mae"], 4),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(result, out_dir / f"{stem}.json")
    page = "\n".join(
        [
            "# The CLI defaults on PhysioNet, as a new user meets them",
            "",
            f"Command: `{result['command']}`  ",
            f"Commit {result['commit']}, {result['date']}; {result['machine']['cpus']} CPUs.",
            "",
            f"`{result['cli']}` on the {result['train_stays']} training stays of fold 0; "
            f"evaluated on {result['test_stays']} unseen test stays, 10% of their observed "
            f"values hidden ({result['n_cells']} cells), normalised units.",
            "",
            "| method | MAE | RMSE | CRPS | cov50 | cov90 |",
            "|---|---|---|---|---|---|",
            f"| tsdiff (defaults, {minutes} min) | {m['mae']:.3f} | {m['rmse']:.3f} | "
            f"{m['crps']:.3f} | {m['cov50']:.2f} | {m['cov90']:.2f} |",
            f"| linear interpolation | {lin['mae']:.3f} | {lin['rmse']:.3f} | – | – | – |",
            "",
            f"MAE ratio to linear interpolation: {result['mae_ratio_to_linear']}; the train "
            f"command took {result['train_command_s']} s ({result['epochs']} denoiser epochs).",
            "",
        ]
    )
    write_atomic(out_dir / f"{stem}.md", lambda p: p.write_text(page))
    log(
        f"defaults: MAE {m['mae']:.4f} vs linear {lin['mae']:.4f} "
        f"(ratio {result['mae_ratio_to_linear']})"
    )
    return result


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m tsdiff.benchmarks.defaults")
    ap.add_argument("dataset", choices=["physionet"])
    ap.add_argument("--minutes", type=float, default=2.0)
    ap.add_argument("--test-series", type=int, default=80)
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--config", help="config file passed to tsdiff train (a candidate)")
    ap.add_argument("--task", choices=TASKS, help="tsdiff train --task (default its own)")
    ap.add_argument("--stem", default="defaults-physionet", help="results file name")
    a = ap.parse_args(argv)
    run(a.minutes, a.test_series, Path(a.out), config=a.config, stem=a.stem, task=a.task)


if __name__ == "__main__":
    main()
