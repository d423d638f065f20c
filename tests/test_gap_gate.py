"""The imputation gate fitted per distance to the nearest observation (tsdiff.gap_gate)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tsdiff.errors import DataError
from tsdiff.gap_gate import (
    GAP_EDGES,
    GapGate,
    bucket_groups,
    bucket_names,
    fit_gap_gate,
    gap_bucket,
    gap_distance,
)
from tsdiff.model import TSDiff

from .conftest import tiny_config


def test_gap_distance_counts_steps_to_the_nearest_observation_on_either_side() -> None:
    nan = np.nan
    v = np.array([[1.0, nan, nan, nan, nan, 2.0, nan], [nan, nan, nan, nan, nan, nan, nan]])
    d = gap_distance(v)
    assert d[0].tolist() == [0, 1, 2, 2, 1, 0, 1]
    assert (d[1] > 10**9).all()  # never observed: farther than any bucket edge
    with pytest.raises(DataError):
        gap_distance(np.zeros(5))


def test_buckets_follow_the_edges() -> None:
    got = gap_bucket(np.array([1, 2, 3, 4, 5, 8, 9, 16, 17, 10**6]))
    assert got.tolist() == [0, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert bucket_names(GAP_EDGES) == ["1", "2", "3-4", "5-8", "9-16", "17+"]


def test_sparse_buckets_are_fitted_with_their_nearer_neighbours() -> None:
    assert bucket_groups(np.array([500, 100, 50, 300, 10, 5]), 200) == [(0, 0), (1, 5)]
    assert bucket_groups(np.array([300, 250, 0]), 200) == [(0, 0), (1, 2)]
    assert bucket_groups(np.array([5, 5]), 200) == [(0, 1)]  # all few: one group


def _cells(seed: int = 0, m: int = 6000):
    """Two variables; near an observation the model's median is no better than the
    interpolation (their errors independent), far from one it is far better."""
    rng = np.random.default_rng(seed)
    var = rng.integers(0, 2, m)
    dist = np.where(rng.random(m) < 0.5, 1, rng.integers(5, 60, m))
    truth = rng.normal(size=m)
    near = dist == 1
    interp = truth + np.where(near, 0.3, 1.5) * rng.normal(size=m)
    median = truth + 0.3 * rng.normal(size=m)
    prior = truth + 2.0 * rng.normal(size=m)  # worse than interpolation everywhere
    return median, prior, interp, truth, var, dist


def test_the_weight_follows_the_distance() -> None:
    median, prior, interp, truth, var, dist = _cells()
    fit = fit_gap_gate(median, prior, interp, truth, var, dist, 2, evidence=2.0, pooled=True)
    w = np.asarray(fit.gate.weight)  # (K, B)
    assert w.shape == (2, len(GAP_EDGES))
    assert (0.3 <= w[:, 0]).all() and (w[:, 0] <= 0.7).all()  # next to one: an even blend
    assert (w[:, 3:] >= 0.9).all()  # deep in a gap: the model
    assert all(all(r) for r in fit.gate.interpolation)  # the better base everywhere
    assert fit.mae_gated < fit.mae_model
    # the plain per-variable gate cannot tell near from far: it does worse on these cells
    from tsdiff.calibration import fit_gate

    plain = fit_gate(median, interp, truth, var, 2, evidence=2.0, pooled=True)
    assert fit.mae_gated < plain.mae_gated


def test_cells_take_their_bucket_weight_and_observed_cells_stay() -> None:
    gate = GapGate(
        edges=(1, 3),
        weight=((0.5, 1.0), (0.2, 0.8)),
        interpolation=((True, False), (False, True)),
    )
    nan = np.nan
    v = np.array(
        [[0.0, nan, nan, nan, nan, nan, nan, 1.0], [nan, 2.0, nan, nan, nan, nan, nan, nan]]
    )
    alpha, use = gate.cells(v)
    assert alpha[0].tolist() == [1.0, 0.5, 0.5, 1.0, 1.0, 0.5, 0.5, 1.0]
    assert alpha[1].tolist() == [0.2, 1.0, 0.2, 0.2, 0.8, 0.8, 0.8, 0.8]
    assert use[0, 1] and not use[0, 3] and use[1, 5] and not use[1, 2]
    assert GapGate.from_dict(gate.to_dict()) == gate


def test_bad_cells_are_refused_with_a_data_error() -> None:
    median, prior, interp, truth, var, dist = _cells(m=100)
    with pytest.raises(DataError, match="at least 1 step"):
        fit_gap_gate(median, prior, interp, truth, var, dist * 0, 2)
    with pytest.raises(DataError, match="interp"):
        fit_gap_gate(median, prior, interp[:-1], truth, var, dist, 2)
    with pytest.raises(DataError):
        fit_gap_gate(median[:-1], prior, interp, truth, var, dist, 2)


@pytest.fixture(scope="module")
def gap_fitted(pm25) -> TSDiff:
    return TSDiff(tiny_config(gate_by_gap=True)).fit(pm25.iloc[:500], progress=False)


def test_a_fit_with_the_gap_gate_records_it_and_uses_no_plain_gate(gap_fitted) -> None:
    cal = gap_fitted.info["calibration"]
    assert "gap_gate" in cal and "gate" not in cal
    assert gap_fitted.gate is None
    groups = cal["gap_gate"]["groups"]
    assert groups[0][0] == 0 and groups[-1][1] == len(GAP_EDGES) - 1
    if gap_fitted.gap_gate is not None:
        assert np.asarray(gap_fitted.gap_gate.weight).shape == (8, len(GAP_EDGES))


def test_a_gap_gated_model_saves_loads_and_imputes_the_same(gap_fitted, pm25, tmp_path) -> None:
    if gap_fitted.gap_gate is None:  # the fit kept the model alone: force a blend to check
        k = len(gap_fitted.variables)
        gap_fitted.gap_gate = GapGate(
            GAP_EDGES, tuple((0.5,) * len(GAP_EDGES) for _ in range(k)),
            tuple((True,) * len(GAP_EDGES) for _ in range(k)),
        )  # fmt: skip
    df = pm25.iloc[500:560]
    a = gap_fitted.impute(df, n_samples=8, seed=3)
    gap_fitted.save(tmp_path / "m")
    loaded = TSDiff.load(tmp_path / "m")
    assert loaded.gap_gate == gap_fitted.gap_gate
    b = loaded.impute(df, n_samples=8, seed=3)
    pd.testing.assert_frame_equal(a.frame, b.frame)
    # the gate moved imputed cells (without it they differ), never an observed one
    loaded.gap_gate = None
    off = loaded.impute(df, n_samples=8, seed=3).frame
    flags = [c for c in off.columns if c.endswith("_imputed")]
    assert flags and not a.frame.equals(off)
    for f in flags:
        name = f.removesuffix("_imputed")
        seen = ~off[f].astype(bool)
        pd.testing.assert_series_equal(a.frame.loc[seen, name], off.loc[seen, name])


def test_a_malformed_gap_gate_is_refused_when_built_or_loaded(gap_fitted, tmp_path) -> None:
    import json

    from tsdiff.errors import ModelFileError

    with pytest.raises(ValueError, match="rise from 1"):
        GapGate(edges=(2, 1), weight=((1.0, 1.0),), interpolation=((False, False),))
    with pytest.raises(ValueError, match=r"\(K, 2\)"):
        GapGate(edges=(1, 3), weight=((1.0,),), interpolation=((False, False),))
    k = len(gap_fitted.variables)
    gap_fitted.gap_gate = GapGate((1,), ((1.0,),) * k, ((False,),) * k)
    gap_fitted.save(tmp_path / "m")
    meta_file = tmp_path / "m" / "model.json"
    meta = json.loads(meta_file.read_text())
    meta["gap_gate"]["weight"] = meta["gap_gate"]["weight"][:-1]  # one variable short
    meta["gap_gate"]["interpolation"] = meta["gap_gate"]["interpolation"][:-1]
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="one per variable"):
        TSDiff.load(tmp_path / "m")
