"""Neural forecasting peers for the forecasting benchmark: NeuralForecast's DeepAR and NHITS.

A user choosing a neural forecaster today would try DeepAR (Salinas et al. 2020) or NHITS
(Challu et al. 2023) before a diffusion model, so the benchmark trains them under the
same rules as tsdiff:

* the same data: only the steps up to and including the first origin, each variable of
  the wide table a series (``unique_id``) of one global model; gaps are filled as for
  the statsforecast baselines (last value carried forward, then back before a series
  starts);
* the same wall-clock training budget: a throw-away fit of a few steps is timed and the
  real fit gets the ``max_steps`` that fit the budget (the probe is not counted);
* no refits: the trained model forecasts from every origin, each from a series cut at
  that origin, so nothing after an origin can reach its forecast.

Both models scale each input window per series (``scaler_type``), since the PM2.5
stations and the ETTh1 loads have very different levels. Their levels 10..90 give the
19 quantiles 0.05..0.95, as for the statsforecast baselines; quantiles are sorted per
cell (NHITS's quantile heads can cross) and the count of crossed cells is reported.

NeuralForecast is an optional extra (``pip install -e .[bench]``); without it the peers
are reported as missing.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tsdiff.backtest import cutoffs, quantile_columns
from tsdiff.errors import DataError

if TYPE_CHECKING:
    from tsdiff.benchmarks.forecast import ForecastBench

NF_LEVELS = list(range(10, 100, 10))  # 10..90: with the median, the 19 quantiles
PEERS = ("deepar", "nhits")
# NHITS at the library's defaults. DeepAR at the paper's size for hourly electricity and
# traffic (2 LSTM layers of 40 cells) with smaller window batches than the library's
# 1024: it unrolls the LSTM over every training window, and on CPU a budget of minutes
# would otherwise buy only a few hundred steps.
NHITS_SETTINGS: dict[str, Any] = {"windows_batch_size": 1024, "batch_size": 32}
DEEPAR_SETTINGS: dict[str, Any] = {
    "lstm_n_layers": 2,
    "lstm_hidden_size": 40,
    "windows_batch_size": 128,
    "batch_size": 32,
    "trajectory_samples": 100,
}
SCALER = "standard"
_QUIET_LOGGERS = ("pytorch_lightning", "lightning", "lightning_fabric", "neuralforecast")


def missing_reason() -> str | None:
    """None when NeuralForecast can be imported, else what to install."""
    try:
        import neuralforecast  # noqa: F401
    except ImportError:
        return "NeuralForecast is not installed: pip install -e '.[bench]' for DeepAR and NHITS"
    return None


def input_size_for(horizon: int) -> int:
    """Context length: a week of hourly steps (daily and weekly cycles), at least 2 x h."""
    return max(168, 2 * horizon)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence Lightning's banners and NeuralForecast's warnings for one fit or predict."""
    levels = {name: logging.getLogger(name).level for name in _QUIET_LOGGERS}
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _build(label: str, h: int, input_size: int, steps: int, seed: int, extra: dict[str, Any]):
    """A fresh DeepAR or NHITS: CPU, quiet, no checkpoints or logs."""
    from neuralforecast.losses.pytorch import DistributionLoss, MQLoss
    from neuralforecast.models import NHITS, DeepAR

    trainer = {
        "accelerator": "cpu",
        "devices": 1,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "enable_checkpointing": False,
        "logger": False,
        **extra,
    }
    common = {
        "h": h,
        "input_size": input_size,
        "max_steps": steps,
        "val_check_steps": steps,  # no validation set (val_size=0): never validates
        "scaler_type": SCALER,
        "random_seed": seed,
    }
    if label == "nhits":
        return NHITS(loss=MQLoss(level=NF_LEVELS), **common, **NHITS_SETTINGS, **trainer)
    if label == "deepar":
        loss = DistributionLoss(distribution="StudentT", level=NF_LEVELS, return_params=False)
        return DeepAR(loss=loss, **common, **DEEPAR_SETTINGS, **trainer)
    raise ValueError(f"unknown neural peer {label!r}: one of {PEERS}")


def _step_timer() -> Any:
    """A Lightning callback that records the wall time at the end of each training step."""
    import pytorch_lightning as pl

    class StepTimer(pl.Callback):
        def __init__(self) -> None:
            self.ends: list[float] = []

        def on_train_batch_end(self, *args: Any, **kwargs: Any) -> None:
            self.ends.append(time.perf_counter())

        def __deepcopy__(self, memo: dict) -> StepTimer:
            return self  # NeuralForecast fits a deep copy of the model and its callbacks

    return StepTimer()


def _probe(
    label: str,
    h: int,
    input_size: int,
    steps: int,
    seed: int,
    extra: dict[str, Any],
    train: pd.DataFrame,
) -> dict[str, Any]:
    """Time a throw-away fit of ``steps`` steps: seconds per step (from the steps after the
    first) and the once-per-fit overhead (data, trainer), which a budget pays only once."""
    from neuralforecast import NeuralForecast

    timer = _step_timer()
    model = _build(label, h, input_size, steps, seed, {**extra, "callbacks": [timer]})
    t0 = time.perf_counter()
    NeuralForecast(models=[model], freq="h").fit(train, val_size=0)
    total = time.perf_counter() - t0
    ends = timer.ends
    if len(ends) >= 2:
        per_step = (ends[-1] - ends[0]) / (len(ends) - 1)
        overhead = max(0.0, total - per_step * len(ends))
    else:
        per_step, overhead = total, 0.0
    return {
        "steps": steps,
        "seconds": round(total, 3),
        "per_step_s": round(per_step, 5),
        "overhead_s": round(overhead, 3),
    }


def _long(wide: pd.DataFrame, ids: Sequence[str]) -> pd.DataFrame:
    """Wide ``timestamp`` + variables → NeuralForecast's long ``unique_id, ds, y``."""
    return (
        wide.melt(id_vars="timestamp", value_vars=list(ids), var_name="unique_id", value_name="y")
        .rename(columns={"timestamp": "ds"})
        .astype({"y": "float32"})
    )


def _histories(filled: pd.DataFrame, pos: np.ndarray, length: int) -> tuple[pd.DataFrame, dict]:
    """One series per (origin, variable): the ``length`` steps up to and including the
    origin, nothing after it. Returns the long frame and id → (origin, variable)."""
    variables = [c for c in filled.columns if c != "timestamp"]
    parts, where = [], {}
    for k, p in enumerate(pos):
        cut = filled.iloc[max(0, int(p) - length + 1) : int(p) + 1]
        origin = cut["timestamp"].iloc[-1]
        renamed = {v: f"{k:04d}|{v}" for v in variables}
        where.update({new: (origin, v) for v, new in renamed.items()})
        parts.append(_long(cut.rename(columns=renamed), list(renamed.values())))
    return pd.concat(parts, ignore_index=True), where


def _table(pred: pd.DataFrame, name: str, where: dict, truth: pd.DataFrame) -> pd.DataFrame:
    """NeuralForecast's level columns → a backtest-style table (quantiles sorted per row)."""
    from tsdiff import metrics
    from tsdiff.benchmarks.forecast import LEVELS

    pred = pred.reset_index() if "unique_id" not in pred.columns else pred
    origin_var = pd.DataFrame(
        [(uid, o, v) for uid, (o, v) in where.items()], columns=["unique_id", "origin", "variable"]
    )
    table = pred.merge(origin_var, on="unique_id", how="left").rename(columns={"ds": "timestamp"})
    table = table.merge(truth, on=["timestamp", "variable"], how="left")
    cols = []
    for q in metrics.quantile_levels():
        if np.isclose(q, 0.5):
            cols.append(f"{name}-median")
        else:
            cols.append(f"{name}-{'lo' if q < 0.5 else 'hi'}-{int(round(abs(1 - 2 * q) * 100))}")
    q = table[cols].to_numpy(np.float64)  # (rows, 19), levels ascending
    crossed = int((np.diff(q, axis=1) < 0).any(axis=1).sum())
    q = np.sort(q, axis=1)  # rearrangement: never raises the pinball loss
    qcols = quantile_columns()
    table[qcols] = q
    table["median"] = table["q50"]
    for level in LEVELS:
        low = int(round(50 - level / 2))
        table[f"lo_{level}"] = table[f"q{low:02d}"]
        table[f"hi_{level}"] = table[f"q{100 - low:02d}"]
    keep = ["origin", "timestamp", "variable", "truth", "median"]
    keep += [f"{s}_{lv}" for lv in LEVELS for s in ("lo", "hi")] + qcols
    out = table[keep].sort_values(["origin", "variable", "timestamp"]).reset_index(drop=True)
    out.attrs["crossed_rows"] = crossed
    return out


def neural_tables(
    df: pd.DataFrame,
    bench: ForecastBench,
    windows: int,
    minutes: float,
    seed: int = 0,
    *,
    peers: Sequence[str] = PEERS,
    probe_steps: int = 5,
    max_steps: int = 10_000,
    steps: int | None = None,
) -> dict[str, tuple[pd.DataFrame, float, dict[str, Any]]]:
    """DeepAR and NHITS trained once before the first origin, forecasting from every origin.

    ``df``: the wide hourly table (``timestamp`` + variables). Each peer trains for about
    ``minutes`` of wall time (tsdiff's). Returns per peer (table, forecast seconds, info):
    the table has ``origin, timestamp, variable, truth, median, lo_/hi_50|90`` and the
    19 quantile columns, like ``statsforecast_tables``; info has the steps, the training
    seconds, the probe and the settings. ``steps`` fixes the training steps instead
    (no probe), for reruns that must train the same models.
    """
    reason = missing_reason()
    if reason:
        raise ImportError(reason)
    from neuralforecast import NeuralForecast

    if minutes <= 0:
        raise ValueError(f"minutes must be > 0, got {minutes}")
    h = bench.horizon
    budget = minutes * 60.0
    pos = cutoffs(len(df), h, bench.step, windows)  # (windows,) positions of the origins
    first = int(pos[0])
    variables = [c for c in df.columns if c != "timestamp"]
    filled = pd.concat([df[["timestamp"]], df[variables].ffill().bfill()], axis=1)
    train = _long(filled.iloc[: first + 1], variables)  # what tsdiff trains on, nothing later
    truth = df.melt(id_vars="timestamp", var_name="variable", value_name="truth")
    expected = set(pd.DatetimeIndex(df["timestamp"].iloc[pos]))
    input_size = input_size_for(h)
    if first + 1 < input_size + h:
        raise DataError(
            f"{first + 1} training steps are too few for input_size {input_size} + horizon {h}"
        )
    hist, where = _histories(filled, pos, input_size + 1)  # DeepAR reads one extra step

    out: dict[str, tuple[pd.DataFrame, float, dict[str, Any]]] = {}
    for label in peers:
        with tempfile.TemporaryDirectory() as tmp, _quiet():
            extra = {"default_root_dir": tmp}  # Lightning writes nothing, or only here
            if steps is None:
                probe = _probe(label, h, input_size, probe_steps, seed, extra, train)
                fit = (budget - probe["overhead_s"]) // max(probe["per_step_s"], 1e-5)
                n_steps = int(max(1, min(max_steps, fit)))
            else:
                probe, n_steps = None, int(steps)
            model = _build(label, h, input_size, n_steps, seed, extra)
            nf = NeuralForecast(models=[model], freq="h")
            t0 = time.perf_counter()
            nf.fit(train, val_size=0)
            train_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            pred = nf.predict(df=hist)
            secs = time.perf_counter() - t0
        table = _table(pred, type(model).__name__, where, truth)
        got = set(pd.DatetimeIndex(table["origin"].unique()))
        lead = (table["timestamp"] - table["origin"]) / pd.Timedelta(hours=1)
        if got != expected or len(table) != windows * len(variables) * h:
            raise DataError(f"{label}: forecast origins differ from the backtest's cut-offs")
        if not lead.between(1, h).all():
            raise DataError(f"{label}: forecast timestamps are not 1..{h} h after their origin")
        info = {
            "steps": n_steps,
            "train_s": round(train_s, 2),
            "budget_s": round(budget, 2),
            "probe": probe,
            "crossed_rows": table.attrs.pop("crossed_rows"),
            "settings": {
                "input_size": input_size,
                "h": h,
                "scaler_type": SCALER,
                "levels": NF_LEVELS,
                "seed": seed,
                "train_rows": first + 1,
                "series": len(variables),
                **(
                    {"loss": "MQLoss", **NHITS_SETTINGS}
                    if label == "nhits"
                    else {"loss": "DistributionLoss(StudentT)", **DEEPAR_SETTINGS}
                ),
            },
        }
        out[label] = (table, secs, info)
    return out
