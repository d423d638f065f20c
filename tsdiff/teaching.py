"""Helpers for the notebooks: the forward (noising) process made visible."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from tsdiff.data import trajectory_frame
from tsdiff.predictor import Predictor
from tsdiff.sampling import record_indices
from tsdiff.windowing import window_seed


def forward_process(
    model: Predictor, df: pd.DataFrame, *, states: int | Sequence[int] = 6, seed: int = 0
) -> pd.DataFrame:
    """The forward (noising) process on ``df``'s observed cells.

    x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε in normalised units, de-normalised.
    ``states`` is a count of evenly spaced diffusion steps (0 = the clean data ..
    ``num_steps`` = almost pure noise) or a list of them. One ε per cell is shared by
    all steps, so the states show the marginals q(x_t | x_0) of one draw rather than a
    Markov chain. Long frame like the trajectory's: ``step`` = t, ``noise_std`` =
    sqrt(1 - ᾱ_t), ``sample`` 0; missing cells are left out.
    """
    panel = model.panel(df)
    assert model.scaler is not None
    n = model.scheduler.num_steps
    steps = record_indices(n + 1, states)
    abar = [1.0] + model.scheduler.alphas_cumprod.tolist()  # index t: ᾱ after t steps
    level = np.asarray([np.sqrt(1 - abar[t]) for t in steps])  # (S,)
    keep = np.sqrt(np.asarray([abar[t] for t in steps]))  # (S,)
    out = []
    for s in panel.series:
        rng = np.random.default_rng(window_seed(seed, s.key, -1))
        x0 = model.normalizer.transform(s.values)  # (K, T), the network's space
        eps = rng.standard_normal(x0.shape)
        xt = keep[:, None, None] * x0 + level[:, None, None] * eps  # (S, K, T)
        xt = model.normalizer.inverse(xt)
        out.append(np.where(np.isnan(s.values), np.nan, xt)[:, None])  # (S, 1, K, T)
    frame = trajectory_frame(
        panel,
        [s.index for s in panel.series],
        out,
        steps,
        level.tolist(),
        [np.zeros(s.values.shape, bool) for s in panel.series],
    )
    return frame[frame[model.columns.value_col].notna()].reset_index(drop=True)
