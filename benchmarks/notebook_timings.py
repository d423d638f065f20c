"""How long each notebook cell takes at the notebooks' own settings (not the CI-quick ones).

``python -m tsdiff.benchmarks.notebook_timings`` runs every notebook under
``notebooks/`` headless, as a reader would (``TSDIFF_NOTEBOOK_QUICK`` unset), and records
the wall time of each code cell from the kernel's own execution timestamps. The goal is
every cell under two minutes on 2 cores: a teaching notebook whose cell runs for five
minutes is one a reader interrupts. Results: ``benchmarks/results/notebooks.{json,md}``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from tsdiff.benchmarks.common import (
    RESULTS,
    commit,
    log,
    module_command,
    page_header,
    stamp,
    write_results,
)

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CELL_GOAL_S = 120.0


def _seconds(cell: Any) -> float:
    """The kernel's own start and reply timestamps of one executed cell."""
    ex = cell.metadata.get("execution", {})
    start, end = ex.get("iopub.execute_input"), ex.get("shell.execute_reply")
    if not start or not end:
        return float("nan")
    parse = datetime.fromisoformat
    return (parse(end.replace("Z", "+00:00")) - parse(start.replace("Z", "+00:00"))).total_seconds()


def time_notebook(path: Path, workdir: Path) -> dict[str, Any]:
    """Execute one notebook at its default settings; the seconds of each code cell."""
    import nbclient
    import nbformat

    book = nbformat.read(path, as_version=4)
    os.environ.pop("TSDIFF_NOTEBOOK_QUICK", None)
    os.environ["TSDIFF_NOTEBOOK_OUT"] = str(workdir / path.stem)
    os.environ["MPLBACKEND"] = "Agg"
    client = nbclient.NotebookClient(
        book,
        timeout=1800,
        kernel_name="python3",
        record_timing=True,
        resources={"metadata": {"path": str(workdir)}},
    )
    t0 = time.perf_counter()
    client.execute()
    total = time.perf_counter() - t0
    cells = []
    for i, cell in enumerate(book.cells):
        if cell.cell_type != "code":
            continue
        first = next((ln for ln in cell.source.splitlines() if ln.strip()), "")
        cells.append({"cell": i, "seconds": round(_seconds(cell), 2), "first_line": first[:70]})
    slowest = max(cells, key=lambda c: c["seconds"])
    log(f"{path.name}: {total:.0f} s, slowest cell {slowest['cell']} {slowest['seconds']:.0f} s")
    return {"notebook": path.name, "seconds": round(total, 1), "cells": cells}


def markdown(r: dict[str, Any]) -> str:
    lines = [
        *page_header("Notebook cells at their default settings", r),
        f"Goal: every cell under {CELL_GOAL_S:.0f} s. {r['note']}",
        "",
        "| notebook | total s | slowest cell | its s | cells over the goal |",
        "|---|---|---|---|---|",
    ]
    for nb in r["notebooks"]:
        slow = max(nb["cells"], key=lambda c: c["seconds"])
        over = [c["cell"] for c in nb["cells"] if c["seconds"] > CELL_GOAL_S]
        lines.append(
            f"| {nb['notebook']} | {nb['seconds']:.0f} | {slow['cell']}: `{slow['first_line']}` "
            f"| {slow['seconds']:.1f} | {over or 'none'} |"
        )
    lines += [
        "",
        "Every code cell:",
        "",
        "| notebook | cell | s | first line |",
        "|---|---|---|---|",
    ]
    for nb in r["notebooks"]:
        for c in nb["cells"]:
            lines.append(
                f"| {nb['notebook']} | {c['cell']} | {c['seconds']:.1f} | `{c['first_line']}` |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--note", default="", help="what else ran on the machine meanwhile")
    a = p.parse_args(argv)
    started = commit()
    with tempfile.TemporaryDirectory(prefix="tsdiff-nbtime-") as tmp:
        books = [time_notebook(path, Path(tmp)) for path in sorted(NOTEBOOKS.glob("*.ipynb"))]
    result = {
        **stamp(module_command("tsdiff.benchmarks.notebook_timings"), started),
        "goal_cell_s": CELL_GOAL_S,
        "note": a.note,
        "notebooks": books,
    }
    write_results(result, a.out, "notebooks", markdown)


if __name__ == "__main__":
    main()
