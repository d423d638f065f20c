"""Variable specs: inferred bounds and kinds, overrides, and every output inside them."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import PROPERTY, tiny_config
from tsdiff.errors import ConfigError
from tsdiff.model import TSDiff
from tsdiff.spec import (
    VariableSpec,
    infer_one,
    infer_spec,
    parse_bounds,
    parse_kinds,
    project,
)

VARS = [f"station_00100{i}" for i in range(1, 9)]


def test_inference_rules() -> None:
    assert infer_one(np.array([0.0, 3.5, np.nan, 120.0])) == VariableSpec(0.0, None)
    assert infer_one(np.array([-1.0, 3.5])) == VariableSpec(None, None)
    assert infer_one(np.array([0.0, 1.0, 1.0, np.nan])) == VariableSpec(0.0, 1.0, "binary")
    assert infer_one(np.arange(3.0, 16.0)) == VariableSpec(3.0, 15.0, "integer")  # GCS
    assert infer_one(np.arange(0.0, 400.0)).kind == "continuous"  # whole, but many levels
    assert infer_one(np.array([0.21, 0.5, 1.0])) == VariableSpec(0.0, 1.0)  # a fraction
    assert infer_one(np.array([80.5, 97.0, 100.0])) == VariableSpec(0.0, 100.0)  # a percentage
    assert infer_one(np.array([80.5, 97.0, 99.5])) == VariableSpec(0.0, None)
    one_at_100 = np.concatenate([np.linspace(1.0, 99.0, 999), [100.0]])  # PaCO2-like
    assert infer_one(one_at_100) == VariableSpec(0.0, None)  # one value is no ceiling
    assert infer_one(np.array([np.nan])) == VariableSpec()


def test_overrides_win_and_bad_specs_are_config_errors() -> None:
    arrays = [np.array([[0.0, 50.5, 99.0], [3.0, 9.0, 15.0]])]
    specs = infer_spec(arrays, ["SaO2", "GCS"], {"SaO2": {"upper": 100.0}})
    assert specs["SaO2"] == VariableSpec(0.0, 100.0, "continuous", "user")
    assert specs["GCS"].kind == "integer"
    with pytest.raises(ConfigError, match="unknown variable"):
        infer_spec(arrays, ["SaO2", "GCS"], {"HR": {"lower": 0.0}})
    with pytest.raises(ConfigError, match="SaO2: lower bound"):
        infer_spec(arrays, ["SaO2", "GCS"], {"SaO2": {"lower": 5.0, "upper": 1.0}})
    with pytest.raises(ConfigError, match="kind"):
        infer_spec(arrays, ["SaO2", "GCS"], {"GCS": {"kind": "ordinal"}})


def test_cli_spec_parsing() -> None:
    assert parse_bounds("SaO2=0:100, ALT=0:") == {
        "SaO2": {"lower": 0.0, "upper": 100.0},
        "ALT": {"lower": 0.0, "upper": None},
    }
    assert parse_kinds("GCS=integer") == {"GCS": {"kind": "integer"}}
    for bad in ("SaO2", "SaO2=0-100", "SaO2=a:b", ""):
        with pytest.raises(ConfigError):
            parse_bounds(bad)
    with pytest.raises(ConfigError):
        parse_kinds("GCS=ordinal")


def test_project_clips_and_rounds_inside_the_bounds() -> None:
    x = np.array([[[-3.0, 0.4, 7.6], [0.2, 0.7, 2.0], [2.4, 15.6, 9.5]]])  # (1, K=3, T=3)
    specs = [
        VariableSpec(0.0, 5.0),
        VariableSpec(0.0, 1.0, "binary"),
        VariableSpec(3.0, 15.0, "integer"),
    ]
    out = project(x, specs)
    np.testing.assert_array_equal(out[0, 0], [0.0, 0.4, 5.0])
    np.testing.assert_array_equal(out[0, 1], [0.0, 1.0, 1.0])
    np.testing.assert_array_equal(out[0, 2], [3.0, 15.0, 10.0])


@pytest.fixture(scope="module")
def bounded(pm25) -> TSDiff:
    return TSDiff(tiny_config()).fit(pm25.iloc[:400], progress=False)


def test_fit_infers_and_saves_the_spec(bounded, tmp_path) -> None:
    assert bounded.spec is not None and set(bounded.spec) == set(VARS)
    assert all(s.lower == 0.0 for s in bounded.spec.values())  # PM2.5 is never negative
    assert "lower 0" in bounded.info["spec"]["rule"]
    loaded = TSDiff.load(bounded.save(tmp_path / "m"))
    assert loaded.spec == bounded.spec


@PROPERTY
@given(
    seed=st.integers(0, 10_000),
    missing=st.floats(0.1, 0.9),
    kinds=st.lists(
        st.sampled_from(["continuous", "integer", "binary", "log", "logit"]),
        min_size=8,
        max_size=8,
    ),
    lowers=st.lists(st.floats(-50, 60), min_size=8, max_size=8),
    widths=st.lists(st.floats(1, 200), min_size=8, max_size=8),
)
def test_every_output_lies_inside_its_bounds(bounded, seed, missing, kinds, lowers, widths):
    """Bounds, kinds and transforms (log: positive; logit: inside both bounds): every
    output, interval bound and raw sample inside; observed cells bit-identical."""
    from tsdiff.transforms import Normalizer

    rng = np.random.default_rng(seed)
    spec = {}
    for v, kind, lo, w in zip(VARS, kinds, lowers, widths, strict=True):
        if kind == "binary":
            spec[v] = VariableSpec(0.0, 1.0, "binary")
        elif kind == "integer":
            spec[v] = VariableSpec(float(np.floor(lo)), float(np.floor(lo) + np.ceil(w)), kind)
        elif kind == "log":
            spec[v] = VariableSpec(0.0, None, transform="log")
        elif kind == "logit":
            spec[v] = VariableSpec(lo, lo + w, transform="logit")
        else:
            spec[v] = VariableSpec(lo, lo + w)
    bounded.spec = spec
    try:
        vals = rng.normal(60, 40, size=(48, len(VARS)))  # observed values may lie outside
        specs = [spec[v] for v in VARS]  # the network's space for these transforms
        bounded.transformed_scaler = Normalizer.fit(specs, [vals.T]).scaler
        vals[rng.random(vals.shape) < missing] = np.nan
        df = pd.DataFrame(vals, columns=VARS)
        df.insert(0, "timestamp", pd.date_range("2020-01-01", periods=48, freq="h"))
        res = bounded.impute(df, seed=seed, levels=[50, 90], return_samples=True)
        out, samples = res.frame, res.samples
        for v in VARS:
            s, obs = spec[v], df[v].notna().to_numpy()
            assert np.array_equal(out[v].to_numpy()[obs], df[v].to_numpy()[obs])
            imp = ~obs
            cols = [v, f"{v}_lo_50", f"{v}_hi_50", f"{v}_lo_90", f"{v}_hi_90"]
            lo, hi = _support(s)
            for c in cols:
                x = out[c].to_numpy()[imp]
                assert (x >= lo).all() and (x <= hi).all(), c
                if s.kind != "continuous":  # medians of whole numbers may fall halfway
                    assert np.allclose(x * 2, np.round(x * 2)), c
        assert samples is not None and len(samples) == 48 * bounded.config.sample.n_samples
        for v in VARS:  # raw samples, time-major then sample: (T, n)
            x = samples[v].to_numpy().reshape(48, -1)
            s, imp = spec[v], df[v].isna().to_numpy()
            lo, hi = _support(s)
            assert (x[imp] >= lo).all() and (x[imp] <= hi).all()
            if s.transform == "log":  # positive by construction, not only not below 0
                assert (x[imp] > 0).all()
            if s.kind != "continuous":
                assert (np.round(x[imp]) == x[imp]).all()
            assert (x[~imp] == df[v].to_numpy()[~imp, None]).all()  # observed: as given
    finally:
        bounded.spec = {v: VariableSpec(0.0, None) for v in VARS}
        bounded.transformed_scaler = None


def _train_cli(tmp_path, pm25, *flags: str) -> tuple[subprocess.CompletedProcess, object]:
    """``tsdiff train`` on 200 rows of the PM2.5 slice with a tiny config and ``flags``."""
    data, cfg, out = tmp_path / "d.parquet", tmp_path / "c.json", tmp_path / "m"
    pm25.iloc[:200].to_parquet(data)
    cfg.write_text(json.dumps(tiny_config().to_dict()))
    cmd = [
        sys.executable,
        "-m",
        "tsdiff.cli",
        "train",
        str(data),
        "--out",
        str(out),
        "--config",
        str(cfg),
        "--quiet",
        *flags,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300), out


def test_cli_train_refuses_a_bad_spec_before_training(tmp_path, pm25) -> None:
    for flags, msg in (
        (["--bounds", "station_001001=5:1"], "lower bound"),
        (["--bounds", "nope=0:1"], "unknown variable"),
        (["--kind", "station_001001=ordinal"], "--kind"),
        (["--transform", "station_001001=sqrt"], "--transform"),
        (["--transform", "station_001001=logit"], "both a lower and an upper"),
    ):
        r, out = _train_cli(tmp_path, pm25, *flags)
        assert r.returncode == 2, r.stderr[-500:]
        assert msg in r.stderr and not out.exists()


def test_cli_train_records_user_bounds(tmp_path, pm25) -> None:
    r, out = _train_cli(
        tmp_path,
        pm25,
        "--bounds",
        "station_001001=0:500,station_001003=0:1000",
        "--kind",
        "station_001002=integer",
        "--transform",
        "station_001003=logit",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    spec = json.loads((out / "model.json").read_text())["spec"]
    assert spec["station_001001"] == {
        "lower": 0.0,
        "upper": 500.0,
        "kind": "continuous",
        "source": "user",
        "transform": "identity",
    }
    assert spec["station_001002"]["kind"] == "integer"
    assert spec["station_001003"]["transform"] == "logit"


def test_log_is_inferred_for_positive_skewed_variables_only_when_asked():
    from tsdiff.spec import infer_spec

    rng = np.random.default_rng(0)
    skewed = rng.lognormal(0, 1.2, size=(1, 500))
    normal = rng.normal(5, 1, size=(1, 500))
    x = np.concatenate([skewed, normal, -skewed])
    names = ["lab", "vital", "negative"]
    on = infer_spec([x], names, transforms=True)
    assert [on[n].transform for n in names] == ["log", "identity", "identity"]
    assert all(s.transform == "identity" for s in infer_spec([x], names).values())
    over = infer_spec([x], names, {"vital": {"lower": 0, "upper": 10, "transform": "logit"}})
    assert over["vital"].transform == "logit" and over["vital"].source == "user"


def test_the_skewness_threshold_decides_which_positive_variables_go_to_logs():
    """A moderately skewed concentration (skewness ~1.5, like a PM2.5 station) stays as
    it is at a threshold of 2 and goes to logs at 1; a symmetric one never does."""
    from tsdiff.spec import _skewness, infer_spec

    rng = np.random.default_rng(1)
    moderate = rng.gamma(1.8, 40.0, size=(1, 4000)) + 1.0
    symmetric = rng.normal(50, 5, size=(1, 4000))
    assert 1.0 < _skewness(moderate[0]) < 2.0
    x, names = np.concatenate([moderate, symmetric]), ["pm25", "vital"]
    strict = infer_spec([x], names, transforms=True, log_skew=2.0)
    loose = infer_spec([x], names, transforms=True, log_skew=1.0)
    assert [strict[n].transform for n in names] == ["identity", "identity"]
    assert [loose[n].transform for n in names] == ["log", "identity"]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "2", True])
def test_a_log_skew_that_is_not_a_finite_number_is_a_config_error(bad):
    from tsdiff.config import VariablesConfig

    with pytest.raises(ConfigError, match="variables.log_skew must be a finite number"):
        VariablesConfig(log_skew=bad)


def test_the_recorded_rule_names_the_threshold_used():
    from tsdiff.spec import rule

    assert "skewness > 1;" in rule(1.0) and "skewness > 2;" in rule(2.0)


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ({"negative": {"transform": "log"}}, "positive values"),
        ({"vital": {"transform": "logit"}}, "both a lower and an upper"),
        ({"vital": {"transform": "sqrt"}}, "transform must be one of"),
        ({"vital": {"kind": "integer", "transform": "log"}}, "continuous"),
    ],
)
def test_a_bad_transform_is_a_config_error(override, match):
    from tsdiff.errors import ConfigError
    from tsdiff.spec import infer_spec

    rng = np.random.default_rng(1)
    x = np.stack([rng.normal(5, 1, 200), -rng.lognormal(0, 1, 200)])
    with pytest.raises(ConfigError, match=match):
        infer_spec([x], ["vital", "negative"], override)


def test_transforms_map_every_real_back_inside_the_support():
    from tsdiff.spec import VariableSpec
    from tsdiff.transforms import backward, forward

    specs = [VariableSpec(0.0, None, transform="log"), VariableSpec(0.0, 100.0, transform="logit")]
    z = np.linspace(-50, 50, 101)[None].repeat(2, axis=0)  # (K, T): any network output
    raw = backward(z, specs)
    assert (raw[0] > 0).all() and ((raw[1] >= 0) & (raw[1] <= 100)).all()
    x = np.array([[0.5, 3.0, 120.0], [1.0, 50.0, 99.0]])
    np.testing.assert_allclose(backward(forward(x, specs), specs), x, rtol=1e-9)


def test_network_bounds_clip_where_project_clips_raw_values():
    from tsdiff.data import Scaler
    from tsdiff.transforms import Normalizer, network_bounds

    specs = [
        VariableSpec(0.0, None),  # PM2.5: at least 0
        VariableSpec(None, None),  # open
        VariableSpec(0.0, None, transform="log"),
        VariableSpec(0.0, 100.0, transform="logit"),
    ]
    norm = Normalizer(specs, Scaler((50.0, 0.0, 1.0, 0.0), (20.0, 1.0, 2.0, 3.0)))
    lo, hi = network_bounds(norm, specs)
    assert lo[0] == pytest.approx(-2.5) and hi[0] == np.inf
    assert lo[1] == -np.inf and hi[1] == np.inf
    # inside each bound in the network's space ⇔ inside it in raw values
    raw = np.array([[-5.0, 0.0, 80.0], [-9.0, 0.0, 9.0], [1e-12, 0.5, 9.0], [0.0, 50.0, 100.0]])
    z = norm.transform(raw)
    inside = (z >= lo[:, None] - 1e-9) & (z <= hi[:, None] + 1e-9)
    np.testing.assert_array_equal(inside[0], [False, True, True])
    assert inside[1:].all()  # log and logit values never leave their bounds


def test_a_model_with_transforms_saves_loads_and_keeps_log_values_positive(tmp_path):
    from tests.conftest import tiny_config
    from tsdiff.datasets import physionet_slice
    from tsdiff.model import TSDiff

    df = physionet_slice()
    ids = df["series_id"].unique()
    train, test = df[df.series_id.isin(ids[:40])], df[df.series_id.isin(ids[40:46])]
    cfg = tiny_config().replace(data={"window": 48, "freq": "60"}, variables={"transforms": True})
    model = TSDiff(cfg).fit(train, progress=False)
    logs = [v for v in model.variables if model.spec[v].transform == "log"]
    assert logs and model.transformed_scaler is not None
    res = model.impute(test, n_samples=6, seed=0, return_samples=True)
    values = res.samples[res.samples["variable"].isin(logs)]["value"]
    assert (values.dropna() > 0).all()
    loaded = TSDiff.load(model.save(tmp_path / "m"))
    assert loaded.spec == model.spec and loaded.transformed_scaler == model.transformed_scaler
    again = loaded.impute(test, n_samples=6, seed=0).frame
    pd.testing.assert_frame_equal(again, res.frame)


def _support(s: VariableSpec) -> tuple[float, float]:
    """A spec's bounds with a tolerance, open sides infinite."""
    lo = -np.inf if s.lower is None else s.lower - 1e-9
    hi = np.inf if s.upper is None else s.upper + 1e-9
    return lo, hi
