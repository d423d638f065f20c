"""Conditional reverse diffusion: draw imputations for many windows in one batched loop.

All samples of all windows go through the network together (chunked by
``batch_cells`` to bound memory), rather than one sample per loop as CSDI's
reference does. Each window draws its noise from its own ``torch.Generator`` seeded
by the caller, so a window's samples do not depend on which other windows share its
batch: the same series gives the same answer alone, in a batch, or on a Spark worker.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from tsdiff.calibration import rescale
from tsdiff.device import module_device
from tsdiff.errors import ConfigError
from tsdiff.network import Denoiser
from tsdiff.prior import QUANTILE_LEVELS
from tsdiff.samplers import get_sampler
from tsdiff.samplers.base import Sampler
from tsdiff.samplers.options import check_sample_options
from tsdiff.scheduler import NoiseScheduler
from tsdiff.window_scale import window_units


@dataclass
class WindowBatch:
    """Normalised windows to impute.

    values (W, K, L) float32, anything where not observed; cond_mask (W, K, L) bool,
    True = observed and shown to the model; calendar (W, 4, L); seeds (W,) one noise
    seed per window; history, history_observed (W, K, H): the steps before each window
    that a network with lags reads (None: nothing known before the windows).
    """

    values: torch.Tensor
    cond_mask: torch.Tensor
    calendar: torch.Tensor
    seeds: list[int]
    history: torch.Tensor | None = None
    history_observed: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.values.shape[0]

    def rows(self, lo: int, hi: int, device: torch.device) -> WindowBatch:
        """Windows lo..hi, their tensors on ``device`` (the seeds stay numbers)."""

        def part(a: torch.Tensor | None) -> torch.Tensor | None:
            return None if a is None else a[lo:hi].to(device)

        return WindowBatch(
            part(self.values),
            part(self.cond_mask),
            part(self.calendar),
            self.seeds[lo:hi],
            part(self.history),
            part(self.history_observed),
        )


@dataclass
class Trajectory:
    """States of the reverse process at recorded steps, normalised units.

    states (W, S, m, K, L): for each window, S recorded states of its first ``m``
    samples; observed cells hold the observed values (as in the final samples), the
    other cells the sampler's current x. steps (S,): reverse-step index of each state,
    0 = before the first step (pure noise), ``len(ts)`` = the result.
    noise_std (S,): sqrt(1 - ᾱ) of each state, the share of noise it still carries
    by the forward process' definition (1 ≈ pure noise, 0 = clean).
    """

    states: torch.Tensor
    steps: list[int]
    noise_std: list[float]


def record_indices(n_states: int, record: int | Sequence[int]) -> list[int]:
    """Which of the ``n_states`` states (0 = noise, n_states - 1 = result) to keep.

    An int asks for that many evenly spaced states, always the first and the last;
    a sequence names state indices (negative ones count from the end).
    """
    last = n_states - 1
    if isinstance(record, bool):
        raise ConfigError(f"trajectory steps must be an int or a list of ints, got {record!r}")
    if isinstance(record, int):
        if record < 2:
            raise ConfigError(f"trajectory steps: ask for at least 2 states, got {record}")
        if record >= n_states:
            return list(range(n_states))
        grid = torch.linspace(0, last, record, dtype=torch.float64).round().long().tolist()
        return sorted(set(grid))
    out = set()
    for i in record:
        j = int(i)
        if j != i or not -n_states <= j <= last:
            raise ConfigError(
                f"trajectory step {i!r} is out of range: states are 0 (noise) .. {last} (result)"
            )
        out.add(j % n_states)
    if not out:
        raise ConfigError("trajectory steps: the list is empty")
    return sorted(out)


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
    spread: float | Sequence[float] = 1.0,
    record: int | Sequence[int] | None = None,
    record_samples: int = 3,
) -> torch.Tensor | tuple[torch.Tensor, Trajectory]:
    """Draw ``n_samples`` imputations per window → (W, n, K, L), observed cells kept.

    ``sampler="ddpm"`` runs every diffusion step (``steps`` is ignored);
    ``"ddim"`` runs ``steps`` evenly spaced steps with stochasticity ``eta``.
    ``clip`` = (lo, hi), each (K,), bounds every step's estimate of the clean values
    (normalised units): it keeps few-step sampling stable when ε is imprecise.
    ``precision="bfloat16"`` runs a bfloat16 copy of the network (see ``SampleConfig``).
    ``spread`` scales each cell's samples about their median at the end (a calibration
    factor fitted on validation data, see ``TSDiff.calibrate``; or one per variable, (K,));
    1 leaves them as drawn.

    ``record`` (a count of evenly spaced states, or state indices, see
    :func:`record_indices`) also returns a :class:`Trajectory` of the first
    ``record_samples`` samples per window: ``(samples, trajectory)``. Recording copies
    states and draws no extra noise, so the samples are the same as without it.
    """
    check_sample_options(n_samples=n_samples, precision=precision)
    stepper = get_sampler(sampler, scheduler, eta=eta)
    ts = stepper.set_timesteps(steps)
    w, k, length = batch.values.shape
    out = torch.empty(w, n_samples, k, length)
    per_chunk = max(1, batch_cells // max(1, n_samples * k * length))  # windows per call
    keep: list[int] = []
    traj = None
    if record is not None:
        keep = record_indices(len(ts) + 1, record)
        if record_samples < 1:
            raise ConfigError(f"record_samples must be >= 1, got {record_samples}")
        m = min(record_samples, n_samples)
        traj = torch.empty(w, len(keep), m, k, length)  # (W, S, m, K, L)

    device = module_device(net)
    factor = _spread_factor(spread, k, device)
    bounds = None
    if clip is not None:
        bounds = (
            clip[0].float().view(1, k, 1).to(device),
            clip[1].float().view(1, k, 1).to(device),
        )
    was_training = net.training
    net.eval()
    try:
        runner = net
        if precision == "bfloat16":  # a bfloat16 copy: no casts between ops, half the traffic
            runner = copy.deepcopy(net).to(torch.bfloat16)
        with torch.inference_mode():
            for lo in range(0, w, per_chunk):
                hi = min(w, lo + per_chunk)
                out[lo:hi] = _sample_chunk(
                    runner,
                    stepper,
                    batch.rows(lo, hi, device),
                    n_samples,
                    bounds,
                    keep,
                    None if traj is None else traj[lo:hi],
                    factor,
                ).cpu()
    finally:
        net.train(was_training)
    if traj is None:
        return out
    abar = scheduler.alphas_cumprod
    level = [float((1 - abar[t]).sqrt()) for t in ts] + [0.0]  # state i sits at ts[i]
    return out, Trajectory(traj, keep, [level[i] for i in keep])


def prior_windows(net: Denoiser, batch: WindowBatch, batch_cells: int = 250_000) -> torch.Tensor:
    """The network's prior of every window → (W, K, L), normalised, float32: the point
    imputation its samples refine (the learned prior, or the interpolation)."""
    return _prior_pass(net, batch, batch_cells, quantiles=False)


def quantile_windows(net: Denoiser, batch: WindowBatch, batch_cells: int = 250_000) -> torch.Tensor:
    """The quantile prior of every window → (W, Q, K, L) at ``prior.QUANTILE_LEVELS``,
    normalised, float32; shown cells hold their value at every level."""
    return _prior_pass(net, batch, batch_cells, quantiles=True)


def _prior_pass(
    net: Denoiser, batch: WindowBatch, batch_cells: int, *, quantiles: bool
) -> torch.Tensor:
    """The prior (W, K, L) or the quantile prior (W, Q, K, L) of every window, a chunk of
    ``batch_cells`` cells at a time."""
    w, k, length = batch.values.shape
    per_chunk = max(1, batch_cells // max(1, k * length))
    out = (
        torch.empty(w, len(QUANTILE_LEVELS), k, length) if quantiles else torch.empty(w, k, length)
    )
    device = module_device(net)
    was_training = net.training
    net.eval()
    try:
        with torch.inference_mode():
            for lo in range(0, w, per_chunk):
                hi = min(w, lo + per_chunk)
                b = batch.rows(lo, hi, device)
                ws, values, history = window_units(
                    net.cfg.window_scale, b.values, b.cond_mask, b.history, b.history_observed
                )
                part = net.prior_quantiles if quantiles else net.prior
                p = part(values, b.cond_mask, b.calendar, history, b.history_observed).float()
                if ws is not None:  # levels first, so the windows' (W, K, 1) units broadcast
                    p = (
                        ws.from_units(p.transpose(0, 1)).transpose(0, 1)
                        if quantiles
                        else ws.from_units(p)
                    )
                shown, vals = (b.cond_mask, b.values)
                if quantiles:
                    shown, vals = shown[:, None], vals[:, None]  # (W, 1, K, L)
                out[lo:hi] = torch.where(shown, vals, p).cpu()
    finally:
        net.train(was_training)
    return out


def _spread_factor(
    spread: float | Sequence[float], k: int, device: torch.device
) -> float | torch.Tensor:
    """A number, or per-variable factors as a (1, 1, K, 1) tensor for (W', n, K, L)."""
    if isinstance(spread, (int, float)):
        return float(spread)
    f = torch.as_tensor([float(x) for x in spread], dtype=torch.float32)
    if f.shape != (k,):
        raise ConfigError(f"spread: need one factor per variable ({k}), got {tuple(f.shape)}")
    return f.view(1, 1, k, 1).to(device)


def _sample_chunk(
    net: Denoiser,
    stepper: Sampler,
    batch: WindowBatch,
    n: int,
    clip: tuple[torch.Tensor, torch.Tensor] | None,
    keep: Sequence[int] = (),
    traj: torch.Tensor | None = None,
    spread: float | torch.Tensor = 1.0,
) -> torch.Tensor:
    """Samples of the batch's windows (W', n, K, L), on the batch's device; states listed
    in ``keep`` go to ``traj`` (CPU)."""
    w, k, length = batch.values.shape
    device = batch.values.device
    observed = batch.cond_mask[:, None]  # (W', 1, K, L)
    shown = batch.values[:, None]
    # the reverse process runs in each window's units when the network scales windows
    ws, values, history = window_units(
        net.cfg.window_scale, batch.values, batch.cond_mask, batch.history, batch.history_observed
    )
    rows_ws = None if ws is None else ws.per_row(n)
    if rows_ws is not None and clip is not None:  # (R, K, 1): the bounds in each window's units
        clip = (rows_ws.to_units(clip[0]), rows_ws.to_units(clip[1]))

    def back(x: torch.Tensor) -> torch.Tensor:  # (R, K, L) → normalised units
        return x if rows_ws is None else rows_ws.from_units(x)

    def save(i: int, x: torch.Tensor) -> None:  # x (R, K, L) → traj[:, slot] (W', m, K, L)
        if traj is None or i not in keep:
            return
        m = traj.shape[2]
        state = back(x).view(w, n, k, length)[:, :m].float()
        traj[:, keep.index(i)] = torch.where(observed, shown, state).cpu()

    gens = [torch.Generator().manual_seed(int(s)) for s in batch.seeds]

    def noise() -> torch.Tensor:  # (rows, K, L), rows = windows·n, window-major
        # drawn on the CPU: the same numbers whichever device runs the network
        return torch.cat([torch.randn(n, k, length, generator=g) for g in gens]).to(device)

    # the observations' share of the network runs once per window, not per step/sample
    cond = net.condition(values, batch.cond_mask, batch.calendar, history, batch.history_observed)
    rows = w * n
    x = noise()  # (R, K, L)
    save(0, x)
    ts, schedule = stepper.timesteps, stepper.schedule
    for i, t in enumerate(ts):
        t_vec = torch.full((rows,), t, dtype=torch.long, device=device)
        eps = net.denoise(x, t_vec, cond).float()
        if net.prediction == "x0":
            eps = schedule.eps_from_x0(x, eps, t)
        z = noise() if stepper.needs_noise(t) else None
        x = stepper.step(eps, t, x, noise=z, clip=clip).prev_sample
        if i == len(ts) - 1 and not (isinstance(spread, float) and spread == 1.0):
            x = rescale(x.view(w, n, k, length), spread, axis=1).view(rows, k, length)
        save(i + 1, x)
    x = back(x).view(w, n, k, length)
    return torch.where(observed, shown, x)
