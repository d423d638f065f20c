"""The space the network works in: each variable's transform, then a z-score.

Without transforms (every spec ``identity``) that space is the CSDI protocol's
z-score and the model's :class:`~tsdiff.data.Scaler` is the whole story. With them,
:class:`Normalizer` maps raw values through each variable's transform (``log`` for
positive skewed values, ``logit`` for values bounded on both sides) and z-scores the
result with a scaler fitted on transformed training values; ``inverse`` maps back, so
samples of a log variable are positive and those of a logit variable lie inside its
bounds by construction. The model's raw ``scaler`` stays what metrics are normalised by.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tsdiff.data import Scaler
from tsdiff.spec import VariableSpec

LOG_FLOOR = 1e-9  # log of values at or below 0 (never observed in training) is floored
LOGIT_SQUEEZE = 1e-4  # logit of the bounds themselves: squeezed inside (0, 1)


def uses_transforms(specs: Sequence[VariableSpec] | None) -> bool:
    return specs is not None and any(s.transform != "identity" for s in specs)


def forward(values: np.ndarray, specs: Sequence[VariableSpec]) -> np.ndarray:
    """(..., K, T) raw → transformed, float64; NaN stays NaN."""
    x = np.array(values, dtype=np.float64, copy=True)
    for k, s in enumerate(specs):
        v = x[..., k, :]
        if s.transform == "log":
            x[..., k, :] = np.log(np.maximum(v, LOG_FLOOR))
        elif s.transform == "logit":
            assert s.lower is not None and s.upper is not None
            u = (v - s.lower) / (s.upper - s.lower)
            u = np.clip(u, 0.0, 1.0) * (1 - 2 * LOGIT_SQUEEZE) + LOGIT_SQUEEZE
            x[..., k, :] = np.log(u) - np.log1p(-u)
    return x


def backward(values: np.ndarray, specs: Sequence[VariableSpec]) -> np.ndarray:
    """(..., K, T) transformed → raw, float64 (the inverse of :func:`forward`)."""
    x = np.array(values, dtype=np.float64, copy=True)
    for k, s in enumerate(specs):
        v = x[..., k, :]
        if s.transform == "log":
            x[..., k, :] = np.exp(np.minimum(v, 700.0))
        elif s.transform == "logit":
            assert s.lower is not None and s.upper is not None
            u = 1.0 / (1.0 + np.exp(-np.clip(v, -700.0, 700.0)))
            u = (u - LOGIT_SQUEEZE) / (1 - 2 * LOGIT_SQUEEZE)
            x[..., k, :] = s.lower + np.clip(u, 0.0, 1.0) * (s.upper - s.lower)
    return x


class Normalizer:
    """Raw values ↔ the network's space: ``forward`` transform, then ``scaler``'s z-score
    (a scaler fitted on transformed values). Same interface as :class:`Scaler`."""

    def __init__(self, specs: Sequence[VariableSpec], scaler: Scaler) -> None:
        self.specs = list(specs)
        self.scaler = scaler

    @classmethod
    def fit(cls, specs: Sequence[VariableSpec], arrays: Sequence[np.ndarray]) -> Normalizer:
        return cls(specs, Scaler.fit([forward(a, specs) for a in arrays]))

    def transform(self, values: np.ndarray) -> np.ndarray:
        return self.scaler.transform(forward(values, self.specs))

    def inverse(self, values: np.ndarray) -> np.ndarray:
        return backward(self.scaler.inverse(values), self.specs)


def network_bounds(
    normalizer: Scaler | Normalizer, specs: Sequence[VariableSpec]
) -> tuple[np.ndarray, np.ndarray]:
    """Each variable's bounds mapped into the network's space ((K,), (K,); −inf / inf
    where open): transforms are increasing, so clipping there is clipping raw values."""
    lo = np.array([-np.inf if s.lower is None else s.lower for s in specs])
    hi = np.array([np.inf if s.upper is None else s.upper for s in specs])
    with np.errstate(invalid="ignore", over="ignore"):
        return normalizer.transform(lo[:, None])[:, 0], normalizer.transform(hi[:, None])[:, 0]
