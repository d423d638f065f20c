"""Gaps left open on request: ``max_gap`` and ``fill_edges`` in imputation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import PROPERTY
from tsdiff.cli import main
from tsdiff.errors import RangeError
from tsdiff.masks import open_gaps

VARS = [f"station_00100{i}" for i in range(1, 9)]
N = np.nan


def test_open_gaps_marks_long_runs_and_optionally_the_edges() -> None:
    v = np.array([[N, 1, N, 2, N, N, N, 3, N, N, N, N, N, 4, N, N]])
    assert open_gaps(v, 3)[0].tolist() == [False] * 8 + [True] * 5 + [False] * 3
    edges = open_gaps(v, None, fill_edges=False)[0]
    assert edges.tolist() == [True] + [False] * 13 + [True, True]
    assert open_gaps(np.array([[N, N, N]]), None, fill_edges=False).all()  # never observed
    assert not open_gaps(v, None).any()


def _panel(rng: np.random.Generator, length: int, p_miss: float, p_outage: float) -> pd.DataFrame:
    vals = rng.normal(60, 20, size=(length, len(VARS))).clip(0)
    vals[rng.random(vals.shape) < p_miss] = np.nan
    for k in range(len(VARS)):  # an outage of random length per variable
        if rng.random() < p_outage:
            a = int(rng.integers(0, length))
            vals[a : a + int(rng.integers(1, length)), k] = np.nan
    vals[0, 0] = 50.0
    df = pd.DataFrame(vals, columns=VARS)
    df.insert(0, "timestamp", pd.date_range("2020-01-01", periods=length, freq="h"))
    return df


@PROPERTY
@given(
    seed=st.integers(0, 10_000),
    max_gap=st.integers(0, 6),
    fill_edges=st.booleans(),
    p_miss=st.floats(0.0, 0.6),
)
def test_long_gaps_stay_missing_and_unflagged(fitted, seed, max_gap, fill_edges, p_miss) -> None:
    df = _panel(np.random.default_rng(seed), 60, p_miss, 0.7)
    out = fitted.impute(df, seed=seed, max_gap=max_gap, fill_edges=fill_edges).frame
    full = fitted.impute(df, seed=seed).frame
    for k, v in enumerate(VARS):
        x = df[v].to_numpy()
        gaps = open_gaps(x[None], max_gap, fill_edges)[0]
        obs = ~np.isnan(x)
        assert np.array_equal(out[v].to_numpy()[obs], x[obs])  # observed: as given
        assert out[v].isna().to_numpy()[gaps].all() and not out[f"{v}_imputed"][gaps].any()
        for c in (f"{v}_lo_90", f"{v}_hi_90", f"{v}_lo_50", f"{v}_hi_50"):
            assert out[c].isna().to_numpy()[gaps].all()
        rest = ~obs & ~gaps  # short gaps: filled exactly as without the option
        assert out[f"{v}_imputed"].to_numpy()[rest].all()
        assert np.array_equal(out[v].to_numpy()[rest], full[v].to_numpy()[rest]), k


def test_bad_max_gap_is_a_range_error(fitted, pm25) -> None:
    for bad in (-1, 1.5, True):
        with pytest.raises(RangeError, match="max_gap"):
            fitted.impute(pm25.iloc[500:548], max_gap=bad)


def test_cli_max_gap_and_open_edges(fitted, tmp_path) -> None:
    model = fitted.save(tmp_path / "m")
    df = _panel(np.random.default_rng(3), 48, 0.1, 1.0)
    df.to_parquet(tmp_path / "d.parquet")
    out = tmp_path / "o.parquet"
    args = ["impute", str(model), str(tmp_path / "d.parquet"), "--out", str(out)]
    assert main([*args, "--max-gap", "2", "--open-edges", "--n-samples", "4"]) == 0
    got = pd.read_parquet(out)
    for v in VARS:
        gaps = open_gaps(df[v].to_numpy()[None], 2, fill_edges=False)[0]
        assert got[v].isna().to_numpy()[gaps].all()
    out.unlink()
    assert main([*args, "--max-gap", "-1"]) == 2 and not out.exists()
