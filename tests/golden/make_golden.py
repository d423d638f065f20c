"""Write the golden outputs that tests/test_golden.py compares against.

Run once from the repository root with the code whose behaviour is the reference
(``python -m tests.golden.make_golden``); it fits two tiny models on the PM2.5 slice
(an imputer with the learned prior and its gate, a forecaster with lags), saves them
and what they produce for fixed seeds: impute and forecast frames with samples and
trajectories, a backtest, ``evaluate`` and the tiny benchmark scores.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

from tests.conftest import tiny_config
from tsdiff.backtest import backtest
from tsdiff.datasets import pm25_slice
from tsdiff.model import TSDiff

HERE = Path(__file__).parent
# the gate per variable, as when the reference was written (train.gate_by_gap came later
# and changes what calibration fits, by design; its own tests are tests/test_gap_gate.py)
IMPUTER = tiny_config(gate_by_gap=False).replace(
    network={"prior_layers": 1, "prior_dim": 16, "prior_heads": 2},
    train={"prior_epochs": 3},
)
FORECASTER = tiny_config(gate_by_gap=False).replace(network={"lags": (24,), "season": 24})
TRAJ = {"return_trajectory": True, "trajectory_steps": 3, "trajectory_samples": 2}


def fit_models(df):
    imputer = TSDiff(IMPUTER).fit(df.iloc[:400], progress=False)
    forecaster = TSDiff(FORECASTER).fit(df.iloc[:500], progress=False)
    return imputer, forecaster


def outputs(imputer: TSDiff, forecaster: TSDiff, df) -> dict:
    """Every frame the golden test compares, by file name."""
    test = df.iloc[400:520]
    imp = imputer.impute(test, seed=3, return_samples=True, **TRAJ)
    fc = forecaster.forecast(df.iloc[:500], 12, seed=4, return_samples=True, **TRAJ)
    bt = backtest(forecaster, df, horizon=12, step=24, windows=3, seed=5, return_samples=True)
    return {
        "impute": imp.frame,
        "impute_samples": imp.samples,
        "impute_trajectory": imp.trajectory,
        "forecast": fc.frame,
        "forecast_samples": fc.samples,
        "forecast_trajectory": fc.trajectory,
        "backtest": bt.forecasts,
        "backtest_samples": bt.samples_frame,
    }


def scores(imputer: TSDiff, forecaster: TSDiff, df) -> dict:
    """Numbers (not frames) the golden test compares: evaluate, backtest summary, benches."""
    from tsdiff.benchmarks import csdi, forecast

    bt = backtest(forecaster, df, horizon=12, step=24, windows=3, seed=5, calibrate_windows=2)
    with tempfile.TemporaryDirectory() as tmp:
        imp_bench = csdi.run("pm25", "tiny", out_dir=tmp, progress=False)
        fc_bench = forecast.run("pm25", "tiny", out_dir=tmp, progress=False)
    return {
        "evaluate": imputer.evaluate(df.iloc[400:520], seed=6),
        "backtest": bt.summary["metrics"] if "metrics" in bt.summary else bt.summary,
        "bench_impute": [
            _quality(imp_bench["methods"]["tsdiff"]),
            imp_bench["train"]["calibration"],
        ],
        "bench_forecast": [_quality(fc_bench["methods"]["tsdiff"]), fc_bench["calibration"]],
    }


def _quality(scores: dict) -> dict:
    """Scores without timings (those differ run to run)."""
    return {k: v for k, v in scores.items() if not k.endswith("_s")}


def main() -> None:
    torch.set_num_threads(2)
    df = pm25_slice("ground")
    imputer, forecaster = fit_models(df)
    imputer.save(HERE / "imputer")
    forecaster.save(HERE / "forecaster")
    for name, frame in outputs(imputer, forecaster, df).items():
        frame.to_parquet(HERE / f"{name}.parquet")
    (HERE / "scores.json").write_text(
        json.dumps(scores(imputer, forecaster, df), indent=1, default=str) + "\n"
    )


if __name__ == "__main__":
    main()
