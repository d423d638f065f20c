"""Devices: ``auto``/``cpu``/``cuda`` resolve or fail by name before any work, and a seed
gives the same samples wherever the network runs (checked on a GPU when there is one)."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

from tests.conftest import tiny_config
from tsdiff.cli import main, serve_command
from tsdiff.device import DeviceError, resolve_device
from tsdiff.errors import ConfigError
from tsdiff.model import TSDiff
from tsdiff.services.settings import Settings

NO_CUDA = not torch.cuda.is_available()


def test_auto_and_cpu_resolve() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device(None).type == expected
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize("bad", ["tpu", "gpu0", "cuda:x", ""])
def test_unknown_devices_are_typed_config_errors(bad: str) -> None:
    with pytest.raises(DeviceError, match="device") as e:
        resolve_device(bad)
    assert isinstance(e.value, ConfigError)  # exit 2 / HTTP 4xx like every bad option


@pytest.mark.skipif(not NO_CUDA, reason="this machine has a GPU")
def test_cuda_without_a_gpu_says_so() -> None:
    with pytest.raises(DeviceError, match="no usable CUDA GPU"):
        resolve_device("cuda")


def test_fit_on_a_missing_device_fails_before_training(pm25) -> None:
    if not NO_CUDA:
        pytest.skip("this machine has a GPU")
    model = TSDiff(tiny_config())
    with pytest.raises(DeviceError):
        model.fit(pm25.iloc[:200], progress=False, device="cuda")
    assert model.net is None and not model.fitted


def test_to_moves_and_returns_the_model(fitted: TSDiff) -> None:
    assert fitted.device == torch.device("cpu")
    assert fitted.to("cpu") is fitted
    assert fitted.to("auto").device.type == resolve_device("auto").type
    fitted.to("cpu")
    assert TSDiff(tiny_config()).device == torch.device("cpu")  # unfitted: nothing to move


def test_saved_model_loads_on_a_device(fitted: TSDiff, tmp_path) -> None:
    fitted.save(tmp_path / "m")
    loaded = TSDiff.load(tmp_path / "m", device="auto")
    assert loaded.device.type == resolve_device("auto").type
    with pytest.raises(DeviceError):
        TSDiff.load(tmp_path / "m", device="tpu")


def test_cli_refuses_a_bad_device_with_exit_2_and_writes_nothing(
    fitted: TSDiff, pm25, tmp_path, capsys
) -> None:
    fitted.save(tmp_path / "m")
    data = tmp_path / "in.parquet"
    pm25.iloc[500:560].to_parquet(data)
    out = tmp_path / "out.parquet"
    rc = main(["impute", str(tmp_path / "m"), str(data), "--out", str(out), "--device", "tpu"])
    assert rc == 2 and not out.exists()
    assert "unknown device 'tpu'" in capsys.readouterr().err
    never = tmp_path / "never"
    rc = main(["train", str(data), "--out", str(never), "--device", "tpu", "--quiet"])
    assert rc == 2 and not never.exists()


def test_serve_checks_the_device_before_starting(fitted: TSDiff, tmp_path) -> None:
    fitted.save(tmp_path / "m")
    ns = argparse.Namespace(model=str(tmp_path / "m"), port=3000, host="127.0.0.1", device="tpu")
    with pytest.raises(DeviceError):
        serve_command(ns)
    _, env = serve_command(argparse.Namespace(**{**vars(ns), "device": "cpu"}))
    assert env["TSDIFF_DEVICE"] == "cpu"
    assert Settings.from_env({"TSDIFF_DEVICE": "cpu"}).device == "cpu"
    assert Settings.from_env({}).device == "auto"


@pytest.mark.skipif(NO_CUDA, reason="needs a CUDA GPU")
def test_same_seed_same_samples_on_cpu_and_gpu(fitted: TSDiff, pm25) -> None:
    frame = pm25.iloc[500:560]
    cpu = fitted.to("cpu").impute(frame, seed=3, return_samples=True).samples
    gpu = fitted.to("cuda").impute(frame, seed=3, return_samples=True).samples
    fitted.to("cpu")
    num = cpu.select_dtypes("number").columns
    np.testing.assert_allclose(gpu[num].to_numpy(), cpu[num].to_numpy(), rtol=1e-3, atol=1e-3)
