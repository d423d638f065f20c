from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from tsdiff.config import DiffusionConfig, NetworkConfig, TrainConfig
from tsdiff.network import Denoiser
from tsdiff.scheduler import NoiseScheduler
from tsdiff.training import (
    Windows,
    forecast_weight,
    loss_weights,
    lr_at,
    seed_checkpoint,
    train,
    value_bounds,
)

NET = NetworkConfig(channels=8, blocks=1, heads=2, step_emb_dim=8, time_emb_dim=8)


def windows(n=24, k=3, length=12, seed=0) -> Windows:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(length).float()
    base = torch.sin(t / 2)[None, None] * torch.randn(n, k, 1, generator=g)
    observed = torch.rand(n, k, length, generator=g) < 0.7
    values = torch.where(observed, base, 0.0)
    empty = torch.zeros(n, k, 0)  # no lags: no history
    return Windows(values, observed, torch.zeros(n, 4, length), empty, empty.bool())


def test_min_snr_weights():
    sch = NoiseScheduler(DiffusionConfig())
    abar = sch.alphas_cumprod
    snr = (abar / (1 - abar)).float()
    w = loss_weights(sch, "x0", TrainConfig())
    assert torch.allclose(w, snr.clamp(max=5.0))
    w_eps = loss_weights(sch, "eps", TrainConfig())
    assert torch.allclose(w_eps, snr.clamp(max=5.0) / snr)
    assert torch.equal(
        loss_weights(sch, "x0", TrainConfig(loss_weighting="uniform")), torch.ones(50)
    )


def test_lr_warmup_then_cosine_to_five_percent():
    cfg = TrainConfig(lr=1e-3, warmup_steps=10)
    assert lr_at(0, 100, cfg) == 1e-4
    assert math.isclose(lr_at(10, 100, cfg), 1e-3)
    assert math.isclose(lr_at(100, 100, cfg), 5e-5)
    assert lr_at(40, 100, cfg) > lr_at(60, 100, cfg)


def test_value_bounds_cover_observed_values():
    ws = windows()
    lo, hi = value_bounds(ws, margin=0.0)
    obs_vals = torch.where(ws.observed, ws.values, float("nan"))
    assert torch.allclose(
        lo,
        torch.from_numpy(obs_vals.numpy()).transpose(0, 1).reshape(3, -1).nan_to_num(1e9).amin(1),
    )
    assert (hi >= lo).all()


def _net() -> Denoiser:
    torch.manual_seed(0)
    return Denoiser(NET, 3)


def test_training_reduces_loss_and_keeps_best():
    cfg = TrainConfig(
        epochs=12, batch_size=8, lr=3e-3, warmup_steps=2, val_crps_every=0, select_by="loss"
    )
    net, sch = _net(), NoiseScheduler(DiffusionConfig(num_steps=20))
    best, res = train(net, sch, windows(), windows(8, seed=1), cfg, progress=False)
    losses = [h["val_loss"] for h in res.epoch_log]
    train_losses = [h["train_loss"] for h in res.epoch_log]
    assert res.epochs_run == 12 and train_losses[-1] < train_losses[0]
    assert res.best_val_loss == min(losses) and res.best_epoch == losses.index(min(losses)) + 1
    assert set(best) == set(net.state_dict())


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    sch = NoiseScheduler(DiffusionConfig(num_steps=20))
    tr, va = windows(), windows(8, seed=1)
    # the best weights by validation loss (epoch 1 here, before the two runs' schedules
    # part): the interrupted run was planned for 2 epochs, so its later epochs differ
    full_cfg = TrainConfig(
        epochs=3, batch_size=8, warmup_steps=2, val_crps_every=0, select_by="loss"
    )
    straight, _ = train(_net(), sch, tr, va, full_cfg, progress=False)

    ckpt = tmp_path / "run.ckpt"
    part_cfg = dataclasses.replace(full_cfg, epochs=2)
    train(_net(), sch, tr, va, part_cfg, checkpoint=ckpt, progress=False)
    resumed, res = train(
        _net(), sch, tr, va, full_cfg, checkpoint=ckpt, resume=True, progress=False
    )
    assert [h["epoch"] for h in res.epoch_log] == [1, 2, 3]
    for k in straight:
        assert torch.allclose(straight[k], resumed[k]), k


def test_time_budget_stops_early():
    cfg = TrainConfig(epochs=10_000, batch_size=8, max_minutes=0.02, val_crps_every=0)
    _, res = train(_net(), NoiseScheduler(DiffusionConfig()), windows(), None, cfg, progress=False)
    assert res.stopped_by_budget and res.epochs_run < 10_000 and res.seconds < 30


def test_a_budget_that_ends_the_first_epoch_keeps_it_without_sampling(monkeypatch):
    """The only candidate needs no validation CRPS: sampling it only overran the budget
    (20 s of a 1-minute PhysioNet fit), and its trained weights are kept, not the
    initial ones."""
    from tsdiff import training

    calls = []
    real = training.validation_crps
    monkeypatch.setattr(
        training, "validation_crps", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    cfg = TrainConfig(epochs=50, batch_size=8, max_minutes=1e-6, val_crps_every=0)
    assert cfg.select_by == "crps"
    net = _net()
    init = {k: v.clone() for k, v in net.state_dict().items()}
    best, res = train(
        net, NoiseScheduler(DiffusionConfig()), windows(), windows(8, seed=1), cfg, progress=False
    )
    assert res.stopped_by_budget and res.epochs_run == 1 and res.best_epoch == 1
    assert not calls and "val_task_crps" not in res.epoch_log[-1]
    assert math.isinf(res.best_score)  # nothing was scored
    assert any(not torch.equal(best[k], init[k]) for k in init)  # trained, not initial


def test_training_stops_early_enough_for_the_final_validation(monkeypatch):
    """The last sampled validation's seconds are kept free of training steps: with a
    validation of ~0.8 s and a 1.2-s budget the second epoch stops at its first step
    (without the reserve it ran whole and a third epoch began past the budget)."""
    import time

    from tsdiff import training

    def slow(*a, **k):
        time.sleep(0.4)
        return {"val_crps": 0.5, "val_mae": 0.5, "val_cov90": 0.9}

    monkeypatch.setattr(training, "validation_crps", slow)
    cfg = TrainConfig(epochs=50, batch_size=8, max_minutes=0.02, val_crps_every=0)
    _, res = train(
        _net(),
        NoiseScheduler(DiffusionConfig()),
        windows(),
        windows(8, seed=1),
        cfg,
        progress=False,
    )
    assert res.stopped_by_budget and res.epochs_run == 2
    assert res.steps_run == 3 + 1  # a whole first epoch (24 windows / 8), one step more


def test_select_by_crps_keeps_the_epoch_with_the_best_task_crps():
    cfg = TrainConfig(
        epochs=6, batch_size=8, lr=3e-3, warmup_steps=2, val_crps_every=0, select_by="crps"
    )
    net, sch = _net(), NoiseScheduler(DiffusionConfig(num_steps=20))
    best, res = train(net, sch, windows(), windows(8, seed=1), cfg, progress=False)
    w = forecast_weight(cfg)
    assert math.isclose(w, 0.2)  # the default mix: 0.2 of the masks are forecasts
    scores = []
    for h in res.epoch_log:  # every epoch scored: imputation and forecast CRPS, mixed
        want = (1 - w) * h["val_crps"] + w * h["val_forecast_crps"]
        assert math.isclose(h["val_task_crps"], want)
        scores.append(h["val_task_crps"])
    assert res.best_score == min(scores) and res.best_epoch == scores.index(min(scores)) + 1
    again, _ = train(_net(), sch, windows(), windows(8, seed=1), cfg, progress=False)
    for k in best:  # the best weights are those of that epoch, reproducibly
        assert torch.equal(best[k], again[k]), k


def test_forecast_weight_follows_the_masking():
    assert forecast_weight(TrainConfig(masking="forecast")) == 1.0
    assert forecast_weight(TrainConfig(masking="random")) == 0.0
    assert forecast_weight(TrainConfig(mix_weights=(0.2, 0.1, 0.1, 0.6))) == 0.6


def _trained_for_seeding():
    """A 3-epoch run (3 steps an epoch) whose best weights a checkpoint is seeded with."""
    sch = NoiseScheduler(DiffusionConfig(num_steps=20))
    tr, va = windows(), windows(8, seed=1)
    cfg = TrainConfig(
        epochs=3, batch_size=8, lr=3e-3, warmup_steps=2, val_crps_every=0, select_by="loss"
    )
    net = _net()
    best, res = train(net, sch, tr, va, cfg, progress=False)
    net.load_state_dict(best)
    return sch, tr, va, cfg, net, best, res


def test_seeded_checkpoint_trains_on_from_the_weights_and_keeps_them_unless_beaten(tmp_path):
    sch, tr, va, cfg, net, best, res = _trained_for_seeding()
    ckpt = tmp_path / "seeded.ckpt"
    # a best loss nothing can beat: the weights it started from are what comes back
    seed_checkpoint(
        ckpt,
        net,
        cfg,
        epoch_log=res.epoch_log,
        steps=res.steps_run,
        best_epoch=2,
        best_val_loss=-1.0,
    )
    # no epoch left: the network holds the seeded weights, untouched
    loaded = _net()
    train(loaded, sch, tr, va, cfg, checkpoint=ckpt, resume=True, progress=False)
    for k, v in best.items():
        assert torch.equal(loaded.state_dict()[k], v), k

    more = dataclasses.replace(cfg, epochs=5)
    kept, res2 = train(_net(), sch, tr, va, more, checkpoint=ckpt, resume=True, progress=False)
    assert [h["epoch"] for h in res2.epoch_log] == [1, 2, 3, 4, 5]
    assert res2.epoch_log[:3] == res.epoch_log
    assert res2.steps_run == res.steps_run // 3 * 5  # 3 steps an epoch, counted on
    assert res2.best_epoch == 2
    for k, v in best.items():
        assert torch.equal(kept[k], v), k


def test_a_restarted_schedule_warms_up_and_decays_over_the_new_epochs_alone(tmp_path):
    """Trained on from a model's weights, the rate by default continues the old run's
    schedule (its floor here); restarted, it follows a fresh warm-up and cosine over the
    epochs the new run adds, as a run from scratch of that length would."""
    sch, tr, va, cfg, net, _, res = _trained_for_seeding()
    more = dataclasses.replace(cfg, epochs=7)  # 4 more epochs of 3 steps
    lrs = {}
    for restart in (False, True):
        ckpt = tmp_path / f"seeded-{restart}.ckpt"
        seed_checkpoint(
            ckpt,
            net,
            more,
            epoch_log=res.epoch_log,
            steps=res.steps_run,
            best_epoch=res.best_epoch,
            best_val_loss=res.best_val_loss,
            restart_schedule=restart,
        )
        _, r = train(_net(), sch, tr, va, more, checkpoint=ckpt, resume=True, progress=False)
        lrs[restart] = [h["lr"] for h in r.epoch_log[3:]]  # each new epoch's last step
    # continued: the old run's steps count, on a schedule of 4 epochs (the seeded plan; a
    # budget would refit it): the end of its cosine, then its floor
    old = [lr_at(res.steps_run + 3 * e - 1, 12, more) for e in (1, 2, 3, 4)]
    assert lrs[False] == old and old[1:] == [0.05 * 3e-3] * 3
    # restarted: the last step of each new epoch on a 12-step schedule of its own
    assert lrs[True] == [lr_at(3 * e - 1, 12, more) for e in (1, 2, 3, 4)]
    assert lrs[True][0] > lrs[True][-1] > lrs[False][0] * 0.99


def test_a_resumed_run_keeps_the_prior_its_own_phase_trained(tmp_path):
    """The learned prior is trained (or loaded) before the denoiser and frozen: a resumed
    checkpoint's copy of it must not replace a prior trained afresh for this run (a run
    from a saved model with its values in another space)."""
    sch = NoiseScheduler(DiffusionConfig(num_steps=20))
    tr, va = windows(), windows(8, seed=1)
    net_cfg = dataclasses.replace(NET, prior_dim=8, prior_heads=2)
    cfg = TrainConfig(epochs=1, batch_size=8, warmup_steps=2, val_crps_every=0, select_by="loss")

    def with_prior(seed: int) -> Denoiser:
        torch.manual_seed(seed)
        net = Denoiser(net_cfg, 3)
        for p in net.prior_net.parameters():
            p.requires_grad_(False)
        return net

    ckpt = tmp_path / "run.ckpt"
    train(with_prior(0), sch, tr, va, cfg, checkpoint=ckpt, progress=False)
    fresh = with_prior(1)
    mine = {k: v.clone() for k, v in fresh.prior_net.state_dict().items()}
    more = dataclasses.replace(cfg, epochs=2)
    best, res = train(fresh, sch, tr, va, more, checkpoint=ckpt, resume=True, progress=False)
    assert res.epochs_run == 2
    saved = torch.load(ckpt, weights_only=True)
    for k, v in mine.items():
        assert torch.equal(fresh.prior_net.state_dict()[k], v), k
        assert torch.equal(best[f"prior_net.{k}"], v), k
        assert torch.allclose(saved["ema"][f"prior_net.{k}"], v, atol=1e-6), k  # EMA rounding


class _OffsetNet(Denoiser):
    """Answers every cell's x_0 with its true value plus ``offset``: a known error."""

    offset = 0.5

    def forward(self, x_t, cond_values, cond_mask, t, calendar, *rest):  # noqa: ANN001
        return cond_values + self.offset


def test_loss_kind_scores_the_hidden_cells_error_squared_or_absolute():
    from tsdiff.training import _loss

    sch = NoiseScheduler(DiffusionConfig(num_steps=20))
    weight = loss_weights(sch, "x0", TrainConfig(loss_weighting="uniform"))
    net = _OffsetNet(NET, 3)

    def hide_half(observed: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return observed & (torch.rand(observed.shape, generator=gen) < 0.5)

    def loss(kind: str, offset: float) -> float:
        net.offset = offset
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            return float(_loss(net, sch, windows(), hide_half, gen, weight, kind))

    assert loss("mse", 0.5) == pytest.approx(0.25)
    assert loss("l1", 0.5) == pytest.approx(0.5)
    assert loss("l1", -0.5) == pytest.approx(0.5)
    assert loss("mse", -2.0) == pytest.approx(4.0)
