"""What a shipped model's point imputation can gain without retraining, measured on its
validation split as its calibration sees it (the test split stays unseen).

    python scripts/point_estimate_check.py MODEL [--others A,B] [--max-samples 256]
        [--seed 0] [--threads 1] [--out benchmarks/results]

On one draw of hidden validation cells (the calibration's, ``seed``) it samples MODEL
once with ``--max-samples`` and each of ``--others`` (other trained models of the same
protocol and variables) with MODEL's default sample count, then scores, in the network's
units:

- **sample count**: the median of disjoint subsets of n = 16 … max samples (mean and
  spread over the subsets), each gated against the prior as the calibration gates;
- **ensembles**: MODEL's median averaged with another model's (weights 0.5 … 0.9 on
  MODEL's), and the two models' samples pooled;
- **a gate by spread**: the weight of the median against its base (the prior, or the
  series' interpolation) fitted per bucket of the samples' interquartile range, scored
  out of fold (variables of even index fitted, odd scored, and back).

Why: the last percent of a goal is cheaper in the sampler or the calibration than in
hours of training, if it is there; this says whether it is. Writes
``point-estimates-<MODEL>.{json,md}``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tsdiff.benchmarks.common import RESULTS, commit, log, page_header, stamp, write_results
from tsdiff.benchmarks.csdi import task_for
from tsdiff.calibration import GATE_EVIDENCE, GATE_GRID, fit_gate
from tsdiff.estimator import _calibration_cells, holdout_patterns
from tsdiff.model import TSDiff

SUBSETS = (16, 32, 64, 128, 256, 512)


def cells(model: TSDiff, n_samples: int | None, seed: int, task: Any) -> dict[str, np.ndarray]:
    """One draw of hidden validation cells of ``model``'s protocol, sampled uncalibrated
    (``model``'s calibration is cleared in place)."""
    if n_samples is not None:
        model.config = model.config.replace(sample={"n_samples": n_samples})
    model.config = model.config.replace(train={"calibrate_draws": 1})
    model.clear_imputation_calibration()
    train = model.panel(task.train).series if model.config.train.holdout == "pattern" else []
    got = _calibration_cells(
        model,
        model.panel(task.valid),
        0.1,
        seed,
        None,
        holdout_patterns(model.config, train),
    )
    if got is None:
        raise SystemExit("no validation cell could be hidden")
    return {
        "samples": got.samples,  # (n, m)
        "truth": got.truth,
        "var": got.var,
        "prior": got.prior,
        "interp": got.prior if got.interp is None else got.interp,
    }


def gated(med: np.ndarray, c: dict[str, np.ndarray]) -> float:
    """The MAE of ``med`` gated against the prior as the calibration gates (pooled)."""
    k = int(c["var"].max()) + 1
    fit = fit_gate(med, c["prior"], c["truth"], c["var"], k, evidence=GATE_EVIDENCE, pooled=True)
    return float(fit.mae_gated)


def mae(point: np.ndarray, truth: np.ndarray) -> float:
    return float(np.abs(point - truth).mean())


def sample_counts(c: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """The median of disjoint subsets of each size: the MAE a sample count gives."""
    smp, rows = c["samples"], []
    for n in (s for s in SUBSETS if s <= smp.shape[0]):
        meds = [np.median(smp[i : i + n], axis=0) for i in range(0, smp.shape[0] - n + 1, n)]
        maes = [mae(m, c["truth"]) for m in meds]
        rows.append(
            {
                "n_samples": n,
                "subsets": len(meds),
                "mae": float(np.mean(maes)),
                "mae_sd": float(np.std(maes)),
                "mae_gated": float(np.mean([gated(m, c) for m in meds])),
            }
        )
    return rows


def ensembles(c: dict[str, np.ndarray], other: dict[str, np.ndarray], n: int) -> list[dict]:
    """MODEL's first ``n`` samples with another model's: medians averaged, samples pooled."""
    if not np.array_equal(c["truth"], other["truth"]):
        raise SystemExit("the models hid different validation cells: not the same protocol")
    mine = c["samples"][:n]
    a_med, b_med = np.median(mine, axis=0), np.median(other["samples"], axis=0)

    def row(rule: str, med: np.ndarray, own: dict[str, np.ndarray] = c) -> dict[str, Any]:
        return {"rule": rule, "mae": mae(med, c["truth"]), "mae_gated": gated(med, own)}

    rows = [row("this model alone", a_med), row("the other alone", b_med, other)]
    rows += [row(f"medians, weight {w}", w * a_med + (1 - w) * b_med) for w in (0.5, 0.7, 0.8, 0.9)]
    rows.append(row("samples pooled", np.median(np.concatenate([mine, other["samples"]]), axis=0)))
    return rows


def spread_gates(c: dict[str, np.ndarray], n: int) -> list[dict[str, Any]]:
    """The median's weight against a base fitted per bucket of the samples' IQR, out of
    fold: fitted on the variables of one parity, scored on the other's cells."""
    smp, y, var = c["samples"][:n], c["truth"], c["var"]
    med = np.median(smp, axis=0)
    iqr = np.subtract(*np.percentile(smp, [75, 25], axis=0))
    rows = []
    for base_name in ("prior", "interp"):
        base = c[base_name]
        for buckets in (1, 2, 4, 8):
            edges = np.quantile(iqr, np.linspace(0, 1, buckets + 1))
            b = np.clip(np.searchsorted(edges, iqr, side="right") - 1, 0, buckets - 1)
            point = med.copy()
            for fold in (0, 1):
                fit_on, score_on = var % 2 != fold, var % 2 == fold
                for j in range(buckets):
                    sel = fit_on & (b == j)
                    mixed = GATE_GRID[:, None] * med[sel] + (1 - GATE_GRID[:, None]) * base[sel]
                    errs = np.abs(mixed - y[sel]).mean(axis=1)  # (grid,)
                    a = GATE_GRID[int(np.argmin(errs))] if sel.any() else 1.0
                    out = score_on & (b == j)
                    point[out] = a * med[out] + (1 - a) * base[out]
            rows.append({"base": base_name, "buckets": buckets, "mae_out_of_fold": mae(point, y)})
    return rows


def markdown(r: dict[str, Any]) -> str:
    lines = page_header(f"Point imputation without retraining: `{r['model']}`, validation split", r)
    lines += [
        "",
        f"{r['n_cells']} hidden validation cells (seed {r['seed']}); MAE in the network's "
        f"units; gated: against the prior, pooled, as the calibration gates. The model's own "
        f"sampler ({r['sampler']}); {r['threads']} torch thread(s).",
        "",
        "**Sample count** (median of disjoint subsets)",
        "",
        "| samples | subsets | MAE (sd) | MAE gated |",
        "|---|---|---|---|",
    ]
    for s in r["sample_counts"]:
        lines.append(
            f"| {s['n_samples']} | {s['subsets']} | {s['mae']:.5f} ({s['mae_sd']:.5f}) | "
            f"{s['mae_gated']:.5f} |"
        )
    for other, rows in r["ensembles"].items():
        lines += ["", f"**Ensemble with `{other}`** ({r['n_default']} samples each)", ""]
        lines += ["| rule | MAE | MAE gated |", "|---|---|---|"]
        lines += [f"| {e['rule']} | {e['mae']:.5f} | {e['mae_gated']:.5f} |" for e in rows]
    lines += [
        "",
        f"**A gate by the samples' spread** (out of fold, {r['n_default']} samples; one "
        "bucket = one weight for all cells)",
        "",
        "| base | IQR buckets | MAE |",
        "|---|---|---|",
    ]
    lines += [
        f"| {g['base']} | {g['buckets']} | {g['mae_out_of_fold']:.5f} |" for g in r["spread_gates"]
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(prog="python scripts/point_estimate_check.py")
    ap.add_argument("model")
    ap.add_argument("--others", default="", help="comma-separated models to ensemble with")
    ap.add_argument("--max-samples", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=RESULTS)
    a = ap.parse_args(argv)
    if a.threads < 1 or a.max_samples < SUBSETS[0]:
        ap.error(f"--threads must be >= 1 and --max-samples >= {SUBSETS[0]}")
    torch.set_num_threads(a.threads)
    model = TSDiff.load(a.model)
    task = task_for(model.info["data"]["dataset"])
    n_default = model.config.sample.n_samples
    s = model.config.sample
    log(f"{a.model}: {a.max_samples} samples")
    mine = cells(model, max(a.max_samples, n_default), a.seed, task)  # loaded once
    others = {}
    for name in filter(None, a.others.split(",")):
        log(f"{name}: {n_default} samples")
        other = cells(TSDiff.load(name), n_default, a.seed, task)
        others[name] = ensembles(mine, other, n_default)
    result = {
        **stamp(" ".join(["python scripts/point_estimate_check.py", *argv]), commit()),
        "model": a.model,
        "seed": a.seed,
        "threads": a.threads,
        "n_cells": int(mine["truth"].size),
        "n_default": n_default,
        "sampler": f"{s.sampler} {s.steps} steps, eta {s.eta}, {s.precision}",
        "sample_counts": sample_counts(mine),
        "ensembles": others,
        "spread_gates": spread_gates(mine, n_default),
    }
    write_results(result, a.out, f"point-estimates-{Path(a.model).name}", markdown)


if __name__ == "__main__":
    main()
