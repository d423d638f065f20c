"""How long a fit with the default config takes against its budget (``train.max_minutes``
covers the whole fit: data, prior, denoiser, the calibration after training).

``python -m tsdiff.benchmarks.fit_budget --threads 1 --out DIR`` fits each case's frame
with ``TSDiff().fit(df, max_minutes=M)`` and records the wall time of the fit, with the
model's own account of where it went. Run it from two worktrees at once (``PYTHONPATH``
set to each) to compare commits under the same load; the page takes both JSON files
(``--pair BEFORE.json``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from tsdiff.benchmarks.common import (
    RESULTS,
    commit,
    log,
    module_command,
    page_header,
    stamp,
    write_results,
)
from tsdiff.benchmarks.csdi import fold_split
from tsdiff.benchmarks.forecast_defaults import ORIGINS, frames
from tsdiff.datasets import load_physionet

# (case, frame, budget in minutes): the forecast defaults' frames and PhysioNet's
# training stays, at the budgets the defaults benchmarks use
CASES = (("pm25", 2.0), ("etth1", 2.0), ("physionet", 1.0), ("physionet", 2.0))


def _frame(name: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    if name == "physionet":
        raw = load_physionet()
        train, _, _ = fold_split(np.sort(raw["series_id"].unique()), 0, 0)
        return raw[raw["series_id"].isin(train)], {"freq": 60}
    df = frames(None)[name]
    return df.iloc[: len(df) - 24 * ORIGINS], {}


def run(threads: int) -> dict[str, Any]:
    from tsdiff.model import TSDiff

    torch.set_num_threads(threads)
    measured, rows = commit(), []
    for name, minutes in CASES:
        df, kw = _frame(name)
        t0 = time.perf_counter()
        model = TSDiff().fit(df, max_minutes=minutes, progress=False, **kw)
        wall = time.perf_counter() - t0
        info = model.info
        prior = (info.get("prior") or {}).get("seconds")
        row = {
            "case": name,
            "budget_s": minutes * 60,
            "fit_s": round(wall, 1),
            "over_s": round(wall - minutes * 60, 1),
            "train_s": info.get("train_seconds"),
            "prior_s": prior,
            "denoiser_epochs": info.get("epochs_run"),
            "reserve": info.get("calibration_reserve"),  # None before it existed
            "forecasts": (info.get("forecast_calibration") or {}).get("windows"),
        }
        rows.append(row)
        log(json.dumps(row))
    return {**stamp(module_command("tsdiff.benchmarks.fit_budget"), measured), "rows": rows}


def markdown(r: dict[str, Any], before: dict[str, Any] | None) -> str:
    lines = page_header("A fit's wall time against its budget, CLI defaults", r)
    lines += [
        "",
        "`TSDiff().fit(df, max_minutes=M)` (the defaults `tsdiff train --max-minutes M` "
        f"gets), {r['machine']['torch_threads']} torch thread(s). Fit seconds include "
        "reading the frame onto the grid and the calibration after training.",
        "",
        "| case | budget s | commit | fit s | over s | training s | calibration kept s "
        "(estimate) | validation forecasts |",
        "|---|---|---|---|---|---|---|---|",
    ]
    runs = [before, r] if before else [r]
    for i in range(len(r["rows"])):
        for run_ in runs:
            x = run_["rows"][i]
            res = x.get("reserve")
            kept = "10 % share" if res is None else f"{res['seconds']} ({res['estimate']})"
            lines.append(
                f"| {x['case']} | {x['budget_s']:.0f} | {run_['commit']} | {x['fit_s']} | "
                f"{x['over_s']} | {x['train_s']} | {kept} | {x['forecasts']} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--pair", help="the JSON of the same run at an earlier commit")
    ap.add_argument("--page", help="only write the page from this JSON (with --pair)")
    args = ap.parse_args(argv)
    before = json.loads(Path(args.pair).read_text()) if args.pair else None
    result = json.loads(Path(args.page).read_text()) if args.page else run(args.threads)
    write_results(result, args.out, "fit-budget", lambda r: markdown(r, before))


if __name__ == "__main__":
    main()
