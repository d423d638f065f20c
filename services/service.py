"""``TSDiffService``: the tsdiff model behind HTTP, with BentoML.

Start it with ``tsdiff serve`` or ``bentoml serve tsdiff.services.service:TSDiffService``.
The model comes from ``TSDIFF_MODEL_URI`` (a saved directory or a registry URI such as
``models:/physionet-demo@champion``). Without it, a built bento serves the model bundled
into it, and a source tree ``models:/$TSDIFF_MODEL_NAME@champion`` (name default
``physionet-demo``) from the store :mod:`tsdiff.registry` resolves
(``MLFLOW_TRACKING_URI``, else ``.tsdiff/mlflow.db`` in the working directory).
Limits: ``TSDIFF_MAX_UPLOAD_MB``, ``TSDIFF_MAX_ROWS``, ``TSDIFF_MAX_SERIES``,
``TSDIFF_MAX_HORIZON``, ``TSDIFF_MAX_SAMPLES`` (see :class:`tsdiff.services.settings.Settings`).

Endpoints (all under ``/v1``; with ``TSDIFF_API_KEYS`` set they need
``Authorization: Bearer <key>``):

- ``POST /v1/impute``, ``POST /v1/forecast``: multipart upload, the parquet file in
  field ``data`` and each parameter a form field of its own name; answer: parquet (a
  zip of ``result.parquet`` and ``samples.parquet`` with ``return_samples``).
- ``POST /v1/impute/json``, ``POST /v1/forecast/json``: ``{"records": [...], <params>}``
  in, ``{"records": [...], "model": {...}}`` out, same columns as the parquet. With
  ``"return_trajectory": true`` also ``"trajectory"``: the reverse process' states as
  long records (``trajectory_steps``, ``trajectory_samples``; see :meth:`TSDiff.impute`).
- Covariates (a model trained with them, :mod:`tsdiff.covariates`): known-future ones
  as columns of the data and, for the steps to forecast, a table in field ``future``
  (parquet file / JSON records: id, time, one column each); static ones as columns
  constant within each series or a table in field ``static``. A missing one is a 422.
- ``GET /v1/model``: what is served, its training metrics, the limits, its covariates.

BentoML adds ``/livez``, ``/readyz`` (ready once the model has loaded) and ``/metrics``.
All computing is the library's (:meth:`TSDiff.impute`, :meth:`TSDiff.forecast`); this
module only parses requests, enforces limits and maps errors to 4xx answers.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import bentoml
import pandas as pd
from bentoml.validators import ContentType
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tsdiff import __version__
from tsdiff.data import left_open
from tsdiff.services.guard import ApiGuard
from tsdiff.services.loading import load_with_origin
from tsdiff.services.payloads import (
    PARQUET_TYPE,
    ServiceError,
    check_cells,
    check_horizon,
    check_n_samples,
    check_output_rows,
    check_series,
    error_response,
    parquet_response,
    parse_levels,
    read_parquet,
    records_frame,
    response_for,
    to_records,
    trajectory_options,
)
from tsdiff.services.scratch import use_private_tempdir
from tsdiff.services.settings import Settings

if TYPE_CHECKING:  # pragma: no cover
    from tsdiff.model import TSDiff
    from tsdiff.results import PredictionResult

logger = logging.getLogger("bentoml.tsdiff")

# Parameter types as BentoML parses them: form fields arrive as JSON when they parse
# as JSON ("4" -> 4, "true" -> True), else as text ("50,90").
Levels = str | int | list[int] | None
# An optional upload: a list of at most one file (BentoML 1.4 cannot build an input
# model of Optional[Path]: its file schema is unhashable inside a Union).
OptionalFile = list[Path]

# What the schema promises on success. The parquet APIs return a ready starlette
# Response (which BentoML passes through): the parquet bytes, or a 4xx JSON error.
ParquetFile = Annotated[Path, ContentType(PARQUET_TYPE)]


@functools.cache
def _metrics() -> tuple[Any, Any]:
    """Prometheus metrics, created in the worker once BentoML has set up multiprocess mode."""
    from prometheus_client import Counter, Histogram

    cells = Counter(
        "tsdiff_imputed_cells",
        "Cells filled by the model (missing cells imputed, or forecast cells)",
        ["endpoint"],
    )
    rows = Histogram(
        "tsdiff_request_rows",
        "Input rows per impute or forecast request",
        ["endpoint"],
        buckets=(10, 100, 1_000, 10_000, 100_000, 1_000_000),
    )
    return cells, rows


def _imputed_cells(frame: pd.DataFrame, model: TSDiff) -> int:
    flags = [f"{v}_imputed" for v in model.variables if f"{v}_imputed" in frame.columns]
    if flags:
        return int(frame[flags].to_numpy().sum())
    return int(frame["imputed"].sum()) if "imputed" in frame.columns else 0


def _forecast_cells(frame: pd.DataFrame, model: TSDiff) -> int:
    long = model.config.data.var_col in frame.columns
    return len(frame) if long else len(frame) * len(model.variables)


async def _model_info(request: Request) -> Response:
    """``GET /v1/model`` (a plain route: BentoML APIs answer POST only)."""
    svc = bentoml.get_current_service()
    try:
        return JSONResponse(svc.describe())
    except ServiceError as e:
        return error_response(e.status, e.error, e.message)


@bentoml.asgi_app(Starlette(routes=[Route("/model", _model_info, methods=["GET"])]), path="/v1")
@bentoml.service(
    name="tsdiff",
    traffic={"timeout": 600},
    workers=1,
    threads=int(os.environ.get("TSDIFF_THREADS", "1")),
)
class TSDiffService:
    """Loads the model once, in the background, then answers until stopped.

    ``/readyz`` answers 503 until the model has loaded; if loading fails, ``/livez``
    turns 503 as well and ``/v1`` calls answer 503 naming the error, so an orchestrator
    restarts the server instead of routing traffic to it.
    """

    def __init__(self) -> None:
        self.scratch = use_private_tempdir()  # a kill mid-request leaves nothing behind
        self.settings = Settings.from_env()
        self.model: TSDiff | None = None
        self.origin: dict[str, Any] = {}
        self.load_error: str | None = None
        self.cells, self.rows = _metrics()
        threading.Thread(target=self._load, name="tsdiff-model-load", daemon=True).start()

    def _load(self) -> None:
        uri = self.settings.model_uri
        logger.info("loading tsdiff model from %s", uri)
        try:
            model, self.origin = load_with_origin(uri, self.settings.device)
            self.model = model  # last: requests see a model only with its origin
        except Exception as e:
            self.load_error = f"{type(e).__name__}: {e}"
            logger.exception("cannot load the tsdiff model from %s", uri)
        else:
            import torch

            threads = torch.get_num_threads()
            logger.info(
                "tsdiff model ready on %s (torch threads %d): %s",
                model.device,
                threads,
                self.origin,
            )

    def __is_ready__(self) -> bool:
        return self.model is not None

    def __is_alive__(self) -> bool:
        return self.load_error is None

    # ------------------------------------------------------------------ helpers
    def _ready(self) -> TSDiff:
        if self.model is not None:
            return self.model
        if self.load_error is not None:
            raise ServiceError(
                503, "ModelUnavailable", f"the model failed to load: {self.load_error}"
            )
        raise ServiceError(503, "NotReady", "the model is still loading; retry shortly")

    def _answer(self, work: Callable[[TSDiff], Any]) -> Any:
        """Run ``work`` on the model; client mistakes become 4xx JSON, the rest a 500."""
        try:
            return work(self._ready())
        except Exception as e:
            response = response_for(e)
            if response is None:
                raise
            return response

    def _frame(self, df: pd.DataFrame, endpoint: str, model: TSDiff) -> pd.DataFrame:
        check_series(df, model.columns.id_col, self.settings)
        check_cells(df, model, self.settings)
        self.rows.labels(endpoint).observe(len(df))
        return df

    def _predict(
        self,
        endpoint: str,
        read: Callable[[], pd.DataFrame],
        horizon: int | None = None,
        *,
        as_json: bool,
        return_samples: bool,
        return_trajectory: bool = False,
        trajectory_steps: int | list[int] | None = None,
        trajectory_samples: int | None = None,
        gaps: dict[str, Any] | None = None,
        future: Callable[[], pd.DataFrame] | None = None,
        static: Callable[[], pd.DataFrame] | None = None,
        **kw: Any,
    ) -> Any:
        """The body of every impute and forecast endpoint, parquet and JSON alike.

        Trajectory options, the request's frame (``read``), the limits, the library call
        (:meth:`TSDiff.forecast` with a ``horizon``, else :meth:`TSDiff.impute`) and the
        answer: records with ``as_json``, else parquet. ``endpoint`` labels the metrics;
        ``kw`` are ``levels``, ``n_samples``, ``steps`` and ``seed``; ``gaps`` the
        imputation's ``max_gap`` / ``fill_edges``; ``future`` / ``static`` read the
        request's covariate tables, when it has them (see :mod:`tsdiff.covariates`).
        """

        def work(model: TSDiff) -> Any:
            traj = trajectory_options(return_trajectory, trajectory_steps, trajectory_samples)
            df = read()
            check_n_samples(kw["n_samples"], self.settings)
            if horizon is not None:
                check_horizon(horizon, self.settings)
            opts = {**kw, "levels": parse_levels(kw["levels"]), "return_samples": return_samples}
            df = self._frame(df, endpoint, model)
            # what the library call warns about, said to the caller (not only the log)
            sampling = {k: kw[k] for k in ("n_samples", "steps", "seed") if k in kw}
            caveats = model.caveats("impute" if horizon is None else "forecast", **sampling)
            cov = {"static_df": static() if static else None}
            if horizon is None:
                out = model.impute(df, **traj, **opts, **cov, **(gaps or {}))
                count = _imputed_cells
            else:
                cov["future_df"] = future() if future else None
                out, count = model.forecast(df, horizon, **traj, **opts, **cov), _forecast_cells
            frame = out.frame
            self.cells.labels(endpoint).inc(count(frame, model))
            if as_json:
                body = {**self._json(out), "warnings": caveats}
                if horizon is None:  # missing cells the request asked to leave open
                    body["left_open"] = left_open(frame, model.variables, model.columns.value_col)
                return body
            return parquet_response(out.frame, out.samples, caveats)

        return self._answer(work)

    def _parquet_reader(self, paths: list[Path]) -> Callable[[], pd.DataFrame] | None:
        """A covariate table's reader (under the request limits), None when not sent."""
        return None if not paths else (lambda: read_parquet(paths[0], self.settings))

    def _records_reader(
        self, records: list[dict[str, Any]] | None
    ) -> Callable[[], pd.DataFrame] | None:
        return None if records is None else (lambda: records_frame(records, self.settings))

    def _json(self, out: PredictionResult) -> dict[str, Any]:
        body: dict[str, Any] = {"records": to_records(out.frame), "model": self._summary()}
        if out.samples is not None:
            body["samples"] = to_records(out.samples)
        if out.trajectory is not None:
            check_output_rows(len(out.trajectory), "trajectory", self.settings)
            body["trajectory"] = to_records(out.trajectory)
        return body

    def _summary(self) -> dict[str, Any]:
        keys = ("name", "version", "alias", "run_id")
        return {k: self.origin.get(k) for k in keys}

    def describe(self) -> dict[str, Any]:
        """Name, version, alias, run, variables, window, history, frequency, metrics, limits."""
        model = self._ready()
        assert model.freq is not None
        s = model.config.sample
        info = model.info
        return {
            **self.origin,
            "variables": list(model.variables),
            "window": model.window,
            # steps before the window a model with lags reads: send window - horizon +
            # history_steps steps of history for a forecast to use all it can
            "history_steps": model.history_steps,
            "frequency": model.freq.to_str(),
            "time_kind": model.freq.kind,
            "columns": {
                "id": model.columns.id_col,
                "time": model.columns.time_col,
                "variable": model.columns.var_col,
                "value": model.columns.value_col,
            },
            "training": {
                k: info.get(k)
                for k in ("n_series", "epochs_run", "best_epoch", "best_val_loss", "train_seconds")
            },
            "defaults": {"n_samples": s.n_samples, "steps": s.steps, "levels": list(s.levels)},
            "limits": {**self.settings.limits(), "one_window_horizon": model.window - 1},
            # inputs only: future ones for every step to forecast (field ``future``),
            # static ones as constant columns or field ``static``
            "covariates": {
                "future": list(model.covariates.future) if model.covariates else [],
                "static": list(model.covariates.static) if model.covariates else [],
            },
            "auth": bool(self.settings.api_keys),
            "device": str(model.device),
            "tsdiff_version": __version__,
        }

    # ------------------------------------------------------------------ parquet API
    @bentoml.api(route="/v1/impute")
    def impute(
        self,
        data: Path,
        levels: Levels = None,
        n_samples: int | None = None,
        steps: int | None = None,
        seed: int = 0,
        return_samples: bool = False,
        max_gap: int | None = None,
        open_edges: bool = False,
        static: OptionalFile = [],  # noqa: B006 (read only; pydantic copies defaults)
    ) -> ParquetFile:
        """Fill the missing cells of a parquet table: values, ``<var>_imputed``, bounds;
        runs of more than ``max_gap`` missing steps (and, with ``open_edges``, a
        variable's leading/trailing runs) stay missing. ``static``: a parquet table of
        static covariates (id + one column each) for a model that reads them."""
        return self._predict(
            "impute",
            lambda: read_parquet(data, self.settings),
            static=self._parquet_reader(static),
            as_json=False,
            return_samples=return_samples,
            gaps={"max_gap": max_gap, "fill_edges": not open_edges},
            levels=levels,
            n_samples=n_samples,
            steps=steps,
            seed=seed,
        )

    @bentoml.api(route="/v1/forecast")
    def forecast(
        self,
        data: Path,
        horizon: int,
        levels: Levels = None,
        n_samples: int | None = None,
        steps: int | None = None,
        seed: int = 0,
        return_samples: bool = False,
        future: OptionalFile = [],  # noqa: B006 (read only; pydantic copies defaults)
        static: OptionalFile = [],  # noqa: B006 (read only; pydantic copies defaults)
    ) -> ParquetFile:
        """Forecast ``horizon`` steps after each series of a parquet table. ``future``:
        a parquet table of the known-future covariates of every step to forecast (id,
        time, one column each); ``static`` as for ``/v1/impute``."""
        return self._predict(
            "forecast",
            lambda: read_parquet(data, self.settings),
            horizon,
            future=self._parquet_reader(future),
            static=self._parquet_reader(static),
            as_json=False,
            return_samples=return_samples,
            levels=levels,
            n_samples=n_samples,
            steps=steps,
            seed=seed,
        )

    # ------------------------------------------------------------------ JSON API
    @bentoml.api(route="/v1/impute/json")
    def impute_json(
        self,
        records: list[dict[str, Any]],
        levels: Levels = None,
        n_samples: int | None = None,
        steps: int | None = None,
        seed: int = 0,
        return_samples: bool = False,
        return_trajectory: bool = False,
        trajectory_steps: int | list[int] | None = None,
        trajectory_samples: int | None = None,
        max_gap: int | None = None,
        open_edges: bool = False,
        static: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Impute rows given as JSON records; answer with records of the same columns
        and ``left_open``, the cells left missing by ``max_gap`` / ``open_edges``.
        ``static``: records of static covariates (id + one field each)."""
        return self._predict(
            "impute_json",
            lambda: records_frame(records, self.settings),
            static=self._records_reader(static),
            as_json=True,
            gaps={"max_gap": max_gap, "fill_edges": not open_edges},
            return_samples=return_samples,
            return_trajectory=return_trajectory,
            trajectory_steps=trajectory_steps,
            trajectory_samples=trajectory_samples,
            levels=levels,
            n_samples=n_samples,
            steps=steps,
            seed=seed,
        )

    @bentoml.api(route="/v1/forecast/json")
    def forecast_json(
        self,
        records: list[dict[str, Any]],
        horizon: int,
        levels: Levels = None,
        n_samples: int | None = None,
        steps: int | None = None,
        seed: int = 0,
        return_samples: bool = False,
        return_trajectory: bool = False,
        trajectory_steps: int | list[int] | None = None,
        trajectory_samples: int | None = None,
        future: list[dict[str, Any]] | None = None,
        static: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Forecast from rows given as JSON records; answer with records. ``future``:
        records of the known-future covariates of every step to forecast; ``static``:
        records of static covariates."""
        return self._predict(
            "forecast_json",
            lambda: records_frame(records, self.settings),
            horizon,
            future=self._records_reader(future),
            static=self._records_reader(static),
            as_json=True,
            return_samples=return_samples,
            return_trajectory=return_trajectory,
            trajectory_steps=trajectory_steps,
            trajectory_samples=trajectory_samples,
            levels=levels,
            n_samples=n_samples,
            steps=steps,
            seed=seed,
        )


TSDiffService.add_asgi_middleware(ApiGuard)
