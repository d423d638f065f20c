"""Fit the interval factors of a shipped model on its protocol's validation split,
keeping its weights, spread and gate; the model is saved back in place.

    python scripts/calibrate_intervals.py physionet-vitals|pm25-beijing

For models calibrated before interval factors existed (``train.calibrate_intervals``);
a model trained now gets them at fit. The test split stays unseen: the validation
series come from the training data (PhysioNet: fold 0's validation stays; PM2.5: the
last days of each training month).
"""

from __future__ import annotations

import json
import sys
import time

from tsdiff.benchmarks.csdi import task_for
from tsdiff.estimator import calibrate_intervals
from tsdiff.io import write_atomic
from tsdiff.model import TSDiff
from tsdiff.pretrained import SHIPPED_DIR


def main(argv: list[str]) -> None:
    if len(argv) != 1 or not (SHIPPED_DIR / argv[0] / "MODEL_CARD.md").is_file():
        known = sorted(p.name for p in SHIPPED_DIR.iterdir() if p.is_dir())
        raise SystemExit(f"usage: python scripts/calibrate_intervals.py NAME (one of {known})")
    name = argv[0]
    path = SHIPPED_DIR / name
    card = (path / "MODEL_CARD.md").read_text()  # saving replaces the folder
    model = TSDiff.load(path)
    task = task_for(model.info["data"]["dataset"])
    t0 = time.time()
    fit = calibrate_intervals(model, model.panel(task.valid), seed=0)
    model.info.setdefault("calibration", {})["intervals"] = fit
    model.info["calibration"]["intervals_command"] = "scripts/calibrate_intervals.py " + name
    model.save(path)
    write_atomic(path / "MODEL_CARD.md", lambda p: p.write_text(card))
    print(json.dumps({"seconds": round(time.time() - t0), **fit}))


if __name__ == "__main__":
    main(sys.argv[1:])
