"""Trajectories of the reverse process: where they start, where they end, what they cost."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from tsdiff.errors import ConfigError, RangeError
from tsdiff.sampling import WindowBatch, record_indices, sample_windows

KW = {"n_samples": 4, "steps": 5, "seed": 3}


@pytest.fixture(scope="module")
def data(pm25) -> pd.DataFrame:
    """Two stations' worth of gaps over 60 hours: longer than the window (24), so stitched."""
    df = pm25.iloc[500:560].copy()
    cols = [c for c in df.columns if c not in ("series_id", "timestamp")]
    rng = np.random.default_rng(0)
    hide = rng.random((len(df), len(cols))) < 0.3
    df[cols] = df[cols].mask(hide)
    return df


def _normalised(model, traj: pd.DataFrame) -> np.ndarray:
    mean = dict(zip(model.variables, model.scaler.mean, strict=True))
    std = dict(zip(model.variables, model.scaler.std, strict=True))
    return ((traj["value"] - traj["variable"].map(mean)) / traj["variable"].map(std)).to_numpy()


def test_impute_trajectory_starts_at_noise_and_ends_at_the_samples(fitted, data):
    res = fitted.impute(
        data, return_samples=True, return_trajectory=True, trajectory_samples=2, **KW
    )
    samples, traj = res.samples, res.trajectory
    assert list(traj.columns) == [
        "timestamp", "variable", "step", "noise_std", "sample", "value", "imputed",
    ]  # fmt: skip
    steps = sorted(traj["step"].unique())
    assert steps[0] == 0 and steps[-1] == 5 and len(steps) == 6  # 5 DDIM steps: 6 states
    first = traj[(traj["step"] == 0) & traj["imputed"]]
    z = _normalised(fitted, first)
    assert len(z) > 200
    assert abs(z.std() - 1.0) < 0.15 and abs(z.mean()) < 0.2  # N(0, 1) in normalised units
    assert first["noise_std"].iloc[0] > 0.9
    last = traj[traj["step"] == 5]
    assert (last["noise_std"] == 0).all()
    # the last state is the returned samples, cell for cell (wide samples → long)
    long = samples.melt(
        id_vars=["timestamp", "sample"], var_name="variable", value_name="value"
    ).query("sample < 2")
    merged = last.merge(long, on=["timestamp", "variable", "sample"], suffixes=("", "_s"))
    assert len(merged) == len(last) == len(long)
    np.testing.assert_array_equal(merged["value"].to_numpy(), merged["value_s"].to_numpy())
    # observed cells are observed in every state, with their exact value
    obs = traj[~traj["imputed"]].merge(
        data.melt(id_vars="timestamp", var_name="variable", value_name="given").dropna(),
        on=["timestamp", "variable"],
    )
    assert len(obs) == (~traj["imputed"]).sum() > 0
    assert (obs["value"] == obs["given"]).all()
    # the noise level falls at every recorded state
    levels = traj.groupby("step")["noise_std"].first().to_numpy()
    assert (np.diff(levels) < 0).all()


def test_trajectory_changes_nothing_else(fitted, data):
    plain = fitted.impute(data, **KW).frame
    res = fitted.impute(data, return_trajectory=True, trajectory_steps=[0, 2, -1], **KW)
    frame, traj = res.frame, res.trajectory
    assert res.samples is None  # not asked for
    pd.testing.assert_frame_equal(plain, frame)
    assert sorted(traj["step"].unique()) == [0, 2, 5]
    assert traj["sample"].max() == 2  # default: the first 3 samples


def test_forecast_trajectory_covers_context_and_horizon(fitted, data):
    res = fitted.forecast(
        data, 6, return_samples=True, return_trajectory=True, trajectory_steps=3, **KW
    )
    fc, samples, traj = res.frame, res.samples, res.trajectory
    plain = fitted.forecast(data, 6, **KW).frame
    pd.testing.assert_frame_equal(plain, fc)
    times = sorted(traj["timestamp"].unique())
    assert len(times) == fitted.window  # 18 hours of context + 6 forecast
    future = traj[traj["timestamp"] > data["timestamp"].max()]
    assert future["imputed"].all() and future["timestamp"].nunique() == 6
    last = future[future["step"] == future["step"].max()]
    long = samples.melt(
        id_vars=["timestamp", "sample"], var_name="variable", value_name="value"
    ).query("sample < 3")
    merged = last.merge(long, on=["timestamp", "variable", "sample"], suffixes=("", "_s"))
    assert len(merged) == len(last) == len(long)
    np.testing.assert_array_equal(merged["value"].to_numpy(), merged["value_s"].to_numpy())


def test_forward_process_goes_from_data_to_noise(fitted, data):
    fwd = fitted.forward_process(data, states=[0, 10, 50], seed=1)
    clean = fwd[fwd["step"] == 0]
    given = data.melt(id_vars="timestamp", var_name="variable", value_name="given").dropna()
    m = clean.merge(given, on=["timestamp", "variable"])
    assert len(m) == len(clean) == len(given)
    np.testing.assert_allclose(m["value"], m["given"], rtol=1e-9)
    noisy = fwd[fwd["step"] == 50]
    z = _normalised(fitted, noisy)
    level = noisy["noise_std"].iloc[0]
    assert level > 0.95 and abs(z.std() - 1.0) < 0.15


def test_bad_trajectory_options_are_refused(fitted, data):
    with pytest.raises(RangeError, match="trajectory_samples"):
        fitted.impute(data, return_trajectory=True, trajectory_samples=0, **KW)
    with pytest.raises(RangeError, match="trajectory_steps"):
        fitted.impute(data, return_trajectory=True, trajectory_steps=1, **KW)
    with pytest.raises(ConfigError, match="out of range"):
        fitted.impute(data, return_trajectory=True, trajectory_steps=[0, 9], **KW)


def test_record_indices():
    assert record_indices(11, 6) == [0, 2, 4, 6, 8, 10]
    assert record_indices(4, 10) == [0, 1, 2, 3]
    assert record_indices(11, [-1, 0, 3, 3]) == [0, 3, 10]
    with pytest.raises(ConfigError):
        record_indices(11, [11])


def test_sampler_recording_is_bit_identical(fitted):
    """The sampler with and without recording: same samples, same generator draws."""
    k, length = len(fitted.variables), fitted.window
    g = torch.Generator().manual_seed(0)
    values = torch.randn(3, k, length, generator=g)
    batch = WindowBatch(
        values, torch.rand(3, k, length, generator=g) < 0.5, torch.zeros(3, 4, length), [1, 2, 3]
    )
    kw = dict(n_samples=3, steps=4, eta=0.5, batch_cells=k * length * 3 * 2)  # 2 windows/chunk
    plain = sample_windows(fitted.net, fitted.scheduler, batch, **kw)
    out, traj = sample_windows(
        fitted.net, fitted.scheduler, batch, record=[0, 2, 4], record_samples=2, **kw
    )
    assert torch.equal(plain, out)
    assert traj.states.shape == (3, 3, 2, k, length) and traj.steps == [0, 2, 4]
    assert torch.equal(traj.states[:, -1], out[:, :2])
    assert traj.noise_std[0] > 0.9 and traj.noise_std[-1] == 0.0
