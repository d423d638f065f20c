"""Per-variable z-normalisation fitted on observed values only (the CSDI protocol)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tsdiff.errors import ConfigError, EmptyInputError


@dataclass(frozen=True)
class Scaler:
    """Mean and standard deviation of each of the K variables."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        mean = tuple(float(x) for x in self.mean)
        std = tuple(float(x) for x in self.std)
        if len(mean) != len(std):
            raise ConfigError(f"scaler has {len(mean)} means but {len(std)} stds")
        if not all(math.isfinite(x) for x in mean):
            raise ConfigError(f"scaler means must be finite, got {mean}")
        if not all(math.isfinite(x) and x > 0 for x in std):
            raise ConfigError(f"scaler stds must be positive and finite, got {std}")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    @property
    def n_vars(self) -> int:
        """K, the number of variables."""
        return len(self.mean)

    @classmethod
    def fit(cls, arrays: Sequence[np.ndarray]) -> Scaler:
        """Fit on (K, T_i) arrays with NaN for missing; degenerate variables get (0, 1) or std 1.

        A variable never observed gets mean 0 and std 1; one with fewer than two
        observations, zero spread or non-finite statistics gets std 1, so transform never
        divides by zero.
        """
        arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
        if not arrays:
            raise EmptyInputError("cannot fit a scaler on no arrays")
        if any(a.ndim != 2 for a in arrays):
            raise ConfigError("scaler arrays must be 2-D (K, T)")
        k = arrays[0].shape[0]
        if any(a.shape[0] != k for a in arrays):
            raise ConfigError(f"scaler arrays disagree on K: {[a.shape[0] for a in arrays]}")
        x = np.concatenate(arrays, axis=1)  # (K, sum T)
        obs = np.isfinite(x)
        n = obs.sum(axis=1)  # (K,)
        xz = np.where(obs, x, 0.0)
        with np.errstate(all="ignore"):
            mean = xz.sum(axis=1) / np.maximum(n, 1)  # (K,)
            dev = np.where(obs, x - mean[:, None], 0.0)
            std = np.sqrt((dev**2).sum(axis=1) / np.maximum(n, 1))  # (K,) population std
        mean = np.where((n > 0) & np.isfinite(mean), mean, 0.0)
        std = np.where((n >= 2) & np.isfinite(std) & (std > 0), std, 1.0)
        return cls(tuple(mean.tolist()), tuple(std.tolist()))

    def _params(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if values.ndim < 2 or values.shape[-2] != self.n_vars:
            raise ConfigError(
                f"expected an array of shape (..., {self.n_vars}, T), got {values.shape}"
            )
        mean = np.asarray(self.mean, dtype=np.float64)[:, None]  # (K, 1)
        std = np.asarray(self.std, dtype=np.float64)[:, None]  # (K, 1)
        return mean, std

    def transform(self, values: np.ndarray) -> np.ndarray:
        """(..., K, T) raw -> normalised float64; NaN stays NaN."""
        values = np.asarray(values, dtype=np.float64)
        mean, std = self._params(values)
        return (values - mean) / std

    def inverse(self, values: np.ndarray) -> np.ndarray:
        """(..., K, T) normalised -> raw units, float64."""
        values = np.asarray(values, dtype=np.float64)
        mean, std = self._params(values)
        return values * std + mean

    def to_dict(self) -> dict[str, list[float]]:
        """JSON-ready dict, saved with a model."""
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Scaler:
        """Inverse of :meth:`to_dict`."""
        try:
            return cls(tuple(d["mean"]), tuple(d["std"]))
        except (KeyError, TypeError) as e:
            raise ConfigError(f"invalid scaler settings: {e}") from None
