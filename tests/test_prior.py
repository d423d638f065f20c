"""The learned prior (network.prior_layers) and the gate that keeps imputations from
doing worse than linear interpolation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from tests.conftest import tiny_config
from tsdiff.baselines import linear_impute
from tsdiff.calibration import apply_gate, fit_gate
from tsdiff.config import NetworkConfig, TSDiffConfig
from tsdiff.errors import ConfigError
from tsdiff.model import TSDiff
from tsdiff.network import Denoiser, interpolate
from tsdiff.prior_training import continue_prior, train_prior
from tsdiff.training import Windows

PRIOR = {"prior_layers": 1, "prior_dim": 16, "prior_heads": 2}


def _net(**kw: object) -> Denoiser:
    cfg = NetworkConfig(channels=8, blocks=1, heads=2, step_emb_dim=8, time_emb_dim=8, **kw)
    torch.manual_seed(0)
    return Denoiser(cfg, n_vars=3)


def _windows(n: int = 64, k: int = 3, length: int = 16, seed: int = 0) -> Windows:
    """Smooth, correlated variables (phase-shifted sines) with 20% missing."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(length).float()
    phase = torch.rand(n, 1, 1, generator=g) * 6.28
    shift = torch.arange(k).float().view(1, k, 1)
    v = torch.sin(0.4 * t + phase + shift) + 0.05 * torch.randn(n, k, length, generator=g)
    obs = torch.rand(n, k, length, generator=g) > 0.2
    return Windows(
        v * obs,
        obs,
        torch.zeros(n, 4, length),
        torch.zeros(n, k, 0),
        torch.zeros(n, k, 0, dtype=torch.bool),
    )


def test_untrained_prior_is_the_interpolation_and_keeps_shown_cells() -> None:
    net = _net(**PRIOR).eval()
    w = _windows(4)
    with torch.no_grad():
        p = net.prior(w.values, w.observed, w.calendar)
    torch.testing.assert_close(p, interpolate(w.values * w.observed, w.observed.float()))
    with torch.no_grad():  # a trained head still leaves shown cells alone
        net.prior_net.head.bias.fill_(3.0)
        p = net.prior(w.values, w.observed, w.calendar)
    assert torch.equal(p[w.observed], w.values[w.observed])
    assert not torch.allclose(
        p[~w.observed], interpolate(w.values, w.observed.float())[~w.observed]
    )


def test_prior_training_beats_interpolation_and_freezes_the_prior() -> None:
    net = _net(**PRIOR)
    cfg = tiny_config(masking="random", prior_epochs=30, prior_patience=30, prior_lr=3e-3).train
    res = train_prior(net, _windows(256), _windows(64, seed=1), cfg, progress=False)
    assert res.best_val_mae < 0.8 * res.interp_val_mae
    assert res.epochs_run == 30 and 1 <= res.best_epoch <= 30
    assert not any(p.requires_grad for p in net.prior_net.parameters())
    net.train()  # the denoiser trains; the frozen prior stays deterministic
    assert not net.prior_net.training and net.blocks[0].training


def test_prior_stops_early_and_never_ends_worse_than_interpolation() -> None:
    cfg = tiny_config(prior_epochs=50, prior_patience=2, prior_lr=1e-9).train
    net = _net(**PRIOR)
    res = train_prior(net, _windows(64), _windows(32, seed=1), cfg, progress=False)
    assert res.epochs_run <= 3  # a learning rate of 1e-9 cannot improve for long
    if res.best_epoch == 0:  # nothing beat interpolation: the prior is the interpolation
        assert res.best_val_mae == res.interp_val_mae
        assert not net.prior_net.head.weight.any() and not net.prior_net.head.bias.any()
    assert res.best_val_mae <= res.interp_val_mae


def test_a_prior_trained_on_starts_from_its_weights_and_keeps_them_unless_beaten() -> None:
    net = _net(**PRIOR)
    short = tiny_config(masking="random", prior_epochs=3, prior_patience=3, prior_lr=3e-3).train
    train, val = _windows(256), _windows(64, seed=1)
    first = train_prior(net, train, val, short, progress=False)
    start = {k: v.clone() for k, v in net.prior_net.state_dict().items()}
    # at a learning rate that cannot move it, the weights it started from stay
    frozen_lr = tiny_config(
        masking="random", prior_epochs=3, prior_patience=2, prior_lr=1e-12
    ).train
    before, res = continue_prior(net, train, val, frozen_lr)
    assert before == pytest.approx(first.best_val_mae, rel=1e-6)  # its own MAE, not interp's
    assert res.best_epoch == 0 and res.best_val_mae == before
    for k, v in net.prior_net.state_dict().items():
        assert torch.equal(v, start[k])
    assert not any(p.requires_grad for p in net.prior_net.parameters())
    # trained on for real, it improves on where it started, and is frozen again
    more = tiny_config(masking="random", prior_epochs=20, prior_patience=20, prior_lr=1e-3).train
    before, res = continue_prior(net, train, val, more)
    assert res.best_val_mae < before and res.best_epoch >= 1
    assert not any(p.requires_grad for p in net.prior_net.parameters())
    with pytest.raises(ValueError, match="no learned prior"):
        continue_prior(_net(prior_layers=0), train, val, more)


def test_prior_respects_its_budget() -> None:
    cfg = tiny_config(prior_epochs=50).train
    res = train_prior(_net(**PRIOR), _windows(64), None, cfg, minutes=1e-6, progress=False)
    assert res.epochs_run == 1


def test_prior_training_needs_a_prior() -> None:
    with pytest.raises(ValueError, match="no learned prior"):
        train_prior(_net(prior_layers=0), _windows(8), None, tiny_config().train, progress=False)


@pytest.mark.parametrize(
    "kw", [{"prior_layers": -1}, {"prior_dim": 10, "prior_heads": 4}, {"prior_dropout": 1.0}]
)
def test_bad_prior_settings_are_config_errors(kw) -> None:
    with pytest.raises(ConfigError):
        NetworkConfig(**kw)


def test_fit_save_load_impute_equality_with_a_prior(pm25, tmp_path) -> None:
    cfg = tiny_config(prior_epochs=3).replace(network=PRIOR)
    model = TSDiff(cfg).fit(pm25.iloc[:300], progress=False)
    assert model.info["prior"]["epochs_run"] >= 1
    a = model.impute(pm25.iloc[300:400], seed=3).frame
    b = TSDiff.load(model.save(tmp_path / "m")).impute(pm25.iloc[300:400], seed=3).frame
    pd.testing.assert_frame_equal(a, b)


def test_model_saved_before_the_prior_existed_loads_without_one(fitted, tmp_path) -> None:
    path = fitted.save(tmp_path / "old")
    cfg = json.loads((path / "config.json").read_text())
    del cfg["network"]["prior_layers"]  # as written by earlier versions
    (path / "config.json").write_text(json.dumps(cfg))
    assert TSDiff.load(path).net.prior_net is None


def test_gate_picks_interpolation_where_the_model_is_worse() -> None:
    rng = np.random.default_rng(0)
    truth = rng.normal(size=400)
    var = np.repeat([0, 1], 200)
    interp = truth + 0.1 * rng.normal(size=400)
    model = np.where(var == 0, truth + 1.0 * rng.normal(size=400), truth)  # var 1: exact
    fit = fit_gate(model, interp, truth, var, 2)
    assert fit.gate[0] <= 0.2 and fit.gate[1] == 1.0
    assert fit.mae_gated <= min(fit.mae_model, fit.mae_interpolation)


def test_gate_with_few_cells_uses_the_overall_choice() -> None:
    truth = np.arange(60.0)
    var = np.array([0] * 59 + [1])
    fit = fit_gate(truth + 5.0, truth, truth, var, 2)  # interpolation exact everywhere
    assert fit.gate == (0.0, 0.0)


def test_apply_gate_recentres_the_median_and_keeps_the_spread() -> None:
    rng = np.random.default_rng(1)
    s = rng.normal(size=(9, 2, 5))
    interp = rng.normal(size=(2, 5))
    out = apply_gate(s, interp, np.array([0.0, 0.5]))
    med = np.median(s, axis=0)
    np.testing.assert_allclose(np.median(out, axis=0)[0], interp[0])
    np.testing.assert_allclose(np.median(out, axis=0)[1], 0.5 * med[1] + 0.5 * interp[1])
    np.testing.assert_allclose(out - np.median(out, axis=0), s - med)


def _smooth_panel(n_series: int = 12, length: int = 96, seed: int = 0) -> pd.DataFrame:
    """A smooth waveform (two slow sines) per series, 2 variables, no missing values."""
    rng = np.random.default_rng(seed)
    rows = []
    t = np.arange(length)
    for i in range(n_series):
        ph = rng.uniform(0, 6.28)
        a = np.sin(0.15 * t + ph) + 0.3 * np.sin(0.05 * t)
        b = np.cos(0.15 * t + ph)
        rows.append(pd.DataFrame({"series_id": i, "timestamp": t.astype(float), "a": a, "b": b}))
    return pd.concat(rows, ignore_index=True)


@pytest.mark.parametrize("by_gap", [False, True], ids=["per-variable", "per-distance"])
def test_a_model_whose_corrections_hurt_falls_back_to_interpolation(by_gap: bool) -> None:
    # a model that learned a wrong correction (here: an offset planted in its output
    # head) on a smooth signal with sparse random gaps, where linear interpolation is
    # near-exact: the gate chosen on validation cells recentres it on interpolation,
    # whether one weight per variable or per distance to the nearest observation (every
    # bucket, the far ones with their nearer neighbours' weights)
    df = _smooth_panel()
    cfg = tiny_config(epochs=1, gate_by_gap=by_gap).replace(data={"window": 24, "freq": "1"})
    model = TSDiff(cfg).fit(df, progress=False)
    with torch.no_grad():
        model.net.head[-1].bias.fill_(0.5)
    model.calibrate(_smooth_panel(6, seed=5))
    fitted = model.gap_gate.weight if by_gap else model.gate
    assert (model.gate is None) is by_gap and np.max(fitted) <= 0.2
    test = _smooth_panel(4, seed=9)
    r = model.evaluate(test, missing=0.1, seed=1)
    assert r["model"]["mae"] <= 1.1 * r["baselines"]["linear"]["mae"]
    model.gate, model.gap_gate = None, None  # the same model ungated: the test has teeth
    assert model.evaluate(test, missing=0.1, seed=1)["model"]["mae"] > 3 * r["model"]["mae"]


@pytest.mark.slow
def test_default_fit_is_never_worse_than_interpolation_on_a_smooth_signal() -> None:
    """The issue's case: a smooth waveform with 10 % of values hidden at random, where a
    short-trained diffusion model once had twice linear interpolation's MAE. With the
    defaults (learned prior from the interpolation, gate chosen on validation cells) the
    imputed medians must be at least as good as the interpolation they refine."""
    rng = np.random.default_rng(0)
    n = 2000
    t = np.arange(n)
    wave = np.stack(
        [np.sin(2 * np.pi * t / 50 + p) + 0.3 * np.sin(2 * np.pi * t / 13) for p in (0, 1, 2)]
    )  # (K, T)
    truth = wave + 0.02 * rng.normal(size=wave.shape)
    hidden = rng.random(truth.shape) < 0.1
    shown = np.where(hidden, np.nan, truth)
    cols = ["a", "b", "c"]
    frame = pd.DataFrame(shown.T, columns=cols)
    frame.insert(0, "timestamp", pd.date_range("2024-01-01", periods=n, freq="min"))
    # a fixed number of epochs (not a time budget), so every machine trains the same model
    cfg = TSDiffConfig().replace(train={"epochs": 3, "prior_epochs": 3})
    model = TSDiff(cfg).fit(frame, progress=False)
    filled = model.impute(frame, n_samples=8, seed=0).frame
    got = filled[cols].to_numpy().T
    lin = linear_impute(shown)
    mae_model = np.abs(got - truth)[hidden].mean()
    mae_linear = np.abs(lin - truth)[hidden].mean()
    assert mae_model <= 1.02 * mae_linear, (mae_model, mae_linear)
