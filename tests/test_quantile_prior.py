"""The quantile prior (network.prior_quantiles) and the blend of its quantiles with the
samples (tsdiff.quantile_blend)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from tests.conftest import tiny_config
from tests.test_prior import PRIOR, _net, _windows
from tsdiff.config import NetworkConfig
from tsdiff.errors import ConfigError
from tsdiff.metrics import crps_from_quantiles, quantile_levels
from tsdiff.model import TSDiff
from tsdiff.prior import QUANTILE_LEVELS
from tsdiff.prior_training import train_prior, train_quantile_prior
from tsdiff.quantile_blend import (
    blend_quantiles,
    fit_blend,
    quantiles_at,
    sample_levels,
)

QPRIOR = {**PRIOR, "prior_quantiles": True}


def _normal_quantiles(mu: np.ndarray, sd: float) -> np.ndarray:
    """Quantiles (Q, m) of N(mu, sd²) at QUANTILE_LEVELS."""
    z = torch.distributions.Normal(0.0, 1.0).icdf(torch.tensor(QUANTILE_LEVELS)).numpy()
    return mu[None] + sd * z[:, None].astype(np.float64)


def test_quantiles_are_read_linearly_between_levels_and_held_at_the_ends() -> None:
    grid = np.asarray(QUANTILE_LEVELS)
    q = np.stack([grid * 10, grid * -2], axis=1)  # (Q, 2): linear in the level
    got = quantiles_at(q, np.array([0.0, 0.01, 0.3, 0.333, 0.99, 1.0]))
    np.testing.assert_allclose(got[:, 0], [0.1, 0.1, 3.0, 3.33, 9.9, 9.9])
    np.testing.assert_allclose(got[:, 1], [-0.02, -0.02, -0.6, -0.666, -1.98, -1.98])
    np.testing.assert_allclose(sample_levels(5), [0, 0.25, 0.5, 0.75, 1])
    assert sample_levels(1).tolist() == [0.5]


def test_blend_keeps_ranks_and_blends_the_quantile_functions() -> None:
    rng = np.random.default_rng(0)
    smp = rng.normal(size=(32, 3, 7))  # (n, K, T)
    q = np.sort(rng.normal(1.0, 2.0, size=(len(QUANTILE_LEVELS), 3, 7)), axis=0)
    assert np.array_equal(blend_quantiles(smp, q, 1.0), smp)  # weight 1: as drawn
    out = blend_quantiles(smp, q, 0.3)
    # each sample keeps its rank at every cell: the draws' joint structure stays
    assert np.array_equal(np.argsort(out, axis=0), np.argsort(smp, axis=0))
    # the sample quantiles any metric reads off are the blend of the two quantile functions
    lv = quantile_levels()
    prior = np.quantile(quantiles_at(q, sample_levels(32)), lv, axis=0)
    np.testing.assert_allclose(
        np.quantile(out, lv, axis=0), 0.3 * np.quantile(smp, lv, axis=0) + 0.7 * prior
    )
    # weight 0: the quantile prior alone, at the samples' levels
    np.testing.assert_allclose(
        np.sort(blend_quantiles(smp, q, 0.0), axis=0), quantiles_at(q, sample_levels(32))
    )


def test_fit_blend_takes_the_better_source_and_mixes_two_good_ones() -> None:
    rng = np.random.default_rng(1)
    m = 4000
    mu = rng.normal(size=m)
    y = mu + rng.normal(size=m)  # truth ~ N(mu, 1)
    exact = _normal_quantiles(mu, 1.0)
    biased = (mu + 1.5)[None] + rng.normal(size=(64, m))  # the right spread, off centre
    assert fit_blend(biased, exact, y).weight == 0.0
    nonsense = _normal_quantiles(mu - 3.0, 0.1)
    good = mu[None] + rng.normal(size=(64, m))
    fit = fit_blend(good, nonsense, y)
    assert fit.weight == 1.0 and fit.crps_after == fit.crps_samples < fit.crps_prior
    # two imperfect sources, off in opposite directions: the blend beats both
    low, high = mu[None] - 0.5 + rng.normal(size=(64, m)), _normal_quantiles(mu + 0.5, 1.0)
    fit = fit_blend(low, high, y)
    assert 0.2 <= fit.weight <= 0.8
    assert fit.crps_after < min(fit.crps_samples, fit.crps_prior)
    blended = blend_quantiles(low, high, fit.weight)
    got = crps_from_quantiles(np.quantile(blended, quantile_levels(), axis=0), y, y == y)
    assert got == pytest.approx(fit.crps_after, abs=1e-5)


def test_quantile_prior_starts_from_the_prior_and_keeps_shown_cells() -> None:
    net = _net(**QPRIOR).eval()
    w = _windows(4)
    with torch.no_grad():
        net.prior_net.head.bias.fill_(0.7)  # a prior that moves hidden cells
        net.quantile_net.from_prior(net.prior_net, spread=0.0)
        point = net.prior(w.values, w.observed, w.calendar)
        q = net.prior_quantiles(w.values, w.observed, w.calendar)  # (W, Q, K, L)
    assert q.shape == (4, len(QUANTILE_LEVELS), 3, 16)
    # every level starts at the prior's point imputation
    torch.testing.assert_close(q, point[:, None].expand_as(q))
    with torch.no_grad():
        net.quantile_net.from_prior(net.prior_net, spread=0.3)
        q = net.prior_quantiles(w.values, w.observed, w.calendar)
    assert (q.diff(dim=1) >= 0).all()  # sorted along the levels
    hidden = ~w.observed[:, None].expand_as(q)
    assert (q.diff(dim=1)[hidden[:, 1:]] > 0).all()  # spread where hidden
    shown = w.observed[:, None].expand_as(q)
    assert torch.equal(q[shown], w.values[:, None].expand_as(q)[shown])


def test_quantile_prior_training_lowers_pinball_loss_and_freezes() -> None:
    net = _net(**QPRIOR)
    cfg = tiny_config(masking="random", prior_epochs=15, prior_patience=15, prior_lr=3e-3).train
    train, val = _windows(256), _windows(64, seed=1)
    train_prior(net, train, val, cfg, progress=False)
    prior_state = {k: v.clone() for k, v in net.prior_net.state_dict().items()}
    res = train_quantile_prior(net, train, val, cfg, progress=False)
    assert res.best_val_mae < res.interp_val_mae  # pinball loss: below where it started
    assert not any(p.requires_grad for p in net.quantile_net.parameters())
    for k, v in net.prior_net.state_dict().items():  # the point prior is untouched
        assert torch.equal(v, prior_state[k])
    net.train()
    assert not net.quantile_net.training
    with pytest.raises(ValueError, match="no quantile prior"):
        train_quantile_prior(_net(**PRIOR), train, val, cfg, progress=False)


def test_quantile_prior_needs_a_learned_prior() -> None:
    with pytest.raises(ConfigError, match="prior_quantiles"):
        NetworkConfig(prior_layers=0, prior_quantiles=True)


def test_fit_blends_save_load_impute_equality_and_trajectory(pm25, tmp_path) -> None:
    cfg = tiny_config(prior_epochs=3, calibrate_intervals=True).replace(network=QPRIOR)
    model = TSDiff(cfg).fit(pm25.iloc[:300], progress=False)
    assert model.info["quantile_prior"]["epochs_run"] >= 1
    blend = model.info["calibration"]["quantile_blend"]
    assert blend["crps_after"] <= min(blend["crps_samples"], blend["crps_prior"])
    model.quantile_blend = 0.5  # whatever the tiny fit chose: the blend on the path
    data = pm25.iloc[300:400]
    a = model.impute(data, seed=3, return_samples=True)
    loaded = TSDiff.load(model.save(tmp_path / "m"))
    assert loaded.quantile_blend == 0.5
    b = loaded.impute(data, seed=3, return_samples=True)
    pd.testing.assert_frame_equal(a.frame, b.frame)
    pd.testing.assert_frame_equal(a.samples, b.samples)
    model.quantile_blend = None
    c = model.impute(data, seed=3, return_samples=True)  # the same draws, not blended
    assert not a.samples.equals(c.samples)
    # the trajectory's last state is the blended samples
    model.quantile_blend = 0.5
    res = model.impute(data, seed=3, return_samples=True, return_trajectory=True)
    last = res.trajectory[res.trajectory["step"] == res.trajectory["step"].max()]
    long = res.samples.melt(
        id_vars=["timestamp", "sample"], var_name="variable", value_name="value"
    )
    merged = last.merge(long, on=["timestamp", "variable", "sample"], suffixes=("", "_s"))
    assert len(merged) == len(last) > 0
    np.testing.assert_array_equal(merged["value"].to_numpy(), merged["value_s"].to_numpy())


def test_a_resumed_fit_loads_the_finished_quantile_prior(tmp_path) -> None:
    cfg = tiny_config(masking="random", prior_epochs=3, prior_patience=3, prior_lr=3e-3).train
    train, val = _windows(64), _windows(32, seed=1)
    net = _net(**QPRIOR)
    train_prior(net, train, val, cfg, progress=False)
    ckpt = tmp_path / "ckpt.quantiles"
    first = train_quantile_prior(net, train, val, cfg, checkpoint=ckpt, progress=False)
    assert ckpt.exists() and not list(tmp_path.glob("*.tmp*"))  # written atomically
    other = _net(**QPRIOR)
    again = train_quantile_prior(other, train, val, cfg, checkpoint=ckpt, resume=True)
    assert again.to_dict() == first.to_dict() and again.metric == "pinball"
    for k, v in net.quantile_net.state_dict().items():
        assert torch.equal(v, other.quantile_net.state_dict()[k])
    assert not any(p.requires_grad for p in other.quantile_net.parameters())
