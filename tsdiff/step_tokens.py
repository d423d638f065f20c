"""The denoiser's body with one token per time step (``NetworkConfig.tokens = "steps"``).

CSDI's body gives every cell its own token and attends along time, then along
variables: K·L tokens of C channels per window (1,680 for PhysioNet's 35 × 48), paid
for every sample at every reverse step. Here a token is a time step holding all K
variables (as the learned prior and SAITS do): L tokens of width D, attention along
time only, so a window costs about K times fewer token updates. What depends on the
observations only (shown values, mask, prior, position, calendar, lags) is embedded
once per window (:meth:`StepTokens.context`); each call adds the noisy values and the
diffusion step.

Layouts: values (R, K, L) as everywhere; tokens (R, L, D).
"""

from __future__ import annotations

import torch
from torch import nn

from tsdiff.config import NetworkConfig
from tsdiff.layers import AxialAttention


class StepTokens(nn.Module):
    """(noisy hidden values, step embedding, per-window context) → correction (R, K, L)."""

    def __init__(self, cfg: NetworkConfig, n_vars: int, time_dim: int) -> None:
        super().__init__()
        d = cfg.channels
        self.observed = nn.Linear(3 * n_vars, d)  # per step: shown values, mask, prior
        self.time = nn.Linear(time_dim, d)
        n_lag = 2 * len(cfg.lags or ())
        self.lagged = nn.Linear(n_lag * n_vars, d) if n_lag else None  # None: no lags
        self.noisy = nn.Linear(n_vars, d)
        self.layers = nn.ModuleList(
            AxialAttention(d, cfg.heads, cfg.ff_mult, cfg.dropout) for _ in range(cfg.blocks)
        )
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, n_vars)
        nn.init.zeros_(self.head.weight)  # an untrained body leaves the prior as it is
        nn.init.zeros_(self.head.bias)

    def context(
        self,
        shown: torch.Tensor,
        mask: torch.Tensor,
        prior: torch.Tensor,
        time_feat: torch.Tensor,
        lag_feats: torch.Tensor | None,
    ) -> torch.Tensor:
        """The observations' share of every token → (W, L, D), once per window.

        shown, mask, prior (W, K, L) and time_feat (W, L, Dt + 4 + covariates) in the
        network's dtype; lag_feats (W, K, L, 2·lags): each lag's shown value, then masks.
        """
        tokens = torch.cat([shown, mask, prior], dim=1).transpose(1, 2)  # (W, L, 3K)
        ctx = self.observed(tokens) + self.time(time_feat)
        if self.lagged is not None and lag_feats is not None:
            w, k, length, n = lag_feats.shape
            flat = lag_feats.permute(0, 2, 1, 3).reshape(w, length, k * n)  # (W, L, K·2n)
            ctx = ctx + self.lagged(flat)
        return ctx

    def forward(self, hidden: torch.Tensor, step: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        """hidden (R, K, L): x_t on the hidden cells, 0 on shown ones; step (R, D);
        ctx (W, L, D) with R = W·n rows, window-major. Returns (R, K, L)."""
        rows = hidden.shape[0]
        w = ctx.shape[0]
        n = rows // w
        h = self.noisy(hidden.transpose(1, 2)) + step[:, None]  # (R, L, D)
        h = (h.view(w, n, *h.shape[1:]) + ctx[:, None]).flatten(0, 1)
        for layer in self.layers:
            h = layer(h)
        return self.head(self.norm(h)).transpose(1, 2)  # (R, K, L)
