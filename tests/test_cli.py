"""The command line, driven as scripts outside the repo will drive it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tsdiff.cli import main
from tsdiff.errors import CalibrationWarning
from tsdiff.io import current_umask

from .conftest import tiny_config


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, pm25):
    d = tmp_path_factory.mktemp("cli")
    pm25.iloc[:400].to_parquet(d / "train.parquet", index=False)
    pm25.iloc[400:520].to_parquet(d / "test.parquet", index=False)
    (d / "cfg.json").write_text(tiny_config().to_json())
    rc = main(
        [
            "train",
            str(d / "train.parquet"),
            "--out",
            str(d / "model"),
            "--config",
            str(d / "cfg.json"),
            "--epochs",
            "1",
            "--seed",
            "3",
            "--quiet",
        ]
    )
    assert rc == 0
    return d


def test_train_writes_a_loadable_model_and_checkpoint(workdir):
    assert (workdir / "model" / "weights.safetensors").is_file()
    assert (workdir / "model.ckpt").is_file()
    meta = json.loads((workdir / "model" / "model.json").read_text())
    assert meta["info"]["epochs_run"] == 1


def test_impute_and_samples(workdir, capsys):
    out = workdir / "imputed.parquet"
    rc = main(
        [
            "impute",
            str(workdir / "model"),
            str(workdir / "test.parquet"),
            "--out",
            str(out),
            "--levels",
            "50,80",
            "--n-samples",
            "3",
            "--steps",
            "2",
            "--samples-out",
            str(workdir / "samples.parquet"),
        ]
    )
    assert rc == 0
    df = pd.read_parquet(out)
    src = pd.read_parquet(workdir / "test.parquet")
    assert len(df) == len(src) and "station_001001_lo_80" in df.columns
    obs = src["station_001001"].notna().to_numpy()
    assert np.array_equal(df["station_001001"].to_numpy()[obs], src["station_001001"][obs])
    assert pd.read_parquet(workdir / "samples.parquet")["sample"].nunique() == 3
    # written through a temporary file, yet with the usual permissions
    assert out.stat().st_mode & 0o777 == 0o666 & ~current_umask()


def test_forecast(workdir):
    out = workdir / "fc.parquet"
    rc = main(
        [
            "forecast",
            str(workdir / "model"),
            str(workdir / "test.parquet"),
            "--horizon",
            "6",
            "--out",
            str(out),
            "--n-samples",
            "3",
            "--steps",
            "2",
        ]
    )
    assert rc == 0
    assert len(pd.read_parquet(out)) == 6


def test_evaluate_prints_json(workdir, capsys):
    rc = main(
        [
            "evaluate",
            str(workdir / "model"),
            str(workdir / "test.parquet"),
            "--missing",
            "0.2",
            "--n-samples",
            "3",
            "--steps",
            "2",
        ]
    )
    assert rc == 0
    r = json.loads(capsys.readouterr().out)
    assert r["n_cells"] > 0 and "crps" in r["model"] and "linear" in r["baselines"]


def test_bad_input_exits_nonzero_and_writes_nothing(workdir, capsys):
    out = workdir / "never.parquet"
    rc = main(
        [
            "forecast",
            str(workdir / "model"),
            str(workdir / "test.parquet"),
            "--horizon",
            "0",
            "--out",
            str(out),
        ]
    )
    assert rc == 2 and "horizon" in capsys.readouterr().err
    assert not out.exists()
    bad = workdir / "bad.parquet"
    bad.write_bytes(b"this is not parquet")
    rc = main(["impute", str(workdir / "model"), str(bad), "--out", str(out)])
    assert rc == 2 and "bad.parquet" in capsys.readouterr().err
    assert not out.exists() and not list(workdir.glob(".never*"))
    rc = main(
        ["impute", str(workdir / "nomodel"), str(workdir / "test.parquet"), "--out", str(out)]
    )
    assert rc != 0 and "not a saved tsdiff model" in capsys.readouterr().err


def test_resume_continues_from_checkpoint(workdir):
    rc = main(
        [
            "train",
            str(workdir / "train.parquet"),
            "--out",
            str(workdir / "model"),
            "--config",
            str(workdir / "cfg.json"),
            "--epochs",
            "2",
            "--seed",
            "3",
            "--resume",
            "--quiet",
        ]
    )
    assert rc == 0
    meta = json.loads((workdir / "model" / "model.json").read_text())
    assert [h["epoch"] for h in meta["epoch_log"]] == [1, 2]


def test_console_script_help():
    r = subprocess.run(
        [sys.executable, "-m", "tsdiff.cli", "--help"], capture_output=True, text=True
    )
    assert r.returncode == 0
    for cmd in ("train", "impute", "forecast", "evaluate", "demo"):
        assert cmd in r.stdout


def _forecast_6(model_dir: Path, workdir: Path, out: Path) -> int:
    """``tsdiff forecast`` of the test data, 6 steps ahead."""
    argv = ["forecast", str(model_dir), str(workdir / "test.parquet"), "--horizon", "6"]
    return main([*argv, "--out", str(out)])


def test_train_with_lags_reads_history_and_bad_lags_exit_2(workdir, capsys):
    base = ["train", str(workdir / "train.parquet"), "--config", str(workdir / "cfg.json")]
    out = workdir / "lagged"
    rc = main([*base, "--out", str(out), "--lags", "24,48", "--epochs", "1", "--quiet"])
    assert rc == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["network"]["lags"] == [24, 48]
    fc = workdir / "lagged_fc.parquet"
    assert _forecast_6(out, workdir, fc) == 0
    assert len(pd.read_parquet(fc)) == 6
    for bad in ("0,24", "24,24", "a,b"):
        never = workdir / f"never_{bad.replace(',', '_')}"
        rc = main([*base, "--out", str(never), "--lags", bad, "--epochs", "1", "--quiet"])
        assert rc == 2 and "lags" in capsys.readouterr().err
        assert not never.exists()


def test_train_holdout_pattern_is_saved_and_calibrates_on_pattern_cells(workdir, capsys):
    base = ["train", str(workdir / "train.parquet"), "--config", str(workdir / "cfg.json")]
    out = workdir / "pattern"
    rc = main([*base, "--out", str(out), "--holdout", "pattern", "--epochs", "1", "--quiet"])
    assert rc == 0
    assert json.loads((out / "config.json").read_text())["train"]["holdout"] == "pattern"
    meta = json.loads((out / "model.json").read_text())
    assert meta["info"]["calibration"]["holdout"] == "pattern"
    with pytest.raises(SystemExit) as e:
        main([*base, "--out", str(workdir / "bad"), "--holdout", "blocks"])
    assert e.value.code == 2 and "holdout" in capsys.readouterr().err
    assert not (workdir / "bad").exists()


def test_train_task_impute_drops_forecast_masks_adds_the_quantile_prior_and_warns_on_forecast(
    workdir, capsys
):
    cfg = json.loads((workdir / "cfg.json").read_text())
    cfg["network"].update(prior_layers=1, prior_dim=16, prior_heads=2)  # a learned prior
    (workdir / "cfg_prior.json").write_text(json.dumps(cfg))
    base = ["train", str(workdir / "train.parquet"), "--config", str(workdir / "cfg_prior.json")]
    out = workdir / "impute_only"
    rc = main([*base, "--out", str(out), "--task", "impute", "--epochs", "1", "--quiet"])
    assert rc == 0
    saved = json.loads((out / "config.json").read_text())
    want = [*cfg["train"]["mix_weights"][:3], 0.0]  # the other masks keep their proportions
    assert saved["train"]["mix_weights"] == want and saved["network"]["prior_quantiles"]
    meta = json.loads((out / "model.json").read_text())
    assert meta["quantile_blend"] is not None  # the blend was fitted with the calibration
    fc = workdir / "impute_only_fc.parquet"
    with pytest.warns(CalibrationWarning, match="trained to impute only"):
        rc = _forecast_6(out, workdir, fc)
    assert rc == 0 and fc.is_file()  # it still forecasts, said to be untrained for it
    with pytest.raises(SystemExit) as e:
        main([*base, "--out", str(workdir / "bad_task"), "--task", "forecast"])
    assert e.value.code == 2 and "--task" in capsys.readouterr().err
    assert not (workdir / "bad_task").exists()
