"""The resumable long-training script refuses bad arguments before loading any data."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .conftest import load_script

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_long.py"


def _script():
    return load_script("train_long")


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


def test_restart_schedule_without_a_source_model_is_refused_with_exit_2(tmp_path):
    ck = tmp_path / "ck"
    r = _run("pm25", "1", str(ck), str(tmp_path / "out"), "--restart-schedule", tmp_path=tmp_path)
    assert r.returncode == 2
    assert "--restart-schedule goes with --from-model" in r.stderr
    assert not ck.exists()


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


def test_from_model_seeds_the_checkpoint_with_the_models_weights_and_record(tmp_path):
    import torch

    from tsdiff.benchmarks.csdi import load_profile
    from tsdiff.predictor import Predictor

    mod = _script()
    # pm25-beijing's design, its values as they were (the profile now models them in logs)
    cfg = load_profile("pm25", "quick").model.replace(variables={"log_skew": 2.0})
    ck = tmp_path / "ck"
    mod.seed_from_model("pm25-beijing", cfg, str(ck))
    model = Predictor.load("pm25-beijing")
    state = torch.load(ck, weights_only=True)
    assert state["epoch"] == len(model.epoch_log) == model.info["epochs_run"]
    assert state["steps"] == model.info["steps_run"]
    assert state["best_epoch"] == model.info["best_epoch"]
    for k, v in model.net.state_dict().items():
        assert torch.equal(state["net"][k], v) and torch.equal(state["best"][k], v), k
    prior = torch.load(tmp_path / "ck.prior", weights_only=True)
    assert prior["result"]["best_epoch"] == model.info["prior"]["best_epoch"]
    for k, v in model.net.prior_net.state_dict().items():
        assert torch.equal(prior["prior"][k], v), k


def test_from_model_with_other_validation_windows_does_not_carry_its_best_loss(tmp_path):
    """A run at another training stride validates on other windows: the source's best
    loss would outrank every epoch of it, so the run compares its own epochs only."""
    import math

    import torch

    from tsdiff.benchmarks.csdi import load_profile
    from tsdiff.predictor import Predictor

    mod = _script()
    # pm25-beijing's design, its values as they were (the profile now models them in logs)
    cfg = load_profile("pm25", "quick").model.replace(variables={"log_skew": 2.0})
    same, other = tmp_path / "same", tmp_path / "other"
    mod.seed_from_model("pm25-beijing", cfg, str(same))
    mod.seed_from_model("pm25-beijing", cfg.replace(data={"training_stride": 1}), str(other))
    best = Predictor.load("pm25-beijing").info["best_val_loss"]
    assert torch.load(same, weights_only=True)["best_val_loss"] == best
    assert math.isinf(torch.load(other, weights_only=True)["best_val_loss"])
    # an absolute error is not a squared one: the same windows, another loss
    l1 = tmp_path / "l1"
    mod.seed_from_model("pm25-beijing", cfg.replace(train={"loss": "l1"}), str(l1))
    assert math.isinf(torch.load(l1, weights_only=True)["best_val_loss"])


def test_from_model_in_another_value_space_trains_its_prior_afresh(tmp_path):
    """Values put in logs: the source's prior imputes raw z-scores, so it is not seeded
    (the fit trains one) and its losses are not carried; the denoiser's weights are."""
    import math

    import torch

    from tsdiff.benchmarks.csdi import load_profile
    from tsdiff.predictor import Predictor

    mod = _script()
    # pm25-beijing's design, its values as they were (the profile now models them in logs)
    cfg = load_profile("pm25", "quick").model.replace(variables={"log_skew": 2.0})
    logs = {"station_001001": {"transform": "log"}}
    ck = tmp_path / "ck"
    mod.seed_from_model("pm25-beijing", cfg.replace(variables={"spec": logs}), str(ck))
    state = torch.load(ck, weights_only=True)
    assert math.isinf(state["best_val_loss"])
    assert not (tmp_path / "ck.prior").exists()
    for k, v in Predictor.load("pm25-beijing").net.state_dict().items():
        assert torch.equal(state["net"][k], v), k
