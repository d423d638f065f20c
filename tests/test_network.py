from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from tsdiff.config import DiffusionConfig, NetworkConfig
from tsdiff.network import Denoiser, interpolate
from tsdiff.sampling import WindowBatch, sample_windows
from tsdiff.scheduler import NoiseScheduler

CFG = NetworkConfig(channels=16, blocks=2, heads=2, step_emb_dim=16, time_emb_dim=8)
TOKENS = pytest.mark.parametrize("tokens", ["cells", "steps"])  # both denoiser bodies


def inputs(b=3, k=4, length=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, k, length, generator=g)
    v = torch.randn(b, k, length, generator=g)
    m = torch.rand(b, k, length, generator=g) < 0.5
    t = torch.randint(0, 50, (b,), generator=g)
    cal = torch.randn(b, 4, length, generator=g)
    return x, v, m, t, cal


def with_head(net: Denoiser) -> Denoiser:
    """The output head starts at zero (the net returns its prior); give it weights."""
    head = net.head if net.step_tokens is None else net.step_tokens.head
    with torch.no_grad():
        for p in head.parameters():
            p.normal_(0, 0.3)
    return net.eval()


def trained_like(k: int, tokens: str = "cells") -> Denoiser:
    torch.manual_seed(0)
    return with_head(Denoiser(dataclasses.replace(CFG, tokens=tokens), k))


@TOKENS
def test_output_shape_and_univariate(tokens):
    for k in (1, 4):
        net = trained_like(k, tokens)
        x, v, m, t, cal = inputs(k=k)
        assert net(x, v, m, t, cal).shape == (3, k, 10)


@TOKENS
def test_hidden_observations_and_shown_noise_do_not_leak(tokens):
    net = trained_like(4, tokens)
    x, v, m, t, cal = inputs()
    base = net(x, v, m, t, cal)
    v2 = torch.where(m, v, v + 100.0)  # change the values of hidden cells
    x2 = torch.where(m, x + 100.0, x)  # change the noise on shown cells
    assert torch.allclose(net(x2, v2, m, t, cal), base, atol=1e-5)
    assert not torch.allclose(net(x, v + m * 1.0, m, t, cal), base)  # shown values matter


def test_interpolate_matches_numpy():
    g = torch.Generator().manual_seed(1)
    v = torch.randn(5, 3, 12, generator=g, dtype=torch.float64)
    m = torch.rand(5, 3, 12, generator=g) < 0.4
    out = interpolate(v * m, m).numpy()
    t = np.arange(12)
    for b in range(5):
        for k in range(3):
            idx = t[m[b, k].numpy()]
            if len(idx) == 0:
                assert np.all(out[b, k] == 0)
            else:
                expect = np.interp(t, idx, v[b, k].numpy()[idx])
                assert np.allclose(out[b, k], expect)


def test_seasonal_prior_repeats_the_last_season_after_the_last_shown_value():
    v = torch.arange(10, dtype=torch.float64).view(1, 1, 10) * 10  # 0, 10, .., 90
    m = torch.zeros(1, 1, 10, dtype=torch.bool)
    m[..., [1, 2, 3, 5]] = True  # shown: 10, 20, 30 and 50; gap at 4; tail 6..9
    flat = interpolate(v * m, m).flatten().tolist()
    seasonal = interpolate(v * m, m, season=3).flatten().tolist()
    assert flat == [10, 10, 20, 30, 40, 50, 50, 50, 50, 50]
    # before and between shown values: unchanged; the tail repeats 3 steps back, and
    # its later part repeats the tail itself (8 ← 5, 9 ← 6 ← 3)
    assert seasonal == [10, 10, 20, 30, 40, 50, 30, 40, 50, 30]
    assert interpolate(v * m, m, season=10).flatten().tolist() == flat  # longer than L


@TOKENS
def test_sampler_keeps_shown_cells_and_is_batch_independent(tokens):
    net = trained_like(4, tokens)
    sch = NoiseScheduler(DiffusionConfig())
    x, v, m, _, cal = inputs(b=4)
    batch = WindowBatch(v, m, cal, [11, 12, 13, 14])
    s = sample_windows(net, sch, batch, n_samples=3, steps=5, batch_cells=10**9)
    assert s.shape == (4, 3, 4, 10)
    shown = m[:, None].expand_as(s)
    assert torch.equal(s[shown], v[:, None].expand_as(s)[shown])
    # one window per network call gives the same samples as all at once
    one = sample_windows(net, sch, batch, n_samples=3, steps=5, batch_cells=1)
    assert torch.allclose(s, one, atol=1e-5)
    again = sample_windows(net, sch, batch, n_samples=3, steps=5)
    assert torch.equal(s, again)


def test_ddim_with_all_steps_and_eta1_is_ddpm():
    net = trained_like(4)
    sch = NoiseScheduler(DiffusionConfig(num_steps=20))
    _, v, m, _, cal = inputs(b=2)
    batch = WindowBatch(v, m, cal, [5, 6])
    ddpm = sample_windows(net, sch, batch, n_samples=2, steps=20, sampler="ddpm")
    ddim = sample_windows(net, sch, batch, n_samples=2, steps=20, sampler="ddim", eta=1.0)
    assert torch.allclose(ddpm, ddim, atol=1e-4)
    fewer = sample_windows(net, sch, batch, n_samples=2, steps=5, sampler="ddim", eta=1.0)
    assert not torch.allclose(ddpm, fewer, atol=1e-4)


@TOKENS
def test_condition_once_then_denoise_equals_forward_per_row(tokens):
    """The sampler's split (conditioning per window, shared by its samples) is exact."""
    net = trained_like(4, tokens)
    x, v, m, t, cal = inputs(b=2)
    n = 3
    rows_x = torch.randn(2 * n, 4, 10, generator=torch.Generator().manual_seed(1))
    rows_t = t.repeat_interleave(n)
    with torch.no_grad():
        split = net.denoise(rows_x, rows_t, net.condition(v, m, cal))
        full = net(
            rows_x,
            v.repeat_interleave(n, 0),
            m.repeat_interleave(n, 0),
            rows_t,
            cal.repeat_interleave(n, 0),
        )
    torch.testing.assert_close(split, full, rtol=1e-5, atol=1e-6)


@TOKENS
def test_bfloat16_sampling_is_close_to_float32_and_keeps_shown_cells(tokens):
    net = trained_like(4, tokens)
    _, v, m, _, cal = inputs()
    batch = WindowBatch(v, m, cal, seeds=[5, 6, 7])
    sched = NoiseScheduler(DiffusionConfig())
    kw = {"n_samples": 2, "steps": 5, "eta": 0.0}
    f32 = sample_windows(net, sched, batch, **kw)
    bf16 = sample_windows(net, sched, batch, precision="bfloat16", **kw)
    assert bf16.dtype == torch.float32
    shown = m[:, None].expand_as(bf16)
    assert torch.equal(bf16[shown], v[:, None].expand_as(bf16)[shown])
    assert (bf16 - f32).abs().max() < 0.1  # same trajectory up to bf16 rounding
    assert not torch.equal(bf16, f32)  # and the option really changes the arithmetic


LAGGED = NetworkConfig(
    channels=16, blocks=2, heads=2, step_emb_dim=16, time_emb_dim=8, lags=(3, 12)
)


def lagged_net(k: int = 4, tokens: str = "cells") -> Denoiser:
    torch.manual_seed(0)
    return with_head(Denoiser(dataclasses.replace(LAGGED, tokens=tokens), k))


def history_inputs(b=3, k=4, h=12, seed=5):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, k, h, generator=g), torch.rand(b, k, h, generator=g) < 0.6


@TOKENS
def test_lags_read_shown_history_and_nothing_hidden(tokens):
    """Lags reach 12 steps before a 10-step window: the shown history changes the
    output, history cells that are not shown and hidden window cells do not."""
    net = lagged_net(tokens=tokens)
    x, v, m, t, cal = inputs()
    hv, hm = history_inputs()
    with torch.no_grad():
        base = net(x, v, m, t, cal, hv, hm)
        assert not torch.allclose(net(x, v, m, t, cal, hv + hm * 1.0, hm), base)
        torch.testing.assert_close(net(x, v, m, t, cal, torch.where(hm, hv, hv + 100), hm), base)
        torch.testing.assert_close(net(x, torch.where(m, v, v + 100), m, t, cal, hv, hm), base)
        # no history at all reads as a history with nothing shown
        nothing = torch.zeros_like(hm)
        torch.testing.assert_close(net(x, v, m, t, cal), net(x, v, m, t, cal, hv, nothing))


def test_a_lag_before_the_history_start_is_refused():
    net = lagged_net()
    x, v, m, t, cal = inputs()
    hv, hm = history_inputs(h=11)  # the longest lag needs 12 steps
    with pytest.raises(ValueError, match="history must be"):
        net(x, v, m, t, cal, hv, hm)


@TOKENS
def test_lagged_condition_once_then_denoise_equals_forward_per_row(tokens):
    net = lagged_net(tokens=tokens)
    x, v, m, t, cal = inputs(b=2)
    hv, hm = history_inputs(b=2)
    n = 3
    rows_x = torch.randn(2 * n, 4, 10, generator=torch.Generator().manual_seed(1))
    rows_t = t.repeat_interleave(n)

    def rep(a: torch.Tensor) -> torch.Tensor:
        return a.repeat_interleave(n, 0)

    with torch.no_grad():
        split = net.denoise(rows_x, rows_t, net.condition(v, m, cal, hv, hm))
        full = net(rows_x, rep(v), rep(m), rows_t, rep(cal), rep(hv), rep(hm))
    torch.testing.assert_close(split, full, rtol=1e-5, atol=1e-6)


@TOKENS
def test_sampler_passes_each_window_its_history(tokens):
    """A window's samples depend on its own history, whichever batch it is drawn in."""
    net = lagged_net(tokens=tokens)
    sch = NoiseScheduler(DiffusionConfig())
    _, v, m, _, cal = inputs()
    hv, hm = history_inputs()
    both = sample_windows(net, sch, WindowBatch(v, m, cal, [1, 2, 3], hv, hm), n_samples=2, steps=3)
    alone = sample_windows(
        net, sch, WindowBatch(v[1:2], m[1:2], cal[1:2], [2], hv[1:2], hm[1:2]), n_samples=2, steps=3
    )
    torch.testing.assert_close(both[1:2], alone)
    blind = sample_windows(net, sch, WindowBatch(v, m, cal, [1, 2, 3]), n_samples=2, steps=3)
    assert not torch.allclose(both, blind)


def test_step_tokens_start_as_their_prior_and_are_cheaper_per_cell():
    """An untrained step-token body returns the prior it refines, as the cell body does,
    and holds K times fewer tokens per window (one per step, not per cell)."""
    net = Denoiser(dataclasses.replace(CFG, tokens="steps"), 4).eval()
    x, v, m, t, cal = inputs()
    with torch.no_grad():
        cond = net.condition(v, m, cal)
        out = net.denoise(x, t, cond)
    torch.testing.assert_close(out, cond.prior)
    assert cond.tokens is not None and cond.tokens.shape == (3, 10, CFG.channels)  # (W, L, D)
    assert not cond.sides
    assert not hasattr(net, "blocks")


def test_an_unknown_token_kind_is_refused():
    from tsdiff.errors import ConfigError

    with pytest.raises(ConfigError, match="tokens must be one of"):
        NetworkConfig(tokens="patches")


def test_a_model_saved_before_step_tokens_loads_with_cell_tokens(fitted, tmp_path):
    """Saved configs without ``tokens`` were cell models, whatever the default becomes."""
    from tsdiff import TSDiff

    assert fitted.config.network.tokens == "cells"
    shipped = fitted
    path = shipped.save(tmp_path / "old")
    cfg = json.loads((path / "config.json").read_text())
    cfg["network"].pop("tokens", None)  # as written before the field existed
    (path / "config.json").write_text(json.dumps(cfg))
    loaded = TSDiff.load(path)
    assert loaded.config.network.tokens == "cells" and loaded.net.step_tokens is None
    for (name, a), (_, b) in zip(
        shipped.net.state_dict().items(), loaded.net.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
