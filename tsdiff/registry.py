"""MLflow model lifecycle: tracked training, a pyfunc wrapper, a champion/challenger registry.

Where things are stored: ``MLFLOW_TRACKING_URI`` when it is set (used as is), else a
sqlite database ``<cwd>/.tsdiff/mlflow.db``. For every sqlite store, tsdiff creates its
experiments with artifacts in an ``mlartifacts`` folder next to the database (MLflow's
own default, ``./mlruns`` in whatever folder a process happens to run in, scatters them).

Lifecycle: :func:`train_tracked` (or :func:`register_model` for a model trained
elsewhere) logs a run and registers a new version under alias ``challenger``; the first
version of a name is also ``champion``. :func:`promote` moves ``champion`` to the
challenger only when it scores a lower CRPS on the same held-out cells. :func:`load_model`
loads a local directory or ``models:/NAME@alias`` / ``models:/NAME/VERSION``.

The pyfunc is logged from code (:mod:`tsdiff.pyfunc_model`, MLflow's "models from
code") with the saved model directory as an artifact: neither logging nor loading pickles.

``mlflow`` (about 1.5 s to import) and torch are imported only when needed, so that the
CLI loading a local model directory does not pay for them.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd

from tsdiff import __version__
from tsdiff.errors import ConfigError, TSDiffError
from tsdiff.provenance import git_commit

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient

    from tsdiff.config import TSDiffConfig
    from tsdiff.model import TSDiff

STORE_DIR = ".tsdiff"
DB_FILE = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"
DEFAULT_EXPERIMENT = "tsdiff"
PROMOTION_EXPERIMENT = "tsdiff-promotions"
CHAMPION = "champion"
CHALLENGER = "challenger"
MODEL_ARTIFACT = "model"  # name of the logged pyfunc model inside a run
MODEL_DIR_ARTIFACT = "model_dir"  # the saved model directory inside the pyfunc
PYFUNC_CODE = Path(__file__).with_name("pyfunc_model.py")  # the pyfunc, logged as code
PIP_REQUIREMENTS = ("tsdiff", "torch", "pandas")
KEY_METRICS = ("val_crps", "val_loss", "train_loss", "val_mae", "val_cov90")
_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}


# --------------------------------------------------------------------------- errors
class RegistryError(TSDiffError):
    """A registry or tracking-store problem (unknown model, alias, version, server)."""


class ModelNotFoundError(RegistryError, LookupError):
    """The registered model, version or alias does not exist; the message lists what does."""


class TrackingUnreachableError(RegistryError, ConnectionError):
    """The tracking server does not answer; the message names its URI."""


class TrackedRun(NamedTuple):
    """What :func:`train_tracked` returns: unpacks as ``model, run_id, version``."""

    model: TSDiff
    run_id: str
    version: str | None


# --------------------------------------------------------------------------- stores
def tracking_uri(uri: str | None = None) -> str:
    """The tracking URI to use: ``uri``, else ``$MLFLOW_TRACKING_URI``, else the local default."""
    if uri:
        return uri
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{(Path.cwd() / STORE_DIR / DB_FILE).as_posix()}"


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a sqlite URI (None for any other store)."""
    if not uri.startswith("sqlite:"):
        return None
    from sqlalchemy.engine import make_url

    db = make_url(uri).database
    return Path(db).resolve() if db and db != ":memory:" else None


def _artifact_location(uri: str, experiment: str) -> str | None:
    """Where a new experiment keeps its artifacts: next to a sqlite db; else the store decides."""
    db = _sqlite_path(uri)
    if db is None:
        return None
    safe = re.sub(r"[^\w.-]", "_", experiment) or "experiment"
    return (db.parent / ARTIFACTS_DIR / safe).as_uri()


def _check_reachable(uri: str) -> None:
    """Fail fast, naming the URI, when an HTTP tracking server does not answer at all."""
    if not uri.startswith(("http://", "https://")):
        return
    for key, value in _HTTP_DEFAULTS.items():  # MLflow's defaults retry for minutes
        os.environ.setdefault(key, value)
    timeout = float(os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT", "5"))
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout):
            pass
    except urllib.error.HTTPError:
        return  # it answered (with an error status, e.g. auth): reachable
    except OSError as e:  # URLError, refused, timed out
        reason = getattr(e, "reason", e)
        raise TrackingUnreachableError(
            f"cannot reach the MLflow tracking server at {uri}: {reason}"
        ) from e


@contextmanager
def _store(uri: str | None = None) -> Iterator[tuple[str, MlflowClient]]:
    """Point MLflow's fluent API at the resolved store for the duration of a call.

    The previous global URI is restored afterwards (MLflow's own helper for this unsets
    ``MLFLOW_TRACKING_URI`` on exit, which would change the caller's environment).
    Connection failures half-way are reported as :class:`TrackingUnreachableError`.
    """
    import mlflow
    from mlflow.tracking._tracking_service import utils as tracking_utils

    resolved = tracking_uri(uri)
    _check_reachable(resolved)
    db = _sqlite_path(resolved)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    before = getattr(tracking_utils, "_tracking_uri", None)
    before_env = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(resolved)
    try:
        yield resolved, mlflow.MlflowClient(tracking_uri=resolved)
    except Exception as e:
        if _is_connection_error(e):
            raise TrackingUnreachableError(
                f"lost the MLflow tracking server at {resolved}: {e}"
            ) from e
        raise
    finally:
        mlflow.set_tracking_uri(before)
        if before_env is not None:
            os.environ["MLFLOW_TRACKING_URI"] = before_env


def _is_connection_error(e: BaseException) -> bool:
    import requests

    if isinstance(e, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
        return True
    text = str(e)
    return "Max retries exceeded" in text or "Connection refused" in text


def _experiment_id(client: MlflowClient, uri: str, name: str) -> str:
    """Get or create an experiment (with a sqlite store's artifact location)."""
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:
        return client.create_experiment(name, artifact_location=_artifact_location(uri, name))
    except MlflowException:  # created meanwhile by another process
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


# --------------------------------------------------------------------------- fingerprints
def data_fingerprint(df: pd.DataFrame, path: str | Path | None = None) -> dict[str, str]:
    """Tags that identify training data: where it came from, its size and a content hash."""
    row_hashes = pd.util.hash_pandas_object(df, index=False).to_numpy()
    h = hashlib.sha256()
    h.update("\x1f".join(map(str, df.columns)).encode())
    h.update(np.ascontiguousarray(row_hashes).tobytes())
    return {
        "tsdiff.data.path": str(path) if path is not None else "(in memory)",
        "tsdiff.data.rows": str(len(df)),
        "tsdiff.data.columns": str(df.shape[1]),
        "tsdiff.data.hash": h.hexdigest()[:16],
    }


def flatten_config(config: TSDiffConfig) -> dict[str, str]:
    """Every config field as an MLflow param named ``section.field``."""
    out = {}
    for section, fields in config.to_dict().items():
        for key, value in fields.items():
            text = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
            out[f"{section}.{key}"] = text
    return out


# --------------------------------------------------------------------------- pyfunc
def predict_frame(
    model: TSDiff, df: pd.DataFrame, params: dict[str, Any] | None = None
) -> pd.DataFrame:
    """The pyfunc's ``predict``: map MLflow params onto ``impute`` / ``forecast``."""
    p = dict(params or {})
    mode = str(p.get("mode") or "impute")
    if mode not in ("impute", "forecast"):
        raise ConfigError(f"params['mode'] must be 'impute' or 'forecast', got {mode!r}")
    kw: dict[str, Any] = {
        "levels": _parse_levels(p.get("levels")),
        "n_samples": _opt_int(p.get("n_samples")),
        "steps": _opt_int(p.get("steps")),
        "seed": int(p.get("seed") or 0),
        "return_samples": bool(p.get("return_samples", False)),
    }
    if mode == "forecast":
        horizon = _opt_int(p.get("horizon"))
        if not horizon:
            raise ConfigError("forecast needs params={'horizon': H} with H >= 1 steps")
        out = model.forecast(df, horizon, **kw)
    else:
        out = model.impute(df, **kw)
    return out.samples if out.samples is not None else out.frame


def _opt_int(v: Any) -> int | None:
    return None if v is None else int(v)


def _parse_levels(v: Any) -> list[int] | None:
    if v is None or (isinstance(v, str) and not v.strip()):
        return None
    try:
        if isinstance(v, str):
            return [int(x) for x in v.split(",") if x.strip()]
        return [int(x) for x in np.asarray(v).ravel()]
    except (TypeError, ValueError) as e:
        raise ConfigError(f"params['levels'] must be integers like [50, 90], got {v!r}") from e


def _example(model: TSDiff, df: pd.DataFrame) -> pd.DataFrame:
    """The last ``window`` time steps of the first series: input example and plot data."""
    c = model.columns
    sub = df
    if c.id_col in df.columns and len(df):
        sub = df[df[c.id_col] == df[c.id_col].iloc[0]]
    if c.time_col in sub.columns:
        times = pd.Series(sub[c.time_col].unique()).sort_values()
        sub = sub[sub[c.time_col].isin(times.iloc[-model.window :])]
    return sub.reset_index(drop=True)


def _hide(model: TSDiff, df: pd.DataFrame, share: float, seed: int) -> pd.DataFrame:
    """A copy of ``df`` with a share of its observed values set missing, to show imputations."""
    c = model.columns
    cols = [c.value_col] if c.var_col in df.columns else [v for v in model.variables if v in df]
    from tsdiff.masks import hold_out  # imports torch: only when needed

    out = df.copy()
    values = out[cols].to_numpy(dtype=float)
    out[cols] = hold_out(values, share, np.random.default_rng(seed), rounding="round")[0]
    return out


def _signature(example: pd.DataFrame, output: pd.DataFrame, params: dict[str, Any]) -> Any:
    """Input/output schema from the example, plus the params schema.

    MLflow's datetime schema rejects time-zone-aware columns, which tsdiff supports: for
    such data the signature carries the params only (inputs are then not enforced).
    """
    from mlflow.models import infer_signature

    if any(isinstance(t, pd.DatetimeTZDtype) for t in example.dtypes):
        return infer_signature(None, None, params=params)
    return infer_signature(example, output, params=params)


def _log_pyfunc(model: TSDiff, model_dir: Path, example_source: pd.DataFrame) -> Any:
    """Log the saved model directory as an MLflow pyfunc in the active run."""
    import mlflow.pyfunc

    example = _example(model, example_source)
    output = model.impute(example).frame
    s = model.config.sample
    params = {
        "mode": "impute",
        "horizon": 0,
        "levels": [int(v) for v in s.levels],
        "n_samples": int(s.n_samples),
        "steps": int(s.steps),
        "seed": 0,
        "return_samples": False,
    }
    return mlflow.pyfunc.log_model(
        name=MODEL_ARTIFACT,
        python_model=PYFUNC_CODE,  # models from code: nothing is pickled
        artifacts={MODEL_DIR_ARTIFACT: str(model_dir)},
        signature=_signature(example, output, params),
        input_example=example,
        pip_requirements=list(PIP_REQUIREMENTS),
    )


# --------------------------------------------------------------------------- training
def train_tracked(
    df: pd.DataFrame,
    config: TSDiffConfig | None = None,
    *,
    experiment: str = DEFAULT_EXPERIMENT,
    register: str | None = None,
    data_path: str | Path | None = None,
    out: str | Path | None = None,
    valid_df: pd.DataFrame | None = None,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    progress: bool = False,
    run_name: str | None = None,
    uri: str | None = None,
    device: str | None = "auto",
    static_df: pd.DataFrame | None = None,
) -> TrackedRun:
    """Fit ``TSDiff(config)`` inside an MLflow run and log everything needed to reproduce it.

    Logged: every config field (param ``section.field``), per-epoch metrics (step =
    epoch), data-fingerprint / git / version tags, ``config.json``, a loss curve, an
    imputation plot of a held-out example, and the model as a pyfunc. With ``register``
    the model becomes a new version of that name (alias ``challenger``; ``champion`` too
    when the name has none). ``out`` also saves the model directory there. ``device``:
    where training runs (``auto``: a CUDA GPU when present). ``static_df``: static
    covariates by series (see :mod:`tsdiff.covariates`); the pyfunc's input example
    carries them as columns, as its callers then pass them.
    """
    import mlflow

    from tsdiff.config import TSDiffConfig
    from tsdiff.model import TSDiff

    cfg = config or TSDiffConfig()
    with _store(uri) as (resolved, client):
        exp_id = _experiment_id(client, resolved, experiment)
        with mlflow.start_run(experiment_id=exp_id, run_name=run_name) as run:
            run_id = run.info.run_id
            mlflow.log_params(flatten_config(cfg))
            mlflow.set_tags(
                {
                    **data_fingerprint(df, data_path),
                    "tsdiff.git_commit": git_commit(),
                    "tsdiff.version": __version__,
                }
            )
            mlflow.log_text(cfg.to_json(), "config.json")
            model = TSDiff(cfg).fit(
                df,
                valid_df=valid_df,
                checkpoint=checkpoint,
                resume=resume,
                progress=progress,
                callbacks=[_log_epoch],
                device=device,
                static_df=static_df,
            )
            _log_summary(model)
            held_out = valid_df if valid_df is not None else df
            if static_df is not None:  # the logged example carries them as columns
                held_out = held_out.merge(static_df, on=model.columns.id_col, how="left")
            _log_figures(model, held_out)
            version = _log_and_register(client, model, held_out, register, out, run_id)
    return TrackedRun(model, run_id, version)


def _log_epoch(record: dict[str, Any]) -> None:
    """Fit callback: one MLflow step per epoch, finite numbers only."""
    import mlflow

    values = {
        k: float(v)
        for k, v in record.items()
        if k != "epoch" and isinstance(v, (int, float)) and math.isfinite(v)
    }
    mlflow.log_metrics(values, step=int(record["epoch"]))


def _log_summary(model: TSDiff) -> None:
    import mlflow

    info = model.info
    summary = {
        k: float(info[k])
        for k in ("best_val_loss", "best_epoch", "epochs_run", "train_seconds")
        if isinstance(info.get(k), (int, float)) and math.isfinite(info[k])
    }
    mlflow.log_metrics(summary)


def _log_figures(model: TSDiff, df: pd.DataFrame) -> None:
    """Loss curve and one held-out imputation, as PNG artifacts."""
    import matplotlib.pyplot as plt
    import mlflow

    from tsdiff.plot import plot_imputation

    hist = pd.DataFrame(model.epoch_log)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for col in ("train_loss", "val_loss"):
        if col in hist:
            ax.plot(hist["epoch"], hist[col], marker="o", ms=3, label=col)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend()
    fig.tight_layout()
    mlflow.log_figure(fig, "loss_curve.png")
    plt.close(fig)

    example = _hide(model, _example(model, df), 0.2, model.config.train.seed)
    filled = model.impute(example, n_samples=min(model.config.sample.n_samples, 16), seed=0).frame
    fig = plot_imputation(filled, columns=model.columns, title="held-out example, 20% hidden")
    mlflow.log_figure(fig, "imputation.png")
    plt.close(fig)


def _log_and_register(
    client: MlflowClient,
    model: TSDiff,
    example_source: pd.DataFrame,
    name: str | None,
    out: str | Path | None,
    run_id: str,
) -> str | None:
    """Save the model (to ``out`` or a temp dir), log it as a pyfunc, maybe register it."""
    with tempfile.TemporaryDirectory(prefix="tsdiff-model-") as tmp:
        model_dir = model.save(out if out is not None else Path(tmp) / "model_dir")
        info = _log_pyfunc(model, Path(model_dir), example_source)
    if name is None:
        return None
    return _register(client, info.model_uri, name, run_id)


def _register(client: MlflowClient, model_uri: str, name: str, run_id: str) -> str:
    """A new version of ``name``: alias challenger, and champion when there is none."""
    import mlflow

    mv = mlflow.register_model(model_uri, name, tags={"tsdiff.run_id": run_id})
    version = str(mv.version)
    aliases = client.get_registered_model(name).aliases
    client.set_registered_model_alias(name, CHALLENGER, version)
    if CHAMPION not in aliases:
        client.set_registered_model_alias(name, CHAMPION, version)
    return version


def register_model(
    model: TSDiff | str | Path,
    name: str,
    example_df: pd.DataFrame,
    *,
    experiment: str = DEFAULT_EXPERIMENT,
    data_path: str | Path | None = None,
    uri: str | None = None,
) -> tuple[str, str]:
    """Log an already trained model (object or saved dir) in a new run and register it.

    ``example_df`` supplies the input example (and the data fingerprint tags). Returns
    ``(run_id, version)``; aliases follow the same rule as :func:`train_tracked`.
    """
    import mlflow

    from tsdiff.model import TSDiff

    m = model if isinstance(model, TSDiff) else TSDiff.load(model)
    with _store(uri) as (resolved, client):
        exp_id = _experiment_id(client, resolved, experiment)
        with mlflow.start_run(experiment_id=exp_id) as run:
            mlflow.log_params(flatten_config(m.config))
            mlflow.set_tags(
                {
                    **data_fingerprint(example_df, data_path),
                    "tsdiff.git_commit": git_commit(),
                    "tsdiff.version": __version__,
                    "tsdiff.source": "registered without training",
                }
            )
            mlflow.log_text(m.config.to_json(), "config.json")
            last = m.epoch_log[-1] if m.epoch_log else {}
            final = {k: v for k, v in last.items() if k != "epoch"}
            _log_epoch({"epoch": len(m.epoch_log), **final})
            version = _log_and_register(client, m, example_df, name, None, run.info.run_id)
    assert version is not None
    return run.info.run_id, version


# --------------------------------------------------------------------------- lookups
def _paged(fn: Any, **kw: Any) -> list[Any]:
    """All results of an MLflow search call, following page tokens."""
    out, token = [], None
    while True:
        page = fn(page_token=token, **kw) if token else fn(**kw)
        out.extend(page)
        token = getattr(page, "token", None)
        if not token:
            return out


def _model_names(client: MlflowClient) -> list[str]:
    return sorted(m.name for m in _paged(client.search_registered_models))


def _versions(client: MlflowClient, name: str) -> list[Any]:
    found = _paged(client.search_model_versions, filter_string=f"name = '{_quote(name)}'")
    return sorted(found, key=lambda v: int(v.version))


def _quote(name: str) -> str:
    return name.replace("'", "\\'")


def _registered(client: MlflowClient, name: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name)
    except MlflowException as e:
        if "RESOURCE_DOES_NOT_EXIST" not in str(e.error_code):
            raise
    names = _model_names(client)
    raise ModelNotFoundError(
        f"no registered model named {name!r}; registered models: "
        f"{', '.join(names) if names else '(none)'}"
    )


def _describe_aliases(aliases: dict[str, str]) -> str:
    return ", ".join(f"{a} -> v{v}" for a, v in sorted(aliases.items())) or "(none)"


def _resolve(client: MlflowClient, name: str, ref: str) -> str:
    """The version number an alias, version or ``latest`` of ``name`` points to."""
    rm = _registered(client, name)
    versions = [str(v.version) for v in _versions(client, name)]
    if ref.isdigit():
        if ref not in versions:
            raise ModelNotFoundError(
                f"model {name!r} has no version {ref}; versions: {', '.join(versions) or '(none)'}"
            )
        return ref
    if ref == "latest":
        if not versions:
            raise ModelNotFoundError(f"model {name!r} has no versions")
        return versions[-1]
    aliases = dict(rm.aliases)
    if ref not in aliases:
        raise ModelNotFoundError(
            f"model {name!r} has no alias {ref!r}; aliases: {_describe_aliases(aliases)}; "
            f"versions: {', '.join(versions) or '(none)'}"
        )
    return str(aliases[ref])


def parse_model_uri(uri: str) -> tuple[str, str]:
    """``models:/NAME@alias`` or ``models:/NAME/VERSION`` → ``(NAME, alias-or-version)``."""
    body = uri[len("models:/") :].strip("/")
    if "@" in body:
        name, _, ref = body.rpartition("@")
    elif "/" in body:
        name, _, ref = body.rpartition("/")
    else:
        name, ref = body, ""
    if not name or not ref:
        raise ConfigError(
            f"bad model URI {uri!r}: use models:/NAME@ALIAS, models:/NAME/VERSION or a directory"
        )
    return name, ref


def load_model(
    uri: str | Path, *, tracking: str | None = None, device: str | None = "cpu"
) -> TSDiff:
    """A :class:`TSDiff` from a model directory or a registry URI (``models:/NAME@alias``,
    ``models:/NAME/VERSION``); the registered version's saved directory is downloaded and
    loaded with :meth:`TSDiff.load`, so no pickle is involved. ``device``: where it
    predicts (``auto``, ``cpu``, ``cuda``), checked before anything is downloaded."""
    from tsdiff.device import resolve_device
    from tsdiff.model import TSDiff

    target = resolve_device(device)
    text = str(uri)
    if not text.startswith("models:/"):
        return TSDiff.load(text, device=target)
    name, ref = parse_model_uri(text)
    with _store(tracking) as (_, client):
        version = _resolve(client, name, ref)
        return _download_and_load(name, version).to(target)


def _download_and_load(name: str, version: str) -> TSDiff:
    import mlflow
    import yaml

    from tsdiff.model import TSDiff

    with tempfile.TemporaryDirectory(prefix="tsdiff-dl-") as tmp:
        root = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{name}/{version}", dst_path=tmp
            )
        )
        meta = yaml.safe_load((root / "MLmodel").read_text())
        try:
            rel = meta["flavors"]["python_function"]["artifacts"][MODEL_DIR_ARTIFACT]["path"]
        except (KeyError, TypeError) as e:
            raise RegistryError(
                f"models:/{name}/{version} is not a tsdiff model (no model_dir artifact)"
            ) from e
        return TSDiff.load(root / rel)


# --------------------------------------------------------------------------- listing
def list_models(name: str | None = None, *, uri: str | None = None) -> list[dict[str, Any]]:
    """Every registered version: name, version, aliases, run id and the run's key metrics."""
    rows = []
    with _store(uri) as (_, client):
        names = [_registered(client, name).name] if name else _model_names(client)
        for n in names:
            aliases = dict(client.get_registered_model(n).aliases)
            for v in _versions(client, n):
                version = str(v.version)
                metrics: dict[str, float] = {}
                if v.run_id:
                    run_metrics = client.get_run(v.run_id).data.metrics
                    metrics = {k: run_metrics[k] for k in KEY_METRICS if k in run_metrics}
                rows.append(
                    {
                        "name": n,
                        "version": version,
                        "aliases": sorted(a for a, x in aliases.items() if str(x) == version),
                        "run_id": v.run_id,
                        "created": pd.Timestamp(v.creation_timestamp, unit="ms").isoformat(),
                        "metrics": metrics,
                    }
                )
    return rows


# --------------------------------------------------------------------------- promotion
def promote(
    name: str,
    data_df: pd.DataFrame,
    *,
    force: bool = False,
    missing: float = 0.1,
    seed: int = 0,
    n_samples: int | None = None,
    steps: int | None = None,
    uri: str | None = None,
) -> dict[str, Any]:
    """Move ``champion`` to the ``challenger`` only if it scores a lower CRPS.

    Both versions impute the same hidden cells of ``data_df`` (``TSDiff.evaluate`` with
    the same ``missing`` and ``seed``). ``force`` promotes regardless. The comparison is
    logged as a run of the ``tsdiff-promotions`` experiment (tags ``decision``, ``forced``).
    On promotion the ``challenger`` alias is removed: the next registration sets it again.
    """
    import mlflow

    with _store(uri) as (resolved, client):
        aliases = dict(_registered(client, name).aliases)
        if CHALLENGER not in aliases:
            raise ModelNotFoundError(
                f"model {name!r} has no {CHALLENGER!r} alias to promote; aliases: "
                f"{_describe_aliases(aliases)}"
            )
        chal_v = str(aliases[CHALLENGER])
        champ_v = str(aliases[CHAMPION]) if CHAMPION in aliases else None
        result: dict[str, Any] = {
            "name": name,
            "challenger_version": chal_v,
            "champion_version": champ_v,
            "forced": bool(force),
        }
        if champ_v == chal_v:
            return {
                **result,
                "promoted": False,
                "decision": "unchanged",
                "reason": f"version {chal_v} already is the champion",
                "champion": champ_v,
            }

        kw = {"missing": missing, "seed": seed, "n_samples": n_samples, "steps": steps}
        chal_eval = _download_and_load(name, chal_v).evaluate(data_df, **kw)
        champ_eval = _download_and_load(name, champ_v).evaluate(data_df, **kw) if champ_v else None
        chal_crps = float(chal_eval["model"]["crps"])
        champ_crps = float(champ_eval["model"]["crps"]) if champ_eval else None
        better = champ_crps is None or chal_crps < champ_crps
        promoted = better or force
        if champ_crps is None:
            reason = "no champion yet"
        else:
            cmp = "<" if better else ">="
            reason = f"challenger CRPS {chal_crps:.6g} {cmp} champion CRPS {champ_crps:.6g}"
        if promoted and not better:
            reason += "; promoted because force=True"
        result.update(
            challenger_crps=chal_crps,
            champion_crps=champ_crps,
            promoted=promoted,
            decision="promoted" if promoted else "rejected",
            reason=reason,
            champion=chal_v if promoted else champ_v,
        )

        exp_id = _experiment_id(client, resolved, PROMOTION_EXPERIMENT)
        with mlflow.start_run(experiment_id=exp_id, run_name=f"{name} v{chal_v}") as run:
            mlflow.log_params(
                {
                    "model": name,
                    "challenger_version": chal_v,
                    "champion_version": champ_v or "none",
                    "missing": missing,
                    "seed": seed,
                }
            )
            mlflow.log_metrics(
                {"challenger_crps": chal_crps}
                | ({"champion_crps": champ_crps} if champ_crps is not None else {})
            )
            mlflow.set_tags(
                {
                    **data_fingerprint(data_df),
                    "decision": result["decision"],
                    "forced": str(bool(force)).lower(),
                    "overridden_by_force": str(promoted and not better).lower(),
                    "reason": reason,
                }
            )
            mlflow.log_dict({"challenger": chal_eval, "champion": champ_eval}, "evaluation.json")
            result["run_id"] = run.info.run_id

        client.set_model_version_tag(name, chal_v, "tsdiff.promotion", result["decision"])
        client.set_model_version_tag(name, chal_v, "tsdiff.promotion_run", result["run_id"])
        if promoted:
            client.set_registered_model_alias(name, CHAMPION, chal_v)
            client.delete_registered_model_alias(name, CHALLENGER)
    return result


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """``list_models`` rows as a plain-text table for the CLI."""
    head = ["NAME", "VERSION", "ALIASES", *[k.upper() for k in KEY_METRICS[:3]], "CREATED"]
    body = [
        [
            r["name"],
            r["version"],
            ",".join(r["aliases"]) or "-",
            *[f"{r['metrics'][k]:.4g}" if k in r["metrics"] else "-" for k in KEY_METRICS[:3]],
            r["created"][:19],
        ]
        for r in rows
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=False)]
    return "\n".join(
        "  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)).rstrip()
        for line in [head, *body]
    )
