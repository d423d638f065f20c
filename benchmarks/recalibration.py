"""One trained model, its imputation calibration refitted under several rules, each
scored on the protocol's test cells: what the calibration alone is worth.

``python -m tsdiff.benchmarks.recalibration MODEL --variant random --variant pattern
--variant pattern+pooled [--draws N] --stem NAME`` refits the gate, spread and interval factors
(:func:`recalibrate`: validation split only; "pattern" hides the cells the training
split's own gaps lack, ``train.holdout``; "+pooled" keeps the gate fitted on all
variables unless a variable's cells say otherwise, ``train.gate_pooled``; "+gap" fits
the gate per distance to the nearest observation, ``train.gate_by_gap``; ``--draws``:
that many draws of hidden cells pooled, ``train.calibrate_draws``) and scores
each as :mod:`tsdiff.benchmarks.shipped` does. The weights and draws are the same in
every variant, so the differences are the calibration's alone. Results:
``benchmarks/results/NAME.{json,md}``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tsdiff.benchmarks import shipped
from tsdiff.benchmarks.common import RESULTS, commit, log, machine
from tsdiff.benchmarks.csdi import Task, task_for
from tsdiff.estimator import calibrate_imputation, holdout_patterns
from tsdiff.io import write_atomic, write_json
from tsdiff.model import TSDiff


def recalibrate(
    model: TSDiff,
    holdout: str | None = None,
    pooled: bool | None = None,
    task: Task | None = None,
    draws: int | None = None,
    by_gap: bool | None = None,
) -> dict[str, Any]:
    """Refit ``model``'s imputation calibration in place on its protocol's validation
    split (``holdout``/``pooled``/``by_gap``: the rules to refit with, default the
    model's own; ``task``: the protocol's splits, read when not given; ``draws``: draws
    of hidden cells pooled, default the model's own); returns what ``fit`` records
    in ``info["calibration"]``. The test split stays unseen."""
    asked = {
        "holdout": holdout,
        "gate_pooled": pooled,
        "calibrate_draws": draws,
        "gate_by_gap": by_gap,
    }
    changes = {k: v for k, v in asked.items() if v is not None}
    if changes:
        model.config = model.config.replace(train=changes)
    if task is None:
        task = task_for(model.info["data"]["dataset"])
    train = model.panel(task.train).series if model.config.train.holdout == "pattern" else []
    fit = calibrate_imputation(
        model,
        model.panel(task.valid),
        seed=model.config.train.seed,
        patterns=holdout_patterns(model.config, train),
    )
    model.info["calibration"] = fit
    return fit


def score_as_shipped(model: TSDiff) -> dict[str, Any]:
    """``model`` (a recalibrated copy, not saved) scored on its protocol's test cells as
    :mod:`tsdiff.benchmarks.shipped` scores a saved model, results kept out of the tree."""
    with tempfile.TemporaryDirectory() as tmp:
        model.save(Path(tmp) / "model")
        return shipped.run(str(Path(tmp) / "model"), Path(tmp))


def _variant(name: str) -> tuple[str, bool, bool]:
    """A variant's (holdout, gate_pooled, gate_by_gap)."""
    holdout, *extras = name.split("+")
    if holdout not in ("random", "pattern") or not set(extras) <= {"pooled", "gap"}:
        raise SystemExit(f"variant must be random|pattern[+pooled][+gap], got {name!r}")
    return holdout, "pooled" in extras, "gap" in extras


def gate_mae(fit: dict[str, Any]) -> dict[str, float]:
    """MAE of the model's median, its base and the gated median on the calibration's
    cells, from what :func:`recalibrate` returns, whichever gate it fitted (per variable,
    or per distance with ``train.gate_by_gap``)."""
    if "gap_gate" in fit:
        g = fit["gap_gate"]
        return {"mae_model": g["mae_model"], "mae_interpolation": g["mae_base"],
                "mae_gated": g["mae_gated"]}  # fmt: skip
    return {k: fit["gate"][k] for k in ("mae_model", "mae_interpolation", "mae_gated")}


def _gate_row(fit: dict[str, Any]) -> dict[str, Any]:
    """What a variant's gate did on the validation cells: MAE of the model, its base and
    the gated median, and how many weights sit at 0 and 1 (of every variable's, or of
    every variable's per distance bucket with the gap gate)."""
    g = fit["gap_gate"]["gap_gate"]["weight"] if "gap_gate" in fit else fit["gate"]["gate"]
    weights = np.asarray(g)
    return {
        "validation_mae": gate_mae(fit),
        "gate_at_0": int((weights == 0).sum()),
        "gate_at_1": int((weights == 1).sum()),
        "n_variables": int(weights.size),
    }


def run(
    model_dir: str,
    variants: list[str],
    stem: str,
    out_dir: Path = RESULTS,
    draws: int | None = None,
) -> dict:
    rows, task = [], None
    for name in variants:
        holdout, pooled, by_gap = _variant(name)
        model = TSDiff.load(model_dir)  # each variant from the weights as saved
        task = task or task_for(model.info["data"]["dataset"])  # read once
        fit = recalibrate(model, holdout, pooled, task, draws, by_gap=by_gap)
        got = score_as_shipped(model)
        rows.append(
            {
                "variant": name,
                "holdout": holdout,
                "gate_pooled": pooled,
                "gate_by_gap": by_gap,
                "validation_cells": fit["n_cells"],
                "draws": fit.get("draws", 1),
                **_gate_row(fit),
                "test": {k: got["tsdiff"][k] for k in ("mae", "rmse", "crps", "cov50", "cov90")},
                "linear": {k: got["linear"][k] for k in ("mae", "crps")},
            }
        )
        log(f"{name}: test MAE {rows[-1]['test']['mae']:.4f} CRPS {rows[-1]['test']['crps']:.4f}")
    result = {
        "model": model_dir,
        "command": "python -m tsdiff.benchmarks.recalibration " + " ".join(sys.argv[1:]),
        "commit": commit(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "n_test_cells": got["n_cells"],
        "sampler": got["sampler"],
        "variants": rows,
    }
    write_json(result, out_dir / f"{stem}.json")
    lines = [
        f"# Calibration rules on one trained model: `{Path(model_dir).name}`",
        "",
        f"Command: `{result['command']}`  ",
        f"Commit {result['commit']}, {result['date']}; {result['machine']['cpus']} CPUs, "
        f"{result['machine']['torch_threads']} torch threads.",
        "",
        f"Same weights and draws in every row; the gate, spread and interval factors refitted "
        f"on the validation split, then scored on {result['n_test_cells']} test cells "
        f"({result['sampler']}). Validation MAE in the network's units (model / base / gated).",
        "",
        "| variant | val cells | val MAE model / base / gated | gate weights 0 / 1 | "
        "test MAE | test CRPS | cov50 | cov90 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        v, t = r["validation_mae"], r["test"]
        lines.append(
            f"| {r['variant']} | {r['validation_cells']}"
            + (f" ({r['draws']} draws)" if r["draws"] > 1 else "")
            + f" | {v['mae_model']:.4f} / "
            f"{v['mae_interpolation']:.4f} / {v['mae_gated']:.4f} | {r['gate_at_0']} / "
            f"{r['gate_at_1']} of {r['n_variables']} | {t['mae']:.4f} | {t['crps']:.4f} | "
            f"{t['cov50']:.3f} | {t['cov90']:.3f} |"
        )
    li = rows[-1]["linear"]
    lines += [
        "",
        f"Linear interpolation on the same cells: MAE {li['mae']:.4f}, CRPS {li['crps']:.4f}.",
        "",
    ]
    write_atomic(out_dir / f"{stem}.md", lambda p: p.write_text("\n".join(lines)))
    return result


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m tsdiff.benchmarks.recalibration")
    ap.add_argument("model", help="model folder or shipped name (trained on a CSDI protocol)")
    ap.add_argument(
        "--variant", action="append", required=True, help="random|pattern[+pooled][+gap]"
    )
    ap.add_argument("--stem", required=True, help="results file name")
    ap.add_argument("--draws", type=int, help="draws of hidden cells pooled (default: 1)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(RESULTS), help="results folder")
    a = ap.parse_args(argv)
    if a.draws is not None and a.draws < 1:
        ap.error(f"--draws must be at least 1, got {a.draws}")
    torch.set_num_threads(a.threads)
    run(a.model, a.variant, a.stem, Path(a.out), a.draws)


if __name__ == "__main__":
    main()
