"""Neural imputation peers on the benchmark's own cells: PyPOTS SAITS (Du et al. 2023).

A user choosing an imputer today would pick SAITS; the benchmark trains it on the same
z-scored training windows as our model, for the same wall-clock budget, and scores it
on exactly the cells our model is scored on. PyPOTS is an optional extra
(``pip install -e .[bench]``); without it the peer is reported as missing, not skipped
silently.

Budget: PyPOTS trains by epochs, so one epoch of a throw-away model is timed first and
the run gets the epochs that fit the budget; the time reported is that of the real run.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

# SAITS at the size the PyPOTS documentation and the comparison use
SAITS_SETTINGS: dict[str, Any] = {
    "n_layers": 2,
    "d_model": 256,
    "n_heads": 4,
    "d_k": 64,
    "d_v": 64,
    "d_ffn": 128,
    "dropout": 0.1,
    "batch_size": 32,
}


def missing_reason() -> str | None:
    """None when PyPOTS can be imported, else what to install."""
    try:
        import pypots  # noqa: F401
    except ImportError:
        return "PyPOTS is not installed: pip install -e '.[bench]' to add the SAITS peer"
    return None


@dataclass
class PeerRun:
    """A peer's imputation of the test windows (N, K, L), z-scored, and its cost."""

    name: str
    imputation: np.ndarray
    epochs: int
    train_s: float
    impute_s: float
    settings: dict[str, Any]


def run_saits(
    train: np.ndarray,
    valid: np.ndarray | None,
    test: np.ndarray,
    *,
    minutes: float,
    seed: int = 0,
    settings: dict[str, Any] | None = None,
    max_epochs: int = 1000,
    device: str = "cpu",
) -> PeerRun:
    """Train SAITS on ``train`` windows (N, K, L) z-scored, NaN = missing, for about
    ``minutes`` of wall time; impute ``test`` (M, K, L). ``valid`` (with SAITS's own
    artificial holdout) picks its best epoch, as PyPOTS does by default. ``device``:
    ``cpu`` or ``cuda``, the device our model ran on in the same comparison."""
    reason = missing_reason()
    if reason:
        raise ImportError(reason)
    import torch
    from pypots.imputation import SAITS

    opts = {**SAITS_SETTINGS, **(settings or {})}
    n_feat, n_steps = train.shape[1], train.shape[2]

    def to_pots(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a.transpose(0, 2, 1)).astype(np.float32)  # (N, L, K)

    train_set = {"X": to_pots(train)}
    val_set = _val_set(to_pots(valid), seed) if valid is not None and len(valid) else None

    def build(epochs: int, path: str) -> Any:
        torch.manual_seed(seed)
        return SAITS(
            n_steps=n_steps,
            n_features=n_feat,
            epochs=epochs,
            saving_path=path,
            model_saving_strategy=None,
            device=device,  # the device ours ran on: the same budget buys the same
            verbose=False,
            **opts,
        )

    logging.getLogger("pypots").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        t0 = time.perf_counter()
        build(1, tmp).fit(train_set, val_set)
        per_epoch = time.perf_counter() - t0
        epochs = int(max(1, min(max_epochs, math.floor(minutes * 60 / per_epoch))))
        model = build(epochs, tmp)
        t0 = time.perf_counter()
        model.fit(train_set, val_set)
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = model.predict({"X": to_pots(test)})["imputation"]
        impute_s = time.perf_counter() - t0
    imputation = np.asarray(out, dtype=np.float64).transpose(0, 2, 1)  # (M, K, L)
    return PeerRun("saits", imputation, epochs, round(train_s, 2), round(impute_s, 2), opts)


def _val_set(x: np.ndarray, seed: int, rate: float = 0.1) -> dict[str, np.ndarray]:
    """PyPOTS's validation input: ``X`` with ``rate`` of the observed values hidden,
    ``X_ori`` the full windows."""
    rng = np.random.default_rng(seed + 11)
    hide = ~np.isnan(x) & (rng.random(x.shape) < rate)
    return {"X": np.where(hide, np.nan, x).astype(np.float32), "X_ori": x}
