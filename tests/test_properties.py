"""Property tests of the library's contract on random panels (hypothesis).

Three tiny models cover datetime and numeric time, steps of an hour, 15 minutes and 5
units, and 8, 3 and 2 variables; each example draws one and a panel for it: series
count and lengths, dropped rows, missing cells, wide or long layout. Whatever the
panel, the answer must keep observed values bit for bit, fill and flag every missing
cell, order its bounds, cover exactly each series' grid, and repeat under the same seed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tsdiff.model import TSDiff

from .conftest import tiny_config

SAMPLING = {"n_samples": 3, "steps": 2, "levels": [50, 90]}
PROPERTY_SETTINGS = settings(
    max_examples=15,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _synthetic(variables: list[str], step: Any, start: Any, n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    t = np.arange(n)
    frames = []
    for s in range(3):
        vals = {
            v: np.sin(t / (5 + k) + s) * 10 + rng.normal(0, 1, n) for k, v in enumerate(variables)
        }
        frames.append(pd.DataFrame({"series_id": s, "timestamp": start + t * step, **vals}))
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def models(fitted: TSDiff) -> list[TSDiff]:
    cfg = tiny_config(epochs=1, val_crps_every=0)
    quarter = TSDiff(cfg.replace(data={"freq": "15min"})).fit(
        _synthetic(["a", "b", "c"], pd.Timedelta("15min"), pd.Timestamp("2020-01-01")),
        progress=False,
    )
    numeric = TSDiff(cfg.replace(data={"freq": "5"})).fit(
        _synthetic(["x", "y"], 5.0, 100.0), progress=False
    )
    return [fitted, quarter, numeric]


@st.composite
def panels(draw: Any, model: TSDiff) -> pd.DataFrame:
    """A wide panel on (a subset of) the model's grid, with gaps of both kinds."""
    assert model.freq is not None
    step = model.freq.step
    datetime = model.freq.kind == "datetime"
    origin = pd.Timestamp("2021-03-01") if datetime else 0.0
    frames = []
    for s in range(draw(st.integers(1, 3))):
        length = draw(st.integers(1, 60))
        keep = draw(st.lists(st.booleans(), min_size=length, max_size=length))
        keep[0] = keep[-1] = True  # the grid runs from the first to the last row
        offset = draw(st.integers(0, 30))
        idx = np.flatnonzero(keep)
        times = [origin + (offset + int(i)) * step for i in idx]
        p_missing = draw(st.sampled_from([0.0, 0.2, 0.6, 0.95]))
        seed = draw(st.integers(0, 2**16))
        rng = np.random.default_rng(seed)
        vals = rng.normal(0, 5, (len(idx), len(model.variables)))
        vals[rng.random(vals.shape) < p_missing] = np.nan
        if np.isnan(vals).all():
            vals[0, 0] = 1.25  # a series needs one observed value
        frame = pd.DataFrame(vals, columns=model.variables)
        frame.insert(0, "timestamp", times)
        frame.insert(0, "series_id", f"s{s}")
        frames.append(frame)
    df = pd.concat(frames, ignore_index=True)
    return df.sample(frac=1.0, random_state=draw(st.integers(0, 99))) if draw(st.booleans()) else df


def _expected_grid(df: pd.DataFrame, model: TSDiff) -> pd.DataFrame:
    assert model.freq is not None
    step = model.freq.step
    rows = []
    for sid, g in df.groupby("series_id"):
        t0, t1 = g["timestamp"].min(), g["timestamp"].max()
        n = int(round((t1 - t0) / step)) + 1
        rows += [(sid, t0 + k * step) for k in range(n)]
    return pd.DataFrame(rows, columns=["series_id", "timestamp"])


@given(data=st.data())
@PROPERTY_SETTINGS
def test_impute_contract_holds_on_random_panels(models: list[TSDiff], data: Any) -> None:
    model = data.draw(st.sampled_from(models), label="model")
    df = data.draw(panels(model), label="panel")
    long = data.draw(st.booleans(), label="long layout")
    seed = data.draw(st.integers(0, 2**31), label="seed")
    if long:
        inp = df.melt(["series_id", "timestamp"], var_name="variable", value_name="value")
        inp = inp.dropna(subset=["value"]).reset_index(drop=True)
    else:
        inp = df
    out = model.impute(inp, seed=seed, **SAMPLING).frame
    again = model.impute(inp, seed=seed, **SAMPLING).frame
    pd.testing.assert_frame_equal(out, again, check_exact=True)  # same seed, same answer

    if long:  # back to wide to check cell by cell
        flags = out.pivot(index=["series_id", "timestamp"], columns="variable", values="imputed")
        bounds = {
            f"{b}_{lv}": out.pivot(
                index=["series_id", "timestamp"], columns="variable", values=f"{b}_{lv}"
            )
            for b in ("lo", "hi")
            for lv in (50, 90)
        }
        wide = out.pivot(index=["series_id", "timestamp"], columns="variable", values="value")
    else:
        wide = out.set_index(["series_id", "timestamp"])[model.variables]
        flags = out.set_index(["series_id", "timestamp"])[[f"{v}_imputed" for v in model.variables]]
        flags.columns = model.variables
        bounds = {
            f"{b}_{lv}": out.set_index(["series_id", "timestamp"])[
                [f"{v}_{b}_{lv}" for v in model.variables]
            ].set_axis(model.variables, axis=1)
            for b in ("lo", "hi")
            for lv in (50, 90)
        }
    wide = wide.reindex(columns=model.variables)
    flags = flags.reindex(columns=model.variables).astype(bool)

    # shapes and timestamps: exactly each series' grid, once
    grid = _expected_grid(inp, model)  # long input: rows with no value are gone
    got_keys = wide.index.to_frame(index=False).sort_values(["series_id", "timestamp"])
    pd.testing.assert_frame_equal(
        got_keys.reset_index(drop=True),
        grid.sort_values(["series_id", "timestamp"]).reset_index(drop=True),
        check_dtype=False,
    )
    # observed cells bit-identical and unflagged; every other cell filled and flagged
    given_vals = df.set_index(["series_id", "timestamp"])[model.variables]
    observed = given_vals.reindex(wide.index)
    mask = observed.notna().to_numpy()
    assert np.array_equal(wide.to_numpy()[mask], observed.to_numpy()[mask])
    assert np.array_equal(flags.to_numpy(), ~mask)
    assert np.isfinite(wide.to_numpy(dtype=float)).all()
    # lo_90 <= lo_50 <= value <= hi_50 <= hi_90
    v = wide.to_numpy(dtype=float)
    lo90, lo50 = (bounds[k].reindex(wide.index).to_numpy(dtype=float) for k in ("lo_90", "lo_50"))
    hi50, hi90 = (bounds[k].reindex(wide.index).to_numpy(dtype=float) for k in ("hi_50", "hi_90"))
    assert (lo90 <= lo50).all() and (lo50 <= v).all() and (v <= hi50).all() and (hi50 <= hi90).all()


@given(data=st.data())
@PROPERTY_SETTINGS
def test_forecast_contract_holds_on_random_panels(models: list[TSDiff], data: Any) -> None:
    model = data.draw(st.sampled_from(models), label="model")
    df = data.draw(panels(model), label="panel")
    horizon = data.draw(st.integers(1, model.window - 1), label="horizon")
    seed = data.draw(st.integers(0, 2**31), label="seed")
    out = model.forecast(df, horizon, seed=seed, **SAMPLING).frame
    pd.testing.assert_frame_equal(out, model.forecast(df, horizon, seed=seed, **SAMPLING).frame)
    assert model.freq is not None
    last = df.groupby("series_id")["timestamp"].max()
    assert len(out) == horizon * len(last)
    for sid, g in out.groupby("series_id"):
        want = [last[sid] + k * model.freq.step for k in range(1, horizon + 1)]
        assert list(g["timestamp"]) == want
    for v in model.variables:
        med, mean = out[v].to_numpy(), out[f"{v}_mean"].to_numpy()
        assert np.isfinite(med).all() and np.isfinite(mean).all()
        lo90, lo50 = out[f"{v}_lo_90"].to_numpy(), out[f"{v}_lo_50"].to_numpy()
        hi50, hi90 = out[f"{v}_hi_50"].to_numpy(), out[f"{v}_hi_90"].to_numpy()
        assert (lo90 <= lo50).all() and (lo50 <= med).all() and (med <= hi50).all()
        assert (hi50 <= hi90).all()
