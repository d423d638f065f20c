"""Training the learned prior alone, before the denoiser (see :mod:`tsdiff.prior`).

The prior is a deterministic imputer: it learns to rebuild observed cells that the
masking strategy hid, with an L1 loss (the median is what the benchmarks score). It is
cheap, so it gets many epochs in a small share of the budget; it keeps the weights of
its best validation MAE (on fixed masks) and stops when validation stops improving.
It is then frozen: the denoiser learns to refine a prior that no longer moves. A
quantile prior (``network.prior_quantiles``) trains next, from the prior's weights, by
pinball loss (:func:`train_quantile_prior`), and is frozen too.
"""

from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tsdiff.config import TrainConfig
from tsdiff.device import module_device
from tsdiff.masks import MaskFn, make_mask_fn
from tsdiff.network import Denoiser
from tsdiff.prior import QUANTILE_LEVELS
from tsdiff.progress import BudgetBar
from tsdiff.training import Windows
from tsdiff.window_scale import window_units


@dataclass
class PriorResult:
    """What the prior's training did: per-epoch records and the chosen epoch. For the
    quantile prior (``metric`` "pinball") the two validation numbers are its pinball
    loss: at the end, and where it started (``interp_val_mae``)."""

    epoch_log: list[dict[str, Any]] = field(default_factory=list)
    epochs_run: int = 0
    seconds: float = 0.0
    best_epoch: int = 0
    best_val_mae: float = math.inf
    interp_val_mae: float = math.nan  # the interpolation's MAE on the same cells
    metric: str = "mae"

    def to_dict(self) -> dict[str, Any]:
        def num(x: float) -> float | None:
            return x if math.isfinite(x) else None

        start = "interp_val_mae" if self.metric == "mae" else f"start_val_{self.metric}"
        return {
            "epochs_run": self.epochs_run,
            "seconds": round(self.seconds, 2),
            "best_epoch": self.best_epoch,
            f"best_val_{self.metric}": num(self.best_val_mae),
            start: num(self.interp_val_mae),
        }


def train_prior(
    net: Denoiser,
    train_set: Windows,
    val_set: Windows | None,
    cfg: TrainConfig,
    *,
    minutes: float | None = None,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
) -> PriorResult:
    """Train ``net.prior_net`` in place for at most ``minutes`` (or ``cfg.prior_epochs``),
    load its best weights and freeze them. ``checkpoint``: where the finished prior is
    kept, so that ``resume`` skips this phase."""
    prior = net.prior_net
    if prior is None:
        raise ValueError("the network has no learned prior (network.prior_layers = 0)")
    ckpt = Path(checkpoint) if checkpoint else None
    if resume and ckpt is not None and ckpt.exists():
        return _resumed(net, prior, ckpt, "prior")

    # dropout draws from the global generator: seed it, so that a fit is reproducible
    with torch.random.fork_rng():
        torch.manual_seed(cfg.seed + 1)
        result, best = _fit(net, train_set, val_set, cfg, minutes, progress)
    return _finished(prior, best, result, ckpt, "prior")


def _resumed(net: Denoiser, part: torch.nn.Module, ckpt: Path, key: str) -> PriorResult:
    """A phase finished in an earlier run: ``part``'s weights (``key`` in the checkpoint)
    loaded and frozen, and that run's record."""
    state = torch.load(ckpt, weights_only=True, map_location=module_device(net))
    part.load_state_dict(state[key])
    _freeze(part)
    return PriorResult(**state["result"])


def _finished(
    part: torch.nn.Module,
    best: dict[str, torch.Tensor],
    result: PriorResult,
    ckpt: Path | None,
    key: str,
) -> PriorResult:
    """``part`` with its ``best`` weights, frozen, and kept (atomically) in ``ckpt``."""
    part.load_state_dict(best)
    _freeze(part)
    if ckpt is not None:
        keep_phase(ckpt, part, result, key)
    return result


def keep_phase(ckpt: str | Path, part: torch.nn.Module, result: PriorResult, key: str) -> None:
    """Write (atomically) the checkpoint of a finished phase (``key`` "prior" or
    "quantiles"), from which a resumed fit loads ``part`` instead of training it."""
    ckpt = Path(ckpt)
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    tmp = ckpt.with_name(ckpt.name + f".tmp{os.getpid()}")
    torch.save({key: part.state_dict(), "result": result.__dict__}, tmp)
    os.replace(tmp, ckpt)


def continue_prior(
    net: Denoiser,
    train_set: Windows,
    val_set: Windows,
    cfg: TrainConfig,
    *,
    minutes: float | None = None,
    progress: bool = False,
) -> tuple[float, PriorResult]:
    """Train a trained (frozen) prior on from its weights with ``cfg.prior_lr`` and
    ``cfg.prior_patience``, keep its best validation MAE (the weights it started from
    unless beaten) and freeze it again; returns the validation MAE it started from and
    the record. Why: a prior stopped by a short patience at a high learning rate
    (physionet-vitals: epoch 37 of a 400-minute run) still improves at a lower one,
    and the denoiser, which refines the prior, stays as trained."""
    prior = net.prior_net
    if prior is None:
        raise ValueError("the network has no learned prior (network.prior_layers = 0)")
    for p in prior.parameters():
        p.requires_grad_(True)
    with torch.random.fork_rng():
        torch.manual_seed(cfg.seed + 11)
        result, best = _fit(net, train_set, val_set, cfg, minutes, progress, from_current=True)
    prior.load_state_dict(best)
    _freeze(prior)
    return result.interp_val_mae, result


def train_quantile_prior(
    net: Denoiser,
    train_set: Windows,
    val_set: Windows | None,
    cfg: TrainConfig,
    *,
    minutes: float | None = None,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    from_prior: bool = True,
) -> PriorResult:
    """Train ``net.quantile_net`` from the trained prior's weights (or, ``from_prior``
    False, on from its own, keeping them unless beaten) (a third of
    ``cfg.prior_lr``; ``cfg.prior_epochs``, ``cfg.prior_patience``) by pinball loss over
    :data:`tsdiff.prior.QUANTILE_LEVELS`, keep its best validation pinball loss and
    freeze it (the record's ``metric`` is "pinball").
    ``checkpoint``/``resume`` as :func:`train_prior`."""
    qnet, prior = net.quantile_net, net.prior_net
    if qnet is None or prior is None:
        raise ValueError("the network has no quantile prior (network.prior_quantiles)")
    ckpt = Path(checkpoint) if checkpoint else None
    if resume and ckpt is not None and ckpt.exists():
        return _resumed(net, qnet, ckpt, "quantiles")
    if from_prior:
        qnet.from_prior(prior)
    for p in qnet.parameters():
        p.requires_grad_(True)
    with torch.random.fork_rng():
        torch.manual_seed(cfg.seed + 17)
        result, best = _fit(net, train_set, val_set, cfg, minutes, progress, quantiles=True)
    return _finished(qnet, best, result, ckpt, "quantiles")


def _fit(
    net: Denoiser,
    train_set: Windows,
    val_set: Windows | None,
    cfg: TrainConfig,
    minutes: float | None,
    progress: bool,
    *,
    from_current: bool = False,
    quantiles: bool = False,
) -> tuple[PriorResult, dict[str, torch.Tensor]]:
    """The epochs of :func:`train_prior`; returns the record and the best weights.
    ``from_current``: the weights to beat are the prior's own (``interp_val_mae`` then
    records their validation MAE), not the interpolation's. ``quantiles``: train the
    quantile prior instead, by pinball loss, from its current weights."""
    prior = net.quantile_net if quantiles else net.prior_net
    assert prior is not None
    error = _pinball_error if quantiles else _abs_error
    from_current = from_current or quantiles
    lr = cfg.prior_lr / 3 if quantiles else cfg.prior_lr
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    mask_fn = make_mask_fn(cfg.masking, cfg.mix_weights, cfg.max_forecast_fraction)
    params = list(prior.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay)
    val = _fixed_val(val_set, mask_fn, cfg.seed) if val_set is not None and len(val_set) else None
    result = PriorResult(metric="pinball" if quantiles else "mae")
    best = copy.deepcopy(prior.state_dict())
    if val is not None and from_current:
        result.interp_val_mae = result.best_val_mae = _val_error(net, val, error)
    elif val is not None:
        # the untrained prior is the interpolation: it stays unless training beats it
        result.interp_val_mae = _interp_mae(net, val)
        best = _zero_head(copy.deepcopy(best))
        result.best_val_mae = result.interp_val_mae
    budget = minutes * 60 if minutes else math.inf
    n, bs = len(train_set), cfg.batch_size
    t0, stale, step = time.perf_counter(), 0, 0
    bar = BudgetBar(
        "quantiles" if quantiles else "prior",
        budget_s=budget,
        epochs=cfg.prior_epochs,
        disable=not progress,
    )
    for epoch in range(cfg.prior_epochs):
        net.train()
        order = torch.randperm(n, generator=gen)
        total, count = 0.0, 0
        for lo in range(0, n, bs):
            b = train_set.subset(order[lo : lo + bs])
            for group in opt.param_groups:  # short linear warm-up, then constant (as SAITS)
                group["lr"] = lr * min(1.0, (step + 1) / max(cfg.warmup_steps, 1))
            cond = mask_fn(b.observed, gen)
            err, cells = error(net, b, cond)
            loss = err / cells.clamp(min=1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            step += 1
            total, count = total + float(loss.detach()), count + 1
            if time.perf_counter() - t0 > budget:
                break
        record: dict[str, Any] = {
            "epoch": epoch + 1,
            f"train_{result.metric}": total / max(count, 1),
        }
        if val is not None:
            got = record[f"val_{result.metric}"] = _val_error(net, val, error)
            if got < result.best_val_mae:
                result.best_val_mae, result.best_epoch, stale = got, epoch + 1, 0
                best = copy.deepcopy(prior.state_dict())
            else:
                stale += 1
        else:
            best, result.best_epoch = copy.deepcopy(prior.state_dict()), epoch + 1
        result.epoch_log.append(record)
        result.epochs_run = epoch + 1
        bar.advance(
            epoch + 1, time.perf_counter() - t0, {k: v for k, v in record.items() if k != "epoch"}
        )
        if time.perf_counter() - t0 > budget or stale >= cfg.prior_patience:
            break
    bar.close()
    result.seconds = time.perf_counter() - t0
    return result, best


def _freeze(module: torch.nn.Module) -> None:
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)


def _abs_error(net: Denoiser, b: Windows, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(Σ |prior − truth|, cell count) over the observed cells that ``cond`` hides."""
    device = module_device(net)
    b, cond = b.to(device), cond.to(device)  # drawn on the CPU, computed where the net is
    target = b.observed & ~cond  # (B, K, L)
    ws, values, history = window_units(
        net.cfg.window_scale, b.values, cond, b.history, b.history_observed
    )
    pred = net.prior(values, cond, b.calendar, history, b.history_observed)
    if ws is not None:
        pred = ws.from_units(pred)
    return ((pred - b.values).abs() * target).sum(), target.sum()


def _pinball_error(
    net: Denoiser, b: Windows, cond: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(Σ pinball loss of the quantile prior averaged over its levels, cell count) over
    the observed cells that ``cond`` hides: twice it, per cell, approximates the CRPS."""
    device = module_device(net)
    b, cond = b.to(device), cond.to(device)
    target = (b.observed & ~cond)[:, None]  # (B, 1, K, L)
    ws, values, history = window_units(
        net.cfg.window_scale, b.values, cond, b.history, b.history_observed
    )
    q = net.prior_quantiles(values, cond, b.calendar, history, b.history_observed)
    if ws is not None:  # levels first, so the windows' (B, K, 1) units broadcast
        q = ws.from_units(q.transpose(0, 1)).transpose(0, 1)
    lv = torch.tensor(QUANTILE_LEVELS, device=device, dtype=q.dtype).view(1, -1, 1, 1)
    e = b.values[:, None] - q  # (B, Q, K, L)
    loss = torch.maximum(lv * e, (lv - 1) * e).mean(dim=1, keepdim=True)
    return (loss * target).sum(), target.sum()


@dataclass
class _Val:
    batches: list[tuple[Windows, torch.Tensor]]  # windows and their fixed condition masks


def _fixed_val(val_set: Windows, mask_fn: MaskFn, seed: int, batch: int = 64) -> _Val:
    gen = torch.Generator().manual_seed(seed + 7919)
    out = []
    for lo in range(0, len(val_set), batch):
        b = val_set.subset(torch.arange(lo, min(len(val_set), lo + batch)))
        out.append((b, mask_fn(b.observed, gen)))
    return _Val(out)


def _val_mae(net: Denoiser, val: _Val) -> float:
    return _val_error(net, val, _abs_error)


def _val_error(net: Denoiser, val: _Val, error: Any) -> float:
    """``error`` (Σ, count) per cell over the fixed validation masks."""
    was = net.training
    net.eval()
    err, cells = 0.0, 0
    with torch.inference_mode():
        for b, cond in val.batches:
            e, c = error(net, b, cond)
            err, cells = err + float(e), cells + int(c)
    net.train(was)
    return err / max(cells, 1)


def _zero_head(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A prior's weights with a zero head: its output is then the interpolation."""
    for name in ("head.weight", "head.bias"):
        state[name] = torch.zeros_like(state[name])
    return state


def _interp_mae(net: Denoiser, val: _Val) -> float:
    """The validation MAE of the untrained prior: the interpolation it starts from."""
    assert net.prior_net is not None
    saved = copy.deepcopy(net.prior_net.state_dict())
    net.prior_net.load_state_dict(_zero_head(copy.deepcopy(saved)))
    try:
        return _val_mae(net, val)
    finally:
        net.prior_net.load_state_dict(saved)
