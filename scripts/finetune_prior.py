"""Train a shipped model's learned prior on at a lower learning rate, keep its denoiser,
refit its calibration on the validation split, and save it.

    python scripts/finetune_prior.py MODEL OUT_DIR [--lr 3e-4] [--patience 10] [--minutes 15]

``MODEL``: a shipped name or a model folder trained on a benchmark protocol (its
``info.data.dataset`` names the splits). The prior's first training stopped early (short
patience at a high learning rate); trained on from its weights it keeps whichever of its
old and new weights has the lower validation MAE. The calibration (gate, spreads,
interval factors) is refitted on the validation split as ``fit`` does; the test split
stays unseen. Score the result with ``python -m tsdiff.benchmarks.shipped OUT_DIR``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from datetime import datetime, timezone

import torch

from tsdiff.benchmarks.common import commit
from tsdiff.benchmarks.csdi import task_for
from tsdiff.benchmarks.recalibration import recalibrate
from tsdiff.estimator import Estimator
from tsdiff.model import TSDiff
from tsdiff.prior_training import continue_prior


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python scripts/finetune_prior.py")
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--patience", type=int, default=10)
    ap.add_argument("--minutes", type=float, default=15.0)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    started = datetime.now(timezone.utc)
    model = TSDiff.load(a.model)
    task = task_for(model.info["data"]["dataset"])
    est = Estimator(model.config)
    train_set = est.training_windows(model, task.train)
    val_set = est.training_windows(model, task.valid)
    cfg = dataclasses.replace(
        model.config.train, prior_lr=a.lr, prior_patience=a.patience, prior_epochs=10_000
    )
    assert model.net is not None
    t0 = time.perf_counter()
    before, result = continue_prior(model.net, train_set, val_set, cfg, minutes=a.minutes)
    seconds = time.perf_counter() - t0
    fit = recalibrate(model, task=task)
    rounds = list(model.info.get("prior_finetune") or [])
    rounds.append(
        {
            "command": f"scripts/finetune_prior.py MODEL OUT --lr {a.lr:g} --patience "
            f"{a.patience} --minutes {a.minutes:g}",
            "commit": commit(),
            "started": f"{started:%Y-%m-%d %H:%M} UTC",
            "epochs_run": result.epochs_run,
            "best_epoch": result.best_epoch,
            "seconds": round(seconds, 1),
            "val_mae_before": round(before, 5),
            "val_mae_after": round(result.best_val_mae, 5),
        }
    )
    model.info["prior_finetune"] = rounds
    model.save(a.out)
    gate = fit.get("gate") or {}
    print(
        json.dumps(
            {
                **rounds[-1],
                "calibration_val_mae": {
                    k: gate.get(k) for k in ("mae_model", "mae_interpolation", "mae_gated")
                },
            }
        )
    )


if __name__ == "__main__":
    main()
