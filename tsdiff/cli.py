"""``tsdiff`` command line: train, impute, forecast, backtest, calibrate-forecast, evaluate,
models, demo, serve, pipeline, plot.

Every command reads and writes parquet. Bad input exits non-zero with one line on
stderr naming the problem (exit 2 for input and option errors, 1 for anything else),
and outputs are written to a temporary name and renamed, so a failed run leaves no
half-written file behind. A MODEL argument is a saved directory or a registry URI
(``models:/NAME@champion``, ``models:/NAME/3``; see :mod:`tsdiff.registry`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tsdiff.config import TASKS
from tsdiff.errors import ConfigError, DataError, ModelFileError, TSDiffError
from tsdiff.io import read_frame, write_json, write_parquet
from tsdiff.registry import RegistryError, TrackingUnreachableError
from tsdiff.results import PredictionResult
from tsdiff.samplers import SAMPLER_NAMES

EXIT_INPUT = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_INPUT
    try:
        return int(args.func(args) or 0)
    except TrackingUnreachableError as e:  # the environment, not the input: exit 1
        print(f"tsdiff {args.command}: error: {e}", file=sys.stderr)
        return 1
    except (DataError, ConfigError, RegistryError, ModelFileError) as e:
        print(f"tsdiff {args.command}: error: {e}", file=sys.stderr)
        return EXIT_INPUT
    except TSDiffError as e:
        print(f"tsdiff {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"tsdiff {args.command}: interrupted", file=sys.stderr)
        return 130


# --------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tsdiff",
        description="Diffusion-based imputation and probabilistic forecasting of time series.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    t = sub.add_parser("train", help="train a model on a parquet file")
    t.add_argument("data", help="training data (.parquet, wide or long layout)")
    t.add_argument("--out", required=True, help="directory to save the model to")
    t.add_argument("--config", help="JSON/TOML config file (sections: data, network, ...)")
    t.add_argument("--id-col", help="series id column (default series_id; optional in data)")
    t.add_argument("--time-col", help="timestamp column (default timestamp)")
    t.add_argument("--var-col", help="variable column of long data (default variable)")
    t.add_argument("--value-col", help="value column of long data (default value)")
    t.add_argument("--freq", help="grid step, e.g. 1h, 15min, or 60 for numeric time")
    t.add_argument("--agg", choices=["last", "mean"], help="how values in one grid step combine")
    t.add_argument("--window", type=int, help="window length in grid steps (default 48)")
    t.add_argument(
        "--lags",
        help="comma-separated steps back each cell also sees, e.g. 24,48,168; lags may "
        "reach before the window, so the model reads max(lags) steps of history",
    )
    t.add_argument(
        "--bounds",
        help="per-variable bounds overriding the inferred ones, e.g. SaO2=0:100,ALT=0: "
        "(a side left empty is open)",
    )
    t.add_argument("--kind", help="per-variable kinds, e.g. GCS=integer,Vent=binary")
    t.add_argument(
        "--transform",
        help="per-variable transforms the network models in, e.g. ALT=log,SaO2=logit "
        "(log: positive values; logit: both bounds needed)",
    )
    t.add_argument(
        "--transforms",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="infer log transforms for positive, strongly right-skewed variables "
        "(default: on; --no-transforms models every variable as it is)",
    )
    t.add_argument(
        "--future-covariates",
        help="columns known for the history and every step to forecast (inputs only), "
        "e.g. holiday,planned_load",
    )
    t.add_argument(
        "--static-covariates",
        help="one number per series (inputs only), e.g. lat,lon: columns constant within "
        "each series, or from --static",
    )
    _static_arg(t)
    t.add_argument(
        "--epochs", type=int, help="maximum epochs of the learned prior and of the denoiser each"
    )
    t.add_argument("--batch-size", type=int)
    t.add_argument("--max-minutes", type=float, help="wall-clock training budget")
    t.add_argument("--seed", type=int)
    t.add_argument("--valid", help="validation data (default: a held-out share of series)")
    t.add_argument(
        "--holdout",
        choices=["random", "pattern"],
        help="validation cells the calibration hides: 10%% at random (default) or the gaps "
        "of another stretch of the data (pattern: for outages, not scattered gaps)",
    )
    t.add_argument(
        "--task",
        choices=TASKS,
        default="both",
        help="what the model is for: both (impute and forecast, default) or impute (gap "
        "masks only and a quantile prior: better imputations, forecasts not trained)",
    )
    t.add_argument("--checkpoint", help="resumable checkpoint file (default OUT.ckpt)")
    t.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    _device_arg(t, "trains")
    t.add_argument("--register", metavar="NAME", help="track with MLflow, register as NAME")
    t.add_argument(
        "--experiment", default="tsdiff", help="MLflow experiment of --register (default tsdiff)"
    )
    t.set_defaults(func=cmd_train)

    for name, helptext in (
        ("impute", "fill missing cells, with flags and intervals"),
        ("forecast", "forecast the steps after each series' end"),
    ):
        s = sub.add_parser(name, help=helptext)
        s.add_argument(
            "model", help="model directory, shipped model name or models:/NAME@ALIAS, /NAME/V"
        )
        s.add_argument("data", help="input data (.parquet)")
        _static_arg(s)
        if name == "forecast":
            s.add_argument("--horizon", type=int, required=True, help="steps to forecast")
            s.add_argument(
                "--future",
                help="known-future covariates of the steps to forecast (.parquet: id, time "
                "and one column each), for a model trained with --future-covariates",
            )
        else:
            s.add_argument(
                "--max-gap",
                type=int,
                help="leave runs of more than N missing steps open (NaN, not imputed)",
            )
            s.add_argument(
                "--open-edges",
                action="store_true",
                help="also leave the steps before a variable's first / after its last "
                "observation open",
            )
        s.add_argument("--out", required=True, help="output .parquet")
        _sampling_args(s)
        _device_arg(s)
        s.add_argument("--samples-out", help="also write the raw samples to this .parquet")
        s.add_argument(
            "--trajectory-out",
            help="also write the reverse process' states (long: step, sample, value) here",
        )
        s.add_argument(
            "--trajectory-steps",
            default="6",
            help="states to keep: a count (evenly spaced, default 6) or indices such as "
            "0,5,10 (0 = noise, --steps = result)",
        )
        s.add_argument(
            "--trajectory-samples", type=int, default=3, help="samples to follow (default 3)"
        )
        s.set_defaults(func=cmd_impute if name == "impute" else cmd_forecast)

    bt = sub.add_parser(
        "backtest", help="rolling-origin forecasts over the end of the data, with metrics"
    )
    bt.add_argument("model", help="model directory or models:/NAME@ALIAS, models:/NAME/V")
    bt.add_argument("data", help="input data (.parquet); origins sit over its end")
    bt.add_argument("--horizon", type=int, required=True, help="steps forecast from each origin")
    bt.add_argument("--step", type=int, required=True, help="steps between origins")
    bt.add_argument("--windows", type=int, required=True, help="number of origins per series")
    bt.add_argument("--out", required=True, help="forecasts with their truth (.parquet)")
    bt.add_argument("--summary-out", help="metrics JSON (default: --out with .json)")
    bt.add_argument("--samples-out", help="also write the raw samples to this .parquet")
    bt.add_argument(
        "--calibrate-windows",
        type=int,
        default=0,
        help="first fit the forecast spread on this many earlier origins (0: the model's)",
    )
    bt.add_argument(
        "--recalibrate",
        type=int,
        default=0,
        metavar="N",
        help="with --calibrate-windows: refit the spread and interval factors at every "
        "origin on the N latest forecasts whose truths had arrived by then (as a daily "
        "calibrate-forecast would; 0: calibrate once)",
    )
    bt.add_argument(
        "--no-gate",
        action="store_true",
        help="score the model alone, without its weighing against seasonal naive",
    )
    _static_arg(bt)
    _sampling_args(bt)
    _device_arg(bt)
    bt.set_defaults(func=cmd_backtest)

    c = sub.add_parser(
        "calibrate-forecast",
        help="fit the forecast interval spread on rolling origins of held-out data",
    )
    c.add_argument("model", help="model directory or models:/NAME@ALIAS, models:/NAME/V")
    c.add_argument("data", help="data the model was not trained on (.parquet); origins at its end")
    c.add_argument("--horizon", type=int, required=True, help="steps forecast from each origin")
    c.add_argument("--step", type=int, help="steps between origins (default: the horizon)")
    c.add_argument("--windows", type=int, default=28, help="origins per series (28)")
    c.add_argument("--n-samples", type=int, help="samples per forecast (default the model's)")
    c.add_argument("--steps", type=int, help="reverse diffusion steps (default the model's)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--out", required=True, help="directory for the calibrated model")
    _static_arg(c)
    _device_arg(c)
    c.set_defaults(func=cmd_calibrate_forecast)

    e = sub.add_parser("evaluate", help="hide observed cells, impute them, print metrics (JSON)")
    e.add_argument("model")
    e.add_argument("data")
    e.add_argument("--missing", type=float, default=0.1, help="share of observed cells hidden")
    _sampling_args(e)
    e.add_argument("--out", help="also write the JSON here")
    _device_arg(e)
    e.set_defaults(func=cmd_evaluate)

    m = sub.add_parser("models", help="MLflow registry: list versions, promote a challenger")
    msub = m.add_subparsers(dest="models_command", metavar="ACTION")
    ml = msub.add_parser("list", help="registered versions, aliases and key metrics")
    ml.add_argument("--name", help="only this registered model")
    ml.add_argument("--json", action="store_true", help="JSON instead of a table")
    ml.set_defaults(func=cmd_models_list)
    mp = msub.add_parser(
        "promote", help="make the challenger champion if its CRPS is lower on DATA"
    )
    mp.add_argument("name", help="registered model name")
    mp.add_argument("data", help="held-out data (.parquet) both versions are scored on")
    mp.add_argument("--force", action="store_true", help="promote whatever the scores")
    mp.add_argument("--missing", type=float, default=0.1, help="share of observed cells hidden")
    mp.add_argument("--seed", type=int, default=0)
    mp.add_argument("--n-samples", type=int, help="samples per cell (default from the models)")
    mp.add_argument("--steps", type=int, help="reverse diffusion steps")
    mp.set_defaults(func=cmd_models_promote)
    mr = msub.add_parser(
        "register", help="log a saved or shipped model (e.g. physionet-vitals) and register it"
    )
    mr.add_argument("model", help="model directory or shipped model name")
    mr.add_argument("--name", help="registered model name (default: the model's folder name)")
    mr.add_argument("--example", required=True, help="data (.parquet) for the input example")
    mr.set_defaults(func=cmd_models_register)

    pl = sub.add_parser("pipeline", help="impute or forecast a parquet dataset in batches")
    plsub = pl.add_subparsers(dest="pipeline_command", metavar="TASK")
    for name, helptext in (
        ("impute", "fill every series of a dataset, resumable (see pipelines/)"),
        ("forecast", "forecast every series of a dataset, resumable (see pipelines/)"),
    ):
        s = plsub.add_parser(name, help=helptext)
        s.add_argument("--input", required=True, help="parquet file or (hive-partitioned) dir")
        s.add_argument("--output", required=True, help="output dir: parquet parts, _manifest.json")
        s.add_argument("--model", required=True, help="model directory or models:/NAME@ALIAS")
        _static_arg(s)
        if name == "forecast":
            s.add_argument("--horizon", type=int, required=True, help="steps to forecast")
            s.add_argument(
                "--future",
                help="known-future covariates of the steps to forecast (.parquet: id, time "
                "and one column each), for a model trained with --future-covariates",
            )
        else:
            s.add_argument("--max-gap", type=int, help="leave runs of more missing steps open")
            s.add_argument(
                "--open-edges", action="store_true", help="leave leading/trailing runs open"
            )
        s.add_argument("--engine", choices=["local", "spark"], default="local")
        s.add_argument("--spark-master", default="local[*]", help="Spark master (local[*])")
        s.add_argument(
            "--spark-buckets",
            type=int,
            help="Spark: groups the series are hashed into (default: ~batch-series per group)",
        )
        s.add_argument("--levels", default=None, help="central interval levels, e.g. 50,90")
        s.add_argument("--n-samples", type=int, help="samples per cell (default from the model)")
        s.add_argument("--steps", type=int, help="reverse diffusion steps (default the model's)")
        s.add_argument("--seed", type=int, default=0)
        s.add_argument("--batch-series", type=int, default=64, help="series per batch (64)")
        s.add_argument("--id-col", help="series id column (default the model's)")
        s.add_argument("--time-col", help="timestamp column (default the model's)")
        s.add_argument("--fail-fast", action="store_true", help="stop at the first bad series")
        s.add_argument("--quiet", action="store_true", help="no progress bar")
        _device_arg(s)
        s.set_defaults(func=cmd_pipeline, task=name, horizon=None)

    d = sub.add_parser("demo", help="impute held-out ICU stays with the shipped vitals model, plot")
    d.add_argument("--out", default="demo_out", help="output directory (default demo_out)")
    d.add_argument(
        "--train", action="store_true", help="train a model on the slice first (minutes)"
    )
    d.add_argument("--minutes", type=float, default=4.0, help="--train budget (default 4)")
    d.add_argument("--test-stays", type=int, default=40, help="held-out stays to impute")
    d.add_argument("--n-samples", type=int, default=16)
    d.add_argument("--steps", type=int, help="reverse diffusion steps (default the model's)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--quiet", action="store_true")
    d.add_argument("--register", default="physionet-demo", help="registered model name")
    d.add_argument("--no-register", action="store_true", help="skip MLflow tracking")
    _device_arg(d)
    d.set_defaults(func=cmd_demo)

    b = sub.add_parser(
        "benchmark", help="CSDI-protocol benchmark (PhysioNet 2012, PM2.5) beside baselines"
    )
    b.add_argument("dataset", choices=["physionet", "pm25"])
    b.add_argument("--profile", default="quick", help="quick, full, tiny or a JSON path")
    b.add_argument("--missing", type=float, default=0.1, help="PhysioNet held-out share")
    b.add_argument("--fold", type=int, default=0, help="PhysioNet fold 0..4 (default 0)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument(
        "--data-dir", help="folder with the data (default $TSDIFF_DATA_DIR, else ../shared/data)"
    )
    b.add_argument(
        "--out", default=None, help="results folder (default ./benchmarks/results, from here)"
    )
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    b.add_argument("--save-model", help="also save the trained model to this folder")
    _device_arg(b, "trains and samples")
    b.set_defaults(func=cmd_benchmark)

    pp = sub.add_parser("plot", help="draw impute, forecast or trajectory outputs (PNG/SVG)")
    ppsub = pp.add_subparsers(dest="plot_command", metavar="KIND")
    for name, helptext, what in (
        ("impute", "observed points, imputed median, 50/90% bands", "`tsdiff impute` output"),
        ("forecast", "fan chart: history, median, 50/90% bands", "`tsdiff forecast` output"),
        ("trajectory", "denoising strip: noise → result", "--trajectory-out of impute/forecast"),
    ):
        s = ppsub.add_parser(name, help=helptext)
        s.add_argument("frame", help=f"the {what} (.parquet)")
        s.add_argument("--out", required=True, help="figure to write (.png or .svg)")
        s.add_argument("--series", help="series id to draw (default the first)")
        s.add_argument("--title")
        s.add_argument("--id-col", default="series_id")
        s.add_argument("--time-col", default="timestamp")
        if name == "trajectory":
            s.add_argument("--variable", help="variable (default the one with most drawn cells)")
            s.add_argument("--sample", type=int, default=0, help="sample drawn bold (default 0)")
        else:
            s.add_argument("--variables", help="comma-separated variables (default all, max 8)")
        if name == "forecast":
            s.add_argument("--history", help="the data forecast from (.parquet), drawn before")
            s.add_argument("--context", type=int, help="history steps shown (default 4 horizons)")
        s.set_defaults(func=cmd_plot, kind=name)

    v = sub.add_parser("serve", help="serve a model over HTTP (BentoML: tsdiff.services.service)")
    v.add_argument(
        "--model",
        help="model directory or models:/NAME@ALIAS (default $TSDIFF_MODEL_URI, else "
        "models:/$TSDIFF_MODEL_NAME@champion, name physionet-demo)",
    )
    v.add_argument("--port", type=int, default=3000, help="port (default 3000)")
    v.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    _device_arg(v, default=None)
    v.set_defaults(func=cmd_serve)
    return p


def _device_arg(
    s: argparse.ArgumentParser, does: str = "runs", default: str | None = "auto"
) -> None:
    was = "$TSDIFF_DEVICE, else auto" if default is None else default
    s.add_argument(
        "--device",
        default=default,
        metavar="{auto,cpu,cuda,cuda:N}",
        help=f"where the network {does} (default {was}: a CUDA GPU when present, else "
        "the CPU); a seed gives the same samples on any device, up to float rounding",
    )


def _sampling_args(s: argparse.ArgumentParser) -> None:
    s.add_argument("--levels", default=None, help="central interval levels, e.g. 50,90")
    s.add_argument("--n-samples", type=int, help="samples per cell (default from the model)")
    s.add_argument("--steps", type=int, help="reverse DDIM steps (default: the model's own)")
    s.add_argument("--sampler", choices=SAMPLER_NAMES)
    s.add_argument("--eta", type=float, help="DDIM stochasticity in [0, 1]")
    s.add_argument("--seed", type=int, default=0)


# --------------------------------------------------------------------------- helpers
def _int_list(text: str | None, flag: str) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError as e:
        raise ConfigError(f"{flag} must be comma-separated integers, got {text!r}") from e


def _levels(text: str | None) -> list[int] | None:
    return _int_list(text, "--levels")


def _load_model(uri: str, device: str | None = "cpu") -> Any:
    from tsdiff.registry import load_model

    return load_model(uri, device=device)


def _sample_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "levels": _levels(args.levels),
        "n_samples": args.n_samples,
        "steps": args.steps,
        "sampler": args.sampler,
        "eta": args.eta,
        "seed": args.seed,
    }


# --------------------------------------------------------------------------- commands
def cmd_train(args: argparse.Namespace) -> int:
    from tsdiff.config import TSDiffConfig
    from tsdiff.model import TSDiff

    cfg = TSDiffConfig.from_file(args.config) if args.config else TSDiffConfig()
    data = {
        k: v
        for k, v in {
            "id_col": args.id_col,
            "time_col": args.time_col,
            "var_col": args.var_col,
            "value_col": args.value_col,
            "freq": args.freq,
            "agg": args.agg,
            "window": args.window,
            "future_covariates": _names(args.future_covariates),
            "static_covariates": _names(args.static_covariates),
        }.items()
        if v is not None
    }
    train = {
        k: v
        for k, v in {
            "epochs": args.epochs,
            "prior_epochs": args.epochs,
            "batch_size": args.batch_size,
            "max_minutes": args.max_minutes,
            "seed": args.seed,
            "holdout": args.holdout,
        }.items()
        if v is not None
    }
    lags = _int_list(args.lags, "--lags")
    cfg = cfg.replace(data=data, train=train, network={} if lags is None else {"lags": lags})
    cfg = cfg.for_task(args.task)
    if args.bounds or args.kind or args.transform:
        from tsdiff.spec import parse_bounds, parse_kinds, parse_transforms

        spec = {k: dict(v) for k, v in cfg.variables.spec.items()}
        for part in (
            parse_bounds(args.bounds) if args.bounds else {},
            parse_kinds(args.kind) if args.kind else {},
            parse_transforms(args.transform) if args.transform else {},
        ):
            for name, fields in part.items():
                spec.setdefault(name, {}).update(fields)
        cfg = cfg.replace(variables={"spec": spec})
    if args.transforms is not None:
        cfg = cfg.replace(variables={"transforms": args.transforms})
    df = read_frame(args.data)
    valid = read_frame(args.valid) if args.valid else None
    static = _static_frame(args)
    checkpoint = args.checkpoint or f"{str(args.out).rstrip('/')}.ckpt"
    if args.register:
        from tsdiff.registry import train_tracked

        model, run_id, version = train_tracked(
            df,
            cfg,
            experiment=args.experiment,
            register=args.register,
            data_path=args.data,
            out=args.out,
            valid_df=valid,
            checkpoint=checkpoint,
            resume=args.resume,
            progress=not args.quiet,
            device=args.device,
            static_df=static,
        )
        extra = {"run_id": run_id, "registered": args.register, "version": version}
    else:
        model = TSDiff(cfg).fit(
            df,
            valid_df=valid,
            checkpoint=checkpoint,
            resume=args.resume,
            progress=not args.quiet,
            device=args.device,
            static_df=static,
        )
        model.save(args.out)
        extra = {}
    print(json.dumps({"model": str(args.out), **extra, **model.info}, indent=2, default=str))
    return 0


def _trajectory_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    if not args.trajectory_out:
        return {}
    text = str(args.trajectory_steps).strip()
    try:
        steps: int | list[int] = (
            [int(v) for v in text.split(",") if v.strip()] if "," in text else int(text)
        )
    except ValueError as e:
        raise ConfigError(
            f"--trajectory-steps must be a count or comma-separated indices, got {text!r}"
        ) from e
    return {
        "return_trajectory": True,
        "trajectory_steps": steps,
        "trajectory_samples": args.trajectory_samples,
    }


def _static_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--static",
        help="static covariates (.parquet: the id column and one column per covariate), "
        "for a model trained with --static-covariates",
    )


def _static_frame(args: argparse.Namespace) -> Any:
    return read_frame(args.static) if args.static else None


def _names(text: str | None) -> tuple[str, ...] | None:
    """``"a, b"`` → ``("a", "b")``; None stays None (the config's value)."""
    return None if text is None else tuple(t.strip() for t in text.split(",") if t.strip())


def cmd_impute(args: argparse.Namespace) -> int:
    model = _load_model(args.model, args.device)
    df = read_frame(args.data)
    out = model.impute(
        df,
        return_samples=bool(args.samples_out),
        max_gap=args.max_gap,
        fill_edges=not args.open_edges,
        static_df=_static_frame(args),
        **_trajectory_kwargs(args),
        **_sample_kwargs(args),
    )
    _write_result(out, args)
    return 0


def cmd_forecast(args: argparse.Namespace) -> int:
    model = _load_model(args.model, args.device)
    df = read_frame(args.data)
    out = model.forecast(
        df,
        args.horizon,
        return_samples=bool(args.samples_out),
        future_df=read_frame(args.future) if args.future else None,
        static_df=_static_frame(args),
        **_trajectory_kwargs(args),
        **_sample_kwargs(args),
    )
    _write_result(out, args)
    return 0


def cmd_backtest(args: argparse.Namespace) -> int:
    from tsdiff.backtest import backtest

    model = _load_model(args.model, args.device)
    df = read_frame(args.data)
    kw = _sample_kwargs(args)
    result = backtest(
        model,
        df,
        horizon=args.horizon,
        step=args.step,
        windows=args.windows,
        levels=kw.pop("levels") or (50, 90),
        return_samples=bool(args.samples_out),
        calibrate_windows=args.calibrate_windows,
        static_df=_static_frame(args),
        gate=not args.no_gate,
        recalibrate=args.recalibrate,
        **kw,
    )
    summary_out = args.summary_out or str(Path(args.out).with_suffix(".json"))
    write_parquet(result.forecasts, args.out)
    if result.samples_frame is not None:
        write_parquet(result.samples_frame, args.samples_out)
    write_json(result.summary, summary_out)
    print(json.dumps({"out": str(args.out), "summary": summary_out, **result.summary}, indent=2))
    return 0


def _write_result(out: PredictionResult, args: argparse.Namespace) -> None:
    write_parquet(out.frame, args.out)
    if out.samples is not None:
        write_parquet(out.samples, args.samples_out)
    if out.trajectory is not None:
        write_parquet(out.trajectory, args.trajectory_out)
    print(
        json.dumps(
            {
                "out": str(args.out),
                "rows": len(out.frame),
                "samples": args.samples_out,
                "trajectory": args.trajectory_out,
            }
        )
    )


def cmd_plot(args: argparse.Namespace) -> int:
    from tsdiff import plot
    from tsdiff.data import Columns

    if Path(args.out).suffix.lower() not in plot.FIGURE_SUFFIXES:
        raise ConfigError(f"--out must end in .png or .svg, got {args.out!r}")
    frame = read_frame(args.frame)
    columns = Columns(id_col=args.id_col, time_col=args.time_col)
    common = {"series": args.series, "columns": columns, "path": args.out, "title": args.title}
    variables = getattr(args, "variables", None)
    variables = [v.strip() for v in variables.split(",") if v.strip()] if variables else None
    if args.kind == "impute":
        fig = plot.plot_imputation(frame, variables=variables, **common)
    elif args.kind == "forecast":
        history = read_frame(args.history) if args.history else None
        fig = plot.plot_forecast(
            frame, history=history, variables=variables, context=args.context, **common
        )
    else:
        fig = plot.plot_trajectory(frame, variable=args.variable, sample=args.sample, **common)
    import matplotlib.pyplot as plt

    plt.close(fig)
    print(json.dumps({"out": str(args.out), "kind": args.kind}))
    return 0


def cmd_calibrate_forecast(args: argparse.Namespace) -> int:
    from tsdiff.backtest import calibrate_forecast

    model = _load_model(args.model, args.device)
    df = read_frame(args.data)
    info = calibrate_forecast(
        model,
        df,
        horizon=args.horizon,
        step=args.step or args.horizon,
        windows=args.windows,
        n_samples=args.n_samples,
        steps=args.steps,
        seed=args.seed,
        static_df=_static_frame(args),
    )
    model.info["forecast_calibration"] = info
    model.save(args.out)
    print(json.dumps({"out": str(args.out), **info}, indent=2))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    model = _load_model(args.model, args.device)
    df = read_frame(args.data)
    kw = _sample_kwargs(args)
    result = model.evaluate(df, missing=args.missing, **kw)
    if args.out:
        write_json(result, args.out)
    print(json.dumps(result, indent=2))
    return 0


def cmd_models_list(args: argparse.Namespace) -> int:
    from tsdiff.registry import format_table, list_models

    rows = list_models(args.name)
    print(json.dumps(rows, indent=2) if args.json else format_table(rows))
    return 0


def cmd_models_promote(args: argparse.Namespace) -> int:
    from tsdiff.registry import promote

    result = promote(
        args.name,
        read_frame(args.data),
        force=args.force,
        missing=args.missing,
        seed=args.seed,
        n_samples=args.n_samples,
        steps=args.steps,
    )
    print(json.dumps(result, indent=2))
    return 0


def cmd_models_register(args: argparse.Namespace) -> int:
    from tsdiff.pretrained import locate
    from tsdiff.registry import register_model, tracking_uri

    model = _load_model(args.model)
    name = args.name or locate(args.model).resolve().name
    run_id, version = register_model(model, name, read_frame(args.example))
    print(
        json.dumps(
            {
                "name": name,
                "version": version,
                "run_id": run_id,
                "uri": f"models:/{name}/{version}",
                "tracking_uri": tracking_uri(),
            }
        )
    )
    return 0


def cmd_pipeline(args: argparse.Namespace) -> int:
    from tsdiff import pipelines  # imported on use (pulls in pyarrow datasets)

    levels = _levels(args.levels)
    params = pipelines.PipelineParams(
        task=args.task,
        horizon=args.horizon,
        levels=tuple(levels) if levels else None,
        n_samples=args.n_samples,
        steps=args.steps,
        seed=args.seed,
        batch_series=args.batch_series,
        id_col=args.id_col,
        time_col=args.time_col,
        fail_fast=args.fail_fast,
        max_gap=getattr(args, "max_gap", None),
        fill_edges=not getattr(args, "open_edges", False),
        future=getattr(args, "future", None),
        static=args.static,
    )
    if args.engine == "spark":
        manifest = pipelines.run_spark(
            args.input,
            args.output,
            args.model,
            params,
            master=args.spark_master,
            buckets=args.spark_buckets,
            progress=not args.quiet,
            device=args.device,
        )
    else:
        manifest = pipelines.run_local(
            args.input, args.output, args.model, params, progress=not args.quiet, device=args.device
        )
    summary = {k: manifest.get(k) for k in ("status", "rows_in", "rows_out", "series_done")}
    summary["series_failed"] = len(manifest.get("series_failed", []))
    summary["manifest"] = str(Path(args.output) / pipelines.MANIFEST)
    print(json.dumps(summary))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from tsdiff.demo import run_demo

    run_demo(
        out=Path(args.out),
        train=args.train,
        minutes=args.minutes,
        test_stays=args.test_stays,
        n_samples=args.n_samples,
        steps=args.steps,
        seed=args.seed,
        progress=not args.quiet,
        register=None if args.no_register else args.register,
        device=args.device,
    )
    return 0


def cmd_benchmark(args: argparse.Namespace) -> int:
    from tsdiff.benchmarks import csdi
    from tsdiff.benchmarks.common import command_line

    csdi.run(
        args.dataset,
        args.profile,
        missing=args.missing,
        fold=args.fold,
        seed=args.seed,
        data_dir=args.data_dir,
        out_dir=args.out or csdi.RESULTS,
        command=command_line(),
        progress=not args.quiet,
        save_model=args.save_model,
        device=args.device,
    )
    return 0


SERVICE = "tsdiff.services.service:TSDiffService"  # what ``tsdiff serve`` runs


def serve_command(args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    """The ``bentoml serve`` command line and environment for ``tsdiff serve``.

    BentoML imports the service by its dotted name, ``tsdiff.services.service``, from
    wherever tsdiff is installed (a wheel or an editable checkout), and runs in the
    current working directory, never in site-packages. A model directory and the
    default registry store are made absolute here all the same.
    """
    import importlib.util
    import os

    from tsdiff.registry import tracking_uri

    if importlib.util.find_spec(SERVICE.split(":")[0]) is None:  # pragma: no cover
        raise ConfigError(f"tsdiff serve: this install lacks {SERVICE.split(':')[0]}")
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port must be in 1..65535, got {args.port}")
    env = dict(os.environ)
    model = args.model or env.get("TSDIFF_MODEL_URI")
    if model and not model.startswith("models:/"):
        from tsdiff.pretrained import locate

        path = locate(Path(model).expanduser()).resolve()  # a folder or a shipped model's name
        if not path.is_dir():
            raise ConfigError(f"model directory not found: {model}")
        model = str(path)
    if model:
        env["TSDIFF_MODEL_URI"] = model
    if args.device is not None:  # checked here: a bad device fails before bentoml starts
        from tsdiff.device import resolve_device

        resolve_device(args.device)
        env["TSDIFF_DEVICE"] = args.device
    env["MLFLOW_TRACKING_URI"] = tracking_uri()
    argv = [sys.executable, "-m", "bentoml", "serve", SERVICE]
    argv += ["--working-dir", str(Path.cwd()), "--host", args.host, "--port", str(args.port)]
    return argv, env


def cmd_serve(args: argparse.Namespace) -> int:
    import os

    argv, env = serve_command(args)
    model = env.get("TSDIFF_MODEL_URI", "the default registry model")
    print(f"tsdiff serve: {model} on http://{args.host}:{args.port}", file=sys.stderr)
    sys.stderr.flush()
    os.execve(argv[0], argv, env)  # bentoml takes over this process: signals reach it directly
    return 0  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
