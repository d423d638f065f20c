"""The denoiser: a pure ``nn.Module`` that predicts the noise in the unobserved cells.

It knows nothing of schedules or samplers (see :mod:`tsdiff.scheduler`). Design
follows CSDI's residual blocks — attention along time, then along variables, then a
gated activation fed by side information — rewritten channels-last so that every
projection is a plain ``Linear`` and attention uses ``scaled_dot_product_attention``.

Layouts: inputs and output ``(B, K, L)``; inside ``(B, K, L, C)``.
Input channels per cell: the shown observations, the noisy values of the hidden
cells, a linear interpolation of the shown values along time and, with
``NetworkConfig.lags``, the variable's shown value at each lag with its mask. Lags
may reach before the window into ``history`` (W, K, H), the H = max(lags) steps the
caller passes along: the context is longer than the window. Side information:
position in the window (sinusoidal), a learned embedding per
variable, calendar features (hour of day, day of week; zeros for numeric time), the
covariates (``NetworkConfig.covariates`` rows after the calendar's four, see
:mod:`tsdiff.covariates`) and the conditioning mask. The diffusion step enters as a
sinusoidal embedding + MLP. With ``NetworkConfig.tokens = "steps"`` the cell blocks give
way to :class:`tsdiff.step_tokens.StepTokens` (one token per time step); the prior, the
lags, the step embedding and ``x_0 = prior + correction`` are shared.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tsdiff.config import NetworkConfig
from tsdiff.layers import AxialAttention, sinusoidal
from tsdiff.prior import PriorNet, QuantilePriorNet
from tsdiff.step_tokens import StepTokens

N_CALENDAR = 4  # sin/cos hour of day, sin/cos day of week


@dataclass(frozen=True)
class Conditioning:
    """The network's view of the observations of W windows (see ``Denoiser.condition``).

    shown, mask, prior (W, K, L); sides: per block (W, K, L, 2C) side information;
    lagged (W, K, L, C): the embedded lag features, None without lags; tokens
    (W, L, D): with step tokens, the observations' share of each token (and no sides).
    """

    shown: torch.Tensor
    mask: torch.Tensor
    prior: torch.Tensor
    sides: tuple[torch.Tensor, ...]
    lagged: torch.Tensor | None = None
    tokens: torch.Tensor | None = None


@dataclass(frozen=True)
class _View:
    """What the prior and the side information are built from (see ``Denoiser._view``).

    shown, mask, prior (W, K, L); ext, ext_mask (W, K, H + L): history then window;
    time_feat (W, L, Dt + 4 + covariates) in the network's dtype; interp (W, K, L): the
    interpolation the learned prior corrects.
    """

    shown: torch.Tensor
    mask: torch.Tensor
    ext: torch.Tensor
    ext_mask: torch.Tensor
    prior: torch.Tensor
    time_feat: torch.Tensor
    interp: torch.Tensor


def interpolate(values: torch.Tensor, mask: torch.Tensor, season: int = 0) -> torch.Tensor:
    """Linear interpolation along time of the shown cells, per variable → (B, K, L).

    Flat beyond the first/last shown value; 0 (the training mean, after scaling) for a
    variable with nothing shown. A cheap prior the network refines (as in PriSTI),
    which makes short training runs start from interpolation quality, not from zero.
    With ``season`` > 0, cells after the last shown value (a forecast, a sensor that
    stopped) take the prior of the cell one season earlier when there is one: seasonal
    naive, the forecast to beat on daily-cycle data, instead of a flat line.
    """
    b, k, length = values.shape
    m = mask.bool()
    idx = torch.arange(length, device=values.device).expand(b, k, length)
    prev = torch.where(m, idx, -1).cummax(dim=-1).values  # last shown index <= t, or -1
    rev = torch.where(m, length - 1 - idx, -1).flip(-1).cummax(dim=-1).values.flip(-1)
    nxt = torch.where(rev >= 0, length - 1 - rev, -1)  # first shown index >= t, or -1
    has_p, has_n = prev >= 0, nxt >= 0
    vp = values.gather(-1, prev.clamp(min=0))
    vn = values.gather(-1, nxt.clamp(min=0))
    span = (nxt - prev).clamp(min=1).to(values.dtype)
    w = ((idx - prev).to(values.dtype) / span).clamp(0, 1)
    both = vp + w * (vn - vp)
    out = torch.where(has_p & has_n, both, torch.where(has_p, vp, vn))
    out = torch.where(has_p | has_n, out, torch.zeros_like(out))
    if 0 < season < length:
        trailing = has_p & ~has_n  # (B, K, L): after the last shown value
        cols = list(out.unbind(-1))
        for t in range(season, length):  # in order, so a long tail repeats the season
            cols[t] = torch.where(trailing[..., t], cols[t - season], cols[t])
        out = torch.stack(cols, dim=-1)
    return out


class ResidualBlock(nn.Module):
    """Step embedding → time attention → variable attention → gated unit with side info."""

    def __init__(self, cfg: NetworkConfig) -> None:
        super().__init__()
        c = cfg.channels
        self.step_proj = nn.Linear(c, c)
        self.time_layer = AxialAttention(c, cfg.heads, cfg.ff_mult, cfg.dropout)
        self.var_layer = AxialAttention(c, cfg.heads, cfg.ff_mult, cfg.dropout)
        self.mid = nn.Linear(c, 2 * c)
        self.out = nn.Linear(c, 2 * c)

    def forward(
        self, x: torch.Tensor, step: torch.Tensor, side: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # x (B, K, L, C) with B = W·n rows; step (B, C); side (W, K, L, 2C), shared by
        # the n consecutive rows of each window
        b, k, length, c = x.shape
        h = x + self.step_proj(step)[:, None, None, :]
        h = self.time_layer(h.reshape(b * k, length, c)).view(b, k, length, c)
        if k > 1:
            h = h.transpose(1, 2).reshape(b * length, k, c)
            h = self.var_layer(h).view(b, length, k, c).transpose(1, 2)
        w = side.shape[0]
        mid = self.mid(h).view(w, b // w, k, length, 2 * c) + side[:, None]
        gate, filt = mid.view(b, k, length, 2 * c).chunk(2, dim=-1)
        res, skip = self.out(torch.sigmoid(gate) * torch.tanh(filt)).chunk(2, dim=-1)
        return (x + res) / math.sqrt(2.0), skip


class Denoiser(nn.Module):
    """Denoising network for masked multivariate windows (predicts x_0 or ε).

    ``n_vars`` fixes the variable embedding table: a model is tied to the variables
    it was trained on (their names live with the saved model, not here).
    """

    def __init__(self, cfg: NetworkConfig, n_vars: int, prediction: str = "x0") -> None:
        super().__init__()
        self.cfg = cfg
        self.n_vars = n_vars
        self.prediction = prediction
        c, nb = cfg.channels, cfg.blocks
        time_dim = cfg.time_emb_dim + N_CALENDAR + cfg.covariates
        self.step_tokens: StepTokens | None = None  # one token per time step (None: per cell)
        if cfg.tokens == "steps":
            self.step_mlp = self._step_mlp(cfg)
            self.step_tokens = StepTokens(cfg, n_vars, time_dim)
            self.prior_net = PriorNet(cfg, n_vars, time_dim) if cfg.prior_layers else None
            self.quantile_net = self._quantile_net(cfg, n_vars, time_dim)
            return
        # one token per cell (modules made in this order: seeded weights depend on it)
        self.input_proj = nn.Linear(3, c)
        # lag values and their masks, embedded once per window and added to the input
        self.lag_proj = nn.Linear(2 * len(cfg.lags), c) if cfg.lags else None  # None: no lags
        self.step_mlp = self._step_mlp(cfg)
        self.var_emb = nn.Embedding(n_vars, cfg.var_emb_dim)
        # side information, projected once for all blocks and added per block
        self.side_time = nn.Linear(time_dim, nb * 2 * c)
        self.side_var = nn.Linear(cfg.var_emb_dim, nb * 2 * c, bias=False)
        self.side_mask = nn.Parameter(torch.zeros(nb * 2 * c))
        self.blocks = nn.ModuleList(ResidualBlock(cfg) for _ in range(nb))
        self.head = nn.Sequential(nn.Linear(c, c), nn.ReLU(), nn.Linear(c, 1))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)
        nn.init.normal_(self.side_mask, std=0.02)
        # a learned prior (None: the interpolation is the prior)
        self.prior_net = PriorNet(cfg, n_vars, time_dim) if cfg.prior_layers else None
        self.quantile_net = self._quantile_net(cfg, n_vars, time_dim)

    @staticmethod
    def _quantile_net(cfg: NetworkConfig, n_vars: int, time_dim: int) -> QuantilePriorNet | None:
        """The quantile prior (``cfg.prior_quantiles``), made last: the other modules'
        seeded weights do not depend on whether it exists."""
        return QuantilePriorNet(cfg, n_vars, time_dim) if cfg.prior_quantiles else None

    @staticmethod
    def _step_mlp(cfg: NetworkConfig) -> nn.Sequential:
        """The diffusion step's sinusoidal embedding → (·, C)."""
        c = cfg.channels
        return nn.Sequential(nn.Linear(cfg.step_emb_dim, c), nn.SiLU(), nn.Linear(c, c), nn.SiLU())

    @property
    def dtype(self) -> torch.dtype:
        """The network's arithmetic (float32, or bfloat16 for a low-precision copy)."""
        return self.step_mlp[0].weight.dtype

    def frozen_parts(self) -> dict[str, nn.Module]:
        """The learned priors (by attribute name) that are frozen: trained in their own
        phase, then fixed while the denoiser trains."""
        parts = {"prior_net": self.prior_net, "quantile_net": self.quantile_net}
        return {
            name: part
            for name, part in parts.items()
            if part is not None and not any(p.requires_grad for p in part.parameters())
        }

    def train(self, mode: bool = True) -> Denoiser:
        """As ``nn.Module.train``, but a frozen learned prior stays in eval mode (no
        dropout): the denoiser learns to refine the prior it will see when sampling."""
        super().train(mode)
        for part in self.frozen_parts().values():
            part.eval()
        return self

    def condition(
        self,
        cond_values: torch.Tensor,
        cond_mask: torch.Tensor,
        calendar: torch.Tensor,
        history: torch.Tensor | None = None,
        history_observed: torch.Tensor | None = None,
    ) -> Conditioning:
        """Everything that depends on the observations only, not on x_t or t.

        A sampler computes it once per window and reuses it across every reverse step
        and every sample of that window.

        cond_values (W, K, L) normalised observations (any value where the mask is 0);
        cond_mask (W, K, L) 1 = shown; calendar (W, 4 + covariates, L); history, history_observed
        (W, K, H): the H = ``cfg.history_steps`` steps before each window, shown where the
        mask is 1 (None: nothing known there).
        """
        v = self._view(cond_values, cond_mask, calendar, history, history_observed)
        k = v.shown.shape[1]
        dt = self.dtype
        if self.step_tokens is not None:
            lag_feats = self._lag_features(v)
            tokens = self.step_tokens.context(
                v.shown.to(dt),
                v.mask.to(dt),
                v.prior.to(dt),
                v.time_feat,
                None if lag_feats is None else lag_feats.to(dt),
            )
            return Conditioning(v.shown, v.mask, v.prior, (), tokens=tokens)
        side_t = self.side_time(v.time_feat)[:, None]  # (W, 1, L, nb·2C)
        side_v = self.side_var(self.var_emb.weight[:k])[None, :, None]  # (1, K, 1, nb·2C)
        m_dt = v.mask.to(dt)[..., None]
        width = 2 * self.cfg.channels
        sides = []
        for i in range(len(self.blocks)):
            sl = slice(i * width, (i + 1) * width)
            sides.append(side_t[..., sl] + side_v[..., sl] + m_dt * self.side_mask[sl])
        lagged = None
        lag_feats = self._lag_features(v)
        if self.lag_proj is not None and lag_feats is not None:
            lagged = self.lag_proj(lag_feats.to(dt))  # (W, K, L, C)
        return Conditioning(v.shown, v.mask, v.prior, tuple(sides), lagged)

    def _lag_features(self, v: _View) -> torch.Tensor | None:
        """Each lag's shown value, then each lag's mask → (W, K, L, 2·lags); None without."""
        if not self.cfg.lags:
            return None
        length, h = v.shown.shape[2], self.cfg.history_steps
        # cell t at lag d reads position H + t - d of [history | window], shown cells only
        starts = [h - d for d in self.cfg.lags]
        feats = [v.ext[..., c : c + length] for c in starts]
        feats += [v.ext_mask[..., c : c + length] for c in starts]
        return torch.stack(feats, dim=-1)

    def prior(
        self,
        cond_values: torch.Tensor,
        cond_mask: torch.Tensor,
        calendar: torch.Tensor,
        history: torch.Tensor | None = None,
        history_observed: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The prior alone (W, K, L), arguments as :meth:`condition`: what training the
        learned prior needs, without the denoiser's side information."""
        return self._view(cond_values, cond_mask, calendar, history, history_observed).prior

    def prior_quantiles(
        self,
        cond_values: torch.Tensor,
        cond_mask: torch.Tensor,
        calendar: torch.Tensor,
        history: torch.Tensor | None = None,
        history_observed: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The quantile prior at ``prior.QUANTILE_LEVELS`` → (W, Q, K, L), sorted along Q;
        shown cells hold their value at every level. Arguments as :meth:`condition`."""
        if self.quantile_net is None:
            raise ValueError("the network has no quantile prior (network.prior_quantiles)")
        v = self._view(cond_values, cond_mask, calendar, history, history_observed, learned=False)
        dt = self.dtype
        corr = self.quantile_net(v.shown.to(dt), v.mask.to(dt), v.interp.to(dt), v.time_feat)
        return v.interp[:, None] + corr.to(v.interp.dtype)  # (W, Q, K, L)

    def _view(
        self,
        cond_values: torch.Tensor,
        cond_mask: torch.Tensor,
        calendar: torch.Tensor,
        history: torch.Tensor | None,
        history_observed: torch.Tensor | None,
        *,
        learned: bool = True,
    ) -> _View:
        # learned=False: the prior left as the interpolation (the quantile prior's view,
        # which does not read the learned prior: no call of its network for nothing)
        w, k, length = cond_values.shape
        h = self.cfg.history_steps
        dt = self.dtype
        m = cond_mask.to(cond_values.dtype)
        shown = cond_values * m
        ext_m, ext = m, shown  # (W, K, H + L): the history, then the window
        if h:
            hm, hv = self._history(history, history_observed, (w, k, h), shown)
            ext_m, ext = torch.cat([hm, m], dim=-1), torch.cat([hv * hm, shown], dim=-1)
        # the prior interpolates across the window's start from the history
        interp = interpolate(ext, ext_m, self.cfg.season or 0)[..., h:]  # (W, K, L), inputs' dtype
        prior = interp
        pos = sinusoidal(torch.arange(length, device=shown.device), self.cfg.time_emb_dim)
        time_feat = torch.cat(
            [pos.expand(w, length, -1), calendar.transpose(1, 2).to(pos.dtype)], dim=-1
        ).to(dt)  # (W, L, Dt + 4 + covariates)
        if learned and self.prior_net is not None:
            # the learned correction stays in the network's precision, the prior in the inputs'
            corr = self.prior_net(shown.to(dt), m.to(dt), prior.to(dt), time_feat)
            prior = prior + corr.to(prior.dtype)  # (W, K, L)
        return _View(shown, m, ext, ext_m, prior, time_feat, interp)

    @staticmethod
    def _history(
        history: torch.Tensor | None,
        history_observed: torch.Tensor | None,
        shape: tuple[int, int, int],
        like: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(mask, values) of the history, each ``shape`` = (W, K, H), in ``like``'s dtype."""
        if history is None or history_observed is None:
            zeros = like.new_zeros(shape)
            return zeros, zeros
        if tuple(history.shape) != shape or tuple(history_observed.shape) != shape:
            raise ValueError(
                f"history must be (W, K, H) = {shape} for lags up to {shape[-1]}, "
                f"got {tuple(history.shape)} and mask {tuple(history_observed.shape)}"
            )
        return history_observed.to(like.dtype), history.to(like.dtype)

    def denoise(self, x_t: torch.Tensor, t: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        """Predict x_0 (or ε) for ``x_t`` (W·n, K, L): n samples per conditioned window.

        Rows are window-major (the n samples of window 0 first); ``t`` is (W·n,).
        """
        rows, k, length = x_t.shape
        w = cond.shown.shape[0]
        if rows % w:
            raise ValueError(f"{rows} rows are not a multiple of {w} conditioned windows")
        n = rows // w

        def per_row(a: torch.Tensor) -> torch.Tensor:  # (W, ...) → (W·n, ...) as a view
            return a if n == 1 else a[:, None].expand(w, n, *a.shape[1:]).flatten(0, 1)

        dt = self.dtype
        step = self.step_mlp(sinusoidal(t, self.cfg.step_emb_dim).to(dt))  # (W·n, C)
        if cond.tokens is not None and self.step_tokens is not None:
            hidden = (x_t * (1 - per_row(cond.mask))).to(dt)  # (W·n, K, L)
            out = self.step_tokens(hidden, step, cond.tokens)
            return per_row(cond.prior) + out if self.prediction == "x0" else out
        m = per_row(cond.mask)
        inp = torch.stack([per_row(cond.shown), x_t * (1 - m), per_row(cond.prior)], dim=-1).to(
            dt
        )  # (W·n, K, L, 3)
        x = self.input_proj(inp)  # (W·n, K, L, C)
        if cond.lagged is not None:  # per window, shared by its n samples
            x = (x.view(w, n, k, length, -1) + cond.lagged[:, None]).view(rows, k, length, -1)
        x = F.relu(x)
        skips = torch.zeros_like(x)
        for block, side in zip(self.blocks, cond.sides, strict=True):
            x, skip = block(x, step, side)
            skips = skips + skip
        out = self.head(skips / math.sqrt(len(self.blocks))).squeeze(-1)  # (W·n, K, L)
        # the prior stays in the inputs' precision: a low-precision network only corrects it
        return per_row(cond.prior) + out if self.prediction == "x0" else out

    def forward(
        self,
        x_t: torch.Tensor,
        cond_values: torch.Tensor,
        cond_mask: torch.Tensor,
        t: torch.Tensor,
        calendar: torch.Tensor,
        history: torch.Tensor | None = None,
        history_observed: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict x_0 (or ε) on every cell; callers use it where ``cond_mask`` is 0.

        For x_0 the output is the interpolation prior plus a learned correction (zero
        at initialisation), so an untrained network already imputes like linear
        interpolation.

        x_t (B, K, L) noisy values; cond_values (B, K, L) normalised observations (any
        value where the mask is 0); cond_mask (B, K, L) 1 = shown; t (B,) step indices;
        calendar (B, 4 + covariates, L); history, history_observed (B, K, H) see :meth:`condition`.
        Returns (B, K, L).
        """
        cond = self.condition(cond_values, cond_mask, calendar, history, history_observed)
        return self.denoise(x_t, t, cond)
