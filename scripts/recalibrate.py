"""Refit a trained model's imputation calibration (gate, spread, interval factors) on its
protocol's validation split, keeping its weights, and save it to another folder.

    python scripts/recalibrate.py MODEL OUT_DIR [--holdout random|pattern] [--gate-pooled]
        [--draws N] [--gate-by-gap]

For a model whose calibration should follow a newer rule without retraining (see
``tsdiff.benchmarks.recalibration.recalibrate``): the test split stays unseen. Score
the result with ``python -m tsdiff.benchmarks.shipped OUT_DIR``.
"""

from __future__ import annotations

import argparse
import json

from tsdiff.benchmarks.recalibration import recalibrate
from tsdiff.model import TSDiff


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--holdout", choices=["random", "pattern"], default=None)
    ap.add_argument("--gate-pooled", action=argparse.BooleanOptionalAction, default=None)
    ap.add_argument("--draws", type=int, default=None, help="draws of hidden cells pooled")
    ap.add_argument(
        "--gate-by-gap",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="fit the gate per distance to the nearest observation (tsdiff.gap_gate)",
    )
    args = ap.parse_args(argv)
    if args.draws is not None and args.draws < 1:
        ap.error("--draws must be >= 1")
    model = TSDiff.load(args.model)
    fit = recalibrate(
        model, args.holdout, args.gate_pooled, draws=args.draws, by_gap=args.gate_by_gap
    )
    t = model.config.train
    model.info["calibration_command"] = (
        f"scripts/recalibrate.py MODEL OUT --holdout {t.holdout} "
        + ("--gate-pooled" if t.gate_pooled else "--no-gate-pooled")
        + f" --draws {t.calibrate_draws}"
        + (" --gate-by-gap" if t.gate_by_gap else "")
    )
    model.save(args.out)
    keep = ("holdout", "spread", "n_cells", "crps_before", "crps_after", "gate", "gap_gate")
    print(json.dumps({k: fit.get(k) for k in keep}))


if __name__ == "__main__":
    main()
