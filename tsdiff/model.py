"""``TSDiff``: the public front users know, fit + predict in one object.

Fitting is the estimator's job (:mod:`tsdiff.estimator`), predicting the predictor's
(:mod:`tsdiff.predictor`, which ``TSDiff`` extends), scoring the evaluation's
(:mod:`tsdiff.evaluation`). Observed values are never passed through the network's
float32 path as frames: imputed frames take them from the input bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from tsdiff.estimator import Estimator, calibrate_imputation, fit_spec
from tsdiff.evaluation import evaluate
from tsdiff.predictor import Predictor
from tsdiff.teaching import forward_process
from tsdiff.training import EpochCallback


class TSDiff(Predictor):
    """Conditional diffusion imputer and forecaster for multivariate time series.

    >>> model = TSDiff().fit(train_df)                     # doctest: +SKIP
    >>> filled = model.impute(df).frame                    # doctest: +SKIP
    >>> fc = model.forecast(df, horizon=24).frame          # doctest: +SKIP
    """

    def fit(
        self,
        df: pd.DataFrame,
        *,
        valid_df: pd.DataFrame | None = None,
        freq: str | float | None = None,
        max_minutes: float | None = None,
        checkpoint: str | Path | None = None,
        resume: bool = False,
        progress: bool = True,
        callbacks: Sequence[EpochCallback] = (),
        device: str | torch.device | None = "auto",
        static_df: pd.DataFrame | None = None,
    ) -> TSDiff:
        """Learn to denoise masked windows of ``df`` (wide or long, see the README).

        Validation uses ``valid_df`` when given, else a held-out share of the series
        (``train.val_fraction``). ``max_minutes`` caps wall-clock time; the learning
        rate schedule adapts to the epochs that fit in it. ``device``: where training
        runs (``auto``: CUDA when present); the fitted model stays there (see ``to``).
        Covariates named in ``data.future_covariates`` / ``data.static_covariates`` are
        read from ``df`` (static ones also from ``static_df``: id + one column each) as
        inputs only (:mod:`tsdiff.covariates`).
        """
        if max_minutes is not None:
            self.config = self.config.replace(train={"max_minutes": max_minutes})
        Estimator(self.config).fit(
            df,
            into=self,
            valid_df=valid_df,
            freq=freq,
            checkpoint=checkpoint,
            resume=resume,
            progress=progress,
            callbacks=callbacks,
            device=device,
            static_df=static_df,
        )
        return self

    def calibrate(self, df: pd.DataFrame, *, missing: float = 0.1, seed: int = 0) -> dict[str, Any]:
        """Fit the spread of the samples (and the gate) to held-out cells of ``df``.

        Diffusion samples after short training are typically too narrow (intervals
        cover less than they claim). This hides ``missing`` of ``df``'s observed cells,
        samples them, and picks the factor s — samples = median + s·(samples − median),
        so medians and MAE are unchanged — that minimises CRPS there, a proper score,
        so s improves calibration without rewarding wide intervals. ``fit`` does this
        on its validation series when ``train.calibrate`` is set.
        """
        return calibrate_imputation(self, self.panel(df), missing=missing, seed=seed)

    def infer_spec(self, df: pd.DataFrame) -> dict[str, Any]:
        """(Re)infer the variables' bounds and kinds from ``df`` (the training data) and
        the config's overrides, as ``fit`` does: for a model saved before specs existed.
        Returns what ``fit`` records in ``info["spec"]``."""
        panel = self.panel(df)
        self.spec, summary = fit_spec(self, [s.values for s in panel.series])
        self.info["spec"] = summary
        return summary

    # hide a share of the observed cells, impute them, score them beside baselines
    evaluate = evaluate

    def forward_process(
        self, df: pd.DataFrame, *, states: int | Sequence[int] = 6, seed: int = 0
    ) -> pd.DataFrame:
        """The forward (noising) process on ``df``'s observed cells, for teaching (see
        :func:`tsdiff.teaching.forward_process`)."""
        return forward_process(self, df, states=states, seed=seed)
