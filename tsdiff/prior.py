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

``QuantilePriorNet`` (``network.prior_quantiles``) is the same network with a head per
quantile level, trained after the prior from its weights by pinball loss: a direct
regression of each hidden cell's quantiles, which imputations blend with the samples
(:mod:`tsdiff.quantile_blend`).
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

    def features(
        self, shown: torch.Tensor, mask: torch.Tensor, interp: torch.Tensor, time_feat: torch.Tensor
    ) -> torch.Tensor:
        """The trunk: one normalised token per time step → (W, L, D)."""
        # shown, mask, interp (W, K, L) in the network's dtype; time_feat (W, L, Dt + 4)
        tokens = torch.cat([shown, mask, interp], dim=1).transpose(1, 2)  # (W, L, 3K)
        h = self.drop(self.embed(tokens) + self.time(time_feat))  # (W, L, D)
        for layer in self.layers:
            h = layer(h)
        return self.norm(h)

    def forward(
        self, shown: torch.Tensor, mask: torch.Tensor, interp: torch.Tensor, time_feat: torch.Tensor
    ) -> torch.Tensor:
        k = shown.shape[1]
        corr = self.head(self.features(shown, mask, interp, time_feat)).transpose(1, 2)[:, :k]
        return corr * (1 - mask)  # (W, K, L)


# the quantile prior's levels: the 19 that CRPS is scored on and the tails that the
# extreme samples of a few dozen take (sample i of n sits at level i / (n - 1))
QUANTILE_LEVELS = (0.01, 0.025, *(i / 20 for i in range(1, 20)), 0.975, 0.99)


class QuantilePriorNet(PriorNet):
    """The learned prior's network with a head per quantile level: (shown, mask,
    interpolation, time features) → corrections (W, Q, K, L), sorted along Q.

    Why: the diffusion's samples, drawn in a few steps by a small network, spread
    less well than a direct quantile regression of the same cells; a blend of the two
    quantile functions scores better than either (:func:`tsdiff.calibration.blend_quantiles`).
    Trained after the prior, from its weights (:func:`from_prior`), by pinball loss.
    """

    def __init__(self, cfg: NetworkConfig, n_vars: int, time_dim: int) -> None:
        super().__init__(cfg, n_vars, time_dim)
        self.n_vars = n_vars
        self.head = nn.Linear(cfg.prior_dim, len(QUANTILE_LEVELS) * n_vars)

    @torch.no_grad()
    def from_prior(self, prior: PriorNet, spread: float = 0.3) -> None:
        """Start from ``prior``: its trunk, every level's head its point head, offset by
        ``spread`` x the standard normal quantile of the level (normalised units)."""
        head = {k: v for k, v in prior.state_dict().items() if not k.startswith("head.")}
        self.load_state_dict(head, strict=False)
        q, k = len(QUANTILE_LEVELS), self.n_vars
        self.head.weight.copy_(prior.head.weight[:k].repeat(q, 1))  # (Q·K, D), level-major
        z = torch.distributions.Normal(0.0, 1.0).icdf(torch.tensor(QUANTILE_LEVELS))
        self.head.bias.copy_(prior.head.bias[:k].repeat(q) + (spread * z).repeat_interleave(k))

    def forward(
        self, shown: torch.Tensor, mask: torch.Tensor, interp: torch.Tensor, time_feat: torch.Tensor
    ) -> torch.Tensor:
        w, k, length = shown.shape
        out = self.head(self.features(shown, mask, interp, time_feat))  # (W, L, Q·K)
        out = out.view(w, length, len(QUANTILE_LEVELS), k).permute(0, 2, 3, 1)  # (W, Q, K, L)
        return torch.sort(out * (1 - mask)[:, None], dim=1).values
