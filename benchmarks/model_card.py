"""A shipped model's card, written from the benchmark run that trained and scored it.

``python -m tsdiff.benchmarks.model_card physionet-vitals
benchmarks/results/physionet10-quick.json`` writes
``tsdiff/pretrained_models/physionet-vitals/MODEL_CARD.md``: data and split, the
exact command, commit, machine, training time, test metrics beside the peers on the
same cells, the sampler settings and the limits. Nothing on it is typed by hand. A
model trained by another command (``scripts/train_long.py``) takes a third
argument, its ``benchmarks.shipped`` result: its scores replace the run's own, the
baselines and peers stay (the same cells).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from tsdiff.checkout import source_root
from tsdiff.gap_gate import bucket_names
from tsdiff.io import write_atomic
from tsdiff.model import TSDiff
from tsdiff.pretrained import SHIPPED_DIR
from tsdiff.serialization import stored_weights_dtype

LIMITS = {
    "physionet": [
        "Trained on adults in the ICUs of the PhysioNet/CinC 2012 challenge (set-a, one "
        "hospital system's units); other populations, units or charting habits may differ.",
        "Not a medical device: imputed values are estimates, flagged as such in every "
        "output, never measurements. Do not base clinical decisions on them.",
        "Input: long rows `series_id, timestamp, variable, value` with timestamps in minutes "
        "since admission; values are binned to hours (last value per hour).",
    ],
    "pm25": [
        "Trained on 36 Beijing monitoring stations (2014-2015, STMVL data) as the variables "
        "of one hourly panel; other stations or cities need retraining.",
        "Input: a wide hourly frame with the 36 station columns.",
    ],
}


def _finetune_lines(rounds: list[dict[str, Any]]) -> list[str]:
    """Later training from the saved weights (``scripts/finetune_prior.py``), a line a round."""
    lines = []
    for r in rounds:
        quantiles = r.get("part") == "quantile prior"
        how = "trained on from its weights"
        if quantiles and r.get("from") != "its own weights":
            how = "added, trained from the prior's weights"
        head = (
            f"- then the {r.get('part', 'prior')} {how}: `{r['command']}` "
            f"at {r['commit']}, started {r['started']}: {r['epochs_run']} epochs "
            f"({r['seconds']:.0f} s, best epoch {r['best_epoch']}), "
        )
        if quantiles:
            tail = (
                f"validation pinball loss (fixed masks) {r['val_pinball_before']} → "
                f"{r['val_pinball_after']}; prior and denoiser kept, calibration refitted "
                "(the blend weight with it)"
            )
        elif r.get("part") == "denoiser":
            tail = (
                f"validation loss {r['val_loss_first_epoch']} (first epoch) → "
                f"{r['val_loss_best']}; prior kept, calibration refitted"
            )
        else:
            tail = (
                f"validation MAE (the prior's own, fixed masks) {r['val_mae_before']} → "
                f"{r['val_mae_after']}; denoiser kept, calibration refitted"
            )
        lines.append(head + tail)
    return lines


def _blend_lines(cal: dict[str, Any]) -> list[str]:
    """The quantile prior's blend weight and what it did on the validation cells."""
    b = cal.get("quantile_blend")
    if not b:
        return []
    return [
        f"- samples blended with the quantile prior's quantiles (weight of the samples "
        f"{b['weight']}; `tsdiff/quantile_blend.py`): validation CRPS samples "
        f"{b['crps_samples']}, quantile prior {b['crps_prior']}, blend {b['crps_after']} "
        f"on {b['n_cells']} cells"
    ]


def rescored(reference: dict[str, Any], scored: dict[str, Any], model: TSDiff) -> dict[str, Any]:
    """The benchmark result ``reference`` (its protocol, baselines and peers on the same
    cells) with this model's test scores from ``benchmarks.shipped`` (``scored``) and
    its training run as the model records it (``info.run``)."""
    run = model.info.get("run") or {}
    out = dict(reference)
    out["methods"] = {
        **reference["methods"],
        "tsdiff": {**scored["tsdiff"], "train_s": model.info["train_seconds"]},
    }
    out["command"] = run.get("script", reference["command"])
    out["profile"] = f"{reference['profile']}, {model.config.train.max_minutes:g}-minute budget"
    out["commit"] = run.get("sessions", reference["commit"])
    out["date"] = f"scored {scored['date']}"
    # the machine it was trained on (recorded with the run), not the reference page's
    out["machine"] = run.get("machine", reference["machine"])
    out["scored"] = {k: scored[k] for k in ("command", "commit", "date", "impute_s")}
    return out


def card(name: str, result: dict[str, Any], model: TSDiff) -> str:
    fam = "physionet" if result["dataset"].startswith("physionet") else "pm25"
    info, cfg, m = model.info, model.config, result["machine"]
    prior = info.get("prior") or {}
    cal = info.get("calibration") or {}
    rows = []
    for method, s in result["methods"].items():
        if "missing" in s:
            continue
        label = "**this model**" if method == "tsdiff" else method
        if "epochs" in s:
            label += f" ({s['epochs']} epochs, {s['train_s']:.0f} s)"
        rows.append(
            f"| {label} | {_f(s['mae'])} | {_f(s['crps'])} | {_f(s.get('cov50'))} | "
            f"{_f(s.get('cov90'))} |"
        )
    pub = result["published"]["csdi"]
    rows.append(
        f"| CSDI published (200 epochs, GPU) | {_f(pub.get('mae'))} | {_f(pub.get('crps'))}"
        " | – | – |"
    )
    units = "z-scored with the training statistics" if fam == "physionet" else "µg/m³ (MAE)"
    lines = [
        f"# Model card: `{name}`",
        "",
        f'Load it by name: `TSDiff.load("{name}")`, `tsdiff impute {name} DATA.parquet '
        f"--out OUT.parquet`, `tsdiff serve --model {name}`, `tsdiff pipeline impute "
        f"{name} ...`; register it with `tsdiff models register {name} --example DATA.parquet`.",
        "",
        "## Data and split",
        *(f"- {k}: {v}" for k, v in result["protocol"].items()),
        f"- variables: {len(model.variables)} ({', '.join(model.variables)})",
        "- the test split was never seen in training or calibration; its series ids are "
        "recorded in `model.json` (`info.data.test_series`)",
        "",
        "## Training",
        f"- command: `{result['command']}` (profile `{result['profile']}`)",
        f"- commit {result['commit']}, {result['date']}; {m['cpus']} CPUs, "
        f"{m['torch_threads']} torch thread(s), torch {m['torch']}, {m['platform']}",
        f"- wall time {info['train_seconds']:.0f} s: learned prior {prior.get('epochs_run')} "
        f"epochs ({prior.get('seconds')} s, best epoch {prior.get('best_epoch')}), then the "
        f"denoiser {info['epochs_run']} epochs ({info['steps_run']} steps)",
        *_finetune_lines(info.get("prior_finetune") or []),
        *_finetune_lines(info.get("denoiser_finetune") or []),
        *_finetune_lines(info.get("quantile_prior_finetune") or []),
        f"- network: {json.dumps(cfg.network.__dict__, default=list)}",
        f"- calibration on validation cells ({_holdout(cfg.train)}): spread "
        f"x{cal.get('spread')}, {_gate_text(cfg, cal)}"
        + _calibration_note("not used", cal.get("gate_dropped"))
        + _calibration_note("chosen over the calibration before", cal.get("chosen_on")),
        *_blend_lines(cal),
        *_interval_lines(model, cal),
        "",
        "## What each variable can be",
        f"- rule: {(info.get('spec') or {}).get('rule')}",
        _spec_origin(info),
        f"- {_spec_line(model)}",
        "",
        "## Sampler (the model's defaults)",
        f"- {cfg.sample.sampler.upper()}, {cfg.sample.steps} steps, eta {cfg.sample.eta}, "
        f"{cfg.sample.n_samples} samples, {cfg.sample.precision}",
        "",
        f"## Test metrics ({result['protocol']['n_cells']} held-out cells, {units}, "
        f"{result['protocol']['n_samples']} samples)",
        "",
        "| method | MAE | CRPS | cov50 | cov90 |",
        "|---|---|---|---|---|",
        *rows,
        "",
        "Point methods get the CRPS of a point forecast; baselines and SAITS "
        f"({_saits(result)}) from `{result.get('source', 'the same benchmark run')}` on the "
        "same cells. Scored as shipped (loaded by name, with the variable spec and the "
        f"default sampler): `benchmarks/results/shipped-{name}.md`.",
        "",
        "## Limits",
        *(f"- {x}" for x in LIMITS[fam]),
        "- Short CPU training: the accuracy above is what it reached, not CSDI's published "
        "200-epoch numbers; "
        + (
            "the samples are calibrated for CRPS, the reported intervals for coverage on "
            "validation cells (exchangeable with them; see the table for the test split)."
            if model.interval_scale
            else "intervals are calibrated for CRPS, and their 90% coverage is below "
            "nominal (see the table)."
        ),
        "",
    ]
    return "\n".join(lines)


def _interval_lines(model: TSDiff, cal: dict[str, Any]) -> list[str]:
    """The interval factors, and how they were fitted."""
    if not model.interval_scale:
        return []
    fit = cal.get("intervals") or {}
    how = cal.get("intervals_command")
    f = ", ".join(f"{lv}%: x{model.interval_scale[lv]:.3g}" for lv in (50, 80, 90, 95))
    before, after = fit.get("coverage_before", {}), fit.get("coverage_after", {})
    return [
        f"- interval factors ({f}) on {fit.get('n_cells')} validation cells"
        + (f" (fitted afterwards by `{how}`, weights and spread kept)" if how else "")
        + f": 90% coverage there {before.get('90', before.get(90))} → "
        f"{after.get('90', after.get(90))}"
    ]


def _saits(result: dict[str, Any]) -> str:
    saits = result["methods"].get("saits") or {}
    if "train_s" not in saits:
        return "not run"
    same = (
        abs(saits["train_s"] - result["methods"]["tsdiff"].get("train_s", 0))
        < 0.2 * saits["train_s"]
    )
    return f"trained {saits['train_s']:.0f} s" + (", the same wall time" if same else "")


def _spec_line(model: TSDiff) -> str:
    if not model.spec:
        return "no spec"
    parts = []
    for n, s in model.spec.items():
        lo = "" if s.lower is None else f"{s.lower:g}"
        hi = "" if s.upper is None else f"{s.upper:g}"
        parts.append(f"{n} {lo}..{hi}" + ("" if s.kind == "continuous" else f" {s.kind}"))
    return "; ".join(parts)


def _f(v: Any) -> str:
    return "–" if v is None else f"{v:.3f}"


def _holdout(train: Any) -> str:
    if train.holdout == "pattern":
        return "the cells other stretches' missing patterns lack, as the test's outages"
    return "10 % of the observed cells hidden at random"


def _gate_text(cfg: Any, cal: dict[str, Any]) -> str:
    """The imputation gate as fitted: per variable, or per distance to the nearest
    observation (``train.gate_by_gap``)."""
    pooled = ", pooled" if cfg.train.gate_pooled else ""
    g = cal.get("gap_gate")
    if not g:
        return (
            "gate (weight of the diffusion median against the prior, "
            f"per variable{pooled}) {_gate(cal.get('gate'))}"
        )
    table = g["gap_gate"]
    w = np.asarray(table["weight"])  # (K, B)
    names = bucket_names(table["edges"])
    per = ", ".join(f"{n}: {np.median(w[:, j]):.2f}" for j, n in enumerate(names))
    interp = np.asarray(table["interpolation"]).mean(axis=0)
    bases = ", ".join(f"{n}: {x:.0%}" for n, x in zip(names, interp, strict=True))
    return (
        "gate per distance to the nearest observation (`train.gate_by_gap`; weight of the "
        f"diffusion median against its base, per variable{pooled}; median weight per "
        f"bucket of steps {per}; share of variables whose base is the series' "
        f"interpolation rather than the prior {bases}; validation MAE: model "
        f"{g['mae_model']}, base {g.get('mae_base', '–')}, gated {g['mae_gated']})"
    )


def _gate(g: dict[str, Any] | None) -> str:
    if not g:
        return "none"
    return (
        f"(validation MAE: model {g['mae_model']}, prior {g['mae_interpolation']}, "
        f"gated {g['mae_gated']})"
    )


def _calibration_note(label: str, d: dict[str, Any] | None) -> str:
    """A decision about the calibration recorded in ``info.calibration`` (a gate not used,
    ``gate_dropped``; a calibration chosen over the one before, ``chosen_on``): what and
    why, with the command and page that measured it; empty when there is none."""
    if not d:
        return ""
    return f"; {label}: {d['why']} (`{d['command']}`, {d['result']})"


def add_spec(model: TSDiff, result: dict[str, Any]) -> bool:
    """Infer the variables' bounds and kinds from the model's own training split when it
    was saved without them (trained before specs existed); True when it did."""
    if model.spec is not None:
        return False
    from tsdiff.benchmarks.csdi import task_for

    model.infer_spec(task_for(result["dataset"]).train)
    model.info.setdefault("spec", {})["inferred_by"] = "model_card"
    return True


def _spec_origin(info: dict[str, Any]) -> str:
    """Where the spec came from: the fit itself, or this script for a model trained before
    specs existed (the cards of ``physionet-vitals`` and ``pm25-beijing`` say so)."""
    if (info.get("spec") or {}).get("inferred_by") == "model_card":
        when = (
            "by `python -m tsdiff.benchmarks.model_card` when the model was trained before "
            "specs existed"
        )
    else:
        when = "when the model was fitted"
    return f"- inferred from the training split {when}; every sample is projected onto it"


def main(argv: list[str] | None = None) -> None:
    if source_root() is None:  # never rewrite the models inside an installed wheel
        raise SystemExit("model_card updates a source checkout's shipped models (pip install -e)")
    args = list(argv or sys.argv[1:])
    name, result_path = args[:2]
    result = json.loads(Path(result_path).read_text())
    model = TSDiff.load(SHIPPED_DIR / name)
    if len(args) > 2:  # a model trained elsewhere, scored by benchmarks.shipped
        result = rescored(result, json.loads(Path(args[2]).read_text()), model)
        result["source"] = result_path
    if add_spec(model, result):  # keep the weights in the dtype they were shipped in
        model.save(SHIPPED_DIR / name, weights_dtype=stored_weights_dtype(SHIPPED_DIR / name))
    path = SHIPPED_DIR / name / "MODEL_CARD.md"
    write_atomic(path, lambda p: p.write_text(card(name, result, model)))
    print(path)


if __name__ == "__main__":
    main()
