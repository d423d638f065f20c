"""The teaching notebooks run top to bottom, headless, with small settings."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
BUDGET_S = 180  # each notebook must finish in under 3 minutes on 2 cores


def test_the_notebooks_are_there_without_outputs():
    assert [p.name for p in NOTEBOOKS] == [
        "01_quickstart.ipynb",
        "02_watch_diffusion.ipynb",
        "03_registry_and_service.ipynb",
    ]
    for path in NOTEBOOKS:
        book = nbformat.read(path, as_version=4)
        code = [c for c in book.cells if c.cell_type == "code"]
        assert code and all(not c.outputs and c.execution_count is None for c in code), path.name


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes_headless(path, tmp_path, monkeypatch):
    monkeypatch.setenv("TSDIFF_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("TSDIFF_NOTEBOOK_OUT", str(tmp_path / "figures"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    book = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        book,
        timeout=BUDGET_S,  # per cell
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    t0 = time.perf_counter()
    client.execute()  # raises CellExecutionError on the first failing cell
    elapsed = time.perf_counter() - t0
    errors = [o for c in book.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    pngs = list((tmp_path / "figures").glob("*.png"))
    assert pngs and all(p.stat().st_size > 5_000 for p in pngs)
    assert elapsed < BUDGET_S, f"{path.name} took {elapsed:.0f} s"
