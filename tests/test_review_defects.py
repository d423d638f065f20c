"""Defects found on review (issue 16), each pinned by a test that failed before its fix."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tsdiff import baselines
from tsdiff.config import NetworkConfig, TSDiffConfig
from tsdiff.errors import ConfigError, ModelFileError
from tsdiff.model import TSDiff


@pytest.mark.parametrize("heads", [0, -2])
def test_zero_or_negative_heads_are_config_errors(heads) -> None:
    with pytest.raises(ConfigError, match="heads must be >= 1"):
        NetworkConfig(heads=heads)


def test_more_sampler_steps_than_diffusion_steps_fail_up_front() -> None:
    with pytest.raises(ConfigError, match="sample.steps"):
        TSDiffConfig().replace(diffusion={"num_steps": 3}, sample={"steps": 4})
    # DDPM visits every diffusion step, but its default `steps` is checked like a
    # per-call one (tsdiff.samplers.options), so it too fails here rather than at sampling
    with pytest.raises(ConfigError, match="sample.steps"):
        TSDiffConfig().replace(diffusion={"num_steps": 3}, sample={"steps": 4, "sampler": "ddpm"})


def test_corrupt_weights_are_a_model_file_error_and_exit_2(fitted, tmp_path) -> None:
    path = fitted.save(tmp_path / "m")
    w = path / "weights.safetensors"
    w.write_bytes(w.read_bytes()[:100])  # truncated
    with pytest.raises(ModelFileError, match="weights.safetensors"):
        TSDiff.load(path)
    r = subprocess.run(
        [sys.executable, "-m", "tsdiff.cli", "evaluate", str(path), str(tmp_path / "x.parquet")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "weights.safetensors" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_failed_save_over_a_model_keeps_the_old_one(fitted, tmp_path, monkeypatch) -> None:
    dest = fitted.save(tmp_path / "m")
    before = (dest / "weights.safetensors").read_bytes()
    real, calls = os.replace, []

    def failing(src, dst):  # the second rename (new model into place) fails
        calls.append((src, dst))
        if len(calls) == 2:
            raise OSError("disk full")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(OSError, match="disk full"):
        fitted.save(dest)
    monkeypatch.undo()
    assert (dest / "weights.safetensors").read_bytes() == before
    assert TSDiff.load(dest).variables == fitted.variables
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # nothing left under a hidden name


def test_evaluate_computes_each_baseline_once_and_no_steps_for_ddpm(
    fitted, pm25, monkeypatch
) -> None:
    counts: dict[str, int] = {}

    def counting(name, fn):
        def wrapped(*a, **k):
            counts[name] = counts.get(name, 0) + 1
            return fn(*a, **k)

        return wrapped

    wrapped = {n: counting(n, f) for n, f in baselines.BASELINES.items()}
    monkeypatch.setattr(baselines, "BASELINES", wrapped)
    df = pm25.iloc[500:548]  # one series
    r = fitted.evaluate(df, missing=0.2, sampler="ddpm", n_samples=2)
    assert counts == dict.fromkeys(wrapped, 1)
    assert r["steps"] is None and r["sampler"] == "ddpm"
