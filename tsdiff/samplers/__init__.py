"""Reverse-diffusion samplers, one module each, in the diffusers manner.

Every sampler takes the noise schedule (:class:`tsdiff.scheduler.NoiseScheduler`),
``set_timesteps(steps)`` chooses the diffusion steps it visits and ``step()`` moves a
sample one of them back, returning a :class:`SamplerOutput` (the previous sample and
the clean-value estimate). :func:`tsdiff.sampling.sample_windows` loops over it.

This module is the one registry of sampler names: the config, the CLI, the service,
the pipelines and the sampling loop all read :data:`SAMPLER_NAMES`. It imports no
torch, so that the config can check names cheaply; :func:`get_sampler` loads a class.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from tsdiff.samplers.base import Sampler
    from tsdiff.scheduler import NoiseScheduler

# name → "module:class"; a new sampler is one module and one line here
_REGISTRY: dict[str, str] = {
    "ddim": "tsdiff.samplers.ddim:DDIMSampler",
    "ddpm": "tsdiff.samplers.ddpm:DDPMSampler",
}
SAMPLER_NAMES: tuple[str, ...] = tuple(_REGISTRY)


def get_sampler(name: str, schedule: NoiseScheduler, *, eta: float = 0.0) -> Sampler:
    """A sampler by registered name, over ``schedule``; ``eta``: DDIM's stochasticity
    (samplers without that choice ignore it)."""
    from tsdiff.samplers.options import SamplingOptionError

    if name not in _REGISTRY:
        raise SamplingOptionError(f"sampler must be one of {list(SAMPLER_NAMES)}, got {name!r}")
    module, cls = _REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)(schedule, eta=eta)
