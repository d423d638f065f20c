"""No behaviour change across refactors: fixed-seed outputs equal, bit for bit, the
frames and scores saved from the code before the split of ``TSDiff`` by role
(``tests/golden``, written by ``python -m tests.golden.make_golden``); only a fresh
fit's weights get a float tolerance, for CPUs whose kernels round differently."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.golden.make_golden import HERE, fit_models, outputs, scores
from tsdiff.datasets import default_data_dir, pm25_slice
from tsdiff.model import TSDiff


def _without_timings(obj):
    if isinstance(obj, dict):
        return {
            k: _without_timings(v)
            for k, v in obj.items()
            if not (k.endswith("_s") or k.endswith("_seconds"))
        }
    if isinstance(obj, list):
        return [_without_timings(v) for v in obj]
    return obj


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    return pm25_slice("ground")


@pytest.fixture(scope="module")
def saved() -> tuple[TSDiff, TSDiff]:
    """The models saved by the old code, loaded by the new."""
    return TSDiff.load(HERE / "imputer"), TSDiff.load(HERE / "forecaster")


@pytest.fixture(scope="module")
def predicted(df, saved) -> dict[str, pd.DataFrame]:
    return outputs(*saved, df)


def _weights(model: TSDiff) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy() for k, v in model.net.state_dict().items()}


def _approx(obj):
    """Numbers in a nested structure compared to 1e-6 relative."""
    if isinstance(obj, dict):
        return {k: _approx(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_approx(v) for v in obj]
    if isinstance(obj, float):
        return pytest.approx(obj, rel=1e-6, abs=1e-9)
    return obj


def test_fit_trains_the_same_weights_and_calibration(df, saved):
    # Training on another CPU (AMD vs Intel kernels) rounds a few weights one float32
    # ulp apart; a behaviour change moves them by far more than this tolerance.
    fresh = fit_models(df)
    for new, old in zip(fresh, saved, strict=True):
        a, b = _weights(new), _weights(old)
        assert a.keys() == b.keys()
        for name in a:
            np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=1e-7, err_msg=name)
        calibration = json.loads(json.dumps(new.info["calibration"]))  # as saved
        assert calibration == _approx(old.info["calibration"])


@pytest.mark.parametrize(
    "name",
    [
        "impute",
        "impute_samples",
        "impute_trajectory",
        "forecast",
        "forecast_samples",
        "forecast_trajectory",
        "backtest",
        "backtest_samples",
    ],
)
def test_saved_models_predict_the_same_frames(predicted, name):
    pd.testing.assert_frame_equal(
        predicted[name], pd.read_parquet(HERE / f"{name}.parquet"), check_exact=True
    )


@pytest.mark.slow
def test_evaluate_backtest_and_benchmarks_score_the_same(df, saved):
    base = default_data_dir()
    if base is None or not (base / "pm25_ground.parquet").exists():
        pytest.skip("../shared/data/pm25_ground.parquet is not available")
    golden = json.loads((HERE / "scores.json").read_text())
    now = json.loads(json.dumps(scores(*saved, df), default=str))
    assert _without_timings(now) == _without_timings(golden)
