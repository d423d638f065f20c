"""The CSDI-protocol benchmark harness: protocol pieces, and each benchmark end to end on a
tiny slice so the harness cannot rot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tsdiff.benchmarks import csdi, peers, shipped
from tsdiff.benchmarks.common import PROFILES
from tsdiff.cli import main
from tsdiff.datasets import PHYSIONET_VARIABLES, default_data_dir, physionet_slice
from tsdiff.errors import ConfigError

METHODS = {"tsdiff", "linear", "locf", "mean", "knn", "iterative"}
METRIC_KEYS = {"mae", "rmse", "crps", "cov50", "cov90", "train_s", "impute_s"}


def test_physionet_grid_keeps_the_last_value_of_each_hour_and_all_48_hours():
    raw = pd.DataFrame(
        {
            "series_id": [7, 7, 7, 7],
            "timestamp": [5, 50, 61, 2879],  # minutes: two in hour 0, one in 1, one in 47
            "variable": ["HR", "HR", "HR", "Temp"],
            "value": [80.0, 90.0, 70.0, 37.5],
        }
    )
    grid = csdi.physionet_grid(raw)
    assert len(grid) == 48 and list(grid["timestamp"]) == list(np.arange(48.0))
    assert list(grid.columns) == ["series_id", "timestamp", *PHYSIONET_VARIABLES]
    assert grid.loc[0, "HR"] == 90.0 and grid.loc[1, "HR"] == 70.0
    assert grid.loc[47, "Temp"] == 37.5
    assert grid["HR"].notna().sum() == 2


def test_folds_split_70_10_20_and_the_five_tests_partition_the_stays():
    ids = np.arange(1000, 1500)
    tests = []
    for fold in range(5):
        tr, va, te = csdi.fold_split(ids, fold, seed=3)
        assert (len(tr), len(va), len(te)) == (350, 50, 100)
        assert not (set(tr) & set(va) or set(tr) & set(te) or set(va) & set(te))
        tests.append(te)
    assert sorted(np.concatenate(tests).tolist()) == ids.tolist()
    with pytest.raises(ConfigError, match="fold"):
        csdi.fold_split(ids, 5, seed=0)


def test_every_profile_loads_and_unknown_settings_are_refused(tmp_path):
    for path in sorted(PROFILES.glob("*.json")):
        family, name = path.stem.split("-", 1)
        if family not in ("physionet", "pm25"):
            continue  # other benchmarks' profiles
        p = csdi.load_profile(family, name)
        assert p.name == name and p.bench.n_samples >= 1
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"benchmark": {"n_sample": 3}}))
    with pytest.raises(ConfigError, match="n_sample"):
        csdi.load_profile("physionet", str(bad))
    with pytest.raises(ConfigError, match="known"):
        csdi.load_profile("physionet", "no-such-profile")


def _check_result(r: dict, dataset: str, out: Path) -> None:
    assert r["dataset"] == dataset and r["profile"] == "tiny"
    assert set(r["methods"]) == METHODS | {"saits"}
    saits = r["methods"]["saits"]
    if peers.missing_reason() is None:  # the peer trained for our training time
        assert METRIC_KEYS | {"epochs"} <= set(saits) and saits["epochs"] >= 1
        assert np.isfinite(saits["mae"]) and saits["mae"] > 0 and saits["train_s"] > 0
    else:
        assert "pip install" in saits["missing"]
    for name, m in r["methods"].items():
        if name == "saits":
            continue
        assert METRIC_KEYS <= set(m), name
        assert np.isfinite(m["mae"]) and np.isfinite(m["crps"]) and m["mae"] > 0
    assert 0 <= r["methods"]["tsdiff"]["cov90"] <= 1
    s = r["sampling"]
    assert s["ours_s"] > 0 and s["reference_s"] > 0
    assert s["speedup"] == pytest.approx(s["reference_s"] / s["ours_s"], rel=0.05)
    t = r["training"]
    assert t["ours_windows_per_s"] > 0 and t["csdi_sized_windows_per_s"] > 0
    assert t["csdi_sized_params"] > t["ours_params"]
    on_disk = json.loads((out / f"{dataset}-tiny.json").read_text())
    assert on_disk["methods"] == r["methods"]
    page = (out / f"{dataset}-tiny.md").read_text()
    assert "| tsdiff |" in page and "CSDI (published)" in page


@pytest.mark.slow
def test_physionet_benchmark_end_to_end_on_a_tiny_slice(tmp_path):
    # the shipped slice, written in the raw layout of the full data file
    s = physionet_slice()
    raw = pd.DataFrame(
        {
            "record_id": s["series_id"].astype("int32"),
            "minute": s["timestamp"].astype("int16"),
            "parameter": s["variable"],
            "value": s["value"],
        }
    )
    data = tmp_path / "data"
    data.mkdir()
    raw.to_parquet(data / "physionet2012_seta.parquet")
    out = tmp_path / "results"
    r = csdi.run("physionet", "tiny", missing=0.5, data_dir=data, out_dir=out, progress=False)
    _check_result(r, "physionet50", out)
    # z-scored truth against a prediction of 0 (the training mean): CRPS is exactly 1
    assert r["methods"]["mean"]["crps"] == pytest.approx(1.0)
    # half of each test stay's observed values are the target cells
    test_ids = csdi.fold_split(np.sort(s["series_id"].unique()), 0, 0)[2][:6]
    grid = csdi.physionet_grid(s[s["series_id"].isin(test_ids)])
    per_stay = grid.groupby("series_id")[list(PHYSIONET_VARIABLES)].count().sum(axis=1)
    assert r["protocol"]["n_cells"] == int((per_stay * 0.5).astype(int).sum())


@pytest.mark.slow
def test_pm25_benchmark_end_to_end_on_a_tiny_slice(tmp_path):
    src = default_data_dir()
    if src is None or not (src / "pm25_ground.parquet").is_file():
        pytest.skip("the shared PM2.5 data is not on this machine")
    data = tmp_path / "data"
    data.mkdir()
    cols = ["timestamp"] + [f"station_0010{i:02d}" for i in range(1, 7)]
    for name in ("pm25_ground", "pm25_missing"):
        pd.read_parquet(src / f"{name}.parquet")[cols].to_parquet(data / f"{name}.parquet")
    out = tmp_path / "results"
    r = csdi.run("pm25", "tiny", data_dir=data, out_dir=out, progress=False)
    _check_result(r, "pm25", out)
    # target cells: present in ground, absent in missing, in the first test month
    g = pd.read_parquet(data / "pm25_ground.parquet")
    m = pd.read_parquet(data / "pm25_missing.parquet")
    first = pd.to_datetime(g["timestamp"]).dt.month.isin(csdi.PM25_TEST_MONTHS).idxmax()
    month = pd.to_datetime(g["timestamp"]).dt.to_period("M")
    rows = month == month.iloc[first]
    expect = int((g.loc[rows, cols[1:]].notna() & m.loc[rows, cols[1:]].isna()).sum().sum())
    assert r["protocol"]["n_cells"] == expect


def test_cli_benchmark_rejects_an_unknown_profile(capsys):
    assert main(["benchmark", "pm25", "--profile", "nope"]) == 2
    assert "no profile 'nope'" in capsys.readouterr().err


def test_covariates_report_lists_each_run_with_its_seed():
    from tsdiff.benchmarks.covariates import markdown

    def run(names, seed, mae):
        cmd = "python -m tsdiff.benchmarks.covariates run x" + (f" --seed {seed}" if seed else "")
        o = {"mae": mae, "crps": 0.3, "cov50": 0.5, "cov90": 0.9, "n_cells": 10}
        return {"command": cmd, "static_covariates": names, "minutes": 6.0,
                "prior_epochs": 3, "epochs": 4, "overall": o}  # fmt: skip

    naive = {"mae": 56.2, "crps": 0.55, "cov50": 0.6, "cov90": 0.9, "n_cells": 10}
    r = {"command": "c", "commit": "abc", "date": "d", "machine": {"cpus": 2},
         "runs": [run([], 0, 38.4), run(["latitude", "longitude"], 1, 35.9)],
         "seasonal_naive": naive}  # fmt: skip
    page = markdown(r)
    assert "| none | 0 | 6.0 | 3 / 4 | 38.40 |" in page
    assert "| latitude, longitude | 1 | 6.0 | 3 / 4 | 35.90 |" in page
    assert "| seasonal naive (24 h) | – | – | – | 56.20 |" in page


def test_recalibrate_refits_only_the_calibration_under_the_rules_asked_for():
    src = default_data_dir()
    if src is None or not (src / "physionet2012_seta.parquet").is_file():
        pytest.skip("the shared PhysioNet data is not on this machine")
    import torch

    from tsdiff.benchmarks.recalibration import recalibrate
    from tsdiff.model import TSDiff

    model = TSDiff.load("physionet-vitals")
    model.config = model.config.replace(
        sample={"n_samples": 4, "steps": 2}, train={"calibrate_max_series": 20}
    )
    weights = {k: v.clone() for k, v in model.net.state_dict().items()}
    before = model.info["calibration"]
    fit = recalibrate(model, "pattern", True)
    assert model.config.train.holdout == "pattern" and model.config.train.gate_pooled
    assert fit["holdout"] == "pattern" and model.info["calibration"] is fit
    assert fit["n_cells"] != before["n_cells"]  # other cells: the stays' own gaps
    assert all(torch.equal(v, weights[k]) for k, v in model.net.state_dict().items())
    two = recalibrate(model, draws=2)  # the rules kept, two draws of cells pooled
    assert model.config.train.calibrate_draws == 2 and two["draws"] == 2
    assert two["holdout"] == "pattern" and two["n_cells"] > fit["n_cells"]
    gap = recalibrate(model, by_gap=True, draws=1)  # the gate per distance instead
    assert model.config.train.gate_by_gap and "gap_gate" in gap and "gate" not in gap
    assert model.gate is None and gap["n_cells"] == fit["n_cells"]


def test_a_recalibration_variant_names_its_rules():
    from tsdiff.benchmarks.recalibration import _variant

    assert _variant("pattern") == ("pattern", False, False)
    assert _variant("random+pooled") == ("random", True, False)
    assert _variant("pattern+pooled+gap") == ("pattern", True, True)
    for bad in ("pattern+wide", "blocks", "random+gap+x"):
        with pytest.raises(SystemExit, match="variant must be"):
            _variant(bad)


def test_sampler_choice_refits_per_candidate_and_seed_and_pairs_on_the_same_cells(tmp_path):
    """Each (steps, seed) draw recalibrates the model afresh; the ratios pair each
    candidate with the first on the same seed's cells, so the first's are exactly 1."""
    src = default_data_dir()
    if src is None or not (src / "physionet2012_seta.parquet").is_file():
        pytest.skip("the shared PhysioNet data is not on this machine")
    from tsdiff.benchmarks.sampler_choice import run as choose
    from tsdiff.model import TSDiff

    model = TSDiff.load("physionet-vitals")
    model.config = model.config.replace(sample={"n_samples": 4}, train={"calibrate_max_series": 12})
    model.save(tmp_path / "m")
    r = choose(str(tmp_path / "m"), [2, 3], [0, 1], "choice", out_dir=tmp_path)
    assert [(d["steps"], d["seed"]) for d in r["validation"]] == [(2, 0), (2, 1), (3, 0), (3, 1)]
    assert r["paired_mae"]["2"] == [1.0, 1.0] and r["paired_crps"]["2"] == [1.0, 1.0]
    by = {(d["steps"], d["seed"]): d for d in r["validation"]}
    assert by[2, 0]["n_cells"] == by[3, 0]["n_cells"]  # a seed hides the same cells
    assert by[2, 0]["mae_gated"] != by[2, 1]["mae_gated"]  # another seed, other cells
    assert r["paired_mae"]["3"][1] == pytest.approx(by[3, 1]["mae_gated"] / by[2, 1]["mae_gated"])
    assert r["test"] == [] and TSDiff.load(tmp_path / "m").config.sample.steps == 4
    page = (tmp_path / "choice.md").read_text()
    assert "| 3 | 1 |" in page and "- 3 steps: MAE" in page
    assert json.loads((tmp_path / "choice.json").read_text())["validation"] == r["validation"]


@pytest.mark.slow
def test_shipped_vitals_scored_with_half_of_each_stays_values_held_out(tmp_path):
    src = default_data_dir()
    if src is None or not (src / "physionet2012_seta.parquet").is_file():
        pytest.skip("the shared PhysioNet data is not on this machine")
    kw = {"test_series": 3, "n_samples": 4, "steps": 2}
    ten = shipped.run("physionet-vitals", tmp_path, **kw)
    half = shipped.run("physionet-vitals", tmp_path, missing=0.5, **kw)
    assert (ten["dataset"], half["dataset"]) == ("physionet10", "physionet50")
    assert half["trained_on"] == "physionet10" and half["published"]["csdi"]["crps"] == 0.33
    # the same three stays, five times the share of their observed values hidden
    assert half["n_series"] == ten["n_series"] == 3
    assert 4 * ten["n_cells"] < half["n_cells"] < 6 * ten["n_cells"]
    assert (tmp_path / "shipped-physionet-vitals-ddim-4x2-3series-missing50.json").exists()
    assert (tmp_path / "shipped-physionet-vitals-ddim-4x2-3series.json").exists()
    assert half["outside_bounds"] == {"medians": 0, "interval_bounds": 0, "samples": 0}


def test_shipped_refuses_a_missing_share_for_a_model_whose_data_fixes_it(tmp_path):

    with pytest.raises(ConfigError, match="--missing applies to PhysioNet models"):
        shipped.run("pm25-beijing", tmp_path, missing=0.5)
    assert not list(tmp_path.iterdir())


def test_model_choice_scores_every_model_on_the_same_validation_cells(tmp_path):
    """Two models of one protocol impute the same hidden validation cells per seed (other
    cells on another seed); ratios pair each with the first, whose are exactly 1."""
    src = default_data_dir()
    if src is None or not (src / "physionet2012_seta.parquet").is_file():
        pytest.skip("the shared PhysioNet data is not on this machine")
    from tsdiff.benchmarks.model_choice import run as choose
    from tsdiff.model import TSDiff

    for name, steps in (("a", 2), ("b", 3)):
        model = TSDiff.load("physionet-vitals")
        model.config = model.config.replace(sample={"n_samples": 4, "steps": steps})
        model.save(tmp_path / name)
    models = [str(tmp_path / "a"), str(tmp_path / "b")]
    r = choose(models, [0, 1], "choice", valid_series=3, out_dir=tmp_path)
    by = {(d["model"], d["seed"]): d for d in r["validation"]}
    assert by[models[0], 0]["n_cells"] == by[models[1], 0]["n_cells"] > 0
    lin = {d["seed"]: d["mae"] for d in r["linear"]}
    assert lin[0] != lin[1]  # seed 1 hides other cells (as many: 10 % of each stay's)
    assert r["paired"]["mae"][models[0]] == [1.0, 1.0]
    assert r["paired"]["crps"][models[1]][1] == pytest.approx(
        by[models[1], 1]["crps"] / by[models[0], 1]["crps"], rel=1e-4
    )
    assert [d["seed"] for d in r["linear"]] == [0, 1] and r[
        "scale"
    ] == "z-scored with training statistics"
    page = (tmp_path / "choice.md").read_text()
    assert "| linear interpolation | 1 |" in page and f"- `{models[1]}`: MAE" in page


def test_model_choice_refuses_models_of_different_protocols(tmp_path):
    from tsdiff.benchmarks.model_choice import main as choose_main

    with pytest.raises(SystemExit) as exit_:
        choose_main(["physionet-vitals", "pm25-beijing", "--stem", "x", "--out", str(tmp_path)])
    assert exit_.value.code == 2 and not list(tmp_path.iterdir())


def test_pm25_validation_holds_out_what_the_missing_file_lacks():
    """The validation days' input is ``pm25_missing`` there: its held-out cells are those
    the ground truth has and the input lacks, as on the test months."""
    src = default_data_dir()
    if src is None or not (src / "pm25_ground.parquet").is_file():
        pytest.skip("the shared PM2.5 data is not on this machine")
    task = csdi.pm25_task()
    assert task.valid_input is not None and task.valid_input.shape == task.valid.shape
    assert task.valid_input["timestamp"].equals(task.valid["timestamp"])
    stations = [c for c in task.valid.columns if c not in ("series_id", "timestamp")]
    truth, given = task.valid[stations].to_numpy(), task.valid_input[stations].to_numpy()
    assert np.isnan(truth[~np.isnan(given)]).sum() == 0  # the input never adds a value
    hidden = ~np.isnan(truth) & np.isnan(given)
    assert 0.05 < hidden.sum() / (~np.isnan(truth)).sum() < 0.5
