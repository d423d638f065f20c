"""``tsdiff demo``: impute held-out ICU stays with the shipped vitals model, write
parquet and a plot.

By default it loads ``physionet-vitals`` (trained on the CSDI protocol's training
split of fold 0, see its model card) and imputes stays of the PhysioNet slice the
package ships that lie in that fold's test split, so the model has never seen them:
seconds, no training. ``--train`` keeps the train-then-impute path on the slice.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from tsdiff.config import TSDiffConfig
from tsdiff.datasets import physionet_slice
from tsdiff.errors import ModelFileError
from tsdiff.io import write_json, write_parquet
from tsdiff.model import TSDiff
from tsdiff.plot import plot_imputation

DEMO_VITALS = ("HR", "MAP", "SysABP", "DiasABP", "RespRate", "Temp", "GCS", "SaO2")
DEMO_MODEL_NAME = "physionet-demo"
SHIPPED_MODEL = "physionet-vitals"
PROFILE = Path(__file__).parent / "profiles" / "demo.json"


def held_out_stays(model: TSDiff, test_stays: int = 40, seed: int = 0) -> pd.DataFrame:
    """Stays of the PhysioNet slice in the shipped model's test split (recorded with the
    model), ``test_stays`` of them drawn with ``seed``: data the model never saw."""
    test_ids = model.info.get("data", {}).get("test_series")
    if not test_ids:
        raise ModelFileError("the model records no test split: use `tsdiff demo --train`")
    df = physionet_slice()
    ids = np.sort(np.intersect1d(df["series_id"].unique(), np.asarray(test_ids)))
    rng = np.random.default_rng(seed)
    pick = rng.choice(ids, size=min(test_stays, len(ids)), replace=False)
    return df[df["series_id"].isin(pick)]


def demo_split(seed: int = 0, test_stays: int = 40) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test) of the PhysioNet slice: ``test_stays`` stays (at most a fifth)
    drawn with ``seed`` are held out whole."""
    df = physionet_slice()
    ids = np.sort(df["series_id"].unique())
    rng = np.random.default_rng(seed)
    test_ids = set(rng.choice(ids, size=min(test_stays, len(ids) // 5), replace=False).tolist())
    return df[~df["series_id"].isin(test_ids)], df[df["series_id"].isin(test_ids)]


def run_demo(
    out: Path,
    *,
    train: bool = False,
    minutes: float = 4.0,
    test_stays: int = 40,
    n_samples: int = 16,
    steps: int | None = None,
    seed: int = 0,
    progress: bool = True,
    register: str | None = DEMO_MODEL_NAME,
    device: str | None = "auto",
) -> dict:
    """Impute held-out stays with the shipped model (or, with ``train``, one trained
    here for ``minutes``), evaluate against baselines on hidden cells, write, plot.
    ``device``: where the network runs (``auto``: a CUDA GPU when present)."""
    t_start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    model_dir = out / "model"
    if train:
        model, test = _train(model_dir, minutes, test_stays, seed, progress, register, device)
    else:
        model = TSDiff.load(SHIPPED_MODEL, device=device)
        test = held_out_stays(model, test_stays, seed)
        model.save(model_dir)
        print(
            f"shipped model {SHIPPED_MODEL} ({model.info.get('epochs_run')} epochs, "
            f"{model.info.get('data', {}).get('protocol', {}).get('split', '')}); "
            f"{test['series_id'].nunique()} of its test stays from the PhysioNet slice"
        )
        if register:
            from tsdiff.registry import register_model, tracking_uri

            with _quiet_tracking():
                run_id, version = register_model(model, register, test)
            print(
                f"MLflow run {run_id} ({tracking_uri()}); registered models:/{register}/{version}"
            )
    return _report(model, model_dir, test, out, n_samples, steps, seed, t_start)


@contextlib.contextmanager
def _quiet_tracking() -> Iterator[None]:
    """The demo's console shows its own summary: MLflow's (and its database
    migrations') warnings and info lines stay out of it while it logs and registers."""
    import mlflow  # noqa: F401  (its import sets its loggers' levels: set ours after it)

    loggers = [logging.getLogger(n) for n in ("mlflow", "alembic")]
    levels = [lg.level for lg in loggers]
    bar = os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, lv in zip(loggers, levels, strict=True):
                lg.setLevel(lv)
            if bar is None:
                os.environ.pop("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", None)
            else:
                os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = bar


def _train(
    model_dir: Path,
    minutes: float,
    test_stays: int,
    seed: int,
    progress: bool,
    register: str | None,
    device: str | None,
) -> tuple[TSDiff, pd.DataFrame]:
    """The train-then-impute path: the demo profile on the slice, time-boxed."""
    train, test = demo_split(seed, test_stays)
    n_train, n_test = train["series_id"].nunique(), test["series_id"].nunique()
    print(f"PhysioNet slice: {n_train} training stays, {n_test} held out")
    cfg = TSDiffConfig.from_file(PROFILE).replace(train={"seed": seed, "max_minutes": minutes})
    if register:
        # a tracked MLflow run, registered: `tsdiff models list` and `mlflow ui` show it
        from tsdiff.registry import tracking_uri, train_tracked

        with _quiet_tracking():
            model, run_id, version = train_tracked(
                train,
                cfg,
                register=register,
                out=model_dir,
                progress=progress,
                run_name="demo",
                device=device,
            )
        print(f"MLflow run {run_id} ({tracking_uri()}); registered models:/{register}/{version}")
    else:
        model = TSDiff(cfg).fit(train, progress=progress, device=device)
        model.save(model_dir)
    print(f"trained {model.info['epochs_run']} epochs in {model.info['train_seconds']:.0f} s")
    return model, test


def _report(
    model: TSDiff,
    model_dir: Path,
    test: pd.DataFrame,
    out: Path,
    n_samples: int,
    steps: int | None,
    seed: int,
    t_start: float,
) -> dict:
    sample = {"n_samples": n_samples, "steps": steps, "seed": seed}
    report = model.evaluate(test, missing=0.1, **sample)
    write_json(report, out / "metrics.json")
    imputed = model.impute(test, **sample).frame
    write_parquet(imputed, out / "imputed.parquet")

    counts = test.groupby("series_id")["variable"].nunique()
    stay = int(counts.idxmax())
    png = out / f"stay_{stay}.png"
    plot_imputation(
        imputed[imputed["series_id"] == stay],
        variables=[v for v in DEMO_VITALS if v in model.variables],
        path=png,
        title=f"ICU stay {stay}: observed vitals, imputed median, 50%/90% bands",
        time_unit=(60.0, "hours since admission"),  # the data's time is in minutes
    )
    m, b = report["model_normalized"], report["baselines_normalized"]
    print("\nheld-out 10% of observed test cells (normalised units, CSDI convention):")
    print(
        f"  tsdiff  MAE {m['mae']:.3f}  RMSE {m['rmse']:.3f}  CRPS {m['crps']:.3f}  "
        f"90% coverage {m['cov90']:.2f}"
    )
    for name, r in b.items():
        print(f"  {name:<7} MAE {r['mae']:.3f}  RMSE {r['rmse']:.3f}")
    lin = b.get("linear", {}).get("mae")
    if lin:
        print(f"  tsdiff MAE is {1 - m['mae'] / lin:.0%} below linear interpolation's")
    print(
        f"\nmodel:      {model_dir}\nimputed:    {out / 'imputed.parquet'}"
        f"\nplot:       {png}\nmetrics:    {out / 'metrics.json'}"
    )
    print(f"total {time.perf_counter() - t_start:.0f} s")
    return report
