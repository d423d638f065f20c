"""Short paired design runs: one variant per process, the same held-out cells for all.

``python -m tsdiff.benchmarks.design physionet --method tsdiff --profile quick --set
network.prior_layers=2 --minutes 5 --test-series 200 --out runs/a.json`` trains one
variant for a fixed wall-clock budget and scores it, beside linear interpolation, on the
CSDI protocol's held-out cells of the first ``--test-series`` test series;
``--method saits`` trains PyPOTS SAITS for the same budget on the same data. Start two
processes at once (``--threads 1`` each) so that both see the same machine, then
compare their JSON files: the model design is decided on these before long runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tsdiff.benchmarks.common import commit, log, machine
from tsdiff.benchmarks.csdi import (
    _cap,
    _chunks,
    held_out_cells,
    linear_samples,
    load_profile,
    peer_scores,
    physionet_task,
    pm25_task,
    score,
    unchunk,
)
from tsdiff.io import write_atomic, write_json
from tsdiff.model import TSDiff


def _override(d: dict[str, Any], assignment: str) -> None:
    """``section.field=value`` (value parsed as JSON when it parses) into a config dict."""
    key, _, raw = assignment.partition("=")
    section, _, name = key.partition(".")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    d.setdefault(section, {})[name] = value


def _prior_alone(model: TSDiff, cells: Any, norm: bool) -> dict[str, Any] | None:
    """The learned prior's own point imputation of the cells (numeric time only: the
    calendar inputs are zero), to see what the diffusion adds to it."""
    net, sc = model.net, model.scaler
    if net is None or net.prior_net is None or sc is None or model.history_steps:
        return None
    if model.freq is None or model.freq.kind != "numeric":  # calendar inputs not rebuilt here
        return None
    z = [sc.transform(g) for g in cells.given]
    wins = [_chunks(v, model.window) for v in z]
    x = np.concatenate(wins)  # (N, K, L)
    obs = ~np.isnan(x)
    with torch.inference_mode():
        p = (
            net.prior(
                torch.from_numpy(np.nan_to_num(x)).float(),
                torch.from_numpy(obs),
                torch.zeros(len(x), 4, model.window),
            )
            .numpy()
            .astype(np.float64)
        )
    pred = [
        sc.inverse(np.where(np.isnan(v), full, v))[None]
        for v, full in zip(z, unchunk(p, z), strict=True)
    ]
    return score(model, cells, pred, norm)


def _per_variable(
    model: TSDiff, cells: Any, samples: list[np.ndarray], lin: list[np.ndarray], norm: bool
) -> dict[str, Any]:
    """Scores per variable on its own held-out cells, with the skewness of its observed
    test values (which variables a transform should help)."""
    out = {}
    for k, name in enumerate(model.variables):
        only = [np.zeros_like(h) for h in cells.hidden]
        for o, h in zip(only, cells.hidden, strict=True):
            o[k] = h[k]
        if not any(o.any() for o in only):
            continue
        sub = dataclasses.replace(cells, hidden=only)
        obs = np.concatenate([t[k][np.isfinite(t[k])] for t in cells.truth])
        sd = float(obs.std()) if obs.size else 0.0
        skew = float(np.mean(((obs - obs.mean()) / sd) ** 3)) if sd > 0 else 0.0
        spec = model.spec[name].transform if model.spec else "identity"
        out[name] = {
            "skewness": round(skew, 2),
            "transform": spec,
            "model": score(model, sub, samples, norm, reported=True),
            "linear": score(model, sub, lin, norm),
        }
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="python -m tsdiff.benchmarks.design")
    ap.add_argument("family", choices=["physionet", "pm25"])
    ap.add_argument("--method", choices=["tsdiff", "saits"], default="tsdiff")
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--set", action="append", default=[], help="section.field=value")
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--test-series", type=int, default=200)
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)

    prof = load_profile(a.family, a.profile)
    task = physionet_task(0.1, seed=a.seed) if a.family == "physionet" else pm25_task()
    task.test = _cap(task.test, a.test_series)
    if task.test_input is not None:
        task.test_input = _cap(task.test_input, a.test_series)
    d = prof.model.to_dict()
    for s in a.set:
        _override(d, s)
    if a.method == "saits":  # a model only to lay out the grid and the scaler: one step
        d.setdefault("train", {}).update(calibrate=False, val_crps_every=0, epochs=1)
        minutes = 0.01
    else:
        minutes = a.minutes
    d["train"] = {**d.get("train", {}), "seed": a.seed, "max_minutes": minutes}
    cfg = type(prof.model).from_dict(d)
    t0 = time.perf_counter()
    model = TSDiff(cfg).fit(task.train, valid_df=task.valid, freq=task.freq, progress=False)
    fit_s = time.perf_counter() - t0
    cells = held_out_cells(model, task.test, task.test_input, task.missing, a.seed)
    norm = task.normalized_metrics
    lin = linear_samples(model, cells)
    result: dict[str, Any] = {
        "family": a.family,
        "method": a.method,
        "sets": a.set,
        "profile": prof.name,
        "minutes": a.minutes,
        "n_cells": cells.n_cells,
        "commit": commit(),
        "machine": machine(),
        "linear": score(model, cells, lin, norm),
    }
    if a.method == "saits":
        row = peer_scores(model, cells, task.train, task.valid, a.minutes, norm, a.seed)
        result["scores"] = row["saits"]
    else:
        t0 = time.perf_counter()
        samples = model.sample(
            cells.panel, values=cells.given, n_samples=a.samples, steps=a.steps, seed=a.seed
        )
        result["scores"] = score(model, cells, samples, norm, reported=True)
        result["scores"]["impute_s"] = round(time.perf_counter() - t0, 2)
        result["per_variable"] = _per_variable(model, cells, samples, lin, norm)
        result["prior_alone"] = _prior_alone(model, cells, norm)
        result["train"] = {k: v for k, v in model.info.items() if k != "final"}
        result["fit_s"] = round(fit_s, 1)
    s = result["scores"]
    log(
        f"{a.method} {a.set}: MAE {s.get('mae')} CRPS {s.get('crps')} "
        f"(linear MAE {result['linear']['mae']}) on {cells.n_cells} cells"
    )
    write_json(result, Path(a.out))
    return result


def summarize(paths: list[str], out: str) -> str:
    """One table of design runs (their JSON files), written as ``out``.md and .json."""
    runs = [json.loads(Path(p).read_text()) | {"file": Path(p).name} for p in paths]
    lines = [
        "# Design runs: paired, short, the same held-out cells",
        "",
        "Each row is one process of `python -m tsdiff.benchmarks.design` (1 torch thread); rows "
        "with the same pair label ran at the same time on the 2-core machine. Scores on "
        "the CSDI protocol's held-out cells of the first test series (PhysioNet 10%: 200 "
        "test stays of fold 0; PM2.5: the four test months), normalised units for "
        "PhysioNet, µg/m³ for PM2.5. `prior alone`: the learned prior's own point "
        "imputation of the same cells.",
        "",
        "| pair | data | method | settings | min | MAE | CRPS | cov50 | cov90 | prior alone "
        "MAE | linear MAE | impute s | commit |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        s = r["scores"]
        pa = (r.get("prior_alone") or {}) if r["family"] == "physionet" else {}
        settings = ", ".join(_setting(x) for x in r["sets"]) or r["profile"]
        if r["method"] == "saits":
            settings = f"{s.get('epochs')} epochs"
        lines.append(
            f"| {r['file'].split('-')[0]} | {r['family']} | {r['method']} | {settings} | "
            f"{r['minutes']:g} | {s['mae']:.4f} | {s['crps']:.4f} | "
            f"{_num(s.get('cov50'))} | {_num(s.get('cov90'))} | {_num(pa.get('mae'), 4)} | "
            f"{r['linear']['mae']:.4f} | {_num(s.get('impute_s'), 1)} | {r['commit']} |"
        )
    page = "\n".join(lines) + "\n"
    write_json({"runs": runs}, Path(out + ".json"))
    write_atomic(out + ".md", lambda tmp: tmp.write_text(page))
    return page


def _setting(assignment: str) -> str:
    """``section.field=value`` as a table cell: a per-variable spec that gives every
    variable the same settings is shown as those settings and the count, not 36 copies."""
    key, _, raw = assignment.split(".", 1)[1].partition("=")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return f"{key}={raw}"
    if key == "spec" and isinstance(value, dict) and value:
        shared = {json.dumps(v, sort_keys=True) for v in value.values()}
        if len(shared) == 1:
            return f"spec={shared.pop()} for each of {len(value)} variables"
    return f"{key}={raw}"


def _num(v: Any, digits: int = 3) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["summarize"]:
        print(summarize(sys.argv[3:], sys.argv[2]))
    else:
        main()
