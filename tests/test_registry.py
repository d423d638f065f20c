"""MLflow lifecycle: tracked training, registry aliases, the promotion gate, pyfunc, errors.

Each test gets its own sqlite store in a temp dir (a copy of one migrated empty
database, so the ~5 s schema migration is paid once per session).
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import cloudpickle
import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from mlflow import MlflowClient

from tsdiff import __version__, registry
from tsdiff.cli import main
from tsdiff.errors import TSDiffError
from tsdiff.masks import hold_out
from tsdiff.model import TSDiff
from tsdiff.registry import (
    CHALLENGER,
    CHAMPION,
    PROMOTION_EXPERIMENT,
    ModelNotFoundError,
    RegistryError,
    TrackingUnreachableError,
    data_fingerprint,
    flatten_config,
    list_models,
    load_model,
    promote,
    register_model,
    train_tracked,
)

from .conftest import tiny_config


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory) -> Path:
    """An empty, fully migrated MLflow sqlite database to copy into each test's store."""
    d = tmp_path_factory.mktemp("mlflow-template")
    MlflowClient(tracking_uri=f"sqlite:///{d}/mlflow.db").search_experiments()
    return d / "mlflow.db"


@pytest.fixture
def store(tmp_path, monkeypatch, migrated_db) -> Path:
    """A private sqlite tracking store; artifacts land in tmp_path/mlartifacts."""
    shutil.copy(migrated_db, tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.chdir(tmp_path)  # anything MLflow might drop in ./ stays in the temp dir
    return tmp_path


@pytest.fixture(scope="module")
def saved(tmp_path_factory, fitted) -> Path:
    """The session's tiny model, saved once."""
    return fitted.save(tmp_path_factory.mktemp("saved") / "model")


@pytest.fixture(scope="module")
def broken(tmp_path_factory, saved) -> Path:
    """A genuinely worse model: the trained one with noise added to every weight."""
    model = TSDiff.load(saved)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.net.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.5)
    return model.save(tmp_path_factory.mktemp("broken") / "model")


@pytest.fixture(scope="module")
def held_out(pm25) -> pd.DataFrame:
    return pm25.iloc[500:620].reset_index(drop=True)


def _aliases(name: str) -> dict[str, str]:
    return {k: str(v) for k, v in MlflowClient().get_registered_model(name).aliases.items()}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_tracked_training_logs_params_metrics_tags_and_artifacts(store, pm25):
    df = pm25.iloc[:300]
    cfg = tiny_config(epochs=2)
    model, run_id, version = train_tracked(
        df, cfg, experiment="exp-a", register="pm-tracked", data_path="train.parquet"
    )
    assert version == "1" and model.fitted
    client = MlflowClient()
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "exp-a"

    params = run.data.params
    assert params == flatten_config(cfg)
    assert params["data.window"] == "24" and params["network.channels"] == "16"

    for key in ("train_loss", "val_loss", "val_crps"):
        history = client.get_metric_history(run_id, key)
        assert sorted(m.step for m in history) == [1, 2], key
    losses = [
        m.value
        for m in sorted(client.get_metric_history(run_id, "train_loss"), key=lambda m: m.step)
    ]
    assert losses == pytest.approx([h["train_loss"] for h in model.epoch_log])

    tags = run.data.tags
    assert tags["tsdiff.data.path"] == "train.parquet"
    assert tags["tsdiff.data.rows"] == "300"
    assert tags["tsdiff.data.hash"] == data_fingerprint(df)["tsdiff.data.hash"]
    changed = df.copy()
    changed.iloc[0, 1] += 1.0
    assert data_fingerprint(changed)["tsdiff.data.hash"] != tags["tsdiff.data.hash"]
    assert tags["tsdiff.version"] == __version__
    commit = tags["tsdiff.git_commit"]
    assert commit == "unknown" or (len(commit) == 40 and int(commit, 16) >= 0)

    names = {a.path for a in client.list_artifacts(run_id)}
    assert {"config.json", "loss_curve.png", "imputation.png"} <= names
    local = Path(client.download_artifacts(run_id, "config.json", str(store / "dl")))
    assert json.loads(local.read_text()) == json.loads(cfg.to_json())
    png = Path(client.download_artifacts(run_id, "imputation.png", str(store / "dl")))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    # a sqlite store keeps artifacts next to the database, not in ./mlruns
    assert any((store / "mlartifacts" / "exp-a").rglob("weights.safetensors"))


def test_first_version_is_champion_then_new_versions_are_challengers(store, saved, pm25):
    _, v1 = register_model(saved, "pm-alias", pm25.iloc[:100])
    assert v1 == "1"
    assert _aliases("pm-alias") == {CHAMPION: "1", CHALLENGER: "1"}
    _, v2 = register_model(saved, "pm-alias", pm25.iloc[:100])
    assert v2 == "2"
    assert _aliases("pm-alias") == {CHAMPION: "1", CHALLENGER: "2"}
    rows = {r["version"]: r for r in list_models("pm-alias")}
    assert rows["1"]["aliases"] == [CHAMPION] and rows["2"]["aliases"] == [CHALLENGER]
    assert "train_loss" in rows["2"]["metrics"]


def test_promotion_gate_rejects_worse_promotes_better_and_records_force(
    store, saved, broken, held_out, pm25
):
    name = "pm-gate"
    example = pm25.iloc[:100]
    register_model(broken, name, example)  # v1: champion by default
    register_model(saved, name, example)  # v2: the trained model, challenger

    up = promote(name, held_out)
    assert up["promoted"] and up["decision"] == "promoted" and not up["forced"]
    assert up["challenger_crps"] < up["champion_crps"]
    assert _aliases(name) == {CHAMPION: "2"}

    register_model(broken, name, example)  # v3: worse than the champion
    down = promote(name, held_out)
    assert not down["promoted"] and down["decision"] == "rejected"
    assert down["challenger_crps"] > down["champion_crps"]
    assert _aliases(name) == {CHAMPION: "2", CHALLENGER: "3"}

    forced = promote(name, held_out, force=True)
    assert forced["promoted"] and forced["forced"] and "force" in forced["reason"]
    assert forced["challenger_crps"] == pytest.approx(down["challenger_crps"])
    assert _aliases(name)[CHAMPION] == "3"

    client = MlflowClient()
    run = client.get_run(forced["run_id"])
    assert client.get_experiment(run.info.experiment_id).name == PROMOTION_EXPERIMENT
    assert run.data.tags["forced"] == "true" and run.data.tags["overridden_by_force"] == "true"
    assert run.data.metrics["challenger_crps"] == pytest.approx(forced["challenger_crps"])
    assert run.data.metrics["champion_crps"] == pytest.approx(forced["champion_crps"])
    rejected = client.get_run(down["run_id"])
    assert rejected.data.tags["forced"] == "false" and rejected.data.tags["decision"] == "rejected"


def test_pyfunc_predict_equals_library_impute_and_forecast(store, saved, held_out, pm25):
    register_model(saved, "pm-pyfunc", pm25.iloc[:100])
    pyfunc = mlflow.pyfunc.load_model("models:/pm-pyfunc@champion")
    local = TSDiff.load(saved)
    # MLflow's schema enforcement hands predict datetime64[ns]: give both paths the same frame
    df = held_out.iloc[:60].astype({"timestamp": "datetime64[ns]"})
    kw = {"levels": [50, 80], "n_samples": 5, "steps": 2, "seed": 7}

    got = pyfunc.predict(df, params=kw)
    want = local.impute(df, **kw).frame
    pd.testing.assert_frame_equal(got, want)
    assert want.filter(like="_imputed").to_numpy().any()  # cells were really sampled
    other = pyfunc.predict(df, params={**kw, "seed": 8})
    assert not other.equals(got)

    got = pyfunc.predict(df, params={**kw, "mode": "forecast", "horizon": 6})
    pd.testing.assert_frame_equal(got, local.forecast(df, 6, **kw).frame)

    got = pyfunc.predict(df, params={**kw, "return_samples": True})
    pd.testing.assert_frame_equal(got, local.impute(df, return_samples=True, **kw).samples)

    # load_model resolves aliases and versions to the same weights
    for uri in ("models:/pm-pyfunc@champion", "models:/pm-pyfunc/1", str(saved)):
        m = load_model(uri)
        for k, v in local.net.state_dict().items():
            assert torch.equal(m.net.state_dict()[k], v), (uri, k)


class _Records(logging.Handler):
    """Keeps every record of a logger (MLflow's loggers do not propagate to pytest's)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_pyfunc_is_logged_from_code_and_loads_without_unpickling(
    store, saved, held_out, pm25, monkeypatch, recwarn
):
    mlflow_log = logging.getLogger("mlflow")
    handler = _Records()
    mlflow_log.addHandler(handler)
    try:
        register_model(saved, "pm-code", pm25.iloc[:100])
    finally:
        mlflow_log.removeHandler(handler)
    said = [r.getMessage() for r in handler.records] + [str(w.message) for w in recwarn]
    assert not [m for m in said if "pickle" in m.lower()], said

    # the logged model: MLmodel, the code file, the saved model directory; no pickle
    root = Path(
        mlflow.artifacts.download_artifacts("models:/pm-code/1", dst_path=str(store / "dl"))
    )
    flavor = yaml.safe_load((root / "MLmodel").read_text())["flavors"]["python_function"]
    assert Path(flavor["model_code_path"]).name == "pyfunc_model.py"
    assert "python_model" not in flavor  # the cloudpickled PythonModel's file
    model_dir = root / flavor["artifacts"]["model_dir"]["path"]
    assert (model_dir / "weights.safetensors").is_file() and (model_dir / "model.json").is_file()
    files = [p for p in (store / "mlartifacts").rglob("*") if p.is_file()]
    assert files and not [p for p in files if p.suffix in (".pkl", ".pickle", ".cloudpickle")]

    def refuse(*args, **kwargs):
        raise AssertionError("loading the tsdiff pyfunc unpickled something")

    for module in (pickle, cloudpickle):
        for name in ("load", "loads"):
            monkeypatch.setattr(module, name, refuse)
    pyfunc = mlflow.pyfunc.load_model("models:/pm-code@champion")
    df = held_out.iloc[:60].astype({"timestamp": "datetime64[ns]"})
    kw = {"n_samples": 3, "steps": 2, "seed": 1}
    want = TSDiff.load(saved).impute(df, **kw).frame
    pd.testing.assert_frame_equal(pyfunc.predict(df, params=kw), want)


def test_imputation_figure_hides_the_cells_masks_hold_out_picks(saved, pm25):
    model = TSDiff.load(saved)
    example = registry._example(model, pm25.iloc[:200])
    hidden = registry._hide(model, example, 0.2, seed=3)
    values = example[model.variables].to_numpy(dtype=float)
    want = hold_out(values, 0.2, np.random.default_rng(3), rounding="round")[0]
    np.testing.assert_array_equal(hidden[model.variables].to_numpy(dtype=float), want)
    assert np.isnan(want).sum() > np.isnan(values).sum()
    pd.testing.assert_frame_equal(
        hidden.drop(columns=model.variables), example.drop(columns=model.variables)
    )


def test_unknown_name_alias_and_version_list_what_exists(store, saved, pm25):
    register_model(saved, "pm-known", pm25.iloc[:100])
    with pytest.raises(ModelNotFoundError, match="registered models: pm-known"):
        load_model("models:/pm-unknown@champion")
    with pytest.raises(ModelNotFoundError, match=r"no alias 'staging'.*champion -> v1"):
        load_model("models:/pm-known@staging")
    with pytest.raises(ModelNotFoundError, match=r"no version 7; versions: 1"):
        load_model("models:/pm-known/7")
    with pytest.raises(ModelNotFoundError, match="pm-known"):
        promote("pm-nope", pm25.iloc[:50])
    with pytest.raises(ModelNotFoundError, match="pm-known"):
        list_models("pm-nope")
    assert issubclass(ModelNotFoundError, RegistryError) and issubclass(RegistryError, TSDiffError)


def test_unreachable_tracking_server_is_reported_with_its_uri(monkeypatch, tmp_path, capsys):
    uri = f"http://127.0.0.1:{_free_port()}"  # bound, then released: nothing listens there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    t0 = time.perf_counter()
    with pytest.raises(TrackingUnreachableError, match=f"cannot reach .* at {uri}"):
        load_model("models:/pm@champion")
    with pytest.raises(TrackingUnreachableError, match=uri):
        list_models()
    assert time.perf_counter() - t0 < 20
    assert main(["models", "list"]) == 1  # the environment failed, not the input (2)
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and uri in err


def test_cli_train_register_list_promote_and_registry_uris(store, pm25, held_out, capsys):
    pm25.iloc[:200].to_parquet(store / "train.parquet", index=False)
    held_out.to_parquet(store / "test.parquet", index=False)
    (store / "cfg.json").write_text(tiny_config(epochs=1).to_json())
    rc = main(
        [
            "train",
            str(store / "train.parquet"),
            "--out",
            str(store / "model"),
            "--config",
            str(store / "cfg.json"),
            "--register",
            "pm-cli",
            "--experiment",
            "cli-exp",
            "--quiet",
        ]
    )
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["registered"] == "pm-cli" and out["version"] == "1"
    assert (store / "model" / "weights.safetensors").is_file()

    assert main(["models", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["name"], r["version"], r["aliases"]) for r in rows] == [
        ("pm-cli", "1", [CHALLENGER, CHAMPION])
    ]
    assert main(["models", "list"]) == 0
    table = capsys.readouterr().out
    assert table.startswith("NAME") and "pm-cli" in table

    rc = main(
        [
            "impute",
            "models:/pm-cli@champion",
            str(store / "test.parquet"),
            "--out",
            str(store / "imp.parquet"),
            "--n-samples",
            "3",
            "--steps",
            "2",
        ]
    )
    assert rc == 0 and len(pd.read_parquet(store / "imp.parquet")) == len(held_out)
    capsys.readouterr()

    assert main(["models", "promote", "pm-cli", str(store / "test.parquet")]) == 0
    decision = json.loads(capsys.readouterr().out)
    assert decision["decision"] == "unchanged" and decision["champion"] == "1"

    rc = main(["evaluate", "models:/pm-cli@nope", str(store / "test.parquet")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "champion -> v1" in err


@pytest.mark.slow
def test_real_mlflow_server_round_trip(tmp_path, monkeypatch, pm25, saved, held_out):
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{tmp_path}/server.db",
        "--artifacts-destination", str(tmp_path / "server-artifacts"),
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    with open(tmp_path / "server.log", "wb") as log:
        proc = subprocess.Popen(
            cmd, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            _wait_healthy(uri, proc, tmp_path / "server.log")
            monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
            monkeypatch.chdir(tmp_path)
            tracked, run_id, v1 = train_tracked(
                pm25.iloc[:200], tiny_config(epochs=1), register="pm-srv"
            )
            assert v1 == "1" and MlflowClient().get_run(run_id).data.params["data.window"] == "24"
            register_model(saved, "pm-srv", pm25.iloc[:100])
            assert _aliases("pm-srv") == {CHAMPION: "1", CHALLENGER: "2"}

            result = promote("pm-srv", held_out)
            assert result["decision"] in ("promoted", "rejected")
            assert np.isfinite(result["challenger_crps"])
            assert _aliases("pm-srv")[CHAMPION] == result["champion"]
            expected = TSDiff.load(saved) if result["champion"] == "2" else tracked
            champion = load_model("models:/pm-srv@champion")
            for k, v in expected.net.state_dict().items():
                assert torch.equal(champion.net.state_dict()[k], v), k
            kw = {"n_samples": 3, "steps": 2, "seed": 1}
            pd.testing.assert_frame_equal(
                champion.impute(held_out, **kw).frame, expected.impute(held_out, **kw).frame
            )
            assert any((tmp_path / "server-artifacts").rglob("weights.safetensors"))
            assert not (tmp_path / "mlruns").exists()
        finally:
            _stop(proc)


def _wait_healthy(uri: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        assert proc.poll() is None, log.read_text()[-2000:]
        assert time.monotonic() < deadline, f"mlflow server did not answer in {timeout} s"
        time.sleep(0.5)


def _stop(proc: subprocess.Popen) -> None:
    """Terminate the server's process group (it was started in a session of its own)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
