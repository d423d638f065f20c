"""A trained model's default sampler chosen on validation, with the choice's own noise.

``python -m tsdiff.benchmarks.sampler_choice MODEL --steps 5 --steps 10 --seeds 0,1,2
[--test] --stem NAME`` sets the model's DDIM steps to each candidate, refits its
imputation calibration on the validation split (the gate, spread and interval factors
are fitted on draws of the default sampler, so each candidate gets its own) once per
validation seed (each seed hides other cells: ``train.holdout`` draws other stretches'
missing patterns), and reports each candidate's validation MAE and CRPS per seed and
paired against the first candidate. Why the seeds: one draw of a few thousand held-out
cells can rank two samplers the other way round from another draw, and from the test.
With ``--test`` each candidate, calibrated on the model's own seed as a shipped model
is, is also scored on the protocol's test cells (:mod:`tsdiff.benchmarks.shipped`).
Results: ``benchmarks/results/NAME.{json,md}``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch

from tsdiff.benchmarks.common import (
    RESULTS,
    commit,
    log,
    module_command,
    page_header,
    paired_ratios,
    ratio_line,
    seeds_arg,
    stamp,
    write_results,
)
from tsdiff.benchmarks.csdi import Task, task_for
from tsdiff.benchmarks.recalibration import gate_mae, recalibrate, score_as_shipped
from tsdiff.model import TSDiff


def validation_draw(model: TSDiff, steps: int, seed: int, task: Task) -> dict[str, Any]:
    """``model``'s calibration refitted in place with ``steps`` DDIM steps on the
    validation cells hidden with ``seed``: what the fit saw there (gated MAE and CRPS in
    the network's units)."""
    model.config = model.config.replace(sample={"steps": steps}, train={"seed": seed})
    t0 = time.perf_counter()
    fit = recalibrate(model, task=task)
    crps = fit.get("per_variable", fit)["crps_after"]  # the samples as calibrated
    mae = gate_mae(fit)
    return {
        "steps": steps,
        "seed": seed,
        "n_cells": fit["n_cells"],
        "mae_model": mae["mae_model"],
        "mae_gated": mae["mae_gated"],
        "crps": crps,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def run(
    model_dir: str,
    steps: list[int],
    seeds: list[int],
    stem: str,
    test: bool = False,
    out_dir: Path = RESULTS,
) -> dict[str, Any]:
    first = TSDiff.load(model_dir)
    task, own = task_for(first.info["data"]["dataset"]), first.config.train.seed
    draws, shippable = [], {}  # per candidate, the model calibrated on its own seed
    for s in steps:
        for seed in seeds:
            model = TSDiff.load(model_dir)
            draws.append(validation_draw(model, s, seed, task))
            if test and seed == own:
                shippable[s] = model
            d = draws[-1]
            log(
                f"steps {s} seed {seed}: {d['n_cells']} cells, gated MAE "
                f"{d['mae_gated']:.5f}, CRPS {d['crps']:.5f}"
            )
    tests = []
    for s in steps if test else []:
        model = shippable.get(s)
        if model is None:  # its own seed was not among the validation seeds
            model = TSDiff.load(model_dir)
            validation_draw(model, s, own, task)
        got = score_as_shipped(model)
        scores = {k: got["tsdiff"][k] for k in ("mae", "crps", "cov50", "cov90")}
        tests.append({"steps": s, **scores, "impute_s": got["impute_s"]})
    result = {
        "model": model_dir,
        **stamp(module_command("tsdiff.benchmarks.sampler_choice"), commit()),
        "validation": draws,
        "paired_mae": {
            str(k): v for k, v in paired_ratios(draws, "steps", steps, "mae_gated").items()
        },
        "paired_crps": {str(k): v for k, v in paired_ratios(draws, "steps", steps, "crps").items()},
        "test": tests,
    }
    write_results(result, out_dir, stem, lambda r: _page(r, steps, seeds))
    return result


def _page(r: dict[str, Any], steps: list[int], seeds: list[int]) -> str:
    lines = [
        *page_header(f"The default sampler of `{Path(r['model']).name}` chosen on validation", r),
        "",
        "Each row: the model's DDIM steps set, its calibration refitted on the validation "
        "cells the seed hides, scored there (gated MAE and CRPS in the network's units). "
        f"Ratios: against {steps[0]} steps on the same seed's cells.",
        "",
        "| steps | seed | cells | MAE (gated) | CRPS | MAE ratio | CRPS ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for d in r["validation"]:
        i = seeds.index(d["seed"])
        rm, rc = r["paired_mae"][str(d["steps"])][i], r["paired_crps"][str(d["steps"])][i]
        lines.append(
            f"| {d['steps']} | {d['seed']} | {d['n_cells']} | {d['mae_gated']:.5f} | "
            f"{d['crps']:.5f} | {rm:.4f} | {rc:.4f} |"
        )
    lines += ["", "Mean ratio over seeds (min – max):", ""]
    for s in steps[1:]:
        lines.append(ratio_line(f"{s} steps", r["paired_mae"][str(s)], r["paired_crps"][str(s)]))
    if r["test"]:
        lines += [
            "",
            "On the protocol's test cells (calibrated on the model's own seed, as shipped):",
            "",
            "| steps | MAE | CRPS | cov50 | cov90 | impute s |",
            "|---|---|---|---|---|---|",
        ]
        for t in r["test"]:
            lines.append(
                f"| {t['steps']} | {t['mae']:.4f} | {t['crps']:.5f} | {t['cov50']:.3f} | "
                f"{t['cov90']:.3f} | {t['impute_s']:.0f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m tsdiff.benchmarks.sampler_choice")
    ap.add_argument("model", help="model folder or shipped name (trained on a CSDI protocol)")
    ap.add_argument("--steps", type=int, action="append", required=True, help="DDIM steps")
    ap.add_argument("--seeds", default="0", help="validation seeds, comma-separated")
    ap.add_argument("--test", action="store_true", help="also score each on the test cells")
    ap.add_argument("--stem", required=True, help="results file name")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(RESULTS), help="results folder")
    a = ap.parse_args(argv)
    seeds = seeds_arg(ap, a.seeds)
    if len(set(a.steps)) != len(a.steps) or min(a.steps) < 1:
        ap.error(f"--steps must be distinct positive integers, got {a.steps}")
    torch.set_num_threads(a.threads)
    run(a.model, a.steps, seeds, a.stem, a.test, Path(a.out))


if __name__ == "__main__":
    main()
