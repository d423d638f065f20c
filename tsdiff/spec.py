"""What each variable can be: bounds and kind, inferred from training data, saved with
the model, applied to every sample.

An imputed value must be a value the variable can take: a liver enzyme is never
negative, a Glasgow coma score is a whole number from 3 to 15. Every sample is projected
onto its variable's support (clipped to the bounds, rounded for integer and binary
kinds) before medians, means and interval bounds are taken from the samples, so all of
them lie inside the bounds; observed values are never altered, even outside a bound.

Inference rules (``infer_spec``), recorded with the model as ``rule``:

- lower bound 0 when no observed value is below 0 (else open);
- binary when the observed values are exactly {0, 1};
- integer when every observed value is whole and there are at most
  ``MAX_INTEGER_LEVELS`` distinct values (a score, a count on a small scale): bounds are
  then the observed minimum and maximum;
- upper bound 1 when every observed value lies in [0, 1] and at least ``CEILING_SHARE``
  of them equal 1 (a fraction that piles up at its ceiling, e.g. FiO2), 100 likewise for
  [0, 100] (a percentage, e.g. SaO2); a single value that happens to be 100 is no ceiling;
- otherwise the upper bound is open: the largest value seen is not a limit;
- with ``variables.transforms`` on: transform ``log`` for a continuous variable whose
  observed values are all positive and right-skewed (sample skewness above
  ``variables.log_skew``, default ``LOG_SKEW``), as many lab values and pollutant
  concentrations are; the network then models log values, and samples map back to
  positive values by construction.

A transform (``identity``, ``log``, ``logit`` for a variable bounded on both sides) is
where the diffusion works: values are transformed, then z-scored (see
:mod:`tsdiff.transforms`). User overrides (config ``variables``, CLI ``--bounds`` /
``--kind`` / ``--transform``) win over inference.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tsdiff.errors import ConfigError

KINDS = ("continuous", "integer", "binary")
TRANSFORMS = ("identity", "log", "logit")
SPEC_FIELDS = {"lower", "upper", "kind", "transform"}  # what a user may set per variable
LOG_SKEW = 2.0  # default sample skewness above which a positive variable is modelled in logs
MAX_INTEGER_LEVELS = 20
CEILING_SHARE = 0.005  # share of observations at 1 (or 100) that makes it a ceiling


def rule(log_skew: float = LOG_SKEW) -> str:
    """The inference rules in words, as a model records them."""
    return (
        "lower 0 if no observed value < 0; binary if values are {0, 1}; integer (bounds = "
        f"observed min..max) if all values whole with <= {MAX_INTEGER_LEVELS} levels; upper 1 "
        "if all values in [0, 1] with >= 0.5% at 1, upper 100 likewise for [0, 100]; "
        f"with variables.transforms: log if all values > 0 and skewness > {log_skew:g}; "
        "user bounds/kinds/transforms override"
    )


@dataclass(frozen=True)
class VariableSpec:
    """One variable's support: ``lower``/``upper`` (None = open), ``kind`` and the
    ``transform`` the network models it in."""

    lower: float | None = None
    upper: float | None = None
    kind: str = "continuous"
    source: str = "inferred"  # or "user"
    transform: str = "identity"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"kind must be one of {KINDS}, got {self.kind!r}")
        for b in (self.lower, self.upper):
            if b is not None and not math.isfinite(b):
                raise ConfigError(f"bounds must be finite numbers or open, got {b!r}")
        if self.lower is not None and self.upper is not None and self.lower >= self.upper:
            raise ConfigError(f"lower bound {self.lower} must be below upper {self.upper}")
        if self.transform not in TRANSFORMS:
            raise ConfigError(f"transform must be one of {TRANSFORMS}, got {self.transform!r}")
        if self.transform != "identity" and self.kind != "continuous":
            raise ConfigError(f"a {self.transform} transform needs a continuous kind")
        if self.transform == "logit" and (self.lower is None or self.upper is None):
            raise ConfigError("a logit transform needs both a lower and an upper bound")

    def to_dict(self) -> dict[str, Any]:
        return {
            "lower": self.lower,
            "upper": self.upper,
            "kind": self.kind,
            "source": self.source,
            "transform": self.transform,
        }


def infer_one(
    values: np.ndarray, transforms: bool = False, log_skew: float = LOG_SKEW
) -> VariableSpec:
    """The spec the rules above give for one variable's observed values (NaN ignored)."""
    v = values[np.isfinite(values)]
    if v.size == 0:
        return VariableSpec()
    lo, hi = float(v.min()), float(v.max())
    levels = np.unique(v)
    if levels.size == 2 and lo == 0.0 and hi == 1.0:
        return VariableSpec(0.0, 1.0, "binary")
    if np.all(v == np.round(v)) and 2 < levels.size <= MAX_INTEGER_LEVELS:
        return VariableSpec(lo, hi, "integer")
    lower = 0.0 if lo >= 0 else None
    ceiling = lo >= 0 and hi in (1.0, 100.0) and float(np.mean(v == hi)) >= CEILING_SHARE
    upper = hi if ceiling else None  # a fraction or a percentage
    skewed = lo > 0 and v.size >= 3 and _skewness(v) > log_skew
    return VariableSpec(lower, upper, transform="log" if transforms and skewed else "identity")


def _skewness(v: np.ndarray) -> float:
    sd = float(v.std())
    return float(np.mean(((v - v.mean()) / sd) ** 3)) if sd > 0 else 0.0


def infer_spec(
    arrays: Sequence[np.ndarray],
    variables: Sequence[str],
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    infer: bool = True,
    transforms: bool = False,
    log_skew: float = LOG_SKEW,
) -> dict[str, VariableSpec]:
    """Per-variable specs from training arrays (K, T_i) and the user's overrides
    ``{name: {"lower": .., "upper": .., "kind": .., "transform": ..}}`` (keys left out
    keep the inferred value; None opens a bound). ``infer=False``: open continuous unless
    overridden. ``transforms``: infer log transforms too (skewness above ``log_skew``).
    A log transform on a variable with an observed value <= 0 is a :class:`ConfigError`."""
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(variables))
    if unknown:
        raise ConfigError(f"bounds/kinds given for unknown variable(s) {unknown}")
    x = np.concatenate([np.asarray(a, dtype=np.float64) for a in arrays], axis=1)  # (K, ΣT)
    out = {}
    for k, name in enumerate(variables):
        spec = infer_one(x[k], transforms, log_skew) if infer else VariableSpec()
        if name in overrides:
            o = overrides[name]
            bad = sorted(set(o) - SPEC_FIELDS)
            if bad:
                raise ConfigError(f"{name}: unknown spec field(s) {bad}")
            merged = {**spec.to_dict(), **o, "source": "user"}
            try:
                spec = VariableSpec(**merged)
            except ConfigError as e:
                raise ConfigError(f"{name}: {e}") from e
        observed = x[k][np.isfinite(x[k])]
        if spec.transform == "log" and observed.size and observed.min() <= 0:
            raise ConfigError(
                f"{name}: a log transform needs positive values, but {observed.min()} is observed"
            )
        out[name] = spec
    return out


def project(samples: np.ndarray, specs: Sequence[VariableSpec]) -> np.ndarray:
    """Samples (..., K, T) onto each variable's support: clipped, and rounded for
    integer / binary kinds (rounding first, so a rounded value never leaves the bounds)."""
    x = np.array(samples, dtype=np.float64, copy=True)
    for k, s in enumerate(specs):
        v = x[..., k, :]
        if s.kind != "continuous":
            v = np.round(v)
        lo = -np.inf if s.lower is None else s.lower
        hi = np.inf if s.upper is None else s.upper
        if s.kind == "integer":  # whole numbers inside the bounds
            lo, hi = (
                math.ceil(lo) if np.isfinite(lo) else lo,
                math.floor(hi) if np.isfinite(hi) else hi,
            )
        x[..., k, :] = np.clip(v, lo, hi)
    return x


def project_bounds(
    lo: np.ndarray, hi: np.ndarray, specs: Sequence[VariableSpec]
) -> tuple[np.ndarray, np.ndarray]:
    """Interval bounds (..., K, T) onto each variable's support: rounded outward (a
    bound of an integer or binary variable is a value it can take, and the interval
    does not shrink), then clipped to the bounds."""
    lo = np.array(lo, dtype=np.float64, copy=True)
    hi = np.array(hi, dtype=np.float64, copy=True)
    for k, s in enumerate(specs):
        if s.kind != "continuous":
            lo[..., k, :], hi[..., k, :] = np.floor(lo[..., k, :]), np.ceil(hi[..., k, :])
    return project(lo, specs), project(hi, specs)


def outside(values: np.ndarray, spec: VariableSpec) -> int:
    """How many observed values (NaN ignored) lie outside the spec's bounds."""
    v = values[np.isfinite(values)]
    n = 0
    if spec.lower is not None:
        n += int((v < spec.lower).sum())
    if spec.upper is not None:
        n += int((v > spec.upper).sum())
    return n


def parse_bounds(text: str) -> dict[str, dict[str, Any]]:
    """``"SaO2=0:100,FiO2=0.21:1,ALT=0:"`` → ``{"SaO2": {"lower": 0, "upper": 100}, ...}``;
    an empty side is open."""
    out: dict[str, dict[str, Any]] = {}
    for item in _items(text, "--bounds"):
        name, _, rng = item.partition("=")
        lo, sep, hi = rng.partition(":")
        if not name or not sep:
            raise ConfigError(f"--bounds: {item!r} is not NAME=LOWER:UPPER (a side may be empty)")
        try:
            out[name] = {
                "lower": float(lo) if lo.strip() else None,
                "upper": float(hi) if hi.strip() else None,
            }
        except ValueError as e:
            raise ConfigError(f"--bounds: {item!r}: {e}") from e
    return out


def parse_kinds(text: str) -> dict[str, dict[str, Any]]:
    """``"GCS=integer,MechVent=binary"`` → ``{"GCS": {"kind": "integer"}, ...}``."""
    return _parse_choices(text, "--kind", "kind", KINDS)


def parse_transforms(text: str) -> dict[str, dict[str, Any]]:
    """``"ALT=log,SaO2=logit"`` → ``{"ALT": {"transform": "log"}, ...}``."""
    return _parse_choices(text, "--transform", "transform", TRANSFORMS)


def _parse_choices(
    text: str, flag: str, field: str, choices: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """``NAME=CHOICE,..`` → ``{NAME: {field: CHOICE}}``, every CHOICE one of ``choices``."""
    out: dict[str, dict[str, Any]] = {}
    what = field.upper()
    for item in _items(text, flag):
        name, sep, value = item.partition("=")
        if not name or not sep or value not in choices:
            raise ConfigError(
                f"{flag}: {item!r} is not NAME={what} with {what} one of {tuple(choices)}"
            )
        out[name] = {field: value}
    return out


def _items(text: str, flag: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise ConfigError(f"{flag}: nothing given")
    return items
