"""Shared fixtures: one tiny model trained once per session on real PM2.5 data."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import torch
from hypothesis import HealthCheck, settings

from tsdiff.config import TSDiffConfig
from tsdiff.datasets import pm25_slice
from tsdiff.model import TSDiff

torch.set_num_threads(2)

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load_script(name: str) -> ModuleType:
    """``scripts/NAME.py`` as a module: its functions, without running it."""
    spec = importlib.util.spec_from_file_location(f"scripts_{name}", SCRIPTS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# property tests over a session-scoped fitted model: few examples, no deadline
PROPERTY = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def tiny_config(**train: object) -> TSDiffConfig:
    """A model small enough to train in seconds; the contracts do not depend on size."""
    return TSDiffConfig().replace(
        data={"window": 24, "training_stride": 12},  # half a window, as when measured
        network={
            "tokens": "cells",  # the contracts hold for both bodies (test_network.py)
            "channels": 16,
            "blocks": 1,
            "heads": 2,
            "step_emb_dim": 32,
            "time_emb_dim": 16,
            "prior_layers": 0,  # the contracts do not depend on the prior (test_prior.py)
            "season": 0,  # nor on the inferred seasonal prior and lags (test_seasonality.py)
            "lags": (),
        },
        # one spread factor, as when the golden outputs were saved
        train={
            "epochs": 2,
            "batch_size": 16,
            "val_crps_every": 1,
            "spread_per_variable": False,
            "gate_interpolation": False,
            "calibrate_intervals": False,
            "forecast_gate": False,  # as when the golden outputs were saved
            "select_by": "loss",  # as when the golden outputs were saved
            **train,
        },
        sample={"n_samples": 4, "steps": 3},
        variables={"transforms": False},  # as when the golden outputs were saved
    )


@pytest.fixture(scope="session")
def pm25():
    """May 2014, 8 Beijing stations, hourly, wide layout with real gaps."""
    return pm25_slice("ground")


@pytest.fixture(scope="session")
def fitted(pm25) -> TSDiff:
    return TSDiff(tiny_config()).fit(pm25.iloc[:500], progress=False)
