"""Training-time masking: which observed cells the model sees and which it must rebuild.

Each strategy maps an observed mask ``(B, K, L)`` (True = a measured value) to a
conditioning mask of the same shape (True = shown to the model). Cells observed but
not shown are the training targets. The strategies mirror the gaps users meet:

- ``random``: a random share of the observed cells, the share drawn per window (CSDI);
- ``historical``: the missing pattern of another window of the batch (CSDI's "hist");
- ``block``: contiguous outages of single sensors, sometimes of all of them at once;
- ``forecast``: the window's tail hidden for every variable (forecasting is imputation);
- ``mix``: one of the above per window, drawn with configurable weights.

The last section, :func:`hold_out` and :func:`hold_out_pattern`, is not a training
strategy: it hides observed cells of a series for evaluation and calibration (NumPy, one
series at a time).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import torch

MaskFn = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def random_mask(observed: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Hide each observed cell with probability r, r ~ U(0, 1) drawn per window."""
    b = observed.shape[0]
    ratio = torch.rand(b, 1, 1, generator=gen)  # (B, 1, 1)
    hide = torch.rand(observed.shape, generator=gen) < ratio  # (B, K, L)
    return observed & ~hide


def historical_mask(observed: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Borrow another window's missing pattern: show only cells observed in both."""
    b = observed.shape[0]
    if b < 2:
        return random_mask(observed, gen)
    perm = torch.randperm(b, generator=gen)
    return observed & observed[perm]


def block_mask(observed: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Sensor outages: per variable, with prob. 0.5, hide one contiguous run of
    1..L/2 steps; with prob. 0.25 per window also hide one run across all variables."""
    b, k, length = observed.shape
    t = torch.arange(length)  # (L,)
    max_len = max(1, length // 2)

    def runs(shape: tuple[int, ...]) -> torch.Tensor:
        n = torch.randint(1, max_len + 1, shape, generator=gen)
        start = (torch.rand(shape, generator=gen) * (length - n + 1)).long()
        return (t >= start[..., None]) & (t < (start + n)[..., None])  # (*shape, L)

    per_var = runs((b, k)) & (torch.rand(b, k, 1, generator=gen) < 0.5)  # (B, K, L)
    all_var = runs((b, 1)) & (torch.rand(b, 1, 1, generator=gen) < 0.25)  # (B, 1, L)
    return observed & ~(per_var | all_var)


def forecast_mask(
    observed: torch.Tensor, gen: torch.Generator, max_fraction: float = 0.5
) -> torch.Tensor:
    """Hide the last h steps of every variable, h ~ U{1..max_fraction·L}."""
    b, _, length = observed.shape
    h_max = max(1, int(round(length * max_fraction)))
    h = torch.randint(1, h_max + 1, (b, 1, 1), generator=gen)
    t = torch.arange(length).view(1, 1, length)
    return observed & (t < length - h)


STRATEGIES: dict[str, MaskFn] = {
    "random": random_mask,
    "historical": historical_mask,
    "block": block_mask,
    "forecast": forecast_mask,
}


def mix_mask(
    observed: torch.Tensor,
    gen: torch.Generator,
    weights: Sequence[float] = (0.4, 0.2, 0.2, 0.2),
    max_forecast_fraction: float = 0.5,
) -> torch.Tensor:
    """Draw one strategy per window (random, historical, block, forecast by weight)."""
    candidates = torch.stack(
        [
            random_mask(observed, gen),
            historical_mask(observed, gen),
            block_mask(observed, gen),
            forecast_mask(observed, gen, max_forecast_fraction),
        ]
    )  # (4, B, K, L)
    w = torch.tensor(weights, dtype=torch.float64)
    pick = torch.multinomial(w / w.sum(), observed.shape[0], replacement=True, generator=gen)
    return candidates[pick, torch.arange(observed.shape[0])]


def make_mask_fn(
    name: str,
    weights: Sequence[float] = (0.4, 0.2, 0.2, 0.2),
    max_forecast_fraction: float = 0.5,
) -> MaskFn:
    """The strategy of a :class:`~tsdiff.config.TrainConfig` as one callable."""
    if name == "mix":
        return lambda obs, gen: mix_mask(obs, gen, weights, max_forecast_fraction)
    if name == "forecast":
        return lambda obs, gen: forecast_mask(obs, gen, max_forecast_fraction)
    return STRATEGIES[name]


def holdout_mask(observed: torch.Tensor, fraction: float, gen: torch.Generator) -> torch.Tensor:
    """Evaluation holdout: hide exactly round(fraction · n_obs) observed cells per window.

    Returns the cells to hide (True = held out), as CSDI's test protocol does.
    """
    b = observed.shape[0]
    flat = observed.reshape(b, -1)  # (B, K·L)
    score = torch.rand(flat.shape, generator=gen).masked_fill(~flat, -1.0)
    n_hide = (flat.sum(1).double() * fraction).round().long()  # (B,)
    order = score.argsort(dim=1, descending=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(flat.shape[1]).expand(b, -1))
    return ((rank < n_hide[:, None]) & flat).reshape(observed.shape)


# --------------------------------------------------------------- evaluation hold-outs

Rounding = Literal["floor", "ceil", "round"]
_ROUND: dict[str, Callable[[float], int]] = {"floor": math.floor, "ceil": math.ceil, "round": round}


def hold_out(
    values: np.ndarray, share: float, rng: np.random.Generator, *, rounding: Rounding = "floor"
) -> tuple[np.ndarray, np.ndarray]:
    """Hide ``share`` of the observed (non-NaN) cells of one series, drawn by ``rng``.

    Scoring or calibrating an imputer needs cells whose truth is known: this hides
    exactly ``rounding(share · n_observed)`` of them, without replacement, so that
    one seeded Generator passed through a panel's series in order fixes every draw.
    ``rounding`` is the caller's protocol: "floor" (CSDI's test sets), "ceil" (at
    least one cell per series that has any) or "round" (Python's, half to even).

    Returns ``(given, hidden)``, both shaped like ``values``: ``values`` with the
    hidden cells set to NaN, and the hidden cells (True = held out).
    """
    if not 0 <= share <= 1:
        raise ValueError(f"share must be in [0, 1], got {share}")
    obs = np.flatnonzero(~np.isnan(values))  # (n_observed,) flat indices
    size = _ROUND[rounding](share * len(obs))
    hidden = np.zeros(values.size, bool)  # (values.size,)
    hidden[rng.choice(obs, size=size, replace=False)] = True
    hidden = hidden.reshape(values.shape)
    return np.where(hidden, np.nan, values), hidden


def hold_out_pattern(
    values: np.ndarray,
    patterns: Sequence[np.ndarray],
    share: float,
    rng: np.random.Generator,
    *,
    tries: int = 8,
) -> tuple[np.ndarray, np.ndarray]:
    """Hide the observed cells of one series (K, T) that are missing in a stretch of
    another series' missing pattern: gaps shaped as the data's own gaps are (outages,
    missing stations, CSDI's "historical" protocol), not scattered cells. Random hidden
    cells favour interpolation over a model: on PM2.5 they moved every station's gate
    to its base while the test's structured gaps are where the model wins.

    ``patterns``: missing masks (K, T_i), True = missing; a stretch of T steps is drawn
    from one of them (a shorter one is tiled). A draw that hides nothing, or every
    observed cell, is redrawn up to ``tries`` times; then ``share`` of the observed
    cells are hidden at random (:func:`hold_out`, "ceil"), e.g. for data without gaps.
    Returns ``(given, hidden)`` as :func:`hold_out` does."""
    obs = ~np.isnan(values)  # (K, T)
    k, t = values.shape
    usable = [p for p in patterns if p.shape[0] == k and p.shape[1] > 0]
    n_obs = int(obs.sum())
    for _ in range(tries if usable and n_obs > 1 else 0):
        donor = usable[int(rng.integers(len(usable)))]
        if donor.shape[1] < t:
            donor = np.tile(donor, (1, -(-t // donor.shape[1])))
        start = int(rng.integers(donor.shape[1] - t + 1))
        hidden = obs & donor[:, start : start + t]  # (K, T)
        if 0 < hidden.sum() < n_obs:
            return np.where(hidden, np.nan, values), hidden
    return hold_out(values, share, rng, rounding="ceil")


def open_gaps(values: np.ndarray, max_gap: int | None, fill_edges: bool = True) -> np.ndarray:
    """Missing cells to leave open (K, T) bool: runs of more than ``max_gap`` consecutive
    missing steps of a variable (None: no limit), and, unless ``fill_edges``, the runs
    before its first and after its last observation (a variable never observed is one
    edge run). As pandas' ``interpolate(limit=...)`` users expect: a long outage is
    reported as missing, not filled."""
    miss = np.isnan(np.asarray(values, dtype=np.float64))  # (K, T)
    out = np.zeros_like(miss)
    for k in range(miss.shape[0]):
        m = miss[k]
        if not m.any():
            continue
        # runs of missing steps: [start, end) pairs
        edges = np.diff(np.concatenate([[0], m.astype(np.int8), [0]]))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        for a, b in zip(starts, ends, strict=True):
            at_edge = a == 0 or b == m.size
            if (max_gap is not None and b - a > max_gap) or (at_edge and not fill_edges):
                out[k, a:b] = True
    return out
