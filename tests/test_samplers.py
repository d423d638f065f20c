"""The sampler interface: one module per sampler, ``set_timesteps`` and a ``step()``
returning an output object, one registry of names, one options check."""

from __future__ import annotations

import math

import pytest
import torch

from tsdiff.config import DiffusionConfig, TSDiffConfig
from tsdiff.errors import ConfigError, RangeError
from tsdiff.samplers import SAMPLER_NAMES, get_sampler
from tsdiff.samplers.base import Sampler, SamplerOutput
from tsdiff.samplers.ddim import DDIMSampler
from tsdiff.samplers.ddpm import DDPMSampler
from tsdiff.samplers.options import SamplingOptionError, check_sample_options, resolve_options
from tsdiff.scheduler import NoiseScheduler


def small() -> NoiseScheduler:
    # β = 0.1, 0.2, 0.3 → ᾱ = 0.9, 0.72, 0.504
    return NoiseScheduler(
        DiffusionConfig(num_steps=3, schedule="linear", beta_start=0.1, beta_end=0.3)
    )


def test_registry_names_every_sampler_and_builds_it():
    assert SAMPLER_NAMES == ("ddim", "ddpm")
    for name in SAMPLER_NAMES:
        s = get_sampler(name, small(), eta=0.5)
        assert isinstance(s, Sampler) and s.name == name
    with pytest.raises(SamplingOptionError, match="sampler must be one of"):
        get_sampler("euler", small())


def test_ddpm_step_by_hand():
    s = DDPMSampler(small())
    assert s.set_timesteps(99) == [2, 1, 0]  # every step, whatever is asked
    x, eps, z = torch.tensor([0.5]), torch.tensor([0.2]), torch.tensor([-1.0])
    # t = 2: mean = (x - β/sqrt(1-ᾱ) ε)/sqrt(α); σ² = β (1-ᾱ_prev)/(1-ᾱ)
    mean = (0.5 - 0.3 / math.sqrt(1 - 0.504) * 0.2) / math.sqrt(0.7)
    sigma = math.sqrt(0.3 * (1 - 0.72) / (1 - 0.504))
    out = s.step(eps, 2, x, noise=z)
    assert isinstance(out, SamplerOutput)
    assert out.prev_sample.item() == pytest.approx(mean - sigma)
    x0 = (0.5 - math.sqrt(1 - 0.504) * 0.2) / math.sqrt(0.504)
    assert out.pred_original_sample.item() == pytest.approx(x0)
    # t = 0 adds no noise, and the sampler does not ask for any there
    mean0 = (0.5 - 0.1 / math.sqrt(0.1) * 0.2) / math.sqrt(0.9)
    assert s.step(eps, 0, x, noise=z).prev_sample.item() == pytest.approx(mean0)
    assert s.needs_noise(2) and not s.needs_noise(0)


def test_ddim_eta1_over_every_step_equals_ddpm():
    sched = NoiseScheduler(DiffusionConfig())
    ddim, ddpm = DDIMSampler(sched, eta=1.0), DDPMSampler(sched)
    assert ddim.set_timesteps(sched.num_steps) == ddpm.set_timesteps(0)
    g = torch.Generator().manual_seed(0)
    x, eps, z = (torch.randn(4, 3, 5, generator=g) for _ in range(3))
    for t in (49, 30, 1, 0):
        a = ddim.step(eps, t, x, noise=z).prev_sample
        b = ddpm.step(eps, t, x, noise=z).prev_sample
        assert torch.allclose(a, b, atol=1e-5), t
        assert ddim.needs_noise(t) == ddpm.needs_noise(t)


def test_ddim_eta0_by_hand_and_to_clean_end():
    s = DDIMSampler(small(), eta=0.0)
    x, eps = torch.tensor([0.5]), torch.tensor([0.2])
    x0 = (0.5 - math.sqrt(1 - 0.504) * 0.2) / math.sqrt(0.504)
    assert s.set_timesteps(2) == [2, 0]
    expect = math.sqrt(0.9) * x0 + math.sqrt(1 - 0.9) * 0.2
    assert s.step(eps, 2, x).prev_sample.item() == pytest.approx(expect)
    assert not s.needs_noise(2)  # η = 0: deterministic
    assert s.set_timesteps(1) == [2]  # one step: straight to the clean end
    assert s.step(eps, 2, x).prev_sample.item() == pytest.approx(x0)


def test_clipping_bounds_the_clean_estimate():
    s = DDIMSampler(small())
    s.set_timesteps(1)
    x, eps = torch.tensor([5.0]), torch.tensor([0.0])
    clip = (torch.tensor([-1.0]), torch.tensor([1.0]))
    out = s.step(eps, 2, x, clip=clip)
    assert out.prev_sample.item() == pytest.approx(1.0)
    assert out.pred_original_sample.item() == pytest.approx(1.0)
    assert s.step(eps, 2, x).prev_sample.item() > 1.0


def test_ddim_timesteps_start_at_the_top_and_end_at_zero():
    s = DDIMSampler(NoiseScheduler(DiffusionConfig(num_steps=50)))
    ts = s.set_timesteps(10)
    assert ts[0] == 49 and ts[-1] == 0 and len(ts) == 10 and ts == sorted(ts, reverse=True)
    assert s.set_timesteps(50) == list(range(49, -1, -1))
    with pytest.raises(SamplingOptionError, match="steps"):
        s.set_timesteps(51)


@pytest.mark.parametrize(
    "bad",
    [
        {"n_samples": 0},
        {"n_samples": 2.5},
        {"steps": 0},
        {"steps": 51},
        {"sampler": "euler"},
        {"eta": 1.5},
        {"eta": "x"},
        {"levels": [0, 50]},
        {"levels": []},
        {"precision": "float16"},
    ],
)
def test_one_check_rejects_every_bad_option_with_one_error_type(bad):
    with pytest.raises(SamplingOptionError) as err:
        check_sample_options(num_steps=50, **bad)
    # the type every surface maps to a 4xx / exit 2
    assert isinstance(err.value, RangeError) and isinstance(err.value, ConfigError)
    name = next(iter(bad))
    assert name in str(err.value)


def test_resolve_fills_defaults_and_sorts_levels():
    cfg = TSDiffConfig().sample
    o = resolve_options(cfg, 50, levels=[90, 50, 90], seed=3)
    assert (o.n_samples, o.steps, o.sampler, o.eta) == (cfg.n_samples, cfg.steps, "ddim", cfg.eta)
    assert o.levels == (50, 90) and o.seed == 3 and o.precision == cfg.precision
    with pytest.raises(SamplingOptionError, match="diffusion steps"):
        resolve_options(cfg, 3, steps=4)


def test_config_uses_the_same_check():
    with pytest.raises(SamplingOptionError, match="sampler must be one of"):
        TSDiffConfig().replace(sample={"sampler": "euler"})
    with pytest.raises(ConfigError, match="num_steps"):  # DDPM's defaults must be valid too
        TSDiffConfig().replace(sample={"sampler": "ddpm", "steps": 60})
