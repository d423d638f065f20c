"""How the far forecast gate should be fitted: rules compared on the same models.

``python -m tsdiff.benchmarks.far_gate --seeds 0,5,6 --minutes 2,1`` trains, per frame
of :mod:`tsdiff.benchmarks.forecast_defaults` (one ETTh1 sensor, the seven sensors, the
36 PM2.5 stations), seed and budget, a CLI-default model (``tsdiff train TRAIN --out
MODEL --max-minutes M --seed S``: models kept under ``--models``, reused when there),
draws its far-gate evidence on its own validation tail once
(:func:`tsdiff.forecast_gate.far_cells`), fits each rule's weights on it, and scores every
rule on the same test forecasts (h = 168 from 8 daily origins after the training data,
drawn once without any gate): the model's median recentred with the first gate over
the first chunk's leads and with the rule's weights beyond. Rules:

- ``first gate``: the first chunk's gate at every lead (the behaviour before the far gate);
- ``model alone``: no gate beyond the first chunk;
- ``from naive``: fitted as the first gate is (the model kept alone if it beats seasonal
  naive over all variables by one standard error over chunks; else per variable, from
  seasonal naive, moving off it and off the model alone each only on that evidence);
- ``anchored``: kept at the first gate's weights unless others beat them by one standard
  error over chunks (:func:`tsdiff.calibration.fit_gate`'s ``anchor``; what fit used
  from fdc56c0);
- ``equal blend``: ``FAR_ANCHOR`` (a half) times the first gate's weights, unfitted:
  the model's median and seasonal naive averaged where the first gate kept the model
  alone (at far leads both are weak forecasts whose errors are partly independent:
  their mean often beats either);
- ``half anchored``: anchored at the equal blend's weights instead (what fit uses).

MAE ratios to seasonal naive on the test cells (all leads, and the leads beyond the first
chunk). Results: ``benchmarks/results/forecast-far-gate.{json,md}`` (``--stem``: the
runs with the blend rules are ``forecast-far-gate-half{,-m1}``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from tsdiff import TSDiff
from tsdiff.backtest import backtest
from tsdiff.benchmarks.common import RESULTS, commit, log, module_command, stamp, write_results
from tsdiff.benchmarks.forecast_defaults import ORIGINS, frames
from tsdiff.calibration import FORECAST_GATE_EVIDENCE, fit_gate
from tsdiff.estimator import Estimator, _forecast_validation
from tsdiff.forecast_gate import far_anchor, far_cells, naive_gate
from tsdiff.forecasting import chunk_length, naive_bases
from tsdiff.predictor import Predictor

HORIZON = 168
TEST_ORIGINS = 8
RULES = ("first gate", "model alone", "from naive", "anchored", "equal blend", "half anchored")


def train(name: str, df: Any, seed: int, minutes: float, models: Path) -> Path:
    """The CLI-default model of one frame, seed and budget (trained once, then reused)."""
    out = models / f"{name}-s{seed}-m{minutes:g}"
    if not (out / "model.json").exists():
        first = len(df) - 24 * ORIGINS - 1
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "train.parquet"
            df.iloc[: first + 1].to_parquet(data)
            cmd = [sys.executable, "-m", "tsdiff.cli", "train", str(data), "--out", str(out),
                   "--max-minutes", f"{minutes:g}", "--seed", str(seed)]  # fmt: skip
            subprocess.run(cmd, check=True, capture_output=True)
    return out


def rule_weights(model: Predictor, df: Any) -> dict[str, list[float]]:
    """Each rule's far weights, from the model's own validation tail (as fit splits it)."""
    first = len(df) - 24 * ORIGINS - 1
    panel = model.panel(df.iloc[: first + 1])
    train_part, held_out = Estimator(model.config)._split(model, panel.series, None, None, None)
    fc_panel, tails = _forecast_validation(panel, train_part, held_out)
    cells = far_cells(model, fc_panel, tails, model.config.train.seed)
    k = len(model.variables)
    near = [1.0] * k if model.forecast_gate is None else list(model.forecast_gate)
    out = {"first gate": near, "model alone": [1.0] * k}
    assert cells is not None, "the validation tail spans fewer than two chunks"
    med, base, y, var, group, _ = cells
    use = np.isfinite(y) & np.isfinite(base)
    args = (med[use], base[use], y[use], var[use], k)
    kw = {"evidence": FORECAST_GATE_EVIDENCE, "groups": group[use]}
    first_rule = naive_gate(*args[:4], group[use], k)  # as the first gate is fitted
    out["from naive"] = first_rule["kept"] or [1.0] * k
    out["anchored"] = list(fit_gate(*args, anchor=near, **kw).gate)
    half = far_anchor(model)
    out["equal blend"] = half
    out["half anchored"] = list(fit_gate(*args, anchor=half, **kw).gate)
    out["validation far MAE, model / naive"] = [
        float(np.abs(med - y)[use].mean() / np.abs(base - y)[use].mean())
    ]
    return out


def score(model: Predictor, df: Any, weights: dict[str, list[float]]) -> dict[str, Any]:
    """Each rule's MAE ratios to seasonal naive on the same test forecasts."""
    bt = backtest(
        model, df, horizon=HORIZON, step=24, windows=TEST_ORIGINS, gate=False, return_samples=True
    )
    assert bt.samples is not None
    norm, h = model.normalizer, chunk_length(model)
    by_key = {s.key: s for s in model.panel(df).series}
    past = [by_key[key] for key, _, _ in bt.windows]
    cuts = [c for _, c, _ in bt.windows]
    base = np.stack(naive_bases(model, past, cuts, HORIZON))  # (W, K, H) normalised
    med = np.median(norm.transform(bt.samples), axis=1)  # (W, K, H)
    truth = np.stack(
        [s.values[:, c + 1 : c + 1 + HORIZON] for s, c in zip(past, cuts, strict=True)]
    )
    naive = norm.inverse(base)
    seen = np.isfinite(truth) & np.isfinite(naive)
    far = seen.copy()
    far[..., :h] = False
    k = len(model.variables)
    near = np.ones(k) if model.forecast_gate is None else np.asarray(model.forecast_gate)
    out: dict[str, Any] = {}
    for rule in RULES:
        g = np.concatenate(
            [
                np.repeat(near[:, None], h, 1),
                np.repeat(np.asarray(weights[rule])[:, None], HORIZON - h, 1),
            ],
            axis=1,
        )  # (K, H)
        pred = norm.inverse(g * med + (1 - g) * np.where(np.isfinite(base), base, med))
        err = np.abs(pred - truth)
        sn = np.abs(naive - truth)
        out[rule] = {
            "mae_ratio": round(float(err[seen].mean() / sn[seen].mean()), 4),
            "far_mae_ratio": round(float(err[far].mean() / sn[far].mean()), 4),
            "mean_weight": round(float(np.mean(weights[rule])), 3),
        }
    return out


def run(seeds: list[int], minutes: list[float], models: Path, data_dir: str | None) -> dict:
    measured = commit()
    rows = []
    for m in minutes:
        for seed in seeds:
            for name, df in frames(data_dir).items():
                model = TSDiff.load(train(name, df, seed, m, models))
                weights = rule_weights(model, df)
                row = {
                    "frame": name,
                    "seed": seed,
                    "minutes": m,
                    "first_gate": model.forecast_gate,
                    "validation_far_ratio": round(
                        weights["validation far MAE, model / naive"][0], 4
                    ),
                    **score(model, df, weights),
                }
                rows.append(row)
                log(
                    f"{name} s{seed} m{m:g}: "
                    + ", ".join(f"{r} {row[r]['mae_ratio']}" for r in RULES)
                )
    summary = {
        rule: {
            "mean_mae_ratio": round(float(np.mean([r[rule]["mae_ratio"] for r in rows])), 4),
            "worst_mae_ratio": round(float(np.max([r[rule]["mae_ratio"] for r in rows])), 4),
            "above_naive": int(sum(r[rule]["mae_ratio"] > 1 for r in rows)),
        }
        for rule in RULES
    }
    return {**stamp(module_command("tsdiff.benchmarks.far_gate"), measured), "rows": rows,
            "summary": summary, "horizon": HORIZON, "test_origins": TEST_ORIGINS}  # fmt: skip


def markdown(r: dict[str, Any]) -> str:
    from tsdiff.benchmarks.common import page_header

    lines = page_header("The far forecast gate: fitting rules on the same models", r)
    lines += [
        "",
        f"CLI-default models (`tsdiff train --max-minutes M --seed S`), h = {r['horizon']} from "
        f"{r['test_origins']} daily origins after the training data; MAE over seasonal naive's "
        "on the same cells, all leads (far leads: those beyond the first chunk). Each rule's "
        "weights are fitted on the model's own validation tail; every rule scores the same "
        "draws. See the module docstring for the rules.",
        "",
        "| frame | seed | min | first gate | val. far model/naive | " + " | ".join(RULES) + " |",
        "|---|---|---|---|---|" + "---|" * len(RULES),
    ]
    for row in r["rows"]:
        fg = "alone" if row["first_gate"] is None else f"mean {np.mean(row['first_gate']):.2f}"
        cells = [f"{row[x]['mae_ratio']:.3f} ({row[x]['far_mae_ratio']:.3f})" for x in RULES]
        lines.append(
            f"| {row['frame']} | {row['seed']} | {row['minutes']:g} | {fg} | "
            f"{row['validation_far_ratio']:.3f} | " + " | ".join(cells) + " |"
        )
    lines += ["", "Cells: MAE ratio, all leads (far leads). Over all rows:", ""]
    lines += ["| rule | mean ratio | worst | rows above seasonal naive |", "|---|---|---|---|"]
    for rule, s in r["summary"].items():
        lines.append(
            f"| {rule} | {s['mean_mae_ratio']:.4f} | {s['worst_mae_ratio']:.3f} | "
            f"{s['above_naive']} / {len(r['rows'])} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m tsdiff.benchmarks.far_gate")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--minutes", default="2")
    ap.add_argument("--models", required=True, help="folder the trained models are kept in")
    ap.add_argument("--data-dir")
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--stem", default="forecast-far-gate")
    a = ap.parse_args(argv)
    seeds = [int(x) for x in a.seeds.split(",")]
    minutes = [float(x) for x in a.minutes.split(",")]
    result = run(seeds, minutes, Path(a.models), a.data_dir)
    write_results(result, a.out, a.stem, markdown)


if __name__ == "__main__":
    main()
