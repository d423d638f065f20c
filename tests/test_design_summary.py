"""The design runs' table: one row per run, its settings readable."""

from __future__ import annotations

import json

from tsdiff.benchmarks.design import _setting, summarize


def test_a_spec_that_logs_every_variable_is_one_short_cell():
    spec = {f"station_{i:06d}": {"transform": "log"} for i in range(1, 37)}
    cell = _setting("variables.spec=" + json.dumps(spec))
    assert cell == 'spec={"transform": "log"} for each of 36 variables'
    assert _setting("network.blocks=2") == "blocks=2"
    mixed = {"a": {"transform": "log"}, "b": {"lower": 0}}
    assert _setting("variables.spec=" + json.dumps(mixed)) == "spec=" + json.dumps(mixed)


def test_summary_writes_a_row_per_run(tmp_path):
    run = {
        "family": "pm25",
        "method": "tsdiff",
        "sets": ["variables.log_skew=1"],
        "profile": "quick",
        "minutes": 6,
        "commit": "abc",
        "linear": {"mae": 14.4584},
        "scores": {"mae": 12.4817, "crps": 0.14747, "cov50": 0.4466, "impute_s": 37.3},
    }
    paths = []
    for name in ("p1-a.json", "p1-b.json"):
        (tmp_path / name).write_text(json.dumps(run))
        paths.append(str(tmp_path / name))
    page = summarize(paths, str(tmp_path / "design"))
    rows = [line for line in page.splitlines() if line.startswith("| p1 ")]
    assert len(rows) == 2
    assert "| log_skew=1 | 6 | 12.4817 | 0.1475 | 0.447 | – |" in rows[0]
    assert len(json.loads((tmp_path / "design.json").read_text())["runs"]) == 2
