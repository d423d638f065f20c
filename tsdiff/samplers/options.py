"""The one place sampling options are resolved and checked.

Per-call options (``n_samples``, ``steps``, ``sampler``, ``eta``, ``levels``,
``precision``) fall back to the model's ``SampleConfig`` and are checked against the
model (its diffusion steps); the config, the library, the CLI, the service, the
registry's pyfunc and the pipelines all call :func:`check_sample_options` or
:func:`resolve_options`, so every surface rejects the same values with the same
message and error type. Imports no torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tsdiff.errors import RangeError

if TYPE_CHECKING:  # pragma: no cover
    from tsdiff.config import SampleConfig

PRECISIONS = ("float32", "bfloat16")
# the options :func:`check_sample_options` checks (SampleConfig and SampleOptions fields)
CHECKED = ("n_samples", "steps", "sampler", "eta", "levels", "precision")


class SamplingOptionError(RangeError):
    """A sampling option outside what the model (or any model) accepts."""


@dataclass(frozen=True)
class SampleOptions:
    """Per-call sampling options, resolved against the config's defaults."""

    n_samples: int
    steps: int
    sampler: str
    eta: float
    levels: tuple[int, ...]
    seed: int
    precision: str = "float32"


def _int(name: str, v: Any) -> int:
    if isinstance(v, bool):
        raise SamplingOptionError(f"{name} must be an integer, got {v!r}")
    try:
        out = int(v)
    except (TypeError, ValueError):
        raise SamplingOptionError(f"{name} must be an integer, got {v!r}") from None
    if out != v and not (isinstance(v, str) and v.strip().lstrip("-").isdigit()):
        raise SamplingOptionError(f"{name} must be an integer, got {v!r}")
    return out


def check_sample_options(
    *,
    n_samples: Any = None,
    steps: Any = None,
    sampler: Any = None,
    eta: Any = None,
    levels: Any = None,
    precision: Any = None,
    num_steps: int | None = None,
) -> None:
    """Raise :class:`SamplingOptionError` for the first option (given, not None) out of
    range. ``num_steps``: the model's diffusion steps, which ``steps`` may not exceed
    (DDPM visits all of them whatever ``steps`` says)."""
    from tsdiff.samplers import SAMPLER_NAMES

    if n_samples is not None and _int("n_samples", n_samples) < 1:
        raise SamplingOptionError(f"n_samples must be >= 1, got {n_samples}")
    if steps is not None:
        s = _int("steps", steps)
        if num_steps is not None and not 1 <= s <= num_steps:
            raise SamplingOptionError(
                f"steps must be in 1..{num_steps} (the model's diffusion steps), got {s}"
            )
        if s < 1:
            raise SamplingOptionError(f"steps must be >= 1, got {s}")
    if sampler is not None and sampler not in SAMPLER_NAMES:
        raise SamplingOptionError(f"sampler must be one of {list(SAMPLER_NAMES)}, got {sampler!r}")
    if eta is not None:
        try:
            ok = 0 <= float(eta) <= 1
        except (TypeError, ValueError):
            ok = False
        if not ok or isinstance(eta, bool):
            raise SamplingOptionError(f"eta must be in [0, 1], got {eta!r}")
    if levels is not None:
        try:
            lv = [_int("levels", v) for v in levels]
        except TypeError:
            raise SamplingOptionError(f"levels must be integers in 1..99, got {levels!r}") from None
        if not lv or not all(1 <= v <= 99 for v in lv):
            raise SamplingOptionError(f"levels must be integers in 1..99, got {list(levels)}")
    if precision is not None and precision not in PRECISIONS:
        raise SamplingOptionError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")


def resolve_options(
    defaults: SampleConfig,
    num_steps: int,
    *,
    n_samples: int | None = None,
    steps: int | None = None,
    sampler: str | None = None,
    eta: float | None = None,
    levels: Sequence[int] | None = None,
    seed: int = 0,
    precision: str | None = None,
) -> SampleOptions:
    """Per-call options over the model's defaults, checked against its ``num_steps``."""
    opts = SampleOptions(
        n_samples=n_samples if n_samples is not None else defaults.n_samples,
        steps=steps if steps is not None else defaults.steps,
        sampler=sampler or defaults.sampler,
        eta=eta if eta is not None else defaults.eta,
        levels=tuple(levels if levels is not None else defaults.levels),
        seed=seed,
        precision=precision or defaults.precision,
    )
    check_sample_options(num_steps=num_steps, **{k: getattr(opts, k) for k in CHECKED})
    return SampleOptions(
        n_samples=int(opts.n_samples),
        steps=int(opts.steps),
        sampler=opts.sampler,
        eta=float(opts.eta),
        levels=tuple(sorted({int(v) for v in opts.levels})),
        seed=int(seed),
        precision=opts.precision,
    )
