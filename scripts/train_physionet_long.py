"""Train the vitals model of the quick design on the PhysioNet fold-0 training stays for a
long budget, resumable across sessions.

    python scripts/train_physionet_long.py MINUTES CHECKPOINT OUT_DIR

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

import json
import sys
import time

import torch

from tsdiff import TSDiff
from tsdiff.benchmarks.csdi import load_profile, physionet_task


def main(argv: list[str]) -> None:
    minutes, ckpt, out = float(argv[0]), argv[1], argv[2]
    torch.set_num_threads(1)
    cfg = load_profile("physionet", "quick").model.replace(
        train={"seed": 0, "max_minutes": minutes}
    )
    task = physionet_task(0.1, fold=0, seed=0)
    t0 = time.time()
    model = TSDiff(cfg).fit(
        task.train, valid_df=task.valid, freq=task.freq, checkpoint=ckpt, resume=True
    )
    model.info["data"] = {
        "dataset": task.dataset,
        "protocol": task.protocol,
        "test_series": task.test["series_id"].unique().tolist(),  # as the ids are
    }
    model.save(out)
    keys = ("epochs_run", "best_epoch", "train_seconds")
    print(json.dumps({k: model.info.get(k) for k in keys}))
    print(f"saved {out} in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
