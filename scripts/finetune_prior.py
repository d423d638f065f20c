"""Train a shipped model's learned prior on at a lower learning rate, keep its denoiser,
refit its calibration on the validation split, and save it.

    python scripts/finetune_prior.py MODEL OUT_DIR [--lr 3e-4] [--patience 10] [--minutes 15]
    python scripts/finetune_prior.py MODEL OUT_DIR --denoiser --lr 2e-4 --minutes 20

    python scripts/finetune_prior.py MODEL OUT_DIR --quantiles --minutes 10

``--quantiles``: give the model a quantile prior (``network.prior_quantiles``) trained from
its prior's weights (at a third of ``--lr``; a model that has one trains it on from its
own weights), whose quantiles its imputations then blend
with the samples (:mod:`tsdiff.quantile_blend`; the weight fitted with the calibration);
prior and denoiser kept.

``--denoiser``: train the denoiser on instead, from its weights, with the prior kept (the
prior a denoiser refines changed under it: let it follow), keeping the weights of its
best validation loss.

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
from tsdiff.benchmarks.recalibration import gate_mae, recalibrate
from tsdiff.device import module_device
from tsdiff.estimator import Estimator
from tsdiff.model import TSDiff
from tsdiff.network import Denoiser
from tsdiff.prior_training import continue_prior, train_quantile_prior
from tsdiff.training import Windows, train


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python scripts/finetune_prior.py")
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--patience", type=int, default=10)
    ap.add_argument("--minutes", type=float, default=15.0)
    part = ap.add_mutually_exclusive_group()
    part.add_argument("--denoiser", action="store_true", help="train the denoiser on instead")
    part.add_argument("--quantiles", action="store_true", help="add and train a quantile prior")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    started = datetime.now(timezone.utc)
    model = TSDiff.load(a.model)
    dataset = (model.info.get("data") or {}).get("dataset")
    if dataset is None:
        raise SystemExit(
            f"{a.model}: no benchmark protocol recorded (info.data.dataset): this script "
            "trains on a protocol's training and validation splits"
        )
    task = task_for(dataset)
    est = Estimator(model.config)
    train_set = est.training_windows(model, task.train)
    val_set = est.training_windows(model, task.valid)
    assert model.net is not None
    t0 = time.perf_counter()
    if a.quantiles:
        record, key = _quantiles(model, train_set, val_set, a), "quantile_prior_finetune"
    elif a.denoiser:
        # a loaded network's parameters all train; the prior must stay as it is (a fit
        # freezes it before the denoiser's epochs as well)
        if model.net.prior_net is not None:
            for p in model.net.prior_net.parameters():
                p.requires_grad_(False)
        cfg = dataclasses.replace(model.config.train, lr=a.lr, max_minutes=a.minutes, epochs=None)
        with torch.random.fork_rng():
            torch.manual_seed(cfg.seed + 13)
            best, res = train(
                model.net,
                model.scheduler,
                train_set,
                val_set,
                cfg,
                progress=False,
                clip=model.clip_bounds(),
            )
        model.net.load_state_dict(best)
        model.net.eval()
        first = res.epoch_log[0].get("val_loss") if res.epoch_log else None
        record = {
            "part": "denoiser",
            "epochs_run": res.epochs_run,
            "best_epoch": res.best_epoch,
            "val_loss_first_epoch": None if first is None else round(first, 5),
            "val_loss_best": round(res.best_val_loss, 5),
        }
        key = "denoiser_finetune"
    else:
        cfg = dataclasses.replace(
            model.config.train, prior_lr=a.lr, prior_patience=a.patience, prior_epochs=10_000
        )
        before, result = continue_prior(model.net, train_set, val_set, cfg, minutes=a.minutes)
        record = {
            "part": "prior",
            "epochs_run": result.epochs_run,
            "best_epoch": result.best_epoch,
            "val_mae_before": round(before, 5),
            "val_mae_after": round(result.best_val_mae, 5),
        }
        key = "prior_finetune"
    seconds = time.perf_counter() - t0
    fit = recalibrate(model, task=task)
    rounds = list(model.info.get(key) or [])
    flags = "--denoiser " if a.denoiser else "--quantiles " if a.quantiles else ""
    rounds.append(
        {
            "command": f"scripts/finetune_prior.py MODEL OUT {flags}--lr {a.lr:g} --patience "
            f"{a.patience} --minutes {a.minutes:g}",
            "commit": commit(),
            "started": f"{started:%Y-%m-%d %H:%M} UTC",
            "seconds": round(seconds, 1),
            **record,
        }
    )
    model.info[key] = rounds
    model.save(a.out)
    gate = gate_mae(fit) if fit.get("n_cells") else {}
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


def _quantiles(
    model: TSDiff, train_set: Windows, val_set: Windows, a: argparse.Namespace
) -> dict[str, object]:
    """Add a quantile prior to ``model``'s network and train it (see the module's doc)."""
    net = model.net
    assert net is not None and net.prior_net is not None
    fresh = net.quantile_net is None  # else trained on from its own weights
    if fresh:
        model.config = model.config.replace(network={"prior_quantiles": True})
        net.cfg = model.config.network
        net.quantile_net = Denoiser._quantile_net(
            net.cfg, net.n_vars, net.prior_net.time.in_features
        ).to(module_device(net))
    cfg = dataclasses.replace(
        model.config.train, prior_lr=a.lr, prior_patience=a.patience, prior_epochs=10_000
    )
    result = train_quantile_prior(
        net, train_set, val_set, cfg, minutes=a.minutes, progress=False, from_prior=fresh
    )
    return {
        "part": "quantile prior",
        "from": "the prior's weights" if fresh else "its own weights",
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "val_pinball_before": round(result.interp_val_mae, 5),
        "val_pinball_after": round(result.best_val_mae, 5),
    }


if __name__ == "__main__":
    main()
