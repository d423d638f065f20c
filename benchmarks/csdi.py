"""Benchmarks on the CSDI protocol (Tashiro et al., NeurIPS 2021), beside baselines.

``tsdiff benchmark physionet --missing 0.1 --profile quick`` and
``tsdiff benchmark pm25 --profile quick`` train a model, impute the protocol's held-out
cells with it and with five baselines on exactly the same cells, time our sampler
against the reference procedure on the same weights, and race our network against a
CSDI-sized one for the same wall time. Results go to
``benchmarks/results/<dataset>-<profile>.{json,md}``.

Protocols (``../shared/data/README.md``):

* PhysioNet 2012 set-a: 35 variables x 48 hourly steps per stay (last value per hour),
  5-fold split of the stays (20 % test; of the rest 70 % / 10 % of all stays train /
  valid), z-scored with training statistics, 10 / 50 / 90 % of each test stay's
  observed values held out at random with a fixed seed; metrics on the z-scored scale.
* Beijing PM2.5: 36 stations as the variables of one hourly panel, test months 3, 6,
  9, 12, windows of 36 h, the model sees ``pm25_missing``; truth = cells present in
  ``pm25_ground`` and absent in ``pm25_missing``; metrics in µg/m³.

Metrics: MAE and RMSE of the sample median, CRPS from the 19 quantiles 0.05..0.95
normalised by the sum of |truth| (CSDI's definition), coverage and mean width of the
central 50 % and 90 % intervals. Point baselines get the CRPS of a point forecast.
A profile (``benchmarks/profiles/<family>-<name>.json``) holds the model config and
the benchmark's own settings; profiles are data, not code paths.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tsdiff import baselines, metrics
from tsdiff.benchmarks import peers
from tsdiff.benchmarks.common import (
    RESULTS,
    fmt,
    log,
    machine,
    profile_path,
    read_profile,
)
from tsdiff.benchmarks.common import commit as current_commit
from tsdiff.config import TSDiffConfig
from tsdiff.data import Panel, Series
from tsdiff.data.windows import extract_windows, window_starts
from tsdiff.datasets import PHYSIONET_VARIABLES, default_data_dir, load_physionet
from tsdiff.errors import CalibrationWarning, ConfigError, DataError
from tsdiff.evaluation import flat_cells, interval_scores
from tsdiff.io import write_atomic, write_json
from tsdiff.masks import hold_out
from tsdiff.model import TSDiff

# CSDI's published table (NeurIPS 2021, Tables 2 and 4)
PUBLISHED: dict[str, dict[str, float]] = {
    "physionet10": {"mae": 0.217, "crps": 0.238},
    "physionet50": {"crps": 0.330},
    "physionet90": {"crps": 0.522},
    "pm25": {"mae": 9.60, "crps": 0.108},
}
CSDI_SIZED = {"channels": 64, "blocks": 4, "heads": 8}
PM25_TEST_MONTHS = (3, 6, 9, 12)
LEVELS = (50, 90)


@dataclass(frozen=True)
class BenchConfig:
    """The benchmark's own settings (the ``benchmark`` section of a profile)."""

    train_minutes: float | None = 25.0  # wall-clock cap on training; None = epochs only
    n_samples: int = 100  # samples per held-out cell (the protocol: 100)
    steps: int | None = None  # reverse steps of our sampler; None = the model's default
    reference_windows: int = 8  # windows in the sampler speed comparison
    reference_samples: int = 50  # samples per window in that comparison
    reference_batch: int = 16  # windows per network call in the reference (CSDI's)
    race_minutes: float = 0.0  # training race ours vs CSDI-sized; 0 skips it
    race_eval_windows: int = 64  # validation series scored after the race
    race_samples: int = 16
    knn_neighbors: int = 5
    iterative_max_iter: int = 10
    iterative_features: int | None = 100  # IterativeImputer's n_nearest_features
    peers: bool = True  # train PyPOTS SAITS for our training time, on the same cells
    max_train_series: int | None = None  # caps for smoke tests of the harness
    max_test_series: int | None = None

    def __post_init__(self) -> None:
        if self.n_samples < 1 or self.reference_samples < 1 or self.reference_batch < 1:
            raise ConfigError("sample counts and batch sizes must be >= 1")
        if self.train_minutes is not None and self.train_minutes <= 0:
            raise ConfigError("train_minutes must be > 0 or null")


@dataclass(frozen=True)
class Profile:
    name: str
    path: Path
    model: TSDiffConfig
    bench: BenchConfig


def load_profile(family: str, profile: str) -> Profile:
    """``profile`` is a name (``quick``, ``full``, ``tiny``) or a path to a JSON file."""
    path, name = profile_path(family, profile)
    model, bench = read_profile(path, BenchConfig)
    return Profile(name, path, model, bench)


# --------------------------------------------------------------------------- tasks


@dataclass
class Task:
    """One benchmark problem: tables to train on and a test set with its target cells.

    ``test`` holds the truth; ``test_input`` what the model is given (None: hide a
    random ``missing`` share of each test series' observed cells); ``valid_input`` the
    same for ``valid``, where the data fixes the held-out cells (PM2.5's missing file).
    """

    dataset: str
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    test_input: pd.DataFrame | None
    missing: float | None
    normalized_metrics: bool  # metrics on the z-scored scale (PhysioNet) or in units
    freq: str | float
    protocol: dict[str, Any] = field(default_factory=dict)
    valid_input: pd.DataFrame | None = None


def physionet_grid(raw: pd.DataFrame) -> pd.DataFrame:
    """Contract rows (minutes) → one wide row per stay and hour 0..47, last value per hour.

    Every stay gets all 48 hours (all-NaN rows included) so that its grid is exactly the
    protocol's, whatever hours it has measurements in.
    """
    df = raw.assign(hour=raw["timestamp"] // 60).sort_values(
        ["series_id", "timestamp"], kind="stable"
    )
    df = df.drop_duplicates(["series_id", "hour", "variable"], keep="last")
    wide = df.pivot(index=["series_id", "hour"], columns="variable", values="value")
    ids = np.sort(df["series_id"].unique())
    full = pd.MultiIndex.from_product([ids, np.arange(48)], names=["series_id", "hour"])
    wide = wide.reindex(index=full, columns=list(PHYSIONET_VARIABLES))
    wide.columns.name = None
    out = wide.reset_index().rename(columns={"hour": "timestamp"})
    out["timestamp"] = out["timestamp"].astype("float64")
    return out


def fold_split(ids: np.ndarray, fold: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """5-fold split of stay ids: test = fold's 20 %, then 70 % / 10 % of all for train/valid."""
    if not 0 <= fold < 5:
        raise ConfigError(f"fold must be in 0..4, got {fold}")
    n = len(ids)
    perm = np.random.default_rng(seed).permutation(n)
    lo, hi = int(round(fold * 0.2 * n)), int(round((fold + 1) * 0.2 * n))
    test = perm[lo:hi]
    rest = np.concatenate([perm[:lo], perm[hi:]])
    rest = rest[np.random.default_rng(seed + 1).permutation(len(rest))]
    n_train = int(0.7 * n)
    return ids[np.sort(rest[:n_train])], ids[np.sort(rest[n_train:])], ids[np.sort(test)]


def physionet_task(
    missing: float,
    *,
    fold: int = 0,
    seed: int = 0,
    data_dir: str | Path | None = None,
    raw: pd.DataFrame | None = None,
) -> Task:
    if not 0 < missing < 1:
        raise ConfigError(f"missing must be in (0, 1), got {missing}")
    grid = physionet_grid(raw if raw is not None else load_physionet(data_dir))
    tr, va, te = fold_split(np.sort(grid["series_id"].unique()), fold, seed)
    # minutes since admission, as the raw data and `tsdiff impute` users have them: a
    # model trained here (hourly grid, freq 60) takes raw PhysioNet stays as they are
    grid = grid.assign(timestamp=grid["timestamp"] * 60.0)
    pick = grid["series_id"]
    pct = int(round(missing * 100))
    return Task(
        dataset=f"physionet{pct}",
        train=grid[pick.isin(tr)].reset_index(drop=True),
        valid=grid[pick.isin(va)].reset_index(drop=True),
        test=grid[pick.isin(te)].reset_index(drop=True),
        test_input=None,
        missing=missing,
        normalized_metrics=True,
        freq=60.0,
        protocol={
            "data": "PhysioNet 2012 set-a, 35 variables x 48 hourly steps (last value per hour)",
            "split": f"fold {fold} of 5, seed {seed}: {len(tr)} train / {len(va)} valid / "
            f"{len(te)} test stays",
            "held_out": f"{pct}% of each test stay's observed values, seed {seed}",
            "metrics_scale": "z-scored with training statistics",
        },
    )


def pm25_task(*, data_dir: str | Path | None = None, valid_days: int = 5) -> Task:
    """Stations are variables; each calendar month is one series (months are contiguous)."""
    base = Path(data_dir) if data_dir else default_data_dir()
    if base is None or not (base / "pm25_ground.parquet").is_file():
        raise DataError(f"pm25_ground.parquet not found in {base}: pass --data-dir")
    ground = pd.read_parquet(base / "pm25_ground.parquet")
    miss = pd.read_parquet(base / "pm25_missing.parquet")
    if not ground["timestamp"].equals(miss["timestamp"]):
        raise DataError("pm25_ground and pm25_missing have different timestamps")

    def monthly(df: pd.DataFrame) -> pd.DataFrame:
        ts = pd.to_datetime(df["timestamp"])
        return df.assign(series_id=ts.dt.strftime("%Y-%m"))[["series_id", *df.columns]].reset_index(
            drop=True
        )

    g, m = monthly(ground), monthly(miss)
    month = pd.to_datetime(g["timestamp"]).dt.month
    test = month.isin(PM25_TEST_MONTHS)
    train_all, train_input = g[~test], m[~test]
    # validation: the last `valid_days` days of each training month
    end = train_all.groupby("series_id")["timestamp"].transform("max")
    is_val = pd.to_datetime(train_all["timestamp"]) > pd.to_datetime(end) - pd.Timedelta(
        days=valid_days
    )
    return Task(
        dataset="pm25",
        train=train_all[~is_val].reset_index(drop=True),
        valid=train_all[is_val].reset_index(drop=True),
        test=g[test].reset_index(drop=True),
        test_input=m[test].reset_index(drop=True),
        valid_input=train_input[is_val].reset_index(drop=True),
        missing=None,
        normalized_metrics=False,
        freq="1h",
        protocol={
            "data": "Beijing PM2.5, 36 stations as variables, hourly; one series per month",
            "split": f"test months {list(PM25_TEST_MONTHS)}; train the other months, their "
            f"last {valid_days} days for validation",
            "held_out": "cells present in pm25_ground and absent in pm25_missing",
            "metrics_scale": "µg/m³",
        },
    )


def task_for(dataset: str, *, seed: int = 0) -> Task:
    """The task a result or a model records as its ``dataset`` (``physionet10``, ``pm25``)."""
    if dataset.startswith("physionet"):
        return physionet_task(int(dataset[len("physionet") :]) / 100, seed=seed)
    if dataset == "pm25":
        return pm25_task()
    raise ConfigError(f"unknown benchmark data set {dataset!r}")


def _cap(df: pd.DataFrame, n: int | None, id_col: str = "series_id") -> pd.DataFrame:
    if n is None:
        return df
    keep = pd.unique(df[id_col])[:n]
    return df[df[id_col].isin(keep)].reset_index(drop=True)


# --------------------------------------------------------------------------- scoring


@dataclass
class Cells:
    """The test set on the model's grid: truth, what the model sees, cells to score."""

    panel: Panel
    truth: list[np.ndarray]  # per series (K, T), original units
    given: list[np.ndarray]  # per series (K, T), NaN where hidden or never observed
    hidden: list[np.ndarray]  # per series (K, T) bool, the cells scored

    @property
    def n_cells(self) -> int:
        return int(sum(h.sum() for h in self.hidden))


def held_out_cells(
    model: TSDiff,
    truth_df: pd.DataFrame,
    given_df: pd.DataFrame | None,
    missing: float | None,
    seed: int,
) -> Cells:
    panel = model.panel(truth_df)
    truth = [s.values for s in panel.series]
    if given_df is not None:
        gpanel = model.panel(given_df)
        given = []
        for s, g in zip(panel.series, gpanel.series, strict=True):
            if s.key != g.key or not s.index.equals(g.index):
                raise DataError(f"truth and input grids differ for series {s.key!r}")
            given.append(g.values)
        hidden = [~np.isnan(t) & np.isnan(g) for t, g in zip(truth, given, strict=True)]
        return Cells(panel, truth, given, hidden)
    assert missing is not None
    rng = np.random.default_rng(seed)
    # floor: the CSDI protocol's count of held-out cells per series
    held = [hold_out(t, missing, rng, rounding="floor") for t in truth]
    return Cells(panel, truth, [g for g, _ in held], [h for _, h in held])


def linear_samples(model: TSDiff, cells: Cells) -> list[np.ndarray]:
    """Linear interpolation of each series' given values on ``model``'s z-scale, as one
    sample per series ((1, K, T), original units): the baseline every page shows."""
    sc = model.scaler
    assert sc is not None
    return [
        sc.inverse(baselines.linear_impute(sc.transform(g), np.zeros(len(g))))[None]
        for g in cells.given
    ]


def score(
    model: TSDiff,
    cells: Cells,
    samples: Sequence[np.ndarray],
    normalized: bool,
    *,
    reported: bool = False,
) -> dict:
    """Metrics of samples (list of (n, K, T), original units) on the hidden cells;
    ``reported``: they are the model's own, so coverage is that of the intervals it
    reports (its interval factors applied), not of a baseline's or peer's values."""
    assert model.scaler is not None
    to_scale = model.scaler.transform if normalized else (lambda a: a)
    smp = flat_cells([to_scale(s) for s in samples])  # (n, cells)
    mask = flat_cells(cells.hidden)
    tru = np.where(mask, flat_cells([to_scale(t) for t in cells.truth]), 0.0)
    out = metrics.summarize(smp, tru, mask, LEVELS)
    if reported and model.interval_scale:  # the intervals users get; the samples' beside
        keys = [f"{m}{lv}" for lv in LEVELS for m in ("cov", "width")]
        out.update({f"{k}_samples": out[k] for k in keys})
        scale = to_scale if normalized else None
        out.update(interval_scores(model, samples, cells.truth, cells.hidden, LEVELS, scale))
    return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in out.items()}


def unchunk(windows: np.ndarray, series: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Inverse of :func:`_chunks` over several series: consecutive windows (N, K, L) of
    all ``series`` (each (K, T), in order) → per series (K, T)."""
    out, at = [], 0
    for v in series:
        n = -(-v.shape[1] // windows.shape[-1])
        part = windows[at : at + n]  # (n, K, L)
        at += n
        out.append(part.transpose(1, 0, 2).reshape(v.shape[0], -1)[:, : v.shape[1]])
    return out


def _chunks(values: np.ndarray, length: int) -> np.ndarray:
    """(K, T) → (ceil(T / L), K, L) consecutive windows, the last padded with NaN."""
    k, t = values.shape
    n = -(-t // length)
    pad = np.full((k, n * length - t), np.nan)
    return np.concatenate([values, pad], axis=1).reshape(k, n, length).transpose(1, 0, 2)


def baseline_scores(
    model: TSDiff, cells: Cells, train_df: pd.DataFrame, bench: BenchConfig, normalized: bool
) -> dict[str, dict[str, Any]]:
    """The five baselines on the same hidden cells, fitted on z-scored values."""
    assert model.scaler is not None
    sc = model.scaler
    given_z = [sc.transform(g) for g in cells.given]
    length = model.window
    train_z = [sc.transform(s.values) for s in model.panel(train_df).series]
    fit_w = np.concatenate([_chunks(v, length) for v in train_z])
    fit_w = fit_w[~np.isnan(fit_w).all(axis=(1, 2))]  # (M, K, L)
    test_w = [_chunks(v, length) for v in given_z]

    def windowed(fn: Callable[[np.ndarray], np.ndarray]) -> list[np.ndarray]:
        return unchunk(fn(np.concatenate(test_w)), given_z)

    methods: dict[str, Callable[[], list[np.ndarray]]] = {
        "mean": lambda: [baselines.mean_impute(v, np.zeros(len(v))) for v in given_z],
        "locf": lambda: [baselines.locf_impute(v, np.zeros(len(v))) for v in given_z],
        "linear": lambda: [baselines.linear_impute(v, np.zeros(len(v))) for v in given_z],
        "knn": lambda: windowed(lambda w: baselines.knn_impute(w, bench.knn_neighbors, fit=fit_w)),
        "iterative": lambda: windowed(
            lambda w: baselines.iterative_impute(
                w,
                bench.iterative_max_iter,
                fit=fit_w,
                n_nearest_features=bench.iterative_features,
            )
        ),
    }
    results = {}
    for name, run in methods.items():
        t0 = time.perf_counter()
        pred_z = run()
        secs = time.perf_counter() - t0
        pred = [sc.inverse(p)[None] for p in pred_z]  # (1, K, T): a point "sample"
        s = score(model, cells, pred, normalized)
        results[name] = _point_row(s, 0.0, round(secs, 2))
        log(f"  {name:<9} MAE {s['mae']:.4f}  CRPS {s['crps']:.4f}  ({secs:.1f} s)")
    return results


def _windows_z(model: TSDiff, df: pd.DataFrame) -> np.ndarray:
    """``df``'s series, z-scored and cut into windows (M, K, L) at our model's training
    stride, all-empty ones dropped: a window-based peer trains on the same windows."""
    assert model.scaler is not None
    length, stride = model.window, model.config.data.stride("training")
    out = []
    for s in model.panel(df).series:
        v = model.scaler.transform(s.values)  # (K, T)
        if v.shape[1] < length:
            out.append(_chunks(v, length))
            continue
        w, _ = extract_windows(v, length, window_starts(v.shape[1], length, stride))
        out.append(w)
    w = np.concatenate(out)
    return w[~np.isnan(w).all(axis=(1, 2))]


def peer_scores(
    model: TSDiff,
    cells: Cells,
    train_df: pd.DataFrame,
    valid_df: pd.DataFrame,
    minutes: float,
    normalized: bool,
    seed: int,
) -> dict[str, dict[str, Any]]:
    """PyPOTS SAITS trained for ``minutes`` on the same z-scored training data, scored on
    the same cells; ``{"saits": {"missing": why}}`` when PyPOTS is not installed."""
    why = peers.missing_reason()
    if why:
        log(f"  saits     {why}")
        return {"saits": {"missing": why}}
    assert model.scaler is not None
    sc, length = model.scaler, model.window
    given_z = [sc.transform(g) for g in cells.given]
    test_w = [_chunks(v, length) for v in given_z]
    run = peers.run_saits(
        _windows_z(model, train_df),
        _windows_z(model, valid_df) if len(valid_df) else None,
        np.concatenate(test_w),
        minutes=minutes,
        seed=seed,
        device=str(model.device),
    )
    pred = [  # (1, K, T) each: a point "sample", observed cells as given
        sc.inverse(np.where(np.isnan(v), full, v))[None]
        for v, full in zip(given_z, unchunk(run.imputation, given_z), strict=True)
    ]
    s = score(model, cells, pred, normalized)
    log(
        f"  saits     MAE {s['mae']:.4f}  CRPS {s['crps']:.4f}  ({run.epochs} epochs, "
        f"{run.train_s:.0f} s training, {run.impute_s:.1f} s imputing)"
    )
    row = _point_row(s, run.train_s, run.impute_s)
    return {"saits": {**row, "epochs": run.epochs, "settings": run.settings}}


def _point_row(s: dict[str, Any], train_s: float, impute_s: float) -> dict[str, Any]:
    """A point method's row of the results table: no intervals, so no coverage."""
    return {
        "mae": s["mae"],
        "rmse": s["rmse"],
        "crps": s["crps"],
        **dict.fromkeys(("cov50", "cov90", "width50", "width90")),
        "train_s": train_s,
        "impute_s": impute_s,
    }


# --------------------------------------------------------------------------- speed


def _pieces(cells: Cells, length: int, n: int) -> Cells:
    """The first ``n`` whole windows of the test set that have hidden cells, as series."""
    series, truth, given, hidden = [], [], [], []
    for s, t, g, h in zip(cells.panel.series, cells.truth, cells.given, cells.hidden, strict=True):
        for j in range(0, len(s.index) - length + 1, length):
            sl = slice(j, j + length)
            if not h[:, sl].any() or len(series) >= n:
                continue
            series.append(Series(f"{s.key}@{j}", s.index[sl], g[:, sl]))
            truth.append(t[:, sl])
            given.append(g[:, sl])
            hidden.append(h[:, sl])
    return Cells(dataclasses.replace(cells.panel, series=series), truth, given, hidden)


def sampler_race(model: TSDiff, cells: Cells, bench: BenchConfig, normalized: bool) -> dict:
    """Our sampler vs CSDI's procedure (50-step ancestral DDPM, one sample at a time for
    a batch of windows), same weights, same cells, same number of samples."""
    sub = _pieces(cells, model.window, bench.reference_windows)
    n = bench.reference_samples
    # like for like: the reference draws one sample at a time and so cannot be
    # calibrated about a median; ours is compared raw, and calibrated beside it
    spread, model.spread = model.spread, 1.0
    try:
        return _sampler_race(model, sub, bench, n, spread, normalized)
    finally:
        model.spread = spread


def _sampler_race(
    model: TSDiff, sub: Cells, bench: BenchConfig, n: int, spread: float, normalized: bool
) -> dict:
    t0 = time.perf_counter()
    ours = model.sample(sub.panel, values=sub.given, n_samples=n, steps=bench.steps, seed=1)
    ours_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    drawn: list[list[np.ndarray]] = [[] for _ in sub.panel.series]
    b = bench.reference_batch
    for lo in range(0, len(sub.panel.series), b):
        part = dataclasses.replace(sub.panel, series=sub.panel.series[lo : lo + b])
        for i in range(n):  # one sample per pass over the batch, as CSDI's impute
            with warnings.catch_warnings():  # the reference procedure, on purpose
                warnings.simplefilter("ignore", CalibrationWarning)
                one = model.sample(
                    part, values=sub.given[lo : lo + b], n_samples=1, sampler="ddpm", seed=1000 + i
                )
            for j, smp in enumerate(one):
                drawn[lo + j].append(smp[0])
    ref_s = time.perf_counter() - t0
    reference = [np.stack(d) for d in drawn]
    ours_crps = score(model, sub, ours, normalized)["crps"]
    ref_crps = score(model, sub, reference, normalized)["crps"]
    med = [np.median(o, axis=0, keepdims=True) for o in ours]
    calibrated = [m + spread * (o - m) for o, m in zip(ours, med, strict=True)]
    return {
        "windows": len(sub.panel.series),
        "samples": n,
        "n_cells": sub.n_cells,
        "ours": f"DDIM {bench.steps or model.config.sample.steps} steps, eta "
        f"{model.config.sample.eta}, all samples batched, {model.config.sample.precision}",
        "reference": f"DDPM {model.scheduler.num_steps} steps, one sample at a time, "
        f"batches of {b} windows, float32",
        "ours_s": round(ours_s, 3),
        "reference_s": round(ref_s, 3),
        "speedup": round(ref_s / ours_s, 2),
        "ours_crps": ours_crps,
        "reference_crps": ref_crps,
        "crps_rel_diff": round((ours_crps - ref_crps) / ref_crps, 4),
        "ours_calibrated_crps": score(model, sub, calibrated, normalized)["crps"],
        "spread": spread,
    }


def training_race(
    profile: Profile, task: Task, bench: BenchConfig, normalized: bool, seed: int
) -> dict:
    """Ours vs a CSDI-sized network (4 blocks, 64 channels, 8 heads) at the same batch
    size, each trained for ``race_minutes`` of wall time, scored on validation cells."""
    valid = _cap(task.valid, bench.race_eval_windows)
    out: dict[str, Any] = {"minutes": bench.race_minutes, "batch_size": None}
    for label, net in (("ours", {}), ("csdi_sized", CSDI_SIZED)):
        # no validation while racing: both spend the whole budget training, and are
        # scored afterwards on the same validation cells
        train = {"val_fraction": 0.0, "val_crps_every": 0, "max_minutes": bench.race_minutes}
        cfg = profile.model.replace(network=net, train=train)
        model = TSDiff(cfg).fit(task.train, freq=task.freq, progress=False)
        info = model.info
        wps = info["steps_run"] * cfg.train.batch_size / max(info["step_seconds"], 1e-9)
        cells = held_out_cells(model, valid, None, 0.1, seed)
        smp = model.sample(cells.panel, values=cells.given, n_samples=bench.race_samples, seed=2)
        crps = score(model, cells, smp, normalized)["crps"]
        n_params = sum(p.numel() for p in model.net.parameters()) if model.net else 0
        out[f"{label}_windows_per_s"] = round(wps, 2)
        out[f"{label}_epochs"] = info["epochs_run"]
        out[f"{label}_val_crps"] = crps
        out[f"{label}_params"] = n_params
        out["batch_size"] = cfg.train.batch_size
        log(
            f"  race {label}: {wps:.1f} windows/s, {info['epochs_run']} epochs, "
            f"validation CRPS {crps:.4f}",
        )
    out["ratio"] = round(out["ours_windows_per_s"] / out["csdi_sized_windows_per_s"], 2)
    return out


# --------------------------------------------------------------------------- run


def run(
    family: str,
    profile_name: str,
    *,
    missing: float = 0.1,
    fold: int = 0,
    seed: int = 0,
    data_dir: str | Path | None = None,
    out_dir: str | Path = RESULTS,
    command: str | None = None,
    progress: bool = True,
    save_model: str | Path | None = None,
    device: str | None = "auto",
) -> dict[str, Any]:
    """Run one benchmark end to end and write its JSON and markdown results;
    ``save_model``: also keep the trained model there (before the slower comparisons);
    ``device``: where our model trains and samples (SAITS then trains on it too)."""
    commit = current_commit()  # the code that runs, even if the tree moves on meanwhile
    profile = load_profile(family, profile_name)
    bench = profile.bench
    if family == "physionet":
        task = physionet_task(missing, fold=fold, seed=seed, data_dir=data_dir)
    elif family == "pm25":
        task = pm25_task(data_dir=data_dir)
    else:
        raise ConfigError(f"unknown benchmark {family!r}: physionet or pm25")
    task.train = _cap(task.train, bench.max_train_series)
    task.valid = _cap(task.valid, bench.max_train_series)
    task.test = _cap(task.test, bench.max_test_series)
    if task.test_input is not None:
        task.test_input = _cap(task.test_input, bench.max_test_series)
    norm = task.normalized_metrics
    log(f"{task.dataset} / {profile.name}: {task.protocol['split']}")

    cfg = profile.model.replace(train={"seed": seed, "max_minutes": bench.train_minutes})
    model = TSDiff(cfg).fit(
        task.train, valid_df=task.valid, freq=task.freq, progress=progress, device=device
    )
    info = model.info
    log(f"trained {info['epochs_run']} epochs in {info['train_seconds']:.0f} s")
    if save_model:  # with the split, so that users (and the demo) know what it never saw
        test_ids = pd.unique(task.test["series_id"]).tolist()
        model.info["data"] = {
            "dataset": task.dataset,
            "protocol": task.protocol,
            "test_series": test_ids,
        }
        log(f"model saved to {model.save(save_model)}")

    cells = held_out_cells(model, task.test, task.test_input, task.missing, seed)
    log(
        f"imputing {cells.n_cells} held-out cells of {len(cells.panel.series)} series "
        f"({bench.n_samples} samples)",
    )
    t0 = time.perf_counter()
    samples = model.sample(
        cells.panel, values=cells.given, n_samples=bench.n_samples, steps=bench.steps, seed=seed
    )
    impute_s = time.perf_counter() - t0
    ours = score(model, cells, samples, norm, reported=True)
    ours.update(train_s=info["train_seconds"], impute_s=round(impute_s, 2))
    log(
        f"  tsdiff    MAE {ours['mae']:.4f}  CRPS {ours['crps']:.4f}  cov50 "
        f"{ours['cov50']:.3f}  cov90 {ours['cov90']:.3f}  ({impute_s:.0f} s)",
    )
    methods = {"tsdiff": ours, **baseline_scores(model, cells, task.train, bench, norm)}
    if bench.peers:  # the peer a user would pick, for the same wall-clock training time
        minutes = info["train_seconds"] / 60
        methods.update(peer_scores(model, cells, task.train, task.valid, minutes, norm, seed))

    log("sampler speed: ours vs the reference procedure")
    sampling = sampler_race(model, cells, bench, norm)
    log(
        f"  {sampling['speedup']}x faster, CRPS {sampling['ours_crps']} vs "
        f"{sampling['reference_crps']}",
    )
    training = training_race(profile, task, bench, norm, seed) if bench.race_minutes > 0 else None

    result = {
        "dataset": task.dataset,
        "profile": profile.name,
        "command": command or "",
        "commit": commit,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {**machine(), "device": str(model.device)},
        "protocol": {**task.protocol, "n_cells": cells.n_cells, "n_samples": bench.n_samples},
        "train": {
            "epochs_run": info["epochs_run"],
            "steps_run": info["steps_run"],
            "best_epoch": info["best_epoch"],
            "train_s": info["train_seconds"],
            "train_windows": info["train_windows"],
            "stopped_by_budget": info["stopped_by_budget"],
            "calibration": info.get("calibration"),
        },
        "methods": methods,
        "sampling": sampling,
        "training": training,
        "published": {"csdi": PUBLISHED.get(task.dataset, {})},
        "profile_settings": {"benchmark": dataclasses.asdict(bench), "model": cfg.to_dict()},
    }
    out = Path(out_dir)
    stem = f"{task.dataset}-{profile.name}"
    write_json(result, out / f"{stem}.json")
    write_atomic(out / f"{stem}.md", lambda p: p.write_text(markdown(result)))
    log(f"results: {out / stem}.json, .md")
    return result


def _calibration_line(c: dict[str, Any] | None) -> list[str]:
    if not c or not c.get("n_cells"):
        return []
    return [
        f"- calibration on {c['n_cells']} validation cells: spread x{c['spread']}, CRPS "
        f"{c['crps_before']} → {c['crps_after']}, 90% coverage {c['cov90_before']} → "
        f"{c['cov90_after']}"
    ]


def markdown(r: dict[str, Any]) -> str:
    """The results as a page: protocol, table of methods, speed, training race."""
    m = r["machine"]
    lines = [
        f"# {r['dataset']} — profile `{r['profile']}`",
        "",
        f"Command: `{r['command']}`  ",
        f"Commit {r['commit']}, {r['date']}; {m['cpus']} CPUs, {m['torch_threads']} torch "
        f"threads, load average {m['load_avg']} at start; torch {m['torch']}.",
        "",
        *(f"- {k}: {v}" for k, v in r["protocol"].items()),
        f"- training: {r['train']['epochs_run']} epochs ({r['train']['steps_run']} steps) in "
        f"{r['train']['train_s']:.0f} s, best epoch {r['train']['best_epoch']}",
        *_calibration_line(r["train"].get("calibration")),
        "",
        "| method | MAE | RMSE | CRPS | cov50 | cov90 | width50 | width90 | train s | impute s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in r["methods"].items():
        if "missing" in s:
            lines.append(f"| {name} | {s['missing']} | | | | | | | | |")
            continue
        if "epochs" in s:
            name = f"{name} ({s['epochs']} epochs)"
        lines.append(
            f"| {name} | {fmt(s['mae'])} | {fmt(s['rmse'])} | {fmt(s['crps'])} | "
            f"{fmt(s['cov50'])} | {fmt(s['cov90'])} | {fmt(s['width50'])} | "
            f"{fmt(s['width90'])} | {fmt(s['train_s'], 0)} | {fmt(s['impute_s'], 1)} |"
        )
    pub = r["published"]["csdi"]
    if pub:
        lines.append(
            f"| CSDI (published) | {fmt(pub.get('mae'))} | – | {fmt(pub.get('crps'))} "
            "| – | – | – | – | – | – |"
        )
    s = r["sampling"]
    lines += [
        "",
        "Point baselines and SAITS: CRPS of a point forecast (all quantiles at the point). "
        "SAITS (PyPOTS) trains on the same z-scored windows for our model's training time.",
        "",
        f"## Sampling speed ({s['windows']} windows, {s['samples']} samples each, "
        f"{s['n_cells']} cells)",
        "",
        "| sampler | seconds | CRPS |",
        "|---|---|---|",
        f"| ours: {s['ours']} | {s['ours_s']} | {s['ours_crps']} |",
        f"| reference: {s['reference']} | {s['reference_s']} | {s['reference_crps']} |",
        "",
        f"Speed-up {s['speedup']}x; CRPS relative difference {s['crps_rel_diff']:+.2%} "
        f"(both raw; ours with its calibrated spread x{s.get('spread', 1.0)}: CRPS "
        f"{s.get('ours_calibrated_crps')}).",
    ]
    t = r.get("training")
    if t:
        lines += [
            "",
            f"## Training race ({t['minutes']} min each, batch {t['batch_size']})",
            "",
            "| network | params | windows/s | epochs | validation CRPS |",
            "|---|---|---|---|---|",
            f"| ours | {t['ours_params']} | {t['ours_windows_per_s']} | {t['ours_epochs']} | "
            f"{t['ours_val_crps']} |",
            f"| CSDI-sized (4 blocks, 64 channels, 8 heads) | {t['csdi_sized_params']} | "
            f"{t['csdi_sized_windows_per_s']} | {t['csdi_sized_epochs']} | "
            f"{t['csdi_sized_val_crps']} |",
            "",
            f"Throughput ratio {t['ratio']}x.",
        ]
    return "\n".join(lines) + "\n"
