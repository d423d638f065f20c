"""The wheel as users install it: one top-level package, ``tsdiff``, that works from
outside the repository.

The wheel is built from a copy of the sources and installed (not editable) into a fresh
virtual environment. Its dependencies come from this environment without a download: a
``.pth`` file in the fresh ``site-packages`` names this environment's ``site-packages``
as a plain path line, so its ``.pth`` hooks (the editable install's import finder among
them) do not run there and ``tsdiff`` can only come from the wheel. From a temporary
directory, with no ``PYTHONPATH``, the fresh environment's ``tsdiff`` then imputes with
a shipped model, serves it over HTTP and runs the local batch pipeline.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests

from tsdiff.datasets import physionet_slice
from tsdiff.services.process import Server, free_port

ROOT = Path(__file__).resolve().parents[1]
MODEL = "physionet-vitals"  # shipped inside the wheel
SOURCES = ("tsdiff", "services", "pipelines", "benchmarks")
SAMPLING = ["--n-samples", "4", "--steps", "2", "--seed", "0"]

slow = pytest.mark.slow


def _run(argv: list[str], env: dict[str, str], cwd: Path, timeout: float = 300) -> str:
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{argv}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def _copy_sources(dest: Path) -> None:
    """What the wheel is built from; the checkout gets no build/ or egg-info from it."""
    dest.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, dest / name)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for pkg in SOURCES:
        shutil.copytree(ROOT / pkg, dest / pkg, ignore=skip)
    shutil.rmtree(dest / "benchmarks" / "results", ignore_errors=True)  # not package data


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A fresh venv holding the installed wheel; cwd and env for running it outside ROOT."""
    tmp = tmp_path_factory.mktemp("wheel")
    _copy_sources(tmp / "src")
    dist = tmp / "dist"
    wheel_argv = [sys.executable, "-m", "pip", "wheel", str(tmp / "src"), "--no-deps"]
    _run([*wheel_argv, "--no-build-isolation", "-q", "-w", str(dist)], dict(os.environ), tmp)
    (wheel,) = dist.glob("tsdiff-*.whl")

    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], dict(os.environ), tmp, timeout=120)
    python = venv / "bin" / "python"
    work = tmp / "work"  # the working directory of every command: outside the repository
    work.mkdir()
    (tmp / "tmpdir").mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTHON", "TSDIFF_", "MLFLOW_", "BENTOML_", "VIRTUAL_ENV"))
    }
    env.update(
        BENTOML_HOME=str(tmp / "bentoml"), BENTOML_DO_NOT_TRACK="true", TMPDIR=str(tmp / "tmpdir")
    )
    # installed before the .pth exists, so pip cannot see (and replace) the editable tsdiff
    _run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        env,
        work,
    )
    purelib = _run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], env, work
    ).strip()
    deps = sysconfig.get_paths()["purelib"]  # this environment's site-packages
    (Path(purelib) / "tsdiff_test_deps.pth").write_text(deps + "\n")
    yield {
        "python": python,
        "bin": venv / "bin",
        "purelib": Path(purelib),
        "env": env,
        "work": work,
    }


@pytest.fixture(scope="module")
def stays(fresh: dict[str, Any]) -> tuple[pd.DataFrame, Path]:
    """Two PhysioNet stays on the hourly grid (long layout), as a parquet file in ``work``."""
    data = physionet_slice()
    ids = data["series_id"].unique()[-2:]
    df = data[data["series_id"].isin(ids)].assign(timestamp=lambda d: d["timestamp"] // 60 * 60)
    df = df.drop_duplicates(["series_id", "timestamp", "variable"], keep="last")
    df = df.reset_index(drop=True)
    path = fresh["work"] / "stays.parquet"
    df.to_parquet(path, index=False)
    return df, path


def _observed_kept(df: pd.DataFrame, out: pd.DataFrame) -> None:
    """Every observed value comes back unchanged and unflagged; some cells were filled."""
    key = ["series_id", "timestamp", "variable"]
    seen = df[df["value"].notna()]
    both = seen.merge(out, on=key, how="left", suffixes=("", "_out"), validate="one_to_one")
    assert np.array_equal(both["value_out"].to_numpy(), both["value"].to_numpy())
    assert not both["imputed"].astype(bool).any()
    filled = out[out["imputed"]]
    assert len(filled) > 0 and filled["value"].notna().all()


def test_pyproject_lists_every_package_of_the_source_tree():
    """The package list is explicit (the folders are remapped), so a new subpackage must
    be added to it; one left out would be missing from the wheel only."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    setup = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {"tsdiff": "tsdiff"}
    folders.update(setup["package-dir"])
    found = set()
    for name, folder in folders.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((name, *rel)))
    assert found == set(setup["packages"])


@slow
def test_the_wheel_installs_one_top_level_package_used_from_outside_the_repo(fresh):
    env, work, purelib = fresh["env"], fresh["work"], fresh["purelib"]
    show = _run([str(fresh["python"]), "-m", "pip", "show", "-f", "tsdiff"], env, work)
    head, files = show.split("\nFiles:\n")
    assert f"Location: {purelib}" in head.splitlines()
    files = [f.strip() for f in files.splitlines() if f.strip()]
    scripts = {f for f in files if f.startswith("../")}
    assert [Path(f).name for f in scripts] == ["tsdiff"]  # the console script
    tops = {f.split("/")[0] for f in files if f not in scripts}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"tsdiff"}, sorted(tops)
    for data_file in (
        "tsdiff/pipelines/log4j2.properties",
        "tsdiff/benchmarks/profiles/physionet-tiny.json",
        f"tsdiff/pretrained_models/{MODEL}/weights.safetensors",
        "tsdiff/resources/physionet_slice.parquet",
    ):
        assert data_file in files, data_file

    probe = (
        "import json, sys, tsdiff, tsdiff.services.service, tsdiff.pipelines.local\n"
        "from tsdiff.benchmarks.common import PROFILES, RESULTS\n"
        "mods = [tsdiff, tsdiff.services.service, tsdiff.pipelines.local]\n"
        "print(json.dumps({'files': [m.__file__ for m in mods], 'path': sys.path,"
        " 'profiles': str(PROFILES), 'results': str(RESULTS)}))\n"
    )
    got = json.loads(_run([str(fresh["python"]), "-c", probe], env, work))
    for file in got["files"]:
        assert Path(file).is_relative_to(purelib / "tsdiff"), file
    # the repository is not on the path: only this environment's site-packages (the .pth)
    inside = [p for p in got["path"] if p and Path(p).resolve().is_relative_to(ROOT)]
    assert set(inside) <= {sysconfig.get_paths()["purelib"]}, inside
    assert "" not in got["path"][1:] and str(ROOT) not in got["path"]
    assert Path(got["profiles"]).is_relative_to(purelib)
    assert got["results"] == str(Path("benchmarks", "results"))  # under the working directory


@slow
def test_installed_cli_imputes_with_the_shipped_model(fresh, stays):
    df, data = stays
    out = fresh["work"] / "filled.parquet"
    argv = [str(fresh["bin"] / "tsdiff"), "impute", MODEL, str(data), "--out", str(out)]
    summary = json.loads(_run([*argv, *SAMPLING], fresh["env"], fresh["work"]).splitlines()[-1])
    assert summary["out"] == str(out)
    filled = pd.read_parquet(out)
    assert summary["rows"] == len(filled) and set(filled["series_id"]) == set(df["series_id"])
    _observed_kept(df, filled)


@slow
def test_installed_pipeline_imputes_every_series(fresh, stays):
    df, data = stays
    out = fresh["work"] / "pipeline-out"
    argv = [str(fresh["bin"] / "tsdiff"), "pipeline", "impute", "--input", str(data)]
    argv += ["--output", str(out), "--model", MODEL, "--engine", "local", "--quiet"]
    summary = json.loads(_run([*argv, *SAMPLING], fresh["env"], fresh["work"]).splitlines()[-1])
    assert summary["status"] == "complete" and summary["series_done"] == 2
    assert summary["series_failed"] == 0
    manifest = json.loads(Path(summary["manifest"]).read_text())
    parts = [pd.read_parquet(out / p) for p in manifest["parts"]]
    got = pd.concat(parts, ignore_index=True)
    assert len(got) == summary["rows_out"]
    _observed_kept(df, got)


@slow
def test_installed_service_answers_readyz_and_an_impute_request(fresh, stays, tmp_path):
    df, data = stays
    port = free_port()
    argv = [str(fresh["bin"] / "tsdiff"), "serve", "--model", MODEL, "--port", str(port)]
    server = Server(argv, fresh["env"], port, tmp_path / "serve.log", cwd=fresh["work"])
    try:
        server.wait_ready(timeout=180)
        assert requests.get(f"{server.url}/readyz", timeout=10).status_code == 200
        # tsdiff serve became BentoML (execve), working in the directory it was started
        # from, not in site-packages
        cwd = Path(f"/proc/{server.proc.pid}/cwd")
        if cwd.exists():
            assert cwd.resolve() == fresh["work"].resolve()
        resp = requests.post(
            f"{server.url}/v1/impute",
            files={"data": ("stays.parquet", data.read_bytes(), "application/octet-stream")},
            data={"n_samples": "4", "steps": "2", "seed": "0"},
            timeout=120,
        )
        assert resp.status_code == 200, resp.text
        _observed_kept(df, pd.read_parquet(io.BytesIO(resp.content)))
    finally:
        server.stop()
