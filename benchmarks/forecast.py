"""Forecasting benchmark: tsdiff against statsforecast's SeasonalNaive, AutoETS and AutoARIMA,
and NeuralForecast's DeepAR and NHITS.

``python -m tsdiff.benchmarks.forecast pm25 --profile quick`` (or ``etth1``) follows the
protocol of ``../shared/data/README.md``: rolling daily origins over the end of the
set (PM2.5: the last 60 days of ``pm25_ground``, the 36 stations as the variables of
one panel; ETTh1: the last 73 days), horizon 24 h. Results go to
``benchmarks/results/forecast-<dataset>.{json,md}`` (other profiles:
``forecast-<dataset>-<profile>``).

* tsdiff is trained only on the steps up to the first origin, then backtested with
  :func:`tsdiff.backtest.backtest` (all origins in one sampler call).
* SeasonalNaive(24), AutoETS(season_length=24) and AutoARIMA(season_length=24) run
  through statsforecast's ``cross_validation`` with the same cut-offs (``step_size`` =
  24, ``n_windows`` = the origins). AutoETS and AutoARIMA are fitted once on everything
  before the first origin and their states are updated through the later origins
  (``refit=False``), which keeps AutoETS on 36 series x 60 origins within minutes; the
  profile can ask for refits. AutoARIMA's seasonal order search on the whole history
  did not finish one data set in 45 minutes here, so it is fitted on the last
  ``arima_input`` steps before each origin (4 weeks; statsforecast's ``input_size``),
  as an analyst would fit it to recent data (``arima: false`` leaves it out). They need gap-free
  input: gaps are filled by carrying the last value forward (causal, so nothing
  after an origin leaks into its history). Their levels 10..90 give the 19 quantiles
  0.05..0.95 (level l → quantiles (1 - l/100)/2 and 1 - that; 0.5 = the point forecast).
* DeepAR and NHITS (:mod:`tsdiff.benchmarks.forecast_peers`, the ``bench`` extra) train
  on the same steps as tsdiff for the same wall time, then forecast from every origin
  without refits; without NeuralForecast they are reported as missing.
* Metrics on cells with an observed truth: MAE, RMSE of the median, CRPS from the 19
  quantiles (CSDI's normalisation by Σ|truth|), coverage and width of the 50 % and
  90 % intervals. CRPS-sum (the sum over variables per origin and hour) uses tsdiff's
  joint samples; the univariate baselines have no joint distribution, so theirs sums
  their quantiles across variables (perfectly dependent errors, the generous choice
  for positively correlated series).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tsdiff import metrics
from tsdiff.backtest import backtest, coverage_se, cutoffs, quantile_columns, score_frame
from tsdiff.benchmarks.common import (
    RESULTS,
    commit,
    fmt,
    log,
    machine,
    module_command,
    profile_path,
    read_profile,
)
from tsdiff.config import TSDiffConfig
from tsdiff.datasets import default_data_dir
from tsdiff.errors import ConfigError, DataError, TSDiffError
from tsdiff.io import write_atomic, write_json
from tsdiff.model import TSDiff

DATASETS = {
    "pm25": ("pm25_ground.parquet", 60),
    "etth1": ("etth1_2017_2018.parquet", 73),
}
LEVELS = (50, 90)
SF_LEVELS = list(range(10, 100, 10))  # 10..90: with the point forecast, 19 quantiles
TARGETS = {"crps_gain": 0.10, "cov90": (0.87, 0.93), "cov50": (0.47, 0.53), "pm25_seconds": 300}


@dataclass(frozen=True)
class ForecastBench:
    """The benchmark's own settings (the ``benchmark`` section of a profile)."""

    horizon: int = 24
    step: int = 24
    windows: int | None = None  # origins; None = the protocol's (60 PM2.5, 73 ETTh1)
    train_minutes: float | None = 6.0
    n_samples: int = 100
    steps: int | None = None  # reverse steps; None = the model's default
    season_length: int = 24
    ets_refit: bool | int = False  # statsforecast cross_validation's refit (ETS and ARIMA)
    baselines: bool = True
    arima: bool = True  # AutoARIMA among the baselines (the slowest of them)
    arima_input: int | None = 672  # steps AutoARIMA is fitted on (None: the whole history)
    neural_peers: bool = True  # DeepAR and NHITS, trained for tsdiff's wall time
    history_steps: int | None = None  # keep only the data's last steps (smoke tests)
    # forecast spread fitted on this many origins before the first test origin (0: none)
    calibrate_windows: int = 28
    # > 0: also score tsdiff recalibrated at every origin on this many latest forecasts
    # whose truths had arrived (tsdiff.rolling_calibration), beside the above
    recalibrate: int = 0

    def __post_init__(self) -> None:
        if self.horizon < 1 or self.step < 1 or self.n_samples < 1:
            raise ConfigError("horizon, step and n_samples must be >= 1")
        if self.train_minutes is not None and self.train_minutes <= 0:
            raise ConfigError("train_minutes must be > 0 or null")


def load_profile(dataset: str, profile: str) -> tuple[str, Path, TSDiffConfig, ForecastBench]:
    """``profile``: a name (``quick``, ``tiny``) or a path to a JSON file."""
    path, name = profile_path(f"forecast-{dataset}", profile)
    cfg, bench = read_profile(path, ForecastBench)
    return name, path, cfg, bench


def load_dataset(dataset: str, data_dir: str | Path | None = None) -> pd.DataFrame:
    """The wide hourly table: ``timestamp`` plus one column per variable (one panel)."""
    if dataset not in DATASETS:
        raise ConfigError(f"unknown dataset {dataset!r}: one of {sorted(DATASETS)}")
    base = Path(data_dir) if data_dir else default_data_dir()
    path = base / DATASETS[dataset][0] if base else None
    if path is None or not path.is_file():
        raise DataError(f"{DATASETS[dataset][0]} not found in {base}: pass --data-dir")
    df = pd.read_parquet(path)
    return df.sort_values("timestamp").reset_index(drop=True)


# --------------------------------------------------------------------------- baselines


def statsforecast_tables(
    df: pd.DataFrame, bench: ForecastBench, windows: int, only: Sequence[str] | None = None
) -> dict[str, tuple[pd.DataFrame, float]]:
    """SeasonalNaive, AutoETS and AutoARIMA through ``cross_validation`` → backtest-style
    tables (AutoARIMA only when ``bench.arima``; ``only``: just these labels).

    Returns per method (table, seconds); tables have ``origin, timestamp, variable,
    truth, median, lo_/hi_50|90`` and the 19 quantile columns.
    """
    from statsforecast import StatsForecast
    from statsforecast.models import AutoARIMA, AutoETS, SeasonalNaive

    variables = [c for c in df.columns if c != "timestamp"]
    filled = df[variables].ffill().bfill()  # causal fill; bfill only before a series starts
    long = (
        pd.concat([df[["timestamp"]], filled], axis=1)
        .melt(id_vars="timestamp", var_name="unique_id", value_name="y")
        .rename(columns={"timestamp": "ds"})
    )
    truth = df.melt(id_vars="timestamp", var_name="variable", value_name="truth")
    m = bench.season_length
    candidates: list[tuple[str, Any, bool | int, int | None]] = [
        ("seasonal_naive", SeasonalNaive(season_length=m), True, None),
        ("autoets", AutoETS(season_length=m), bench.ets_refit, None),
    ]
    if bench.arima:
        arima = AutoARIMA(season_length=m)
        candidates.append(("autoarima", arima, bench.ets_refit, bench.arima_input))
    if only is not None:
        candidates = [c for c in candidates if c[0] in only]
    out = {}
    for label, model, refit, input_size in candidates:
        t0 = time.perf_counter()
        sf = StatsForecast(models=[model], freq="h", n_jobs=1)
        cv = sf.cross_validation(
            df=long,
            h=bench.horizon,
            step_size=bench.step,
            n_windows=windows,
            level=SF_LEVELS,
            refit=refit,
            input_size=input_size,
        )
        secs = time.perf_counter() - t0
        name = str(model)
        table = cv.rename(columns={"unique_id": "variable", "ds": "timestamp", "cutoff": "origin"})
        table = table.drop(columns="y").merge(truth, on=["timestamp", "variable"], how="left")
        table["median"] = table[name]
        lv = metrics.quantile_levels()
        for col, q in zip(quantile_columns(), lv, strict=True):
            if np.isclose(q, 0.5):
                table[col] = table[name]
                continue
            level = int(round(abs(1 - 2 * q) * 100))
            table[col] = table[f"{name}-{'lo' if q < 0.5 else 'hi'}-{level}"]
        for level in LEVELS:
            table[f"lo_{level}"] = table[f"{name}-lo-{level}"]
            table[f"hi_{level}"] = table[f"{name}-hi-{level}"]
        keep = ["origin", "timestamp", "variable", "truth", "median"]
        keep += [f"{s}_{lv_}" for lv_ in LEVELS for s in ("lo", "hi")] + quantile_columns()
        out[label] = (table[keep].reset_index(drop=True), secs)
    return out


def comonotone_crps_sum(table: pd.DataFrame) -> float:
    """CRPS-sum of univariate quantile forecasts: quantiles of the sum = sum of quantiles."""
    obs = table[table["truth"].notna()]
    grouped = obs.groupby(["origin", "timestamp"])
    q = grouped[quantile_columns()].sum().to_numpy().T  # (19, m)
    y = grouped["truth"].sum().to_numpy()  # (m,)
    return metrics.crps_from_quantiles(q, y, np.ones(y.shape, bool))


# --------------------------------------------------------------------------- run


def _short(s: dict[str, Any]) -> dict[str, Any]:
    keys = ("mae", "rmse", "crps", "crps_sum", "cov50", "width50", "cov90", "width90", "n_cells")
    keys += ("cov50_se", "cov90_se")
    return {k: s[k] for k in keys if k in s}


def _se(table: pd.DataFrame, bench: ForecastBench) -> dict[str, float]:
    """Standard errors of a method's coverages over its origins (see ``coverage_se``)."""
    return coverage_se(table, LEVELS, bench.horizon, bench.step)


def run(
    dataset: str,
    profile_name: str = "quick",
    *,
    seed: int = 0,
    data_dir: str | Path | None = None,
    out_dir: str | Path = RESULTS,
    command: str | None = None,
    progress: bool = True,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train on the history before the first origin, backtest, score beside baselines;
    ``overrides``: fields of the profile's benchmark settings (e.g. ``horizon``)."""
    measured = commit()  # the code this run loads, whatever is committed while it runs
    name, path, cfg, bench = load_profile(dataset, profile_name)
    bench = dataclasses.replace(bench, **(overrides or {}))
    df = load_dataset(dataset, data_dir)
    if bench.history_steps:
        df = df.iloc[-bench.history_steps :].reset_index(drop=True)
    windows = bench.windows or DATASETS[dataset][1]
    pos = cutoffs(len(df), bench.horizon, bench.step, windows)
    first = int(pos[0])
    train = df.iloc[: first + 1]
    log(
        f"forecast {dataset} / {name}: train on {len(train)} steps up to "
        f"{df['timestamp'].iloc[first]}, {windows} origins every {bench.step} h, "
        f"horizon {bench.horizon} h"
    )
    cfg = cfg.replace(data={"freq": "1h"}, train={"seed": seed, "max_minutes": bench.train_minutes})
    model = TSDiff(cfg).fit(train, progress=progress)
    info = model.info
    log(
        f"trained {info['epochs_run']} epochs ({info['steps_run']} steps) in "
        f"{info['train_seconds']:.0f} s"
    )

    t0 = time.perf_counter()
    same = {  # the backtest's settings, also for the model scored without its gate
        "horizon": bench.horizon,
        "step": bench.step,
        "windows": windows,
        "levels": LEVELS,
        "n_samples": bench.n_samples,
        "steps": bench.steps,
        "seed": seed,
        "calibrate_windows": bench.calibrate_windows,
    }
    rolled = None
    if bench.recalibrate and bench.calibrate_windows and bench.horizon > model.window - 1:
        # beyond one window one draw gives both rows (the recalibrated and, as `once`, the
        # same draws calibrated once): see tsdiff.backtest.backtest
        rolled = backtest(model, df, **same, recalibrate=bench.recalibrate)
        bt = rolled.once
        assert bt is not None
    else:
        bt = backtest(model, df, **same)
    bt_s = time.perf_counter() - t0
    cal = bt.summary["calibration"]
    if cal:
        log(
            f"forecast spread {cal['spread']} from {cal['windows']} origins "
            f"{cal['first_origin']} .. {cal['last_origin']}: cov90 {cal['cov90_before']} → "
            f"{cal['cov90_after']}"
        )
    ours = {**_short(bt.summary["overall"]), "train_s": info["train_seconds"]}
    ours.update(backtest_s=round(bt_s, 1), sample_s=bt.summary["sample_seconds"])
    log(
        f"  tsdiff          MAE {ours['mae']:.3f}  CRPS {ours['crps']:.4f}  CRPS-sum "
        f"{ours['crps_sum']:.4f}  cov50 {ours['cov50']:.3f}  cov90 {ours['cov90']:.3f}  "
        f"({bt_s:.0f} s)"
    )
    methods: dict[str, Any] = {"tsdiff": ours}
    per_variable: dict[str, Any] = {"tsdiff": bt.summary["per_variable"]}
    gate_w = bt.summary["gate"]
    if gate_w is not None and all(a == 1.0 for a in [*gate_w, *(bt.summary["gate_far"] or [])]):
        # every weight 1: the gate moves nothing, the model alone is the row above
        methods["tsdiff_ungated"] = _short(bt.summary["overall"])
    elif gate_w is not None:  # what the gate did: the same model and draws alone
        alone = backtest(model, df, **same, gate=False)
        methods["tsdiff_ungated"] = _short(alone.summary["overall"])
        log(
            f"  tsdiff ungated  MAE {alone.summary['overall']['mae']:.3f}  CRPS "
            f"{alone.summary['overall']['crps']:.4f}"
        )
    recalibration = None
    if bench.recalibrate and bench.calibrate_windows:
        t1 = time.perf_counter()
        if rolled is None:
            rolled = backtest(model, df, **same, recalibrate=bench.recalibrate)
        methods["tsdiff_recalibrated"] = {
            **_short(rolled.summary["overall"]),
            # 0 when drawn with the row above (shared draws: the time is counted there)
            "backtest_s": round(time.perf_counter() - t1, 1),
        }
        per_variable["tsdiff_recalibrated"] = rolled.summary["per_variable"]
        recalibration = rolled.summary["recalibration"]
        log(
            f"  tsdiff recalibrated as truths arrive  MAE "
            f"{rolled.summary['overall']['mae']:.3f}  CRPS {rolled.summary['overall']['crps']:.4f}"
            f"  cov50 {rolled.summary['overall']['cov50']:.3f}  cov90 "
            f"{rolled.summary['overall']['cov90']:.3f}"
        )
    if bench.baselines:
        scored_baselines = _baselines(df, bench, windows, pos)
        methods.update({k: v for k, (v, _) in scored_baselines.items()})
        per_variable.update({k: v for k, (_, v) in scored_baselines.items()})
    peers: dict[str, Any] = {}
    if bench.neural_peers:
        peers, scored = _neural_peers(df, bench, windows, pos, info["train_seconds"] / 60, seed)
        for label, (entry, per_var) in scored.items():
            methods[label] = entry
            if per_var is not None:
                per_variable[label] = per_var
    result = {
        "dataset": dataset,
        "profile": name,
        "command": command or "",
        "commit": measured,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "protocol": {
            "data": DATASETS[dataset][0],
            "variables": len(df.columns) - 1,
            "origins": windows,
            "first_origin": bt.summary["first_origin"],
            "last_origin": bt.summary["last_origin"],
            "horizon": bench.horizon,
            "step": bench.step,
            "train_steps": len(train),
            "context": bt.summary["context"],
            "lags": bt.summary["lags"],
            "n_samples": bench.n_samples,
        },
        "train": {k: info[k] for k in ("epochs_run", "steps_run", "best_epoch", "train_seconds")},
        "calibration": {"imputation": info.get("calibration"), "forecast": cal},
        "recalibration": recalibration,
        "methods": methods,
        "neural_peers": peers,
        "targets": targets(methods, dataset),
        "targets_recalibrated": _recalibrated_targets(methods, dataset),
        "per_variable": per_variable,
        "profile_settings": {"benchmark": dataclasses.asdict(bench), "model": cfg.to_dict()},
    }
    stem = f"forecast-{dataset}" if name == "quick" else f"forecast-{dataset}-{name}"
    if bench.horizon != 24:  # the protocol's day ahead keeps the plain name
        stem += f"-h{bench.horizon}"
    out = Path(out_dir)
    write_json(result, out / f"{stem}.json")
    write_atomic(out / f"{stem}.md", lambda p: p.write_text(markdown(result)))
    log(f"results: {out / stem}.json, .md")
    return result


def _baselines(
    df: pd.DataFrame,
    bench: ForecastBench,
    windows: int,
    pos: np.ndarray,
    only: Sequence[str] | None = None,
) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """The statsforecast baselines scored on the backtest's cut-offs ``pos``: per label,
    its ``methods`` entry and its per-variable metrics."""
    out = {}
    for label, (table, secs) in statsforecast_tables(df, bench, windows, only).items():
        out[label] = _score_table(label, table, secs, df, pos, bench)
        _log_method(label, out[label][0], secs)
    return out


def _score_table(
    label: str,
    table: pd.DataFrame,
    secs: float,
    df: pd.DataFrame,
    pos: np.ndarray,
    bench: ForecastBench,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A peer's backtest-style table scored on the cut-offs ``pos`` (refused when its
    origins are others): its ``methods`` entry and per-variable metrics."""
    got = set(pd.DatetimeIndex(table["origin"].unique()))
    if got != set(df["timestamp"].iloc[pos]):
        raise DataError(f"{label}: forecast origins differ from the backtest's cut-offs")
    scored = score_frame(table, LEVELS)
    entry = {
        **_short(scored["overall"]),
        **_se(table, bench),
        "crps_sum": round(comonotone_crps_sum(table), 6),
        "backtest_s": round(secs, 1),
    }
    return entry, scored["per_variable"]


def _with_arima(methods: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    """``methods`` with the AutoARIMA row where a full run puts it (after AutoETS, or
    after the statistical baselines and our own rows), every other row kept as it was:
    the recalibrated and ungated rows too."""
    before = [k for k in methods if k.startswith("tsdiff") or k in ("seasonal_naive", "autoets")]
    out: dict[str, Any] = {}
    for k, v in methods.items():
        if k != "autoarima":
            out[k] = v
        if before and k == before[-1]:
            out["autoarima"] = entry
    out.setdefault("autoarima", entry)
    return out


def add_arima(
    result_path: str | Path,
    *,
    dataset: str | None = None,
    data_dir: str | Path | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """Add AutoARIMA to a result written without it (``--no-arima``), on the same
    origins and cells, without training anything again: the statsforecast baselines are
    deterministic given the data and the cut-offs, so the row is the one the full run
    would have written. The result's JSON and markdown are rewritten (atomically) with
    the addition's command, commit and date."""
    path = Path(result_path)
    try:
        r = json.loads(path.read_text())
        saved_dataset = r["dataset"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataError(f"{path}: not a forecast benchmark result ({e})") from None
    if dataset is not None and dataset != saved_dataset:
        raise DataError(f"{path} is a result on {saved_dataset}, not {dataset}")
    names = {f.name for f in dataclasses.fields(ForecastBench)}
    saved = {k: v for k, v in r["profile_settings"]["benchmark"].items() if k in names}
    bench = ForecastBench(**{**saved, "arima": True})
    df = load_dataset(r["dataset"], data_dir)
    if bench.history_steps:
        df = df.iloc[-bench.history_steps :].reset_index(drop=True)
    windows = int(r["protocol"]["origins"])
    pos = cutoffs(len(df), bench.horizon, bench.step, windows)
    if str(df["timestamp"].iloc[pos[0]]) != str(pd.Timestamp(r["protocol"]["first_origin"])):
        raise DataError(f"{path}: its first origin is not the data's; another data version?")
    log(f"AutoARIMA on {windows} origins of {r['dataset']}, horizon {bench.horizon} h")
    entry, per_var = _baselines(df, bench, windows, pos, only=("autoarima",))["autoarima"]
    r["methods"] = _with_arima(r["methods"], entry)
    r["per_variable"]["autoarima"] = per_var
    r["targets"] = targets(r["methods"], r["dataset"])
    r["targets_recalibrated"] = _recalibrated_targets(r["methods"], r["dataset"])
    r["profile_settings"]["benchmark"] = dataclasses.asdict(bench)
    r.setdefault("added", []).append(
        {
            "methods": ["autoarima"],
            "command": command or "",
            "commit": commit(),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        }
    )
    write_json(r, path)
    write_atomic(path.with_suffix(".md"), lambda p: p.write_text(markdown(r)))
    log(f"results: {path}, .md")
    return r


def _log_method(label: str, s: dict[str, Any], secs: float) -> None:
    log(
        f"  {label:<15} MAE {s['mae']:.3f}  CRPS {s['crps']:.4f}  CRPS-sum "
        f"{s['crps_sum']:.4f}  cov50 {s['cov50']:.3f}  cov90 {s['cov90']:.3f}  "
        f"({secs:.0f} s)"
    )


def _neural_peers(
    df: pd.DataFrame,
    bench: ForecastBench,
    windows: int,
    pos: np.ndarray,
    minutes: float,
    seed: int,
) -> tuple[dict[str, Any], dict[str, tuple[dict[str, Any], dict[str, Any] | None]]]:
    """DeepAR and NHITS scored like the statsforecast baselines.

    Returns per peer its training info (or ``{"missing": why}``), and per peer its
    ``methods`` entry with its per-variable metrics (None when missing).
    """
    from tsdiff.benchmarks import forecast_peers

    why = forecast_peers.missing_reason()
    if why:
        log(f"  deepar, nhits   {why}")
        missing = {"missing": why}
        return (
            {label: missing for label in forecast_peers.PEERS},
            {label: (missing, None) for label in forecast_peers.PEERS},
        )
    infos: dict[str, Any] = {}
    scored_peers: dict[str, tuple[dict[str, Any], dict[str, Any] | None]] = {}
    tables = forecast_peers.neural_tables(df, bench, windows, minutes, seed)
    for label, (table, secs, peer_info) in tables.items():
        entry, per_var = _score_table(label, table, secs, df, pos, bench)
        entry.update(train_s=peer_info["train_s"], train_steps=peer_info["steps"])
        scored_peers[label] = (entry, per_var)
        infos[label] = peer_info
        _log_method(label, entry, secs)
        log(f"  {'':<15} trained {peer_info['steps']} steps in {peer_info['train_s']:.0f} s")
    return infos, scored_peers


def targets(methods: dict[str, Any], dataset: str) -> dict[str, Any]:
    """The issue's targets, checked: CRPS 10 % below each baseline, MAE below, coverage."""
    ours = methods["tsdiff"]
    out: dict[str, Any] = {}
    for label in ("seasonal_naive", "autoets", "autoarima", "deepar", "nhits"):
        if label in methods and "missing" not in methods[label]:
            base = methods[label]
            gain = 1 - ours["crps"] / base["crps"]
            out[f"crps_gain_vs_{label}"] = round(gain, 4)
            out[f"crps_10pct_below_{label}"] = bool(gain >= TARGETS["crps_gain"])
            out[f"mae_below_{label}"] = bool(ours["mae"] < base["mae"])
    lo, hi = TARGETS["cov90"]
    out["cov90_in_87_93"] = bool(lo <= ours["cov90"] <= hi)
    lo, hi = TARGETS["cov50"]
    out["cov50_in_47_53"] = bool(lo <= ours["cov50"] <= hi)
    if dataset == "pm25":
        out["backtest_under_5_min"] = bool(ours["backtest_s"] < TARGETS["pm25_seconds"])
    return out


def _recalibrated_targets(methods: dict[str, Any], dataset: str) -> dict[str, Any] | None:
    """The same targets for tsdiff recalibrated as truths arrive, when it was scored."""
    if "tsdiff_recalibrated" not in methods:
        return None
    return targets({**methods, "tsdiff": methods["tsdiff_recalibrated"]}, dataset)


def _recalibration_lines(rec: dict[str, Any] | None) -> list[str]:
    if not rec:
        return []
    spreads = rec["spread"]
    return [
        f"- `tsdiff_recalibrated`: the same model, draws and gate, with the spread and "
        f"interval factors refitted at every origin on the {rec['recent']} latest forecasts "
        f"whose truths had arrived by it (the calibration origins', then the backtest's own; "
        f"as a daily `tsdiff calibrate-forecast` would): spreads {min(spreads):g} .. "
        f"{max(spreads):g} (median {float(np.median(spreads)):g}); the last origin pooled "
        f"{rec['own_forecasts_pooled'][-1]} of its own forecasts"
    ]


def _calibration_lines(cal: dict[str, Any] | None) -> list[str]:
    if not cal:
        return ["- tsdiff forecast spread: not calibrated (the imputation spread is used)"]
    lines = [
        f"- tsdiff forecast spread {cal['spread']}, fitted on {cal['windows']} origins "
        f"{cal['first_origin']} .. {cal['last_origin']} (horizons ending by the first test "
        f"origin; not trained on when inside the validation tail): CRPS {cal['crps_before']} "
        f"→ {cal['crps_after']}, cov50 {cal['cov50_before']} → {cal['cov50_after']}, cov90 "
        f"{cal['cov90_before']} → {cal['cov90_after']} (normalised units)"
    ]
    gate = cal.get("gate")
    if gate and gate.get("n_cells"):
        alphas = ", ".join(f"{a:g}" for a in gate["gate"])
        lines.append(
            f"- tsdiff forecast gate (per variable, the weight of the model's median against "
            f"seasonal naive, chosen by MAE on the same origins): {alphas}; MAE there: model "
            f"{gate['mae_model']}, seasonal naive {gate['mae_interpolation']}, gated "
            f"{gate['mae_gated']} (normalised units). "
            + (
                "`tsdiff_ungated`: the same model and draws without it"
                if gate.get("kept")
                else "Every weight 1: the model alone"
                + (
                    " (it beats seasonal naive over all variables)"
                    if gate.get("model_wins_overall")
                    else ""
                )
            )
        )
    return lines


def _lag_text(lags: list[int] | None) -> str:
    if not lags:
        return " (the window before the horizon)"
    return f" (lags {', '.join(map(str, lags))} h reach before the window)"


def _arima_text(r: dict[str, Any]) -> str:
    bench = r["profile_settings"]["benchmark"]
    n = bench.get("arima_input")
    if not bench.get("arima", True) or n is None:
        return ""
    return f"; AutoARIMA fitted on the last {n} h before each origin"


def _peer_lines(peers: dict[str, Any]) -> list[str]:
    lines = []
    for label, p in peers.items():
        if "missing" in p:
            continue
        st, probe = p["settings"], p["probe"]
        how = (
            f"budget {p['budget_s']:.0f} s, {probe['per_step_s']} s/step from a "
            f"{probe['steps']}-step probe"
            if probe
            else "steps fixed"
        )
        lines.append(
            f"- {label} (NeuralForecast): trained on the same {st['train_rows']} h, "
            f"{p['steps']} steps in {p['train_s']:.0f} s ({how}), input {st['input_size']} h, "
            f"{st['scaler_type']} scaling, {st['loss']}; one fit, no refits; quantiles "
            f"sorted in {p['crossed_rows']} crossed cells"
        )
    return lines


def _cov(s: dict[str, Any], level: int) -> str:
    """Coverage, with its standard error where the run measured one."""
    se = s.get(f"cov{level}_se")
    return fmt(s[f"cov{level}"]) + (f" ± {se:.3f}" if se is not None else "")


def markdown(r: dict[str, Any]) -> str:
    """The results as a page: protocol, table of methods, targets."""
    m, p = r["machine"], r["protocol"]
    lines = [
        f"# Forecasting: {r['dataset']} — profile `{r['profile']}`",
        "",
        f"Command: `{r['command']}`  ",
        f"Commit {r['commit']}, {r['date']}; {m['cpus']} CPUs, {m['torch_threads']} torch "
        f"threads, load average {m['load_avg']} at start (shared machine); torch {m['torch']}.",
        "",
        f"- data: {p['data']}, {p['variables']} variables forecast jointly (one panel)",
        f"- {p['origins']} origins every {p['step']} h, {p['first_origin']} .. "
        f"{p['last_origin']}, horizon {p['horizon']} h",
        f"- tsdiff: trained on the {p['train_steps']} h up to the first origin for "
        f"{r['train']['train_seconds']:.0f} s ({r['train']['epochs_run']} epochs), context "
        f"{p['context']} h{_lag_text(p.get('lags'))}, {p['n_samples']} samples",
        *_calibration_lines(r.get("calibration", {}).get("forecast")),
        *_recalibration_lines(r.get("recalibration")),
        "- baselines: statsforecast cross_validation with the same cut-offs, levels 10..90 "
        "→ 19 quantiles; AutoETS/AutoARIMA refit "
        f"{r['profile_settings']['benchmark']['ets_refit']}{_arima_text(r)}",
        *_peer_lines(r.get("neural_peers") or {}),
        *(
            f"- {', '.join(a['methods'])} added later on the same origins and cells (nothing "
            f"retrained): `{a['command']}`, commit {a['commit']}, {a['date']}"
            + (f"; {a['restored']}" if a.get("restored") else "")
            for a in r.get("added", [])
        ),
        "",
        "| method | MAE | RMSE | CRPS | CRPS-sum | cov50 | width50 | cov90 | width90 | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in r["methods"].items():
        if "missing" in s:
            lines.append(f"| {name} | missing: {s['missing']} |" + " |" * 8)
            continue
        lines.append(
            f"| {name} | {fmt(s['mae'])} | {fmt(s['rmse'])} | {fmt(s['crps'], 4)} | "
            f"{fmt(s['crps_sum'], 4)} | {_cov(s, 50)} | {fmt(s['width50'], 2)} | "
            f"{_cov(s, 90)} | {fmt(s['width90'], 2)} | {fmt(s.get('backtest_s'), 1)} |"
        )
    lines += [
        "",
        "Seconds: the backtest over all origins (tsdiff, deepar, nhits: forecasting and "
        "tables, training not included; a recalibrated row drawn with the tsdiff row, "
        "beyond one window, counts none of its own). CRPS-sum of the univariate methods "
        "(all but tsdiff) sums their quantiles over variables. Coverage ± its standard "
        "error over origins: a moving-block bootstrap in blocks of ⌈horizon / step⌉ "
        "origins (forecasts whose horizons overlap share truths and weather): a coverage "
        "within about two of them of nominal cannot be told from it on these origins.",
        "",
        "## Targets",
        "",
        *(f"- {k}: {v}" for k, v in r["targets"].items()),
    ]
    if r.get("targets_recalibrated"):
        lines += [
            "",
            "## Targets, recalibrated as truths arrive (`tsdiff_recalibrated`)",
            "",
            *(f"- {k}: {v}" for k, v in r["targets_recalibrated"].items()),
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tsdiff.benchmarks.forecast", description=__doc__)
    p.add_argument("dataset", choices=sorted(DATASETS))
    p.add_argument("--profile", default="quick", help="quick, tiny or a JSON path")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", help="folder with the data (default ../shared/data)")
    p.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--horizon", type=int, help="steps ahead (default the profile's, 24)")
    p.add_argument("--windows", type=int, help="origins (default the protocol's: 60 / 73)")
    p.add_argument("--no-arima", action="store_true", help="leave out AutoARIMA (slowest)")
    p.add_argument("--no-neural", action="store_true", help="leave out DeepAR and NHITS")
    p.add_argument(
        "--recalibrate",
        type=int,
        default=0,
        metavar="N",
        help="also score tsdiff recalibrated at every origin on the N latest matured forecasts",
    )
    p.add_argument(
        "--add-arima",
        metavar="RESULT_JSON",
        help="add AutoARIMA to a result written with --no-arima (same origins; trains nothing)",
    )
    args = p.parse_args(argv)
    if args.add_arima:
        command = module_command("tsdiff.benchmarks.forecast")
        try:
            add_arima(args.add_arima, dataset=args.dataset, data_dir=args.data_dir, command=command)
        except TSDiffError as e:  # the result file is left as it was
            print(f"error: {e}", file=sys.stderr)
            return 2
        return 0
    overrides: dict[str, Any] = {}
    if args.horizon is not None:
        overrides["horizon"] = args.horizon
    if args.windows is not None:
        overrides["windows"] = args.windows
    if args.no_arima:
        overrides["arima"] = False
    if args.no_neural:
        overrides["neural_peers"] = False
    if args.recalibrate:
        overrides["recalibrate"] = args.recalibrate
    run(
        args.dataset,
        args.profile,
        seed=args.seed,
        data_dir=args.data_dir,
        out_dir=args.out or RESULTS,
        command=module_command("tsdiff.benchmarks.forecast"),
        progress=not args.quiet,
        overrides=overrides,
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
