"""Conditional reverse diffusion: draw imputations for many windows in one batched loop.

All samples of all windows go through the network together (chunked by
``batch_cells`` to bound memory), rather than one sample per loop as CSDI's
reference does. Each window draws its noise from its own ``torch.Generator`` seeded
by the caller, so a window's samples do not depend on which other windows share its
batch: the same series gives the same answer alone, in a batch, or on a Spark worker.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tsdiff.errors import ConfigError
from tsdiff.network import Denoiser
from tsdiff.scheduler import NoiseScheduler


@dataclass
class WindowBatch:
    """Normalised windows to impute.

    values (W, K, L) float32, anything where not observed; cond_mask (W, K, L) bool,
    True = observed and shown to the model; calendar (W, 4, L); seeds (W,) one noise
    seed per window.
    """

    values: torch.Tensor
    cond_mask: torch.Tensor
    calendar: torch.Tensor
    seeds: list[int]

    def __len__(self) -> int:
        return self.values.shape[0]


def sample_windows(
    net: Denoiser,
    scheduler: NoiseScheduler,
    batch: WindowBatch,
    *,
    n_samples: int,
    steps: int,
    sampler: str = "ddim",
    eta: float = 0.0,
    batch_cells: int = 250_000,
    clip: tuple[torch.Tensor, torch.Tensor] | None = None,
    precision: str = "float32",
) -> torch.Tensor:
    """Draw ``n_samples`` imputations per window → (W, n, K, L), observed cells kept.

    ``sampler="ddpm"`` runs every diffusion step (``steps`` is ignored);
    ``"ddim"`` runs ``steps`` evenly spaced steps with stochasticity ``eta``.
    ``clip`` = (lo, hi), each (K,), bounds every step's estimate of the clean values
    (normalised units): it keeps few-step sampling stable when ε is imprecise.
    ``precision="bfloat16"`` runs the network under autocast (see ``SampleConfig``).
    """
    if precision not in ("float32", "bfloat16"):
        raise ConfigError(f"precision must be 'float32' or 'bfloat16', got {precision!r}")
    if n_samples < 1:
        raise ConfigError(f"n_samples must be >= 1, got {n_samples}")
    if sampler == "ddpm":
        ts = list(range(scheduler.num_steps - 1, -1, -1))
    elif sampler == "ddim":
        ts = scheduler.timesteps(steps)
    else:
        raise ConfigError(f"sampler must be 'ddim' or 'ddpm', got {sampler!r}")
    w, k, length = batch.values.shape
    out = torch.empty(w, n_samples, k, length)
    per_chunk = max(1, batch_cells // max(1, n_samples * k * length))  # windows per call

    bounds = None
    if clip is not None:
        bounds = (clip[0].float().view(1, k, 1), clip[1].float().view(1, k, 1))
    was_training = net.training
    net.eval()
    try:
        device = batch.values.device.type
        autocast = torch.autocast(device, torch.bfloat16, enabled=precision == "bfloat16")
        with torch.inference_mode(), autocast:
            for lo in range(0, w, per_chunk):
                hi = min(w, lo + per_chunk)
                out[lo:hi] = _sample_chunk(
                    net, scheduler, batch, lo, hi, n_samples, ts, sampler, eta, bounds
                )
    finally:
        net.train(was_training)
    return out


def _sample_chunk(
    net: Denoiser,
    scheduler: NoiseScheduler,
    batch: WindowBatch,
    lo: int,
    hi: int,
    n: int,
    ts: list[int],
    sampler: str,
    eta: float,
    clip: tuple[torch.Tensor, torch.Tensor] | None,
) -> torch.Tensor:
    _, k, length = batch.values.shape
    gens = [torch.Generator().manual_seed(int(s)) for s in batch.seeds[lo:hi]]

    def noise() -> torch.Tensor:  # (rows, K, L), rows = windows·n, window-major
        return torch.cat([torch.randn(n, k, length, generator=g) for g in gens])

    # the observations' share of the network runs once per window, not per step/sample
    cond = net.condition(batch.values[lo:hi], batch.cond_mask[lo:hi], batch.calendar[lo:hi])
    rows = (hi - lo) * n
    x = noise()  # (R, K, L)
    for i, t in enumerate(ts):
        t_vec = torch.full((rows,), t, dtype=torch.long)
        eps = net.denoise(x, t_vec, cond).float()
        if net.prediction == "x0":
            eps = scheduler.eps_from_x0(x, eps, t)
        if sampler == "ddpm":
            z = noise() if t > 0 else None
            x = scheduler.ddpm_step(x, eps, t, z, clip)
        else:
            t_prev = ts[i + 1] if i + 1 < len(ts) else -1
            z = noise() if eta > 0 and t_prev >= 0 else None
            x = scheduler.ddim_step(x, eps, t, t_prev, eta, z, clip)
    x = x.view(hi - lo, n, k, length)
    return torch.where(batch.cond_mask[lo:hi, None], batch.values[lo:hi, None], x)
