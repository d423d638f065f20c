"""The resumable long-training script refuses bad arguments before loading any data."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_long.py"


def _run(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=tmp_path
    )


def test_threads_below_one_is_refused_with_exit_2(tmp_path):
    out = tmp_path / "out"
    r = _run("pm25", "1", str(tmp_path / "ck"), str(out), "--threads", "0", tmp_path=tmp_path)
    assert r.returncode == 2
    assert "--threads must be at least 1, got 0" in r.stderr
    assert not out.exists() and not (tmp_path / "ck").exists()


def test_unknown_dataset_is_refused_with_exit_2(tmp_path):
    r = _run("etth1", "1", str(tmp_path / "ck"), str(tmp_path / "out"), tmp_path=tmp_path)
    assert r.returncode == 2
    assert "invalid choice: 'etth1'" in r.stderr


def test_from_model_of_another_design_is_refused_with_exit_2(tmp_path):
    ck = tmp_path / "ck"
    r = _run(
        "pm25", "1", str(ck), str(tmp_path / "out"), "--set", "network.channels=16",
        "--from-model", "pm25-beijing", tmp_path=tmp_path,
    )  # fmt: skip
    assert r.returncode == 2
    assert "--from-model: pm25-beijing was trained with another design" in r.stderr
    assert "network.channels: 32 != 16" in r.stderr
    assert not ck.exists() and not (tmp_path / "ck.prior").exists()
