"""Per-window scaling (``NetworkConfig.window_scale``): statistics of shown cells only,
and a network that works in each window's units answers a shifted, rescaled window
with its samples shifted and rescaled alike."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from tsdiff.config import DiffusionConfig, NetworkConfig, TrainConfig, TSDiffConfig
from tsdiff.errors import ConfigError
from tsdiff.model import TSDiff
from tsdiff.network import Denoiser
from tsdiff.sampling import WindowBatch, prior_windows, sample_windows
from tsdiff.scheduler import NoiseScheduler
from tsdiff.training import Windows, _loss, loss_weights
from tsdiff.window_scale import MIN_SCALE, MIN_SHOWN, fit_window_scale

from .conftest import tiny_config

NET = NetworkConfig(
    channels=16, blocks=1, heads=2, step_emb_dim=16, time_emb_dim=8, lags=(3,), prior_layers=0
)


def _net(window_scale: str, k: int = 3, **kw: object) -> Denoiser:
    torch.manual_seed(0)
    cfg = dataclasses.replace(NET, window_scale=window_scale, **kw)
    net = Denoiser(cfg, k)
    head = net.head if net.step_tokens is None else net.step_tokens.head
    with torch.no_grad():  # the head starts at zero (the prior alone): give it weights
        for p in head.parameters():
            p.normal_(0, 0.3)
    return net.eval()


def _batch(w: int = 2, k: int = 3, length: int = 12, a: float = 1.0, c: float = 0.0):
    g = torch.Generator().manual_seed(4)
    values = torch.randn(w, k, length, generator=g) * a + c
    shown = torch.rand(w, k, length, generator=g) < 0.7
    history = torch.randn(w, k, 3, generator=g) * a + c
    hist_obs = torch.ones(w, k, 3, dtype=torch.bool)
    cal = torch.randn(w, 4, length, generator=g)
    return WindowBatch(values, shown, cal, [1, 2][:w], history, hist_obs)


def test_statistics_come_from_shown_cells_only() -> None:
    v = torch.tensor([[[1.0, 2.0, 3.0, 4.0, 5.0, 99.0]]])
    shown = torch.tensor([[[True, True, True, True, True, False]]])
    ws = fit_window_scale(v, shown)
    assert ws.loc.item() == pytest.approx(3.0)
    assert ws.scale.item() == pytest.approx(np.std([1, 2, 3, 4, 5], ddof=1))
    hidden = v.clone()
    hidden[..., -1] = -1e6  # a hidden value changes nothing
    assert torch.equal(fit_window_scale(hidden, shown).loc, ws.loc)
    # the history counts with the window
    both = fit_window_scale(v, shown, torch.tensor([[[10.0]]]), torch.tensor([[[True]]]))
    assert both.loc.item() == pytest.approx(25 / 6)


def test_too_few_shown_cells_keep_global_units_and_flat_context_has_a_floor() -> None:
    v = torch.ones(1, 2, 8)
    shown = torch.zeros(1, 2, 8, dtype=torch.bool)
    shown[0, 0] = True  # variable 0: all shown and flat; variable 1: too few shown
    shown[0, 1, : MIN_SHOWN - 1] = True
    ws = fit_window_scale(v * 7.0, shown)
    assert ws.loc[0, 0].item() == 7.0 and ws.scale[0, 0].item() == pytest.approx(MIN_SCALE)
    assert ws.loc[0, 1].item() == 0.0 and ws.scale[0, 1].item() == 1.0


def test_window_scale_must_be_known() -> None:
    with pytest.raises(ConfigError, match="window_scale"):
        NetworkConfig(window_scale="robust")
    cfg = TSDiffConfig(network=dataclasses.replace(NET, window_scale="standard"))
    assert TSDiffConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("tokens", ["cells", "steps"])
def test_a_shifted_rescaled_window_gives_samples_shifted_and_rescaled(tokens) -> None:
    sch = NoiseScheduler(DiffusionConfig(num_steps=20))
    net = _net("standard", tokens=tokens)
    a, c = 3.0, -5.0
    base = sample_windows(net, sch, _batch(), n_samples=4, steps=5, eta=1.0)
    moved = sample_windows(net, sch, _batch(a=a, c=c), n_samples=4, steps=5, eta=1.0)
    torch.testing.assert_close(moved, a * base + c, rtol=1e-4, atol=1e-4)
    prior = prior_windows(net, _batch())
    torch.testing.assert_close(prior_windows(net, _batch(a=a, c=c)), a * prior + c)
    # without window scaling the same network does not answer so
    plain = _net("none", tokens=tokens)
    b0 = sample_windows(plain, sch, _batch(), n_samples=4, steps=5, eta=1.0)
    b1 = sample_windows(plain, sch, _batch(a=a, c=c), n_samples=4, steps=5, eta=1.0)
    assert not torch.allclose(b1, a * b0 + c, atol=1e-2)


def test_training_loss_is_the_same_for_a_shifted_rescaled_window() -> None:
    sch = NoiseScheduler(DiffusionConfig(num_steps=20))
    net = _net("standard")
    b = _batch()
    ws = Windows(b.values, b.cond_mask, b.calendar, b.history, b.history_observed)
    moved = Windows(
        b.values * 3.0 + 2.0, b.cond_mask, b.calendar, b.history * 3.0 + 2.0, b.history_observed
    )
    weight = loss_weights(sch, "x0", TrainConfig())

    def loss(w: Windows) -> float:
        def mask_fn(observed: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
            return observed & (torch.rand(observed.shape, generator=gen) < 0.6)

        with torch.no_grad():
            return float(_loss(net, sch, w, mask_fn, torch.Generator().manual_seed(0), weight))

    assert loss(moved) == pytest.approx(loss(ws), rel=1e-4)


def test_fit_save_load_predict_with_window_scale(pm25, tmp_path) -> None:
    cfg = tiny_config().replace(network={"window_scale": "standard", "lags": [24]})
    model = TSDiff(cfg).fit(pm25.iloc[:600], progress=False)
    path = model.save(tmp_path / "m")
    loaded = TSDiff.load(path)
    assert loaded.config.network.window_scale == "standard"
    a = model.forecast(pm25.iloc[:600], horizon=6, seed=3).frame
    b = loaded.forecast(pm25.iloc[:600], horizon=6, seed=3).frame
    assert a.equals(b)
    assert np.isfinite(a.select_dtypes("number").to_numpy()).all()
