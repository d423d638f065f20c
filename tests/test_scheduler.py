"""Scheduler arithmetic against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from tsdiff.config import DiffusionConfig
from tsdiff.errors import ConfigError
from tsdiff.scheduler import NoiseScheduler, make_betas


def small() -> NoiseScheduler:
    # β = 0.1, 0.2, 0.3 → ᾱ = 0.9, 0.72, 0.504
    return NoiseScheduler(
        DiffusionConfig(num_steps=3, schedule="linear", beta_start=0.1, beta_end=0.3)
    )


def test_linear_schedule_by_hand():
    s = small()
    assert torch.allclose(s.betas, torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64))
    assert torch.allclose(s.alphas_cumprod, torch.tensor([0.9, 0.72, 0.504], dtype=torch.float64))


def test_quadratic_schedule_is_linear_in_sqrt_beta():
    b = make_betas(
        DiffusionConfig(num_steps=3, schedule="quadratic", beta_start=0.01, beta_end=0.25)
    )
    assert torch.allclose(b, torch.tensor([0.01, 0.09, 0.25], dtype=torch.float64))


def test_cosine_schedule_is_increasing_and_bounded():
    b = make_betas(DiffusionConfig(num_steps=100, schedule="cosine"))
    assert (b[1:] >= b[:-1] - 1e-12).all() and b.max() <= 0.999 and b.min() > 0


def test_add_noise_by_hand():
    s = small()
    x0, eps = torch.tensor([[2.0]]), torch.tensor([[1.0]])
    xt = s.add_noise(x0, eps, torch.tensor([1]))
    assert xt.item() == pytest.approx(math.sqrt(0.72) * 2 + math.sqrt(0.28) * 1)


def test_ddpm_step_by_hand():
    s = small()
    x, eps, z = torch.tensor([0.5]), torch.tensor([0.2]), torch.tensor([-1.0])
    # t = 2: mean = (x - β/sqrt(1-ᾱ) ε)/sqrt(α); σ² = β (1-ᾱ_prev)/(1-ᾱ)
    mean = (0.5 - 0.3 / math.sqrt(1 - 0.504) * 0.2) / math.sqrt(0.7)
    sigma = math.sqrt(0.3 * (1 - 0.72) / (1 - 0.504))
    assert s.ddpm_step(x, eps, 2, z).item() == pytest.approx(mean - sigma)
    # t = 0 adds no noise
    mean0 = (0.5 - 0.1 / math.sqrt(0.1) * 0.2) / math.sqrt(0.9)
    assert s.ddpm_step(x, eps, 0, z).item() == pytest.approx(mean0)


def test_ddim_eta1_consecutive_equals_ddpm():
    s = NoiseScheduler(DiffusionConfig())
    g = torch.Generator().manual_seed(0)
    x, eps, z = (torch.randn(4, 3, 5, generator=g) for _ in range(3))
    for t in (49, 30, 1):
        a = s.ddim_step(x, eps, t, t - 1, eta=1.0, noise=z)
        b = s.ddpm_step(x, eps, t, z)
        assert torch.allclose(a, b, atol=1e-5), t
    assert torch.allclose(s.ddim_step(x, eps, 0, -1, eta=1.0, noise=z), s.ddpm_step(x, eps, 0, z))


def test_ddim_eta0_by_hand_and_to_clean_end():
    s = small()
    x, eps = torch.tensor([0.5]), torch.tensor([0.2])
    x0 = (0.5 - math.sqrt(1 - 0.504) * 0.2) / math.sqrt(0.504)
    expect = math.sqrt(0.9) * x0 + math.sqrt(1 - 0.9) * 0.2
    assert s.ddim_step(x, eps, 2, 0, eta=0.0).item() == pytest.approx(expect)
    assert s.ddim_step(x, eps, 2, -1, eta=0.0).item() == pytest.approx(x0)


def test_clipping_bounds_the_clean_estimate():
    s = small()
    x, eps = torch.tensor([5.0]), torch.tensor([0.0])
    clip = (torch.tensor([-1.0]), torch.tensor([1.0]))
    assert s.ddim_step(x, eps, 2, -1, clip=clip).item() == pytest.approx(1.0)
    free = s.ddim_step(x, eps, 2, -1)
    assert free.item() > 1.0


def test_timesteps_start_at_the_top_and_end_at_zero():
    s = NoiseScheduler(DiffusionConfig(num_steps=50))
    ts = s.timesteps(10)
    assert ts[0] == 49 and ts[-1] == 0 and len(ts) == 10 and ts == sorted(ts, reverse=True)
    assert s.timesteps(50) == list(range(49, -1, -1))
    with pytest.raises(ConfigError, match="steps"):
        s.timesteps(51)
