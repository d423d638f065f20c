"""The training loop: masked denoising on windows.

Separate from the estimator (:mod:`tsdiff.model`), which turns frames into the
:class:`Windows` this loop consumes. The loss is the mean squared (``train.loss``
"mse") or absolute ("l1") error on the cells that were observed but hidden by the
masking strategy (of the predicted x_0, or of ε as in CSDI) — never on missing
cells, whose truth nobody knows.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tsdiff import metrics
from tsdiff.config import TrainConfig
from tsdiff.device import module_device
from tsdiff.masks import holdout_mask, make_mask_fn, random_mask
from tsdiff.network import Denoiser
from tsdiff.progress import BudgetBar
from tsdiff.sampling import WindowBatch, sample_windows
from tsdiff.scheduler import NoiseScheduler
from tsdiff.window_scale import window_units

EpochCallback = Callable[[dict[str, Any]], None]


@dataclass
class Windows:
    """Training windows, normalised. values (N, K, L) float32 with 0 where unobserved;
    observed (N, K, L) bool; calendar (N, 4, L) float32; history (N, K, H) float32 and
    history_observed (N, K, H) bool: the H steps before each window (H = 0 without lags),
    shown in full, as the past before a forecast origin is."""

    values: torch.Tensor
    observed: torch.Tensor
    calendar: torch.Tensor
    history: torch.Tensor
    history_observed: torch.Tensor

    def __len__(self) -> int:
        return self.values.shape[0]

    def subset(self, idx: torch.Tensor) -> Windows:
        return Windows(
            self.values[idx],
            self.observed[idx],
            self.calendar[idx],
            self.history[idx],
            self.history_observed[idx],
        )

    def to(self, device: torch.device) -> Windows:
        """The same windows on ``device`` (a no-op on the CPU)."""
        return Windows(
            self.values.to(device),
            self.observed.to(device),
            self.calendar.to(device),
            self.history.to(device),
            self.history_observed.to(device),
        )


@dataclass
class TrainResult:
    epoch_log: list[dict[str, Any]] = field(default_factory=list)
    epochs_run: int = 0
    steps_run: int = 0
    seconds: float = 0.0
    step_seconds: float = 0.0  # time in optimisation steps alone (throughput), this process
    stopped_by_budget: bool = False
    best_epoch: int = 0
    best_val_loss: float = math.inf
    best_score: float = math.inf  # the task-weighted validation CRPS (select_by "crps")
    # where the learning-rate schedule starts (epoch, step): 0 for a run from scratch; a run
    # trained on from a saved model's weights warms up and decays over its own epochs
    schedule_epoch: int = 0
    schedule_step: int = 0


def value_bounds(ws: Windows, margin: float = 0.25) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-variable (K,) range of the observed training values, widened by ``margin`` of
    its span: where sampling clamps its clean-value estimates."""
    k = ws.values.shape[1]
    v = ws.values.transpose(0, 1).reshape(k, -1)  # (K, N·L)
    o = ws.observed.transpose(0, 1).reshape(k, -1)
    inf = torch.tensor(float("inf"))
    lo = torch.where(o, v, inf).amin(dim=1)
    hi = torch.where(o, v, -inf).amax(dim=1)
    empty = ~o.any(dim=1)
    lo, hi = torch.where(empty, -5.0, lo), torch.where(empty, 5.0, hi)
    span = (hi - lo).clamp(min=1.0)
    return lo - margin * span, hi + margin * span


def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to 5% of the base rate at ``total`` steps."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps))
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(
    net: Denoiser,
    scheduler: NoiseScheduler,
    train_set: Windows,
    val_set: Windows | None,
    cfg: TrainConfig,
    *,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    callbacks: Sequence[EpochCallback] = (),
    clip: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[dict[str, torch.Tensor], TrainResult]:
    """Train ``net`` in place; return the best weights (EMA if enabled) and a record.

    With ``checkpoint`` set, the full state is written there (atomically) after every
    epoch, and ``resume=True`` continues from it: same data order, same RNG stream.
    """
    gen = torch.Generator().manual_seed(cfg.seed)
    mask_fn = make_mask_fn(cfg.masking, cfg.mix_weights, cfg.max_forecast_fraction)
    weight = loss_weights(scheduler, net.prediction, cfg).to(module_device(net))
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    ema = {k: v.detach().clone() for k, v in net.state_dict().items()}
    n = len(train_set)
    steps_per_epoch = max(1, math.ceil(n / cfg.batch_size))
    planned_epochs = cfg.epoch_cap
    result = TrainResult()
    best_state = copy.deepcopy(ema)
    start_epoch, elapsed_before = 0, 0.0

    ckpt_path = Path(checkpoint) if checkpoint else None
    if resume and ckpt_path is not None and ckpt_path.exists():
        state = torch.load(ckpt_path, weights_only=True, map_location=module_device(net))
        # the frozen parts (the learned priors) are what their own phase trained or
        # loaded: a checkpoint's copy would undo a prior trained afresh for this run
        frozen = _frozen_state(net)
        for key in ("net", "ema", "best"):
            state[key].update({k: v.clone() for k, v in frozen.items()})
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["opt"])
        ema, best_state = state["ema"], state["best"]
        gen.set_state(state["gen"].cpu())
        start_epoch = int(state["epoch"])
        planned_epochs = int(state["planned_epochs"])
        elapsed_before = float(state["seconds"])
        result.epoch_log = list(state["epoch_log"] if "epoch_log" in state else state["history"])
        result.steps_run = int(state["steps"])
        result.best_epoch = int(state["best_epoch"])
        result.best_val_loss = float(state["best_val_loss"])
        result.best_score = float(state.get("best_score", math.inf))
        result.schedule_epoch = int(state.get("schedule_epoch", 0))
        result.schedule_step = int(state.get("schedule_step", 0))
        result.epochs_run, result.seconds = start_epoch, elapsed_before  # if none is left

    budget = cfg.max_minutes * 60 if cfg.max_minutes else math.inf
    t_start = time.perf_counter() - elapsed_before
    bar = BudgetBar(
        "train",
        budget_s=budget,
        epochs=cfg.epoch_cap,
        initial_epoch=start_epoch,
        initial_s=elapsed_before,
        disable=not progress,
    )
    net.train()
    # seconds the last validation took (its loss every epoch, its sampling when it was
    # due): kept free of training steps, so that the final one fits in the budget too (a
    # 1-minute PhysioNet fit under load overran it by 23 s; a 2-minute PM2.5 fit, whose
    # budget ended before any sampled validation, by the loss's 1.3 s)
    loss_reserve = sample_reserve = 0.0
    for epoch in range(start_epoch, cfg.epoch_cap):
        t_epoch = time.perf_counter()
        order = torch.randperm(n, generator=gen)
        losses = []
        for i in range(steps_per_epoch):
            idx = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            if len(idx) == 0:
                continue
            for group in opt.param_groups:
                group["lr"] = lr_at(
                    result.steps_run - result.schedule_step,
                    (planned_epochs - result.schedule_epoch) * steps_per_epoch,
                    cfg,
                )
            loss = _loss(net, scheduler, train_set.subset(idx), mask_fn, gen, weight, cfg.loss)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
            opt.step()
            result.steps_run += 1
            _ema_update(ema, net, cfg.ema_decay, result.steps_run)
            losses.append(float(loss.detach()))
            if time.perf_counter() - t_start + loss_reserve + sample_reserve > budget:
                result.stopped_by_budget = True
                break

        result.step_seconds += time.perf_counter() - t_epoch
        elapsed = time.perf_counter() - t_start
        step_s = (time.perf_counter() - t_epoch) / max(1, len(losses))
        # the last epoch when another could not validate this one, take a step and
        # validate itself in time: the final validation then falls in this epoch
        if elapsed + 2 * loss_reserve + sample_reserve + step_s > budget:
            result.stopped_by_budget = True
        if epoch == start_epoch and math.isfinite(budget) and not result.stopped_by_budget:
            # fit the learning-rate schedule to the epochs the budget allows
            per_epoch = time.perf_counter() - t_epoch
            fits = int(max(1, (budget - elapsed) // max(per_epoch, 1e-9))) + epoch + 1
            planned_epochs = max(epoch + 1, min(cfg.epoch_cap, fits))

        record: dict[str, Any] = {
            "epoch": epoch + 1,
            "train_loss": float(np.mean(losses)) if losses else math.nan,
            "lr": opt.param_groups[0]["lr"],
            "seconds": elapsed,
        }
        last = epoch + 1 == cfg.epoch_cap or result.stopped_by_budget
        if val_set is not None and len(val_set) > 0:
            t_val = time.perf_counter()
            with _swapped(net, ema):
                record["val_loss"] = validation_loss(
                    net, scheduler, val_set, mask_fn, cfg.seed, weight=weight, kind=cfg.loss
                )
                loss_reserve = time.perf_counter() - t_val
                every, by_crps = cfg.val_crps_every, cfg.select_by == "crps"
                due = last or (every > 0 and (epoch + 1) % every == 0) or (by_crps and every == 0)
                # the budget ended the run before any epoch was scored: this epoch is
                # the only candidate, and sampling it would only overrun the budget
                sole = result.stopped_by_budget and result.best_epoch == 0
                due = due and not sole
                # sampling must not move the global generator training's dropout draws
                # from, or a resumed run would differ from an uninterrupted one
                if due:
                    with torch.random.fork_rng(devices=[]):
                        record.update(validation_crps(net, scheduler, val_set, cfg.seed, clip=clip))
                        if by_crps:
                            record.update(_task_crps(net, scheduler, val_set, cfg, record, clip))
            better_loss = record["val_loss"] < result.best_val_loss
            if better_loss:
                result.best_val_loss = record["val_loss"]
            if due:
                sample_reserve = time.perf_counter() - t_val - loss_reserve
            score = record.get("val_task_crps", math.nan)  # NaN: not measured, never wins
            better_score = by_crps and (score < result.best_score or sole)
            if better_score and not sole:
                result.best_score = score
            if better_score or (not by_crps and better_loss):
                result.best_epoch = epoch + 1
                best_state = copy.deepcopy(ema)
        else:
            best_state = copy.deepcopy(ema)
            result.best_epoch = epoch + 1
        result.epoch_log.append(record)
        result.epochs_run = epoch + 1
        result.seconds = time.perf_counter() - t_start
        for cb in callbacks:
            cb(record)
        bar.advance(
            epoch + 1, elapsed, {k: v for k, v in record.items() if "loss" in k or k == "crps"}
        )
        if ckpt_path is not None:
            _save_checkpoint(
                ckpt_path, net.state_dict(), opt, ema, best_state, gen, planned_epochs, result
            )
        if result.stopped_by_budget:
            break
    bar.close()
    return best_state, result


def _loss(
    net: Denoiser,
    scheduler: NoiseScheduler,
    batch: Windows,
    mask_fn: Callable[[torch.Tensor, torch.Generator], torch.Tensor],
    gen: torch.Generator,
    weight: torch.Tensor,
    kind: str = "mse",
) -> torch.Tensor:
    # every draw on the CPU generator (the same on any device), then the batch moves
    cond = mask_fn(batch.observed, gen)  # (B, K, L)
    t = torch.randint(0, scheduler.num_steps, (len(batch),), generator=gen)
    noise = torch.randn(batch.values.shape, generator=gen)
    device = weight.device
    batch, cond, t, noise = batch.to(device), cond.to(device), t.to(device), noise.to(device)
    target = batch.observed & ~cond  # observed but hidden: what the model must rebuild
    # in each window's units when the network scales windows: statistics of the shown cells
    _, x0, history = window_units(
        net.cfg.window_scale, batch.values, cond, batch.history, batch.history_observed
    )
    x_t = scheduler.add_noise(x0, noise, t)
    out = net(x_t, x0, cond, t, batch.calendar, history, batch.history_observed)
    diff = out - (x0 if net.prediction == "x0" else noise)  # (B, K, L)
    err = (diff.abs() if kind == "l1" else diff**2) * target
    return (err * weight[t].view(-1, 1, 1)).sum() / target.sum().clamp(min=1)


def loss_weights(scheduler: NoiseScheduler, prediction: str, cfg: TrainConfig) -> torch.Tensor:
    """Weight of each diffusion step's loss, (T,).

    Min-SNR-γ: the x_0 error of step t counts min(SNR_t, γ) (for ε, min(SNR_t, γ)/SNR_t),
    so the nearly noise-free steps, whose x_0 is trivial, do not dominate, and the
    nearly pure-noise steps, where x_0 is the interpolation prior, matter little.
    """
    abar = scheduler.alphas_cumprod
    snr = (abar / (1 - abar)).float()
    if cfg.loss_weighting == "uniform":
        return torch.ones_like(snr)
    w = snr.clamp(max=cfg.snr_gamma)
    return w if prediction == "x0" else w / snr


def validation_loss(
    net: Denoiser,
    scheduler: NoiseScheduler,
    val_set: Windows,
    mask_fn: Callable[[torch.Tensor, torch.Generator], torch.Tensor],
    seed: int,
    batch_size: int = 64,
    weight: torch.Tensor | None = None,
    kind: str = "mse",
) -> float:
    """Loss (``kind``, as trained) with fixed masks, steps and noise, so epochs compare
    like with like."""
    gen = torch.Generator().manual_seed(seed + 7919)
    w = weight if weight is not None else torch.ones(scheduler.num_steps)
    w = w.to(module_device(net))
    total, count = 0.0, 0
    was = net.training
    net.eval()
    with torch.inference_mode():
        for lo in range(0, len(val_set), batch_size):
            b = val_set.subset(torch.arange(lo, min(len(val_set), lo + batch_size)))
            total += float(_loss(net, scheduler, b, mask_fn, gen, w, kind)) * len(b)
            count += len(b)
    net.train(was)
    return total / max(count, 1)


def validation_crps(
    net: Denoiser,
    scheduler: NoiseScheduler,
    val_set: Windows,
    seed: int,
    max_windows: int = 32,
    n_samples: int = 8,
    steps: int = 5,
    missing: float = 0.1,
    clip: tuple[torch.Tensor, torch.Tensor] | None = None,
    forecast: int = 0,
) -> dict[str, float]:
    """A cheap sampled check on held-out cells (normalised scale): CRPS, MAE, 90% coverage.
    ``forecast`` > 0 hides each window's last ``forecast`` steps instead of ``missing``
    of its cells at random."""
    gen = torch.Generator().manual_seed(seed + 104729)
    b = val_set.subset(torch.arange(min(max_windows, len(val_set))))
    if forecast:
        future = torch.arange(b.observed.shape[-1]) >= b.observed.shape[-1] - forecast  # (L,)
        hidden = b.observed & future
    else:
        hidden = holdout_mask(b.observed, missing, gen)
    cond = b.observed & ~hidden
    if hidden.sum() == 0 and not forecast:
        hidden = b.observed & ~random_mask(b.observed, gen)
        cond = b.observed & ~hidden
    seeds = [seed + i for i in range(len(b))]
    batch = WindowBatch(b.values, cond, b.calendar, seeds, b.history, b.history_observed)
    steps = min(steps, scheduler.num_steps)  # a short diffusion has fewer steps to visit
    s = sample_windows(
        net, scheduler, batch, n_samples=n_samples, steps=steps, eta=1.0, clip=clip
    )  # (W, n, K, L)
    samples = s.permute(1, 0, 2, 3).numpy().astype(np.float64)  # (n, W, K, L)
    truth = b.values.numpy().astype(np.float64)
    mask = hidden.numpy()
    if not mask.any():
        return {}
    return {
        "val_crps": metrics.crps_quantile(samples, truth, mask),
        "val_mae": metrics.mae(np.median(samples, axis=0), truth, mask),
        "val_cov90": metrics.coverage(samples, truth, mask, 90),
    }


def forecast_weight(cfg: TrainConfig) -> float:
    """The share of forecasting among the training masks: what the task-weighted
    validation CRPS gives the forecast CRPS."""
    return cfg.forecast_share


def _task_crps(
    net: Denoiser,
    scheduler: NoiseScheduler,
    val_set: Windows,
    cfg: TrainConfig,
    record: dict[str, Any],
    clip: tuple[torch.Tensor, torch.Tensor] | None,
) -> dict[str, float]:
    """The forecast CRPS (the last ``max_forecast_fraction`` of each validation window
    hidden) and the task-weighted CRPS the checkpoint is chosen on."""
    w = forecast_weight(cfg)
    length = val_set.values.shape[-1]
    out: dict[str, float] = {}
    if w > 0:
        steps = min(length - 1, max(1, int(round(length * cfg.max_forecast_fraction))))
        got = validation_crps(net, scheduler, val_set, cfg.seed, forecast=steps, clip=clip)
        if got:
            out["val_forecast_crps"] = got["val_crps"]
    impute = record.get("val_crps", math.nan)
    forecast = out.get("val_forecast_crps", math.nan if w > 0 else 0.0)
    out["val_task_crps"] = (1 - w) * impute + w * forecast if w < 1 else forecast
    return out


def _ema_update(ema: dict[str, torch.Tensor], net: Denoiser, decay: float, step: int) -> None:
    d = min(decay, (1 + step) / (10 + step)) if decay > 0 else 0.0
    with torch.no_grad():
        for k, v in net.state_dict().items():
            if v.dtype.is_floating_point:
                ema[k].mul_(d).add_(v.detach(), alpha=1 - d)
            else:
                ema[k].copy_(v)


class _swapped:
    """Temporarily load other weights (the EMA) into the network."""

    def __init__(self, net: Denoiser, state: dict[str, torch.Tensor]) -> None:
        self.net, self.state = net, state

    def __enter__(self) -> None:
        self.saved = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
        self.net.load_state_dict(self.state)

    def __exit__(self, *exc: object) -> None:
        self.net.load_state_dict(self.saved)


def _frozen_state(net: Denoiser) -> dict[str, torch.Tensor]:
    """``net``'s state entries of its frozen parts (a learned prior, a quantile prior:
    trained in their own phase, then fixed while the denoiser trains)."""
    return {
        f"{name}.{k}": v.detach()
        for name, part in net.frozen_parts().items()
        for k, v in part.state_dict().items()
    }


def seed_checkpoint(
    path: str | Path,
    net: Denoiser,
    cfg: TrainConfig,
    *,
    epoch_log: Sequence[dict[str, Any]],
    steps: int,
    best_epoch: int,
    best_val_loss: float,
    restart_schedule: bool = False,
) -> None:
    """Write a checkpoint from which ``train(..., resume=True)`` goes on training
    ``net``'s weights (a saved model's, whose run's checkpoint was lost) as epoch
    ``len(epoch_log) + 1``: the weights, their EMA and the best so far are all ``net``'s,
    the learning rate follows the schedule from ``steps``, the optimiser's moments and
    the data order start afresh (they are not saved with a model). Why: a model trained
    for hours can be trained on without starting over. ``restart_schedule``: the rate
    warms up to ``cfg.lr`` and decays over the new run's own epochs instead (counted with
    the earlier ones, a continuation barely decays: its last 2 % of a cosine)."""
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    weights = {k: v.detach().clone() for k, v in net.state_dict().items()}
    done = len(epoch_log)
    record = TrainResult(
        epoch_log=list(epoch_log),
        epochs_run=done,
        steps_run=int(steps),
        seconds=float(epoch_log[-1].get("seconds", 0.0)) if epoch_log else 0.0,
        best_epoch=int(best_epoch),
        best_val_loss=float(best_val_loss),
        schedule_epoch=done if restart_schedule else 0,
        schedule_step=int(steps) if restart_schedule else 0,
    )
    ema = {k: v.clone() for k, v in weights.items()}  # each its own storage: the loop
    best = {k: v.clone() for k, v in weights.items()}  # updates the EMA in place
    gen = torch.Generator().manual_seed(cfg.seed + len(epoch_log))
    # the schedule's length is refitted to the budget on resuming; until then (and in a
    # run without one) the rate stays at the schedule's floor, or a restarted schedule at
    # its peak after the warm-up, as a fresh run's first epoch
    planned = max(done + 1, cfg.epoch_cap) if restart_schedule else done + 1
    _save_checkpoint(Path(path), weights, opt, ema, best, gen, planned, record)


def _save_checkpoint(
    path: Path,
    weights: dict[str, torch.Tensor],
    opt: torch.optim.Optimizer,
    ema: dict[str, torch.Tensor],
    best: dict[str, torch.Tensor],
    gen: torch.Generator,
    planned_epochs: int,
    result: TrainResult,
) -> None:
    """Write (atomically) the state ``train(..., resume=True)`` reads: the one place
    that knows the checkpoint's format, for the loop and for :func:`seed_checkpoint`."""
    state = {
        "net": weights,
        "opt": opt.state_dict(),
        "ema": ema,
        "best": best,
        "gen": gen.get_state(),
        "epoch": result.epochs_run,
        "planned_epochs": planned_epochs,
        "seconds": result.seconds,
        "epoch_log": result.epoch_log,
        "steps": result.steps_run,
        "best_epoch": result.best_epoch,
        "best_val_loss": result.best_val_loss,
        "best_score": result.best_score,
        "schedule_epoch": result.schedule_epoch,
        "schedule_step": result.schedule_step,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)
