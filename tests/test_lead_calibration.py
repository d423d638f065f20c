"""The lead-calibration benchmark keeps its draws for offline fits: what it kept is what
it scored, calibration origins before the test origins."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest


def test_lead_calibration_keeps_the_draws_it_scored(tmp_path) -> None:
    pytest.importorskip("statsforecast")
    from tsdiff.benchmarks import lead_calibration
    from tsdiff.datasets import default_data_dir

    base = default_data_dir()
    if base is None or not (base / "etth1_2017_2018.parquet").is_file():
        pytest.skip("../shared/data/etth1_2017_2018.parquet is not available")
    dump, out = tmp_path / "dump", tmp_path / "out"
    argv = ["etth1", "--profile", "tiny", "--horizon", "24", "--windows", "3"]
    argv += ["--calibrate-windows", "4", "--dump", str(dump), "--out", str(out)]
    assert lead_calibration.main(argv) == 0
    d = np.load(dump / "draws.npz")
    with open(dump / "model.pkl", "rb") as f:
        meta = pickle.load(f)
    w, n, k, h = d["z"].shape
    assert (w, k, h) == (3, 7, 24) and d["cal_z"].shape == (4, n, k, h)
    assert d["zy"].shape == d["truth"].shape == (w, k, h) and d["cal_y"].shape == (4, k, h)
    # the normalised truths are the original ones through the model's normaliser
    np.testing.assert_allclose(meta["normalizer"].transform(d["truth"]), d["zy"], atol=1e-4)
    # every calibration horizon ends by the first test origin
    assert d["cal_pos"].max() + h <= d["pos"].min()
    r = json.loads((out / "lead-calibration-etth1-h24.json").read_text())
    assert r["test_origins"] == w and r["calibration_origins"] == 4
    # the clipping benchmark reads the same draws; its rolling rule is the library's
    from tsdiff.benchmarks import calibration_support
    from tsdiff.benchmarks.lead_calibration import lead_bands, rolling_plan, score
    from tsdiff.transforms import network_bounds

    argv = [str(dump), "--name", "t", "--recent", "2", "--once", "3", "--out", str(out)]
    assert calibration_support.main(argv) == 0
    page = json.loads((out / "calibration-support-t.json").read_text())["variants"]
    assert len(page) == 6 and len({round(v["mae"], 6) for v in page.values()}) == 1
    norm, specs = meta["normalizer"], meta["specs"]
    where = [[("s", int(p), None) for p in d[c]] for c in ("cal_pos", "pos")]
    plan = rolling_plan(
        d["cal_z"].astype(float), d["cal_y"].astype(float), where[0], d["z"].astype(float),
        d["zy"].astype(float), where[1], h, 2, support=network_bounds(norm, specs),
    )  # fmt: skip
    lib = score(norm, specs, d["z"].astype(float), d["truth"], plan, lead_bands(h))
    ours = page["rolling, latest 2 matured: intervals clipped (the library's rule)"]
    assert ours["cov50"] == lib["cov50"] and ours["cov90"] == lib["cov90"]


def test_interval_factor_by_lead_recovers_how_errors_outgrow_the_samples() -> None:
    """Truths whose spread grows as (1 + lead)^0.3 while the samples' stays fixed: the
    pinball fit finds the slope 0.3 at both levels; one factor for every lead has none."""
    from tsdiff.benchmarks.interval_regression import fit

    rng = np.random.default_rng(0)
    w, n, k, h = 20, 64, 3, 48
    z = rng.standard_normal((w, n, k, h))
    y = rng.standard_normal((w, k, h)) * (1 + np.arange(h)) ** 0.3
    by_lead = fit(z, y, by_lead=True)
    for lv in (50, 90):
        assert by_lead["coef"][lv][1] == pytest.approx(0.3, abs=0.06)
        assert fit(z, y, by_lead=False)["coef"][lv][1] == 0.0


def test_interval_regression_refuses_a_folder_without_draws(tmp_path, capsys) -> None:
    from tsdiff.benchmarks.interval_regression import main

    out = tmp_path / "out"
    assert main([str(tmp_path), "--name", "x", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "not a lead_calibration --dump folder: no draws.npz, model.pkl" in err
    assert not out.exists()


def test_calibration_support_refuses_a_folder_without_draws(tmp_path, capsys) -> None:
    from tsdiff.benchmarks.calibration_support import main

    assert main([str(tmp_path), "--name", "x", "--out", str(tmp_path)]) == 2
    assert "not a lead_calibration --dump folder" in capsys.readouterr().err
