"""Train a shipped model (the quick design of its benchmark) on the protocol's training
split for a long budget, resumable across sessions.

    python scripts/train_long.py physionet10|pm25 MINUTES CHECKPOINT OUT \
        [--set k=v ...] [--threads N] [--from-model MODEL [--restart-schedule]]

``--threads N`` (default 1) sets torch's threads: 1 leaves the other core free for
work beside the run; a resumed run may change it. ``--set section.field=value``
changes the quick design (e.g. ``--set network.channels=64`` to train a wider
denoiser); the saved config records what was trained.

``--from-model MODEL`` (a saved model's directory or a shipped name, trained with the
same design): when ``CHECKPOINT`` does not exist, the run starts from that model's
weights, its prior and its training record instead of from scratch, as if resumed after
its last epoch (the optimiser's moments and the data order start afresh: a model does
not keep them). Why: a shipped model whose run's checkpoint was lost can be trained on.
Where the run's validation windows differ from the source's (another window, training
stride or validation share), or its loss (``train.loss``, its weighting), the source's
best validation loss is not carried over: the run's own epochs are then compared with
each other only. Where its ``variables`` differ
(e.g. ``--set variables.spec=...`` puts a variable in logs), the values live in another
space: the learned prior is trained afresh and the denoiser starts from the source's
weights. The ``pm25`` profile models the stations in logs (``variables.log_skew`` 1):
to train on a model fitted before (``pm25-beijing``, ``pm25-beijing-wide``) in its own
space, add ``--set variables.log_skew=2``. ``--restart-schedule``: the
learning rate warms up to ``train.lr`` and decays over this run's budget alone (counted
with the source's epochs, a continuation stays near one rate: a stride-1 run from
``pm25-beijing-wide`` held 3e-4 for its 32 epochs). When ``CHECKPOINT`` exists the
option is ignored and the run resumes from it.
The calibration after training keeps a share of the whole budget, the source's time
included (about 54 of 544 minutes on ``pm25-beijing-wide``): for a short run from a
model, add ``--set train.calibrate=false`` and refit the calibration afterwards with
``scripts/recalibrate.py`` (its ``--draws``).

The budget alone ends the run (the profile's epoch cap is lifted) and the learning-rate
schedule stretches to it.

``CHECKPOINT`` (and ``CHECKPOINT.prior``) are written every epoch; rerunning the same
command continues from them (the budget counts the time already spent). Run it from a
git worktree of a fixed commit *with ``PYTHONPATH`` set to that worktree*, so that code
committed meanwhile cannot reach the running process: the editable install maps
``tsdiff`` to the main checkout, so without ``PYTHONPATH`` the worktree's code is not
what runs, and a module imported lazily (``tsdiff.serialization`` at save) comes from
whatever the checkout holds by then. The saved model records the protocol's test stays
it never saw; score it with ``python -m tsdiff.benchmarks.shipped OUT_DIR``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from tsdiff import TSDiff
from tsdiff.benchmarks.common import commit, machine
from tsdiff.benchmarks.csdi import load_profile, task_for
from tsdiff.benchmarks.design import _override
from tsdiff.config import TSDiffConfig
from tsdiff.errors import ModelFileError
from tsdiff.predictor import Predictor
from tsdiff.prior_training import PriorResult, keep_phase
from tsdiff.training import seed_checkpoint


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="python scripts/train_long.py")
    ap.add_argument("dataset", choices=["physionet10", "pm25"])
    ap.add_argument("minutes", type=float)
    ap.add_argument("ckpt")
    ap.add_argument("out")
    ap.add_argument("--set", action="append", default=[], help="section.field=value")
    ap.add_argument(
        "--threads", type=int, default=1, help="torch threads (1 leaves a core for other work)"
    )
    ap.add_argument(
        "--restart-schedule",
        action="store_true",
        help="with --from-model: warm up and decay the rate over this run's budget alone "
        "(peaking at train.lr: set a lower one to fine-tune)",
    )
    ap.add_argument(
        "--from-model",
        help="start a missing CHECKPOINT from this saved model's weights (same design)",
    )
    a = ap.parse_args(argv)
    if a.threads < 1:
        ap.error(f"--threads must be at least 1, got {a.threads}")
    if a.restart_schedule and not a.from_model:
        ap.error("--restart-schedule goes with --from-model (a resumed run keeps its schedule)")
    dataset, minutes, ckpt, out = a.dataset, a.minutes, a.ckpt, a.out
    torch.set_num_threads(a.threads)
    family = "physionet" if dataset.startswith("physionet") else dataset
    prof = load_profile(family, "quick").model
    d = prof.to_dict()
    for s in a.set:
        _override(d, s)
    cfg = type(prof).from_dict(d).replace(train={"seed": 0, "max_minutes": minutes, "epochs": None})
    if a.from_model and not Path(ckpt).exists():
        try:
            seed_from_model(a.from_model, cfg, ckpt, restart_schedule=a.restart_schedule)
        except (ModelFileError, ValueError) as e:
            ap.error(f"--from-model: {e}")
    task = task_for(dataset)
    t0 = time.time()
    started = f"{commit()}, started {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"
    model = TSDiff(cfg).fit(
        task.train, valid_df=task.valid, freq=task.freq, checkpoint=ckpt, resume=True
    )
    model.info["data"] = {
        "dataset": task.dataset,
        "protocol": task.protocol,
        "test_series": task.test["series_id"].unique().tolist(),  # as the ids are
    }
    # what the model card names as the command and the commit(s); a resumed run says so
    model.info["run"] = {
        "script": " ".join(
            [f"scripts/train_long.py {dataset} {minutes:g} CKPT OUT"]
            + [f"--set {s}" for s in a.set]
            + ([f"--from-model {a.from_model}"] if a.from_model else [])
            + (["--restart-schedule"] if a.restart_schedule else [])
        ),
        "sessions": f"{started}: the process that saved it (resumed runs began earlier)",
        "machine": {k: v for k, v in machine().items() if k != "load_avg"},  # for its card
    }
    model.save(out)
    keys = ("epochs_run", "best_epoch", "train_seconds")
    print(json.dumps({k: model.info.get(k) for k in keys}))
    print(f"saved {out} in {time.time() - t0:.0f} s")


def seed_from_model(
    source: str, cfg: TSDiffConfig, ckpt: str, restart_schedule: bool = False
) -> None:
    """Write ``ckpt`` (and ``ckpt.prior``, ``ckpt.quantiles`` where the design has them)
    from the saved model ``source`` so that the fit resumes from its weights; ValueError
    when its design differs from ``cfg``'s (its weights would not fit the network)."""
    model = Predictor.load(source)
    for part in ("network", "diffusion"):
        mine = dataclasses.asdict(getattr(cfg, part))
        theirs = dataclasses.asdict(getattr(model.config, part))
        diff = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))
        if diff:
            shown = ", ".join(f"{part}.{k}: {theirs.get(k)!r} != {mine.get(k)!r}" for k in diff)
            raise ValueError(f"{source} was trained with another design ({shown})")
    info, net = model.info, model.net
    # another variables config (spec, transforms) may put values in another space: the
    # prior, a point imputation in that space, is trained afresh and the source's losses
    # are not this run's (the denoiser's weights still start from the source's)
    respaced = model.config.variables != cfg.variables
    phases = []  # every record checked before any file is written
    fields = {f.name for f in dataclasses.fields(PriorResult)}
    for key, name, part in (
        ("prior", "prior", net.prior_net),
        ("quantile_prior", "quantiles", net.quantile_net),
    ):
        if part is not None and not respaced:
            if key not in info:
                raise ValueError(f"{source} has no record of its {key.replace('_', ' ')}")
            record = PriorResult(**{k: v for k, v in info[key].items() if k in fields})
            phases.append((name, part, record))
    for name, part, record in phases:
        keep_phase(f"{ckpt}.{name}", part, record, name)
    best = float(info.get("best_val_loss", float("inf")))
    moved = _validation_changes(model.config, cfg)
    if respaced:
        moved.append("variables (the values' space; the prior is trained afresh)")
    if moved:
        # its best loss was measured on other validation windows: kept, it would outrank
        # every epoch of this run (a stride-1 run kept the source's weights so)
        best = float("inf")
        print(f"{ckpt}: {', '.join(moved)} changed: {source}'s best loss is not carried over")
    seed_checkpoint(
        ckpt,
        net,
        cfg.train,
        epoch_log=model.epoch_log,
        steps=int(info.get("steps_run", 0)),
        best_epoch=int(info.get("best_epoch", len(model.epoch_log))),
        best_val_loss=best,
        restart_schedule=restart_schedule,
    )
    print(f"{ckpt}: started from {source} after its epoch {len(model.epoch_log)}")


def _validation_changes(theirs: TSDiffConfig, mine: TSDiffConfig) -> list[str]:
    """The settings that make this run's validation windows, or how its loss scores them,
    differ from the source run's (``section.field: old -> new``): their losses are then
    not comparable."""
    fields = [("data", f) for f in ("window", "training_stride")]
    fields += [("train", f) for f in ("val_fraction", "val_max_windows", "masking", "mix_weights")]
    fields += [("train", f) for f in ("loss", "loss_weighting", "snr_gamma")]
    out = []
    for section, name in fields:
        a, b = getattr(getattr(theirs, section), name), getattr(getattr(mine, section), name)
        if a != b:
            out.append(f"{section}.{name}: {a!r} -> {b!r}")
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
