"""Trained models of one CSDI protocol chosen on its validation split, in the units the
test reports, with the choice's own noise.

``python -m tsdiff.benchmarks.model_choice MODEL MODEL [...] --seeds 0,1,2 --stem NAME``
imputes the validation split's held-out cells with each model as it is saved (its
default sampler, variable spec, gate and interval factors) and scores them as
:mod:`tsdiff.benchmarks.shipped` scores the test: MAE, CRPS and coverage in the
protocol's units (µg/m³ for PM2.5, z-scores for PhysioNet), linear interpolation beside
them on the same cells.

Why not each model's own validation record: a model fitted in logs records its
validation MAE in log-z units, one fitted on raw values in raw z-units, so two
candidates (e.g. a wide denoiser on raw values and one in logs) cannot be ranked by
them. Here they impute the same cells: PM2.5's are the validation days' cells that
``pm25_missing`` lacks (the test's rule, on the training months' last days, which no
model trains on); PhysioNet's a share of each validation stay's observed values,
hidden anew per seed. A seed also sets the sampling noise, so the spread over seeds
says how much of a difference the noise alone makes. Each model's calibration was
fitted on validation cells too (other draws of them), which flatters every candidate
alike; the test split stays unread until one is chosen.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
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
from tsdiff.benchmarks.csdi import _cap, held_out_cells, linear_samples, score, task_for
from tsdiff.errors import ConfigError, DataError
from tsdiff.model import TSDiff

KEYS = ("mae", "crps", "cov50", "cov90")


def run(
    models: list[str],
    seeds: list[int],
    stem: str,
    *,
    valid_series: int | None = None,
    out_dir: Path = RESULTS,
) -> dict[str, Any]:
    """Each of ``models`` (folders or shipped names, one protocol) scored on the
    validation cells each of ``seeds`` hides; ratios against the first model on the
    same seed. ``valid_series``: only the first validation series (a quick look)."""
    if len(models) < 2 or len(set(models)) != len(models):
        raise ConfigError(f"need two or more distinct models to choose between, got {models}")
    loaded = [TSDiff.load(m) for m in models]
    sets = {m: t.info["data"]["dataset"] for m, t in zip(models, loaded, strict=True)}
    if len(set(sets.values())) != 1:
        raise ConfigError(f"the models were trained on different protocols: {sets}")
    task = task_for(next(iter(sets.values())))
    truth_df = _cap(task.valid, valid_series)
    given_df = None if task.valid_input is None else _cap(task.valid_input, valid_series)
    rows, linear = [], []
    for seed in seeds:
        hidden = None
        for name, model in zip(models, loaded, strict=True):
            cells = held_out_cells(model, truth_df, given_df, task.missing, seed)
            if hidden is None:
                hidden = cells.hidden
                lin = score(model, cells, linear_samples(model, cells), task.normalized_metrics)
                linear.append({"seed": seed, **_pick(lin)})
            elif not all(np.array_equal(a, b) for a, b in zip(hidden, cells.hidden, strict=True)):
                raise DataError(f"{name} holds out other validation cells than {models[0]}")
            t0 = time.perf_counter()
            samples = model.sample(cells.panel, values=cells.given, seed=seed)
            took = time.perf_counter() - t0
            got = score(model, cells, samples, task.normalized_metrics, reported=True)
            rows.append(
                {"model": name, "seed": seed, "n_cells": cells.n_cells, **_pick(got),
                 "impute_s": round(took, 1)}
            )  # fmt: skip
            log(f"{name} seed {seed}: MAE {got['mae']:.4f} CRPS {got['crps']:.4f} ({took:.0f} s)")
    result = {
        **stamp(module_command("tsdiff.benchmarks.model_choice"), commit()),
        "models": models,
        "dataset": task.dataset,
        "scale": task.protocol.get("metrics_scale"),
        "held_out": "validation cells absent from the input file"
        if given_df is not None
        else f"{task.missing:.0%} of each validation series' observed values per seed",
        "seeds": seeds,
        "valid_series": valid_series,
        "validation": rows,
        "linear": linear,
        "paired": {k: _rounded(paired_ratios(rows, "model", models, k)) for k in ("mae", "crps")},
    }
    write_results(result, out_dir, stem, _page)
    return result


def _pick(scores: dict[str, Any]) -> dict[str, Any]:
    return {k: scores[k] for k in KEYS if k in scores}


def _rounded(ratios: dict[str, list[float]]) -> dict[str, list[float]]:
    return {m: [round(x, 5) for x in v] for m, v in ratios.items()}


def _page(r: dict[str, Any]) -> str:
    lines = [
        *page_header(f"Models of the {r['dataset']} protocol chosen on validation", r),
        "",
        f"Held out: {r['held_out']}; metrics in {r['scale']}; each model as saved (its "
        "default sampler, spec, gate and interval factors). Ratios: against "
        f"`{r['models'][0]}` on the same seed's cells and noise."
        + (f" First {r['valid_series']} validation series only." if r["valid_series"] else ""),
        "",
        "| model | seed | cells | MAE | CRPS | cov50 | cov90 | MAE ratio | CRPS ratio | impute s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    seeds = r["seeds"]
    for d in r["validation"]:
        i = seeds.index(d["seed"])
        rm, rc = r["paired"]["mae"][d["model"]][i], r["paired"]["crps"][d["model"]][i]
        lines.append(
            f"| `{d['model']}` | {d['seed']} | {d['n_cells']} | {d['mae']:.4f} | {d['crps']:.4f} | "
            f"{d.get('cov50', float('nan')):.3f} | {d.get('cov90', float('nan')):.3f} | "
            f"{rm:.4f} | {rc:.4f} | {d['impute_s']:.0f} |"
        )
    for d in r["linear"]:
        lines.append(
            f"| linear interpolation | {d['seed']} | – | {d['mae']:.4f} | {d['crps']:.4f} | – | – "
            "| – | – | – |"
        )
    lines += ["", "Mean ratio over seeds (min – max):", ""]
    for m in r["models"][1:]:
        lines.append(ratio_line(f"`{m}`", r["paired"]["mae"][m], r["paired"]["crps"][m]))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m tsdiff.benchmarks.model_choice")
    ap.add_argument("models", nargs="+", help="model folders or shipped names, one protocol")
    ap.add_argument("--seeds", default="0", help="validation seeds, comma-separated")
    ap.add_argument("--valid-series", type=int, default=None, help="first N validation series")
    ap.add_argument("--stem", required=True, help="results file name")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(RESULTS), help="results folder")
    a = ap.parse_args(argv)
    seeds = seeds_arg(ap, a.seeds)
    torch.set_num_threads(a.threads)
    try:
        run(a.models, seeds, a.stem, valid_series=a.valid_series, out_dir=Path(a.out))
    except (ConfigError, DataError) as e:
        ap.exit(2, f"model_choice: {e}\n")


if __name__ == "__main__":
    main()
