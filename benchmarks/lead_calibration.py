"""Forecast calibration by lead: one spread and one set of interval factors for every
lead (as shipped) against factors fitted per band of leads, on the same draws.

A week-ahead PM2.5 backtest covered 0.615 / 0.955 of its test cells with its 50 % / 90 %
intervals and over-covered more at later leads, so factors per lead band were a
candidate. This trains the forecast profile on the history before the first test origin,
draws the calibration origins' and the test origins' forecasts once, uncalibrated (both
recentred by the forecast gate fitted on the calibration origins, as the backtest does),
and scores each way of fitting the factors on the calibration cells against the test
cells: CRPS, MAE and coverage in original units, overall and per lead band.

    python -m tsdiff.benchmarks.lead_calibration pm25 --horizon 168 --windows 30
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tsdiff import metrics
from tsdiff.backtest import backtest, before_first_origin, calibration_cells, cutoffs
from tsdiff.benchmarks.common import (
    RESULTS,
    commit,
    log,
    module_command,
    page_header,
    slashed,
    stamp,
    write_results,
)
from tsdiff.benchmarks.forecast import DATASETS, load_dataset, load_profile
from tsdiff.calibration import (
    Support,
    fit_interval_scale,
    fit_spread,
    interval_factor,
    rescale,
    scaled_interval,
)
from tsdiff.data import Scaler
from tsdiff.errors import DataError
from tsdiff.io import write_atomic
from tsdiff.model import TSDiff
from tsdiff.predictor import Predictor
from tsdiff.rolling_calibration import Forecasts, Refit, rolling_refits
from tsdiff.spec import VariableSpec, project, project_bounds
from tsdiff.transforms import Normalizer

LEVELS = (50, 90)


def lead_bands(horizon: int, shortest: int = 6) -> list[tuple[int, int]]:
    """Bands of 0-based leads [lo, hi) doubling in length (1, 2, 4, ...), the early ones
    merged until each spans at least ``shortest`` leads: early leads change fastest."""
    edges, e = [0], 1
    while e < horizon:
        e = min(horizon, 2 * e)
        edges.append(e)
    bands, lo = [], 0
    for hi in edges[1:]:
        if hi - lo >= min(shortest, horizon) or hi == horizon:
            bands.append((lo, hi))
            lo = hi
    return bands


@dataclasses.dataclass(frozen=True)
class Factors:
    """Spread and interval factors per lead band (one band: the same for every lead)."""

    spread: tuple[float, ...]  # per band
    intervals: tuple[dict[int, float], ...]  # per band


def fit_factors(
    smp: np.ndarray,
    y: np.ndarray,
    lead: np.ndarray,
    bands: Sequence[tuple[int, int]],
    support: Support | None = None,
    clip_spread: bool = False,
) -> Factors:
    """Spread (CRPS-optimal) then interval factors (conformal) per band, on calibration
    cells ``smp`` (n, m), ``y`` (m,) with 0-based ``lead`` (m,); ``support``: the cells'
    bounds the samples are clipped to when the interval factors are fitted, as the
    library does (None: unclipped), and with ``clip_spread`` the spread's too."""
    spreads, scales = [], []
    for lo, hi in bands:
        sel = (lead >= lo) & (lead < hi)
        part = None if support is None else support.select(sel)
        s = fit_spread(smp[:, sel], y[sel], part if clip_spread else None).spread
        spreads.append(s)
        scales.append(fit_interval_scale(rescale(smp[:, sel], s), y[sel], support=part).scale)
    return Factors(tuple(spreads), tuple(scales))


def _specs(model: Predictor) -> list[VariableSpec] | None:
    return None if model.spec is None else [model.spec[v] for v in model.variables]


Plan = Sequence[tuple[Sequence[tuple[int, int]], Factors]]  # per test forecast: bands, factors


def score(
    norm: Scaler | Normalizer,
    specs: Sequence[VariableSpec] | None,
    z: np.ndarray,
    truth: np.ndarray,
    plan: Plan,
    report_bands: Sequence[tuple[int, int]],
) -> dict[str, Any]:
    """Test forecasts ``z`` (W, n, K, H) in normalised units, uncalibrated, scored against
    ``truth`` (W, K, H) (original units) once each forecast's factors (``plan[w]``: per
    band of its bands) apply, served as a model with normaliser ``norm`` and variable
    ``specs`` serves them; coverage also per band of ``report_bands``."""
    spread = np.ones((z.shape[0], 1, 1, z.shape[-1]))  # (W, 1, 1, H)
    for w, (bands, factors) in enumerate(plan):
        for (lo, hi), s in zip(bands, factors.spread, strict=True):
            spread[w, ..., lo:hi] = s
    x = norm.inverse(rescale(z, spread, axis=1))  # (W, n, K, H)
    if specs is not None:
        x = project(x, specs)
    smp = x.transpose(1, 0, 2, 3)  # (n, W, K, H)
    mask = np.isfinite(truth)
    y = np.nan_to_num(truth)
    out: dict[str, Any] = {
        "mae": metrics.mae(np.median(smp, axis=0), y, mask),
        "crps": metrics.crps_quantile(smp, y, mask),
    }
    zt = norm.transform(smp)  # the projected samples, back in the network's space
    for lv in LEVELS:
        lo_b, hi_b = np.empty(truth.shape), np.empty(truth.shape)
        for w, (bands, factors) in enumerate(plan):
            for (a, b), scale in zip(bands, factors.intervals, strict=True):
                lo_b[w, ..., a:b], hi_b[w, ..., a:b] = scaled_interval(
                    zt[:, w, ..., a:b], lv, scale
                )
        lo_b, hi_b = norm.inverse(lo_b), norm.inverse(hi_b)
        if specs is not None:
            lo_b, hi_b = project_bounds(lo_b, hi_b, specs)
        inside = (lo_b <= y) & (y <= hi_b)
        out[f"cov{lv}"] = float(inside[mask].mean())
        out[f"cov{lv}_by_lead"] = [
            round(float(inside[..., a:b][mask[..., a:b]].mean()), 4) for a, b in report_bands
        ]
    return {k: round(v, 5) if isinstance(v, float) else v for k, v in out.items()}


def tracked(
    refits: Sequence[Refit], forecasts: Forecasts, horizon: int, rate: float
) -> list[Refit]:
    """``refits`` (one per forecast of ``forecasts``) with each level's interval factor
    times ``exp(rate · Σ (miss − (1 − level)))`` over the same series' forecasts whose
    horizon had ended by its origin, each scored with the factors it was issued with:
    quantile tracking, the update of adaptive conformal inference (Gibbs & Candès 2021;
    Angelopoulos, Candès & Tibshirani 2023), a candidate for shifts that a refit on a
    recent pool follows too slowly. ``rate`` 0 leaves them as they are."""
    if not (math.isfinite(rate) and rate >= 0):
        raise DataError(f"rate must be a finite number >= 0, got {rate!r}")
    if len(refits) != len(forecasts.where):
        raise DataError(f"need one refit per forecast: {len(refits)} for {len(forecasts.where)}")
    out = list(refits)
    misses: dict[int, dict[int, float]] = {}  # forecast → level → share of truths outside
    for i in sorted(range(len(out)), key=lambda j: forecasts.where[j][1]):
        key, pos, when = forecasts.where[i]
        r = refits[i]
        if not r.intervals:
            raise DataError(f"forecast of {key!r} at {when} has no interval factors to track")
        done = [
            j
            for j, (k, p, _) in enumerate(forecasts.where)
            if j in misses and k == key and p + horizon <= pos
        ]
        scale = {
            lv: f * math.exp(rate * sum(misses[j][lv] - (1 - lv / 100) for j in done))
            for lv, f in r.intervals.items()
        }
        out[i] = dataclasses.replace(r, intervals=scale)
        misses[i] = _misses(forecasts.samples[i], forecasts.truth[i], r.spread, scale)
    return out


def _misses(
    samples: np.ndarray, truth: np.ndarray, spread: float, scale: dict[int, float]
) -> dict[int, float]:
    """Per level, the share of the known truths (K, H) outside the intervals of
    ``samples`` (n, K, H) scaled by ``spread`` and widened by ``scale``."""
    smp = rescale(samples, spread)
    known = np.isfinite(truth)
    out = {}
    for lv in scale:
        lo, hi = scaled_interval(smp, lv, {lv: scale[lv]})
        inside = (lo <= truth) & (truth <= hi)
        out[lv] = float(1.0 - inside[known].mean()) if known.any() else 1 - lv / 100
    return out


def rolling_plan(
    cal_z: np.ndarray,
    cal_y: np.ndarray,
    cal_where: Sequence[tuple[Any, int, Any]],
    z: np.ndarray,
    y: np.ndarray,
    where: Sequence[tuple[Any, int, Any]],
    horizon: int,
    recent: int,
    rate: float = 0.0,
    support: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[tuple[list[tuple[int, int]], Factors]]:
    """One spread and one set of interval factors per test forecast, fitted on the
    ``recent`` latest forecasts of its series whose whole horizon had happened by its
    origin: the calibration origins' (``cal_z`` (Wc, n, K, H), ``cal_y`` (Wc, K, H)) and
    the earlier test origins' (``z``, ``y`` alike), all normalised. What a forecaster
    recalibrated as truths arrive would use; nothing after the origin. ``rate`` > 0:
    the interval factors then tracked (:func:`tracked`). ``support``: each variable's
    bounds, fitted on samples clipped to them as the backtest does (None: unclipped)."""
    own = Forecasts(z, y, where)
    refits = rolling_refits(
        Forecasts(cal_z, cal_y, cal_where), own, horizon, recent, intervals=True, support=support
    )
    if rate:
        refits = tracked(refits, own, horizon, rate)
    return _one_band(refits, horizon)


def _one_band(refits: Sequence[Refit], horizon: int) -> list[tuple[list[tuple[int, int]], Factors]]:
    one = [(0, horizon)]
    return [(one, Factors((r.spread,), (r.intervals or {},))) for r in refits]


def run(
    dataset: str,
    *,
    profile: str,
    horizon: int,
    windows: int | None,
    calibrate_windows: int,
    seed: int,
    threads: int,
    out_dir: str | Path,
    command: str,
    recents: Sequence[int] = (),
    before: int = 0,
    rates: Sequence[float] = (),
    onces: Sequence[int] = (),
    dump: str | Path | None = None,
) -> dict[str, Any]:
    """``recents``: pool sizes of the rolling variants (default ``calibrate_windows``);
    ``rates``: each also with its interval factors tracked at that rate, and the
    once-fitted factors tracked; ``onces``: the factors fitted once on only the latest
    that many calibration origins (of ``calibrate_windows``);
    ``before``: end the data that many origins (``step`` apart) early, so that settings
    are chosen on the period before the protocol's test origins, never on them;
    ``dump``: a folder to keep the draws in (``draws.npz``, ``model.pkl`` with the
    normaliser and the specs), so that other ways of fitting factors can be tried on
    them without drawing again."""
    measured = commit()
    torch.set_num_threads(threads)
    _, _, cfg, bench = load_profile(dataset, profile)
    df = load_dataset(dataset)
    if before:
        df = df.iloc[: len(df) - before * bench.step].reset_index(drop=True)
    windows = windows or DATASETS[dataset][1]
    pos = cutoffs(len(df), horizon, bench.step, windows)
    cfg = cfg.replace(data={"freq": "1h"}, train={"seed": seed, "max_minutes": bench.train_minutes})
    model = TSDiff(cfg).fit(df.iloc[: int(pos[0]) + 1], progress=False)
    log(f"trained {model.info['epochs_run']} epochs in {model.info['train_seconds']:.0f} s")
    opts = {"n_samples": bench.n_samples, "steps": bench.steps, "sampler": None, "eta": None}
    opts["seed"] = seed
    panel = model.panel(df)
    cal_panel = before_first_origin(panel, horizon, bench.step, windows)
    cal = calibration_cells(model, cal_panel, horizon, bench.step, calibrate_windows, opts)
    # the test forecasts, drawn uncalibrated and recentred by the gate fitted above
    model.forecast_gate = (cal.gate or {}).get("kept")
    model.forecast_gate_far = None
    bt = backtest(
        model,
        df,
        horizon=horizon,
        step=bench.step,
        windows=windows,
        levels=LEVELS,
        n_samples=bench.n_samples,
        steps=bench.steps,
        seed=seed,
        spread=1.0,
        return_samples=True,
    )
    assert bt.samples is not None and bt.truth is not None
    w, n, k, h = bt.samples.shape
    z = model.normalizer.transform(bt.samples)  # (W, n, K, H)
    one = [(0, h)]
    bands = lead_bands(h)
    log(f"lead bands {bands}")

    def fitted(b: list[tuple[int, int]]) -> Factors:
        return fit_factors(cal.samples, cal.truth, cal.lead, b)

    variants = {
        "one factor for every lead (as shipped)": (one, fitted(one)),
        "spread and intervals per band": (bands, fitted(bands)),
    }
    shipped = variants["one factor for every lead (as shipped)"][1]
    variants["one spread, intervals per band"] = (
        bands,
        Factors(
            (shipped.spread[0],) * len(bands),
            _interval_factors_at(cal.samples, cal.truth, cal.lead, bands, shipped.spread[0]),
        ),
    )
    # factors of 1: the samples' own intervals (half-widths floored as the fitted ones)
    variants["uncalibrated"] = (one, Factors((1.0,), ({lv: 1.0 for lv in LEVELS},)))
    wc = len(cal.run.where)
    latest = np.argsort([p for _, p, _ in cal.run.where], kind="stable")  # by origin
    for m in onces:  # fitted once, on the latest m calibration origins only
        sel = latest[-m:]
        part = cal.samples.reshape(n, wc, -1)[:, sel].reshape(n, -1)  # (n, m·K·H)
        y_sel = cal.truth.reshape(wc, -1)[sel].reshape(-1)
        lead_sel = cal.lead.reshape(wc, -1)[sel].reshape(-1)
        variants[f"once, on the latest {m} calibration origins"] = (
            one,
            fit_factors(part, y_sel, lead_sel, one),
        )
    scores = {}
    for name, (b, f) in variants.items():
        scores[name] = {
            "spread": list(f.spread),
            "interval90": [interval_factor(s, 90) for s in f.intervals],
            **score(model.normalizer, _specs(model), z, bt.truth, [(b, f)] * w, bands),
        }
        log(f"{name}: {scores[name]}")
    # recalibrated as truths arrive: each origin's factors from the latest matured forecasts
    cal_z = cal.samples.reshape(n, wc, k, h).transpose(1, 0, 2, 3)  # (Wc, n, K, H)
    zy = model.normalizer.transform(bt.truth)  # (W, K, H)
    if dump is not None:
        _dump(Path(dump), model, cal_z, cal.truth.reshape(wc, k, h), cal.run.where, z, zy, bt)
    plans = {}
    if rates:  # the once-fitted factors, tracked
        once = [Refit(shipped.spread[0], shipped.intervals[0], wc, 0)] * w
        for rate in rates:
            refits = tracked(once, Forecasts(z, zy, bt.windows), h, rate)
            plans[f"once, tracked at rate {rate:g}"] = _one_band(refits, h)
    for recent in recents or (calibrate_windows,):
        for rate in (0.0, *rates):
            plan = rolling_plan(
                cal_z,
                cal.truth.reshape(wc, k, h),
                cal.run.where,
                z,
                zy,
                bt.windows,
                h,
                recent,
                rate,
            )
            name = f"rolling: the latest {recent} matured forecasts at each origin"
            plans[name + (f", tracked at rate {rate:g}" if rate else "")] = plan
    for name, plan in plans.items():
        spreads = [f.spread[0] for _, f in plan]
        scores[name] = {
            "spread": [float(np.median(spreads))],
            "interval90": [
                float(np.median([interval_factor(f.intervals[0], 90) for _, f in plan]))
            ],
            "spread_range": [min(spreads), max(spreads)],
            **score(model.normalizer, _specs(model), z, bt.truth, plan, bands),
        }
        log(f"{name}: {scores[name]}")
    result = {
        **stamp(command, measured),
        "dataset": dataset,
        "profile": profile,
        "before": before,
        "horizon": h,
        "test_origins": len(bt.windows),
        "first_test_origin": str(min(x[2] for x in bt.windows)),
        "calibration_origins": len(cal.run.where),
        "calibration_span": [
            str(min(x[2] for x in cal.run.where)),
            str(max(x[2] for x in cal.run.where)),
        ],
        "train": {k: model.info[k] for k in ("epochs_run", "train_seconds")},
        "n_samples": n,
        "gate": cal.gate,
        "bands": [[a + 1, b] for a, b in bands],  # 1-based leads, inclusive
        "variants": scores,
    }
    stem = f"lead-calibration-{dataset}-h{h}" + (f"-before{before}" if before else "")
    write_results(result, out_dir, stem, markdown)
    return result


def _dump(
    folder: Path,
    model: Predictor,
    cal_z: np.ndarray,
    cal_y: np.ndarray,
    cal_where: Sequence[tuple[Any, int, Any]],
    z: np.ndarray,
    zy: np.ndarray,
    bt: Any,
) -> None:
    """The normalised draws and truths of the calibration and the test origins."""
    arrays = {
        "cal_z": cal_z.astype(np.float32),  # (Wc, n, K, H)
        "cal_y": cal_y.astype(np.float32),  # (Wc, K, H)
        "cal_pos": np.array([p for _, p, _ in cal_where]),
        "z": z.astype(np.float32),  # (W, n, K, H)
        "zy": zy.astype(np.float32),  # (W, K, H)
        "truth": bt.truth,  # (W, K, H), original units
        "pos": np.array([p for _, p, _ in bt.windows]),
    }
    meta = pickle.dumps({"normalizer": model.normalizer, "specs": _specs(model)})
    write_atomic(folder / "draws.npz", lambda p: np.savez(p, **arrays))
    write_atomic(folder / "model.pkl", lambda p: p.write_bytes(meta))


def load_dump(dump: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """What :func:`_dump` kept in ``dump``: the arrays (``draws.npz``; the calibration
    origins' sorted by origin, the draws and normalised truths as float64) and the
    model's normaliser and specs; a :class:`DataError` naming what is missing otherwise."""
    missing = [f for f in ("draws.npz", "model.pkl") if not (dump / f).is_file()]
    if missing:
        raise DataError(f"{dump} is not a lead_calibration --dump folder: no {', '.join(missing)}")
    with open(dump / "model.pkl", "rb") as fh:
        meta = pickle.load(fh)
    with np.load(dump / "draws.npz") as raw:
        d = {k: raw[k] for k in raw.files}
    order = np.argsort(d["cal_pos"], kind="stable")
    for k in ("cal_z", "cal_y", "cal_pos"):
        d[k] = d[k][order]
    for k in ("cal_z", "cal_y", "z", "zy"):
        d[k] = d[k].astype(np.float64)
    return d, meta


def _interval_factors_at(
    smp: np.ndarray, y: np.ndarray, lead: np.ndarray, bands: Sequence[tuple[int, int]], s: float
) -> tuple[dict[int, float], ...]:
    """Interval factors per band of the calibration samples scaled by one spread ``s``."""
    scaled = rescale(smp, s)
    return tuple(
        fit_interval_scale(scaled[:, (lead >= a) & (lead < b)], y[(lead >= a) & (lead < b)]).scale
        for a, b in bands
    )


def markdown(r: dict[str, Any]) -> str:
    lines = page_header(f"Forecast calibration by lead: {r['dataset']}, h = {r['horizon']}", r)
    bands = ", ".join(f"{a}-{b}" for a, b in r["bands"])
    lines += [
        "",
        f"Profile `{r['profile']}` trained {r['train']['train_seconds']:.0f} s "
        f"({r['train']['epochs_run']} epochs) on the history before the first of "
        f"{r['test_origins']} test origins ({r['first_test_origin']}); factors fitted on "
        f"{r['calibration_origins']} forecasts from origins {r['calibration_span'][0]} .. "
        f"{r['calibration_span'][1]} (horizons ending by the first test origin); "
        f"{r['n_samples']} samples. Lead bands (h): {bands}.",
        "",
        "Rolling: each test origin's spread and interval factors fitted on the latest "
        "matured forecasts (calibration origins, then test origins whose horizon had "
        "ended by it); its spread and 90 % factor columns give the medians over origins.",
        "",
        "| factors | spread | 90 % interval factor | MAE | CRPS | cov50 | cov90 "
        "| cov50 by band | cov90 by band |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, v in r["variants"].items():
        lines.append(
            f"| {name} | {slashed(v['spread'], 'g')} | "
            f"{slashed(v['interval90'], '.3g')} | {v['mae']:.3f} | "
            f"{v['crps']:.4f} | {v['cov50']:.3f} | {v['cov90']:.3f} | "
            f"{slashed(v['cov50_by_lead'])} | {slashed(v['cov90_by_lead'])} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tsdiff.benchmarks.lead_calibration")
    p.add_argument("dataset", choices=sorted(DATASETS))
    p.add_argument("--profile", default="quick", help="quick, tiny or a JSON path")
    p.add_argument("--horizon", type=int, default=24)
    p.add_argument("--windows", type=int, help="test origins (default the protocol's)")
    p.add_argument("--calibrate-windows", type=int, default=28)
    p.add_argument(
        "--recent",
        default="",
        help="pool sizes of the rolling variants, e.g. 28,14,7 (default --calibrate-windows)",
    )
    p.add_argument(
        "--before",
        type=int,
        default=0,
        help="end the data this many origins early: choose settings before the test period",
    )
    p.add_argument(
        "--track",
        default="",
        help="rates at which to track the interval factors by their misses, e.g. 0.1,0.3",
    )
    p.add_argument(
        "--once",
        default="",
        help="also fit once on only the latest N calibration origins, e.g. 28 (of 56)",
    )
    p.add_argument("--dump", help="a folder to keep the draws in, for offline fits")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(RESULTS))
    a = p.parse_args(argv)
    run(
        a.dataset,
        profile=a.profile,
        horizon=a.horizon,
        windows=a.windows,
        calibrate_windows=a.calibrate_windows,
        seed=a.seed,
        threads=a.threads,
        out_dir=a.out,
        command=module_command("tsdiff.benchmarks.lead_calibration"),
        recents=[int(x) for x in a.recent.split(",") if x],
        before=a.before,
        rates=[float(x) for x in a.track.split(",") if x],
        onces=[int(x) for x in a.once.split(",") if x],
        dump=a.dump,
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
