"""DDPM (Ho et al. 2020): ancestral sampling through every diffusion step."""

from __future__ import annotations

import math

import torch

from tsdiff.samplers.base import Sampler


class DDPMSampler(Sampler):
    """Every step t → t-1: the posterior mean plus σ_t z (no noise at t = 0)."""

    name = "ddpm"

    def set_timesteps(self, steps: int) -> list[int]:
        self.timesteps = list(range(self.schedule.num_steps - 1, -1, -1))
        return self.timesteps

    def needs_noise(self, t: int) -> bool:
        return t > 0

    def sigma(self, t: int) -> float:
        """σ_t² = β_t (1 - ᾱ_{t-1}) / (1 - ᾱ_t)."""
        if t == 0:
            return 0.0
        abar = float(self.schedule.alphas_cumprod[t])
        abar_prev = float(self.schedule.alphas_cumprod[t - 1])
        return math.sqrt((1 - abar_prev) / (1 - abar) * float(self.schedule.betas[t]))

    def noise_scale(self, t: int) -> float:
        return self.sigma(t)

    def prev_mean(
        self, x0: torch.Tensor, eps: torch.Tensor, t: int, x_t: torch.Tensor
    ) -> torch.Tensor:
        """μ = sqrt(ᾱ_{t-1}) β_t/(1-ᾱ_t) x̂_0 + sqrt(α_t)(1-ᾱ_{t-1})/(1-ᾱ_t) x_t, which
        equals (x_t - β_t/sqrt(1-ᾱ_t) ε)/sqrt(α_t) when x̂_0 is not clipped."""
        s = self.schedule
        beta, alpha = float(s.betas[t]), float(s.alphas[t])
        abar = float(s.alphas_cumprod[t])
        abar_prev = float(s.alphas_cumprod[t - 1]) if t > 0 else 1.0
        c0 = math.sqrt(abar_prev) * beta / (1 - abar)
        ct = math.sqrt(alpha) * (1 - abar_prev) / (1 - abar)
        return c0 * x0 + ct * x_t
