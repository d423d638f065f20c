"""Schedule arithmetic against values computed by hand (the samplers: test_samplers.py)."""

from __future__ import annotations

import math

import pytest
import torch

from tsdiff.config import DiffusionConfig
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
