"""The point-estimate experiment's scoring: disjoint sample subsets, ensembles on the
same cells only, and a spread-bucketed gate scored out of fold."""

from __future__ import annotations

import numpy as np
import pytest

from .conftest import load_script


def _script():
    return load_script("point_estimate_check")


def _cells(n=64, m=400, seed=0):
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=m)
    return {
        "samples": truth[None] + rng.normal(size=(n, m)),
        "truth": truth,
        "var": np.arange(m) % 4,
        "prior": truth + rng.normal(size=m),
        "interp": truth + 2 * rng.normal(size=m),
    }


def test_sample_counts_use_disjoint_subsets_and_more_samples_help():
    rows = _script().sample_counts(_cells())
    assert [(r["n_samples"], r["subsets"]) for r in rows] == [(16, 4), (32, 2), (64, 1)]
    assert rows[-1]["mae_sd"] == 0.0  # one subset
    assert rows[-1]["mae"] < rows[0]["mae"]  # a median of 64 draws is nearer than of 16


def test_ensembles_need_the_same_cells_and_a_copy_changes_nothing():
    mod = _script()
    c = _cells()
    rows = mod.ensembles(c, dict(c), 64)
    assert len({round(r["mae"], 12) for r in rows}) == 1  # every rule = the model alone
    with pytest.raises(SystemExit, match="different validation cells"):
        mod.ensembles(c, _cells(seed=1), 64)


def test_a_gate_by_spread_finds_where_the_base_is_better_out_of_fold():
    c = _cells(m=800)
    wide = np.arange(800) % 8 >= 4  # half the cells of every variable
    rng = np.random.default_rng(2)
    # where the samples spread widely their median misses and the prior is exact; where
    # they are narrow the median is exact and the prior misses
    c["samples"] = c["truth"][None] + np.where(wide, 3.0, 0.01) * rng.normal(size=(64, 800))
    c["samples"] += np.where(wide, 2.0, 0.0)
    c["prior"] = np.where(wide, c["truth"], c["truth"] + 1.0)
    rows = {(r["base"], r["buckets"]): r["mae_out_of_fold"] for r in _script().spread_gates(c, 64)}
    assert rows[("prior", 2)] < 0.05 < rows[("prior", 1)]
