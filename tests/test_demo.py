"""The README's main job, end to end, as a real process (small settings)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tsdiff.model import TSDiff


def _demo(tmp_path, *flags: str) -> tuple[subprocess.CompletedProcess, Path, dict]:
    """``tsdiff demo`` as a process with small sampling settings, MLflow in tmp_path."""
    out = tmp_path / "demo"
    cmd = [
        sys.executable,
        "-m",
        "tsdiff.cli",
        "demo",
        "--out",
        str(out),
        "--n-samples",
        "3",
        "--steps",
        "2",
        "--quiet",
        *flags,
    ]
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).parents[1]),
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
    }
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env), out, env


@pytest.mark.slow
def test_demo_runs_and_writes_its_outputs(tmp_path):
    # the default path: the shipped vitals model, no training
    r, out, env = _demo(tmp_path, "--test-stays", "4")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "shipped model physionet-vitals" in r.stdout and "trained" not in r.stdout
    imputed = pd.read_parquet(out / "imputed.parquet")
    # the stays imputed are in the shipped model's test split: never seen in training
    test_ids = set(TSDiff.load("physionet-vitals").info["data"]["test_series"])
    assert set(imputed["series_id"].unique()) <= test_ids
    assert {"series_id", "timestamp", "variable", "value", "imputed", "lo_90", "hi_90"} <= set(
        imputed.columns
    )
    assert imputed["series_id"].nunique() == 4
    assert imputed["value"].notna().all() and imputed["imputed"].any()
    pngs = list(out.glob("stay_*.png"))
    assert len(pngs) == 1 and pngs[0].stat().st_size > 10_000
    assert pngs[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_cells"] > 0 and "linear" in metrics["baselines_normalized"]
    # registered: a new user sees it in `tsdiff models list`
    listed = subprocess.run(
        [sys.executable, "-m", "tsdiff.cli", "models", "list", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert "physionet-demo" in listed.stdout and "champion" in listed.stdout


@pytest.mark.slow
def test_demo_train_path_trains_then_imputes(tmp_path):
    r, out, _ = _demo(
        tmp_path, "--train", "--minutes", "0.15", "--test-stays", "3", "--no-register"
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "training stays" in r.stdout and "trained" in r.stdout
    assert pd.read_parquet(out / "imputed.parquet")["series_id"].nunique() == 3
    assert TSDiff.load(out / "model").info["prior"]["epochs_run"] >= 1
