"""A shipped model scored as users get it: loaded by name, with its variable spec and
default sampler, on the CSDI protocol's held-out test cells.

``python -m tsdiff.benchmarks.shipped physionet-vitals`` (or ``pm25-beijing``) writes
``benchmarks/results/shipped-<name>.{json,md}``: MAE, CRPS, coverage, imputation time,
beside linear interpolation on the same cells, and how many imputed medians and interval
bounds lie outside the variables' bounds (0 by construction).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from tsdiff.benchmarks.common import RESULTS, commit, log, machine
from tsdiff.benchmarks.csdi import (
    LEVELS,
    PUBLISHED,
    _cap,
    held_out_cells,
    linear_samples,
    physionet_task,
    score,
    task_for,
)
from tsdiff.errors import ConfigError
from tsdiff.inference import interval_bounds
from tsdiff.io import write_atomic, write_json
from tsdiff.model import TSDiff
from tsdiff.samplers import SAMPLER_NAMES


def run(
    name: str,
    out_dir: Path = RESULTS,
    seed: int = 0,
    *,
    n_samples: int | None = None,
    steps: int | None = None,
    sampler: str | None = None,
    test_series: int | None = None,
    missing: float | None = None,
) -> dict[str, Any]:
    """Score ``name`` on its test split; sampler options default to the model's own
    (others write ``shipped-<name>-<sampler>-<n>x<steps>``, e.g. for a sampler sweep).
    ``missing``: a PhysioNet model scored with another share of each test stay's
    observed values held out (CSDI's 50 % and 90 % rows), on the same test stays."""
    model = TSDiff.load(name)
    trained_on = model.info["data"]["dataset"]
    ds = trained_on
    if missing is not None:
        if not trained_on.startswith("physionet"):
            raise ConfigError(
                f"--missing applies to PhysioNet models; {name!r} was trained on "
                f"{trained_on!r}, whose held-out cells the data fixes"
            )
        ds = f"physionet{round(missing * 100)}"
        task = physionet_task(missing, seed=seed)
    else:
        task = task_for(ds, seed=seed)
    if test_series is not None:
        task.test = _cap(task.test, test_series)
        if task.test_input is not None:
            task.test_input = _cap(task.test_input, test_series)
    cells = held_out_cells(model, task.test, task.test_input, task.missing, seed)
    norm = task.normalized_metrics
    t0 = time.perf_counter()
    samples = model.sample(
        cells.panel,
        values=cells.given,
        seed=seed,
        n_samples=n_samples,
        steps=steps,
        sampler=sampler,
    )  # the model's defaults unless given
    impute_s = time.perf_counter() - t0
    ours = score(model, cells, samples, norm, reported=True)
    lin = linear_samples(model, cells)
    outside = _outside(model, cells, samples)
    cfg = model.config.sample
    n, k, smp = n_samples or cfg.n_samples, steps or cfg.steps, sampler or cfg.sampler
    if smp == "ddpm":
        k = model.scheduler.num_steps
    default = (n_samples, steps, sampler, test_series) == (None, None, None, None)
    label = Path(name).name  # a shipped name, or a model folder's name (a candidate)
    stem = f"shipped-{label}" if default else f"shipped-{label}-{smp}-{n}x{k}"
    if test_series is not None:
        stem += f"-{test_series}series"
    if ds != trained_on:
        stem += f"-missing{ds[len('physionet') :]}"
    result = {
        "model": name,
        "dataset": ds,
        "trained_on": trained_on,
        "published": {"csdi": PUBLISHED.get(ds, {})},
        "command": "python -m tsdiff.benchmarks.shipped " + " ".join(sys.argv[1:]),
        "commit": commit(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "n_cells": cells.n_cells,
        "n_series": len(cells.panel.series),
        "sampler": f"{smp} {k} steps, {n} samples, {cfg.precision}",
        "impute_s": round(impute_s, 1),
        "tsdiff": ours,
        "linear": score(model, cells, lin, norm),
        "outside_bounds": outside,
    }
    write_json(result, out_dir / f"{stem}.json")
    o, li = ours, result["linear"]
    page = "\n".join(
        [
            f"# Shipped model `{name}` on its test split",
            "",
            f"Command: `{result['command']}`  ",
            f"Commit {result['commit']}, {result['date']}; {result['machine']['cpus']} CPUs, "
            f"{result['machine']['torch_threads']} torch threads.",
            "",
            f"{result['n_cells']} held-out cells of {result['n_series']} test series (CSDI "
            f"protocol, seed {seed}); the model's default sampler ({result['sampler']}), its "
            f"variable spec and gate; imputing took {result['impute_s']} s.",
            "",
            "| method | MAE | RMSE | CRPS | cov50 | cov90 |",
            "|---|---|---|---|---|---|",
            f"| {name} | {o['mae']:.4f} | {o['rmse']:.4f} | {o['crps']:.4f} | "
            f"{o['cov50']:.3f} | {o['cov90']:.3f} |",
            f"| linear interpolation | {li['mae']:.4f} | {li['rmse']:.4f} | "
            f"{li['crps']:.4f} | – | – |",
            *_published_row(result["published"]["csdi"]),
            "",
            *_missing_note(ds, trained_on),
            f"Imputed medians outside their variable's bounds: {outside['medians']}; interval "
            f"bounds ({', '.join(map(str, LEVELS))}%) outside: {outside['interval_bounds']}; "
            f"raw samples outside: {outside['samples']}.",
            "",
            *_interval_note(model, o),
        ]
    )
    write_atomic(out_dir / f"{stem}.md", lambda p: p.write_text(page))
    log(
        f"{name}: MAE {o['mae']:.4f} CRPS {o['crps']:.4f} (linear {li['mae']:.4f}), "
        f"{impute_s:.0f} s; outside bounds: {outside}"
    )
    return result


def _published_row(pub: dict[str, float]) -> list[str]:
    if not pub:
        return []
    fmt = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
    return [f"| CSDI (published) | {fmt(pub.get('mae'))} | – | {fmt(pub.get('crps'))} | – | – |"]


def _missing_note(ds: str, trained_on: str) -> list[str]:
    if ds == trained_on:
        return []
    return [
        f"Held out: {ds[len('physionet') :]} % of each test stay's observed values (the "
        f"model was trained and calibrated on the {trained_on} protocol's training and "
        "validation stays; the test stays are the same, never seen).",
        "",
    ]


def _interval_note(model: TSDiff, o: dict[str, Any]) -> list[str]:
    if not model.interval_scale:
        return ["Coverage: the samples' own central intervals (no interval factors).", ""]
    scale = model.interval_scale
    f = ", ".join(f"{lv}%: x{scale[lv]:.3g}" for lv in LEVELS if lv in scale)
    return [
        f"Coverage: of the intervals `impute` reports, the samples' quantiles widened by "
        f"the model's interval factors ({f}, fitted on validation cells); the samples' own "
        f"intervals cover {o['cov50_samples']:.3f} / {o['cov90_samples']:.3f}.",
        "",
    ]


def _outside(model: TSDiff, cells: Any, samples: list[np.ndarray]) -> dict[str, int]:
    """Imputed medians, interval bounds and raw samples outside the variables' bounds."""
    assert model.spec is not None
    lo = np.array([-np.inf if s.lower is None else s.lower for s in model.spec.values()])
    hi = np.array([np.inf if s.upper is None else s.upper for s in model.spec.values()])
    counts = {"medians": 0, "interval_bounds": 0, "samples": 0}

    def n_out(a: np.ndarray, miss: np.ndarray) -> int:  # a (..., K, T), miss (K, T)
        bad = (a < lo[:, None]) | (a > hi[:, None])
        return int((bad & miss).sum())

    for smp, given in zip(samples, cells.given, strict=True):
        miss = np.isnan(given)  # (K, T): what the model imputed
        counts["medians"] += n_out(np.median(smp, axis=0), miss)
        bounds = interval_bounds([smp], LEVELS, model, [~miss])  # as impute reports them
        for level in LEVELS:
            counts["interval_bounds"] += n_out(np.stack([b[0] for b in bounds[level]]), miss)
        counts["samples"] += n_out(smp, miss)
    return counts


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m tsdiff.benchmarks.shipped")
    ap.add_argument("name")
    ap.add_argument("--n-samples", type=int)
    ap.add_argument("--steps", type=int)
    ap.add_argument("--sampler", choices=SAMPLER_NAMES)
    ap.add_argument("--test-series", type=int, help="only the first N test series")
    ap.add_argument(
        "--missing",
        type=float,
        help="PhysioNet models: share of each test stay's observed values held out "
        "(e.g. 0.5, 0.9; default the model's own protocol)",
    )
    ap.add_argument("--out", default=str(RESULTS), help="results folder")
    a = ap.parse_args(argv)
    try:
        run(
            a.name,
            Path(a.out),
            n_samples=a.n_samples,
            steps=a.steps,
            sampler=a.sampler,
            test_series=a.test_series,
            missing=a.missing,
        )
    except ConfigError as e:
        ap.error(str(e))


if __name__ == "__main__":
    main()
