"""Refit a trained model's imputation calibration (gate, spread, interval factors) on its
protocol's validation split, keeping its weights, and save it to another folder.

    python scripts/recalibrate.py MODEL_DIR OUT_DIR [--holdout random|pattern] [--gate-pooled]

For a model whose calibration should follow a newer rule (``train.holdout``: the cells
the calibration hides) without retraining: the calibration reads only the validation
series (and, for "pattern", the training split's missing masks), so the test split
stays unseen. Score the result with ``python -m tsdiff.benchmarks.shipped OUT_DIR``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from tsdiff.benchmarks.csdi import task_for
from tsdiff.estimator import calibrate_imputation
from tsdiff.model import TSDiff


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--holdout", choices=["random", "pattern"], default=None)
    ap.add_argument("--gate-pooled", action=argparse.BooleanOptionalAction, default=None)
    args = ap.parse_args(argv)
    model = TSDiff.load(args.model)
    if args.holdout:
        model.config = model.config.replace(train={"holdout": args.holdout})
    if args.gate_pooled is not None:
        model.config = model.config.replace(train={"gate_pooled": args.gate_pooled})
    task = task_for(model.info["data"]["dataset"])
    patterns = [np.isnan(s.values) for s in model.panel(task.train).series]
    t0 = time.time()
    fit = calibrate_imputation(
        model, model.panel(task.valid), seed=model.config.train.seed, patterns=patterns
    )
    model.info["calibration"] = fit
    model.info["calibration_command"] = (
        f"scripts/recalibrate.py MODEL OUT --holdout {model.config.train.holdout}"
        + (" --gate-pooled" if model.config.train.gate_pooled else "")
    )
    model.save(args.out)
    keep = ("holdout", "spread", "n_cells", "crps_before", "crps_after")
    print(json.dumps({"seconds": round(time.time() - t0), **{k: fit.get(k) for k in keep}}))


if __name__ == "__main__":
    main()
