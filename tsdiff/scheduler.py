"""Noise schedules: how much noise diffusion step ``t`` holds.

Kept apart from the network (which only predicts the noise ε) and from the samplers
(:mod:`tsdiff.samplers`, which step back from ``t`` to an earlier step given ε): this
module holds the schedule's tables, the forward process (``add_noise``) and the
conversions between ε and the clean-value estimate that every sampler shares.

Notation (Ho et al. 2020; Song et al. 2021): ``β_t``, ``α_t = 1 - β_t``,
``ᾱ_t = Π_{s≤t} α_s``; steps are 0-based, ``t = 0`` is the least noisy.
"""

from __future__ import annotations

import math

import torch

from tsdiff.config import DiffusionConfig
from tsdiff.errors import ConfigError


def make_betas(cfg: DiffusionConfig) -> torch.Tensor:
    """β_1..β_T as float64: CSDI's quadratic, linear, or the cosine schedule."""
    n = cfg.num_steps
    if cfg.schedule == "quadratic":  # CSDI: linear in sqrt(β)
        return torch.linspace(cfg.beta_start**0.5, cfg.beta_end**0.5, n, dtype=torch.float64) ** 2
    if cfg.schedule == "linear":
        return torch.linspace(cfg.beta_start, cfg.beta_end, n, dtype=torch.float64)
    if cfg.schedule == "cosine":  # Nichol & Dhariwal 2021, s = 0.008
        s = 0.008
        x = torch.arange(n + 1, dtype=torch.float64) / n
        f = torch.cos((x + s) / (1 + s) * math.pi / 2) ** 2
        abar = f / f[0]
        return (1 - abar[1:] / abar[:-1]).clamp(max=0.999)
    raise ConfigError(f"unknown schedule {cfg.schedule!r}")


class NoiseScheduler:
    """Precomputed schedule (β, α, ᾱ) and the ε ↔ x̂_0 conversions.

    Tensors passed in may have any shape ``(B, ...)``; ``t`` is a long tensor
    ``(B,)`` or a Python int shared by the batch.
    """

    def __init__(self, cfg: DiffusionConfig) -> None:
        self.cfg = cfg
        self.num_steps = cfg.num_steps
        betas = make_betas(cfg)  # (T,)
        self.betas = betas
        self.alphas = 1.0 - betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)  # ᾱ_t

    # ------------------------------------------------------------------ forward
    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε   (q(x_t | x_0))."""
        abar = self._at(self.alphas_cumprod, t, x0)
        return abar.sqrt() * x0 + (1 - abar).sqrt() * noise

    # ------------------------------------------------------------------ reverse
    def predict_x0(self, x_t: torch.Tensor, eps: torch.Tensor, t: int) -> torch.Tensor:
        """x̂_0 = (x_t - sqrt(1-ᾱ_t) ε) / sqrt(ᾱ_t)."""
        abar = float(self.alphas_cumprod[t])
        return (x_t - math.sqrt(1 - abar) * eps) / math.sqrt(abar)

    def eps_from_x0(self, x_t: torch.Tensor, x0: torch.Tensor, t: int) -> torch.Tensor:
        """The ε for which ``predict_x0`` gives ``x0``: (x_t - sqrt(ᾱ_t) x_0) / sqrt(1-ᾱ_t)."""
        abar = float(self.alphas_cumprod[t])
        return (x_t - math.sqrt(abar) * x0) / math.sqrt(1 - abar)

    @staticmethod
    def _at(table: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        v = table.to(like.device)[t].to(like.dtype)  # (B,)
        return v.reshape(-1, *([1] * (like.dim() - 1)))
