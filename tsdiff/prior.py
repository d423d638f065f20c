"""A learned prior: a deterministic imputer whose output the diffusion refines.

The denoiser's x_0 estimate is ``prior + correction``. With the interpolation prior a
short training run starts from linear interpolation and must learn everything else
through the expensive per-cell network. ``PriorNet`` is cheap instead: one token per
time step holding all K variables (as in SAITS, Du et al. 2023), a few transformer
layers over the L tokens, and a zero-initialised head that corrects the interpolation
of the hidden cells. It trains alone first (``training.train_prior``), on the same
masked-reconstruction task, so after a minute it imputes far better than
interpolation; the diffusion then models what it leaves (the spread and the detail).

Shown cells keep their values: the correction applies to hidden cells only.
"""

from __future__ import annotations

import torch
from torch import nn

from tsdiff.config import NetworkConfig
from tsdiff.layers import AxialAttention


class PriorNet(nn.Module):
    """(shown, mask, interpolation, time features) → prior (W, K, L)."""

    def __init__(self, cfg: NetworkConfig, n_vars: int, time_dim: int) -> None:
        super().__init__()
        d = cfg.prior_dim
        self.embed = nn.Linear(3 * n_vars, d)  # per step: shown values, mask, interpolation
        self.time = nn.Linear(time_dim, d)
        self.drop = nn.Dropout(cfg.prior_dropout)
        self.layers = nn.ModuleList(
            AxialAttention(d, cfg.prior_heads, 2, cfg.prior_dropout)
            for _ in range(cfg.prior_layers)
        )
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, n_vars)
        nn.init.zeros_(self.head.weight)  # an untrained prior is the interpolation
        nn.init.zeros_(self.head.bias)

    def forward(
        self, shown: torch.Tensor, mask: torch.Tensor, interp: torch.Tensor, time_feat: torch.Tensor
    ) -> torch.Tensor:
        # shown, mask, interp (W, K, L) in the network's dtype; time_feat (W, L, Dt + 4)
        k = shown.shape[1]
        tokens = torch.cat([shown, mask, interp], dim=1).transpose(1, 2)  # (W, L, 3K)
        h = self.drop(self.embed(tokens) + self.time(time_feat))  # (W, L, D)
        for layer in self.layers:
            h = layer(h)
        corr = self.head(self.norm(h)).transpose(1, 2)[:, :k]  # (W, K, L)
        return corr * (1 - mask)
