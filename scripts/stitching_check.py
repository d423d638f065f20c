"""Does a step imputed from several overlapping windows gain from more than the one
whose centre is nearest (what ``tsdiff.inference`` keeps)? Measured on a shipped model's
validation split, as its calibration sees it; the test split stays unseen.

    python scripts/stitching_check.py MODEL [--threads 1] [--out benchmarks/results]

Variants, each a fresh load of MODEL recalibrated on the validation cells
(:func:`tsdiff.benchmarks.recalibration.recalibrate`, the model's own rules):

- ``owner``: as shipped (the model's inference stride, each step from its nearest-centre
  window);
- ``pooled``: the same draws, each step's samples split evenly between every window that
  covers it (an ensemble over context positions at no extra cost);
- ``stride-S``: a smaller inference stride, so each step's nearest-centre window has it
  nearer its centre (more context on both sides), at ``window / S`` times the draws.

Writes ``stitching-<MODEL>.{json,md}``. An experiment, not a library option: ``pooled``
swaps the pipeline's private stitching function for the run.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import tsdiff.inference as inference
from tsdiff.benchmarks.common import RESULTS, commit, page_header, stamp, write_results
from tsdiff.benchmarks.csdi import task_for
from tsdiff.benchmarks.recalibration import gate_mae, recalibrate
from tsdiff.model import TSDiff

NEAREST = inference._stitch


def pooled_steps(per_window: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """(W, n, K, L) → (n, K, T): each step's n samples split evenly between the windows
    covering it, the nearest-centre window's first (all n from it when n < windows)."""
    n, window = per_window.shape[1], per_window.shape[-1]
    out = np.empty(per_window.shape[1:-1] + (length,), per_window.dtype)  # (n, K, T)
    centres = starts + (window - 1) / 2
    for t in range(length):
        cover = np.flatnonzero((starts <= t) & (t < starts + window))
        cover = cover[np.argsort(np.abs(t - centres[cover]), kind="stable")]
        if n < len(cover):
            cover = cover[:1]
        for j, w in enumerate(cover):
            lo, hi = j * n // len(cover), (j + 1) * n // len(cover)
            out[lo:hi, :, t] = per_window[w, lo:hi, :, t - starts[w]]
    return out


def _stride(variant_name: str) -> int | None:
    """N of a ``stride-N`` variant (N >= 1); None for any other name."""
    n = variant_name.removeprefix("stride-")
    return int(n) if n != variant_name and n.isdigit() and int(n) >= 1 else None


def _known(variant_name: str) -> bool:
    return variant_name in ("owner", "pooled") or _stride(variant_name) is not None


def variant(name: str, variant_name: str, task: Any) -> dict[str, Any]:
    model = TSDiff.load(name)
    if variant_name == "pooled":
        inference._stitch = functools.partial(NEAREST, join=pooled_steps)
    if (stride := _stride(variant_name)) is not None:
        model.config = model.config.replace(data={"inference_stride": stride})
    t0 = time.perf_counter()
    try:
        fit = recalibrate(model, task=task)
    finally:
        inference._stitch = NEAREST
    gate = gate_mae(fit)
    return {
        "variant": variant_name,
        "inference_stride": model.config.data.stride("inference"),
        "n_cells": fit["n_cells"],
        "mae_model": gate["mae_model"],
        "mae_gated": gate["mae_gated"],
        "crps": fit["crps_after"],
        "crps_per_variable": (fit.get("per_variable") or {}).get("crps_after"),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def markdown(r: dict[str, Any]) -> str:
    lines = page_header(f"Stitching overlapping windows: `{r['model']}`, validation split", r)
    lines += [
        "",
        "Each variant recalibrated on the same validation cells (normalised units); "
        f"window {r['window']}, {r['n_samples']} samples. `seconds`: the recalibration's "
        f"draws with {r['threads']} torch thread(s), the machine shared with other work.",
        "",
        "| variant | inference stride | MAE (model) | MAE (gated) | CRPS | CRPS per variable "
        "| seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for v in r["variants"]:
        lines.append(
            f"| {v['variant']} | {v['inference_stride']} | {v['mae_model']:.4f} | "
            f"{v['mae_gated']:.4f} | {v['crps']:.4f} | {v['crps_per_variable'] or '–'} | "
            f"{v['seconds']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(prog="python scripts/stitching_check.py")
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--variants", default="owner,pooled,stride-12,stride-6")
    ap.add_argument("--out", type=Path, default=RESULTS)
    a = ap.parse_args(argv)
    if a.threads < 1:
        ap.error(f"--threads must be at least 1, got {a.threads}")
    variants = a.variants.split(",")
    bad = [v for v in variants if not _known(v)]
    if bad:
        ap.error(f"unknown variant(s) {', '.join(bad)}: use owner, pooled or stride-N (N >= 1)")
    torch.set_num_threads(a.threads)
    model = TSDiff.load(a.model)
    task = task_for(model.info["data"]["dataset"])
    result = {
        **stamp(" ".join(["python scripts/stitching_check.py", *argv]), commit()),
        "model": a.model,
        "window": model.config.data.window,
        "n_samples": model.config.sample.n_samples,
        "threads": a.threads,
        "variants": [variant(a.model, v, task) for v in variants],
    }
    write_results(result, a.out, f"stitching-{a.model}", markdown)


if __name__ == "__main__":
    main()
