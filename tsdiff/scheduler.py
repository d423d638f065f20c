"""Noise schedules and the reverse-step arithmetic of DDPM and DDIM.

Kept apart from the network: the denoiser only predicts the noise ε; this module
says how much noise step ``t`` holds (``add_noise``) and how to step back from
``t`` to an earlier step given ε (``ddpm_step``, ``ddim_step``).

Notation (Ho et al. 2020; Song et al. 2021): ``β_t``, ``α_t = 1 - β_t``,
``ᾱ_t = Π_{s≤t} α_s``; steps are 0-based, ``t = 0`` is the least noisy.
"""

from __future__ import annotations

import math

import torch

from tsdiff.config import DiffusionConfig
from tsdiff.errors import ConfigError

Clip = tuple[torch.Tensor, torch.Tensor]  # lower, upper bounds for x̂_0, broadcastable


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
    """Precomputed schedule and the DDPM / DDIM update rules.

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

    def _clipped(
        self, x_t: torch.Tensor, eps: torch.Tensor, t: int, clip: Clip | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x̂_0, clamped to ``clip`` if given, and the ε consistent with it."""
        x0 = self.predict_x0(x_t, eps, t)
        if clip is None:
            return x0, eps
        x0 = torch.maximum(torch.minimum(x0, clip[1]), clip[0])
        return x0, self.eps_from_x0(x_t, x0, t)

    def ddpm_step(
        self,
        x_t: torch.Tensor,
        eps: torch.Tensor,
        t: int,
        noise: torch.Tensor | None = None,
        clip: Clip | None = None,
    ) -> torch.Tensor:
        """Ancestral step t → t-1 of Ho et al.: posterior mean plus σ_t z.

        μ = sqrt(ᾱ_{t-1}) β_t/(1-ᾱ_t) x̂_0 + sqrt(α_t)(1-ᾱ_{t-1})/(1-ᾱ_t) x_t, which
        equals (x_t - β_t/sqrt(1-ᾱ_t) ε)/sqrt(α_t) when x̂_0 is not clipped;
        σ_t² = β_t (1 - ᾱ_{t-1}) / (1 - ᾱ_t); no noise is added at t = 0.
        """
        x0, _ = self._clipped(x_t, eps, t, clip)
        beta, alpha = float(self.betas[t]), float(self.alphas[t])
        abar = float(self.alphas_cumprod[t])
        abar_prev = float(self.alphas_cumprod[t - 1]) if t > 0 else 1.0
        c0 = math.sqrt(abar_prev) * beta / (1 - abar)
        ct = math.sqrt(alpha) * (1 - abar_prev) / (1 - abar)
        mean = c0 * x0 + ct * x_t
        if t == 0 or noise is None:
            return mean
        return mean + self.ddpm_sigma(t) * noise

    def ddpm_sigma(self, t: int) -> float:
        if t == 0:
            return 0.0
        abar, abar_prev = float(self.alphas_cumprod[t]), float(self.alphas_cumprod[t - 1])
        return math.sqrt((1 - abar_prev) / (1 - abar) * float(self.betas[t]))

    def ddim_step(
        self,
        x_t: torch.Tensor,
        eps: torch.Tensor,
        t: int,
        t_prev: int,
        eta: float = 0.0,
        noise: torch.Tensor | None = None,
        clip: Clip | None = None,
    ) -> torch.Tensor:
        """DDIM step t → t_prev (t_prev = -1 means the clean end, ᾱ = 1).

        x_prev = sqrt(ᾱ_prev) x̂_0 + sqrt(1 - ᾱ_prev - σ²) ε + σ z,
        σ = η sqrt((1-ᾱ_prev)/(1-ᾱ_t)) sqrt(1 - ᾱ_t/ᾱ_prev). With η = 1 and
        t_prev = t - 1 this is exactly the DDPM step.
        """
        x0, eps = self._clipped(x_t, eps, t, clip)
        abar_prev = float(self.alphas_cumprod[t_prev]) if t_prev >= 0 else 1.0
        sigma = self.ddim_sigma(t, t_prev, eta)
        dir_coef = math.sqrt(max(1 - abar_prev - sigma**2, 0.0))
        out = math.sqrt(abar_prev) * x0 + dir_coef * eps
        if sigma > 0 and noise is not None:
            out = out + sigma * noise
        return out

    def ddim_sigma(self, t: int, t_prev: int, eta: float) -> float:
        abar = float(self.alphas_cumprod[t])
        abar_prev = float(self.alphas_cumprod[t_prev]) if t_prev >= 0 else 1.0
        return eta * math.sqrt((1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev))

    def timesteps(self, steps: int) -> list[int]:
        """Descending steps for a few-step sampler, always starting at T-1 and ending at 0.

        Evenly spaced on the step index ("trailing" spacing), so the first step sees
        the full noise level the sampler starts from.
        """
        n = self.num_steps
        if not 1 <= steps <= n:
            raise ConfigError(f"steps must be in 1..{n} (the model's diffusion steps), got {steps}")
        if steps == 1:
            return [n - 1]
        grid = torch.linspace(n - 1, 0, steps, dtype=torch.float64).round().long().tolist()
        return list(dict.fromkeys(grid))  # de-duplicate, keep order

    @staticmethod
    def _at(table: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        v = table.to(like.device)[t].to(like.dtype)  # (B,)
        return v.reshape(-1, *([1] * (like.dim() - 1)))
