"""DDIM (Song et al. 2021): a few evenly spaced steps, stochasticity ``eta``."""

from __future__ import annotations

import math

import torch

from tsdiff.samplers.base import Sampler
from tsdiff.samplers.options import SamplingOptionError


class DDIMSampler(Sampler):
    """Steps t → t_prev over a sub-sequence of the diffusion steps. With η = 1 and every
    step visited this is DDPM's ancestral step; η = 0 is deterministic."""

    name = "ddim"

    def set_timesteps(self, steps: int) -> list[int]:
        """Descending, always starting at T-1 and ending at 0, evenly spaced on the step
        index ("trailing" spacing), so the first step sees the full noise level."""
        n = self.schedule.num_steps
        if not 1 <= steps <= n:
            raise SamplingOptionError(
                f"steps must be in 1..{n} (the model's diffusion steps), got {steps}"
            )
        if steps == 1:
            self.timesteps = [n - 1]
        else:
            grid = torch.linspace(n - 1, 0, steps, dtype=torch.float64).round().long().tolist()
            self.timesteps = list(dict.fromkeys(grid))  # de-duplicate, keep order
        return self.timesteps

    def needs_noise(self, t: int) -> bool:
        return self.eta > 0 and self.prev_timestep(t) >= 0

    def sigma(self, t: int, t_prev: int) -> float:
        """σ = η sqrt((1-ᾱ_prev)/(1-ᾱ_t)) sqrt(1 - ᾱ_t/ᾱ_prev)."""
        abar = float(self.schedule.alphas_cumprod[t])
        abar_prev = float(self.schedule.alphas_cumprod[t_prev]) if t_prev >= 0 else 1.0
        return self.eta * math.sqrt((1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev))

    def noise_scale(self, t: int) -> float:
        return self.sigma(t, self.prev_timestep(t))

    def prev_mean(
        self, x0: torch.Tensor, eps: torch.Tensor, t: int, x_t: torch.Tensor
    ) -> torch.Tensor:
        """sqrt(ᾱ_prev) x̂_0 + sqrt(1 - ᾱ_prev - σ²) ε (t_prev = -1: the clean end, ᾱ = 1);
        ``step`` adds σ z."""
        t_prev = self.prev_timestep(t)
        abar_prev = float(self.schedule.alphas_cumprod[t_prev]) if t_prev >= 0 else 1.0
        dir_coef = math.sqrt(max(1 - abar_prev - self.sigma(t, t_prev) ** 2, 0.0))
        return math.sqrt(abar_prev) * x0 + dir_coef * eps
