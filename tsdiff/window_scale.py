"""Per-window scaling: the network sees each window in units of its own context.

Data are z-scored once per variable over the training data, so a quiet week and a
volatile one share one scale, and the diffusion's noise is as large in both. With
``NetworkConfig.window_scale = "standard"`` each window is further shifted and scaled by
the mean and standard deviation of what the model is shown of it (the shown cells of
the window and of the history its lags read), per variable: training's loss, the
sampler's steps and the prior all work in those units, and samples are mapped back at
the end. The noise, and so the samples' spread, then follows the level and volatility
of each window's own context, as the instance normalisation of neural forecasters
(RevIN; NeuralForecast's window scalers) does for their point forecasts.

Only shown cells enter the statistics, in training as in sampling, so nothing hidden
leaks into the units it is predicted in. A variable with fewer than ``MIN_SHOWN``
shown cells in a window keeps the global units (mean 0, scale 1); scales are at least
``MIN_SCALE`` (global standard deviations), so a flat context does not blow its noise
down to nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tsdiff.config import WINDOW_SCALES

__all__ = ["WINDOW_SCALES", "WindowScale", "fit_window_scale", "window_units"]
MIN_SHOWN = 4
MIN_SCALE = 0.1


@dataclass(frozen=True)
class WindowScale:
    """Per window and variable, the shift and scale of its units: ``loc``, ``scale``
    (W, K, 1); ``x = loc + scale·u``."""

    loc: torch.Tensor
    scale: torch.Tensor

    def to_units(self, x: torch.Tensor) -> torch.Tensor:
        """(W, K, ·) values → the window's units."""
        return (x - self.loc) / self.scale

    def from_units(self, u: torch.Tensor) -> torch.Tensor:
        """(W, K, ·) values in the window's units → normalised (global) units."""
        return self.loc + self.scale * u

    def per_row(self, n: int) -> WindowScale:
        """The same for W·n rows, window-major (n samples of each window)."""
        return WindowScale(self.loc.repeat_interleave(n, 0), self.scale.repeat_interleave(n, 0))


def fit_window_scale(
    values: torch.Tensor,
    shown: torch.Tensor,
    history: torch.Tensor | None = None,
    history_observed: torch.Tensor | None = None,
) -> WindowScale:
    """Mean and standard deviation of the shown cells of each window (W, K, L), with its
    history (W, K, H) where given; ``shown`` and ``history_observed`` are bool masks."""
    v, m = values.float(), shown.bool()
    if history is not None and history_observed is not None and history.shape[-1]:
        v = torch.cat([history.float(), v], dim=-1)
        m = torch.cat([history_observed.bool(), m], dim=-1)
    w = m.float()
    count = w.sum(dim=-1, keepdim=True)  # (W, K, 1)
    v = torch.where(m, v, torch.zeros_like(v))  # unshown cells hold anything
    mean = v.sum(dim=-1, keepdim=True) / count.clamp(min=1)
    var = ((v - mean) ** 2 * w).sum(dim=-1, keepdim=True) / (count - 1).clamp(min=1)
    enough = count >= MIN_SHOWN
    loc = torch.where(enough, mean, torch.zeros_like(mean))
    scale = torch.where(enough, var.sqrt().clamp(min=MIN_SCALE), torch.ones_like(mean))
    return WindowScale(loc, scale)


def window_units(
    kind: str,
    values: torch.Tensor,
    shown: torch.Tensor,
    history: torch.Tensor | None = None,
    history_observed: torch.Tensor | None = None,
) -> tuple[WindowScale | None, torch.Tensor, torch.Tensor | None]:
    """``values`` (W, K, L) and ``history`` (W, K, H) in each window's units under
    ``kind`` (``NetworkConfig.window_scale``), with the scale that maps back; None and
    the inputs unchanged for "none"."""
    if kind == "none":
        return None, values, history
    ws = fit_window_scale(values, shown, history, history_observed)
    hist = None if history is None else ws.to_units(history.float()).to(history.dtype)
    return ws, ws.to_units(values.float()).to(values.dtype), hist
