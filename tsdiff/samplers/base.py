"""What every sampler is: its timesteps and a ``step`` that returns an output object."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch

from tsdiff.scheduler import NoiseScheduler

Clip = tuple[torch.Tensor, torch.Tensor]  # lower, upper bounds of x̂_0, broadcastable


@dataclass(frozen=True)
class SamplerOutput:
    """One reverse step's result, shaped like the sample it was given (R, K, L).

    ``prev_sample``: x at the previous (less noisy) step; ``pred_original_sample``: the
    clean-value estimate x̂_0 the step was computed from (after clipping).
    """

    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor


class Sampler(ABC):
    """A reverse process over ``schedule``: call ``set_timesteps``, then ``step`` at each
    of ``timesteps`` in order. ``eta``: the share of DDPM's noise a step adds (samplers
    without that choice ignore it)."""

    name: str = ""

    def __init__(self, schedule: NoiseScheduler, *, eta: float = 0.0) -> None:
        self.schedule = schedule
        self.eta = float(eta)
        self.timesteps: list[int] = []

    @abstractmethod
    def set_timesteps(self, steps: int) -> list[int]:
        """Choose (and return) the descending diffusion steps to visit; ``steps`` is the
        count asked for, which a sampler that visits every step ignores."""

    @abstractmethod
    def needs_noise(self, t: int) -> bool:
        """Whether ``step`` at ``t`` adds fresh noise (so the caller draws it)."""

    @abstractmethod
    def prev_mean(
        self, x0: torch.Tensor, eps: torch.Tensor, t: int, x_t: torch.Tensor
    ) -> torch.Tensor:
        """The previous sample before fresh noise, from x̂_0, ε and x_t at ``t``."""

    @abstractmethod
    def noise_scale(self, t: int) -> float:
        """σ of the fresh noise ``step`` adds at ``t`` (0: none)."""

    def step(
        self,
        model_output: torch.Tensor,
        t: int,
        sample: torch.Tensor,
        *,
        noise: torch.Tensor | None = None,
        clip: Clip | None = None,
    ) -> SamplerOutput:
        """From ``sample`` = x_t and the network's ε (``model_output``) at ``t`` to the
        previous step: the sampler's mean from the (clipped) x̂_0, plus σ_t ``noise``."""
        x0, eps = self.clean_estimate(sample, model_output, t, clip)
        prev = self.prev_mean(x0, eps, t, sample)
        sigma = self.noise_scale(t)
        if sigma > 0 and noise is not None:
            prev = prev + sigma * noise
        return SamplerOutput(prev, x0)

    def prev_timestep(self, t: int) -> int:
        """The step after ``t`` in ``timesteps`` (-1: the clean end)."""
        i = self.timesteps.index(t)
        return self.timesteps[i + 1] if i + 1 < len(self.timesteps) else -1

    def clean_estimate(
        self, x_t: torch.Tensor, eps: torch.Tensor, t: int, clip: Clip | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x̂_0, clamped to ``clip`` if given, and the ε consistent with it."""
        x0 = self.schedule.predict_x0(x_t, eps, t)
        if clip is None:
            return x0, eps
        x0 = torch.maximum(torch.minimum(x0, clip[1]), clip[0])
        return x0, self.schedule.eps_from_x0(x_t, x0, t)
