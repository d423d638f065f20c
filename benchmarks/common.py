"""What the benchmarks share: profiles (model config + benchmark settings, as JSON),
the machine and commit a result was measured on, and formatting."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch

import tsdiff
from tsdiff.config import TSDiffConfig
from tsdiff.errors import ConfigError
from tsdiff.provenance import git_commit

PROFILES = Path(__file__).parent / "profiles"
# Relative: resolved against the working directory when written (from the repository root,
# where results are committed), never inside the installed package.
RESULTS = Path("benchmarks", "results")

B = TypeVar("B")


def profile_path(prefix: str, profile: str) -> tuple[Path, str]:
    """``profile``: a name (``PROFILES/<prefix>-<name>.json``) or a path to a JSON file."""
    path = Path(profile)
    if path.suffix != ".json":
        path = PROFILES / f"{prefix}-{profile}.json"
    if not path.is_file():
        known = sorted(p.stem[len(prefix) + 1 :] for p in PROFILES.glob(f"{prefix}-*.json"))
        raise ConfigError(f"no profile {profile!r} for {prefix}; known: {known}")
    name = path.stem[len(prefix) + 1 :] if path.parent == PROFILES else path.stem
    return path, name


def read_profile(path: Path, bench_cls: type[B]) -> tuple[TSDiffConfig, B]:
    """A profile file: ``{"model": <TSDiffConfig sections>, "benchmark": <bench_cls fields>}``;
    unknown sections or settings are errors, not silently ignored."""
    d = json.loads(path.read_text())
    unknown = set(d) - {"model", "benchmark"}
    if unknown:
        raise ConfigError(f"{path}: unknown profile sections {sorted(unknown)}")
    names = {f.name for f in dataclasses.fields(bench_cls)}  # type: ignore[arg-type]
    extra = set(d.get("benchmark", {})) - names
    if extra:
        raise ConfigError(f"{path}: unknown benchmark settings {sorted(extra)}")
    return TSDiffConfig.from_dict(d.get("model", {})), bench_cls(**d.get("benchmark", {}))


def fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def slashed(values: Sequence[float], spec: str = ".2f") -> str:
    """Numbers as one page cell, ``0.62 / 0.59 / ...`` (per lead band, per level)."""
    return " / ".join(f"{x:{spec}}" for x in values)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}")


def commit() -> str:
    """The short commit measured, with ``+changes`` when tracked code of the tsdiff
    package or the benchmarks differs from it."""
    return git_commit(short=True, changes_in=(Path(tsdiff.__file__).parent, Path(__file__).parent))


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_avg": round(os.getloadavg()[0], 2),
    }


def command_line() -> str:
    return " ".join(shlex.quote(a) for a in ["tsdiff", *sys.argv[1:]])


def module_command(module: str) -> str:
    """``python -m tsdiff.benchmarks.<module> ARGS``: how a result of a benchmark run as a
    module is reproduced."""
    return " ".join(shlex.quote(a) for a in ["python", "-m", module, *sys.argv[1:]])


def stamp(command: str, measured: str) -> dict[str, Any]:
    """Where a result comes from: its command, the commit measured, date and machine."""
    return {
        "command": command,
        "commit": measured,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(),
    }


def write_results(
    result: dict[str, Any], out_dir: str | Path, stem: str, markdown: Callable[[dict], str]
) -> None:
    """``<stem>.json`` and ``<stem>.md`` under ``out_dir``, each written atomically."""
    from tsdiff.io import write_atomic, write_json

    out = Path(out_dir)
    write_json(result, out / f"{stem}.json")
    write_atomic(out / f"{stem}.md", lambda f: f.write_text(markdown(result)))
    log(f"results: {out / stem}.json, .md")


def page_header(title: str, r: dict[str, Any]) -> list[str]:
    """A results page's first lines: title, command, commit, date and machine."""
    return [
        f"# {title}",
        "",
        f"Command: `{r['command']}`  ",
        f"Commit {r['commit']}, {r['date']}; {r['machine'].get('cpus')} CPUs.",
    ]


def seeds_arg(ap: argparse.ArgumentParser, text: str) -> list[int]:
    """``--seeds 0,1,2`` → [0, 1, 2]; distinct integers, else the parser's usage error."""
    try:
        seeds = [int(s) for s in text.split(",")]
    except ValueError:
        ap.error(f"--seeds must be integers separated by commas, got {text!r}")
    if len(set(seeds)) != len(seeds):
        ap.error(f"--seeds must be distinct, got {text!r}")
    return seeds


def paired_ratios(
    rows: Sequence[dict[str, Any]], field: str, candidates: Sequence[Any], key: str
) -> dict[Any, list[float]]:
    """Per candidate (the rows whose ``field`` is it), its ``key`` over the first
    candidate's on the same seed (the same cells and noise): below 1 favours it."""
    first = {r["seed"]: r[key] for r in rows if r[field] == candidates[0]}
    return {c: [r[key] / first[r["seed"]] for r in rows if r[field] == c] for c in candidates}


def ratio_line(label: str, mae: Sequence[float], crps: Sequence[float]) -> str:
    """A results page's line of paired MAE and CRPS ratios: mean (min – max)."""
    return (
        f"- {label}: MAE {sum(mae) / len(mae):.4f} ({min(mae):.4f} – {max(mae):.4f}), "
        f"CRPS {sum(crps) / len(crps):.4f} ({min(crps):.4f} – {max(crps):.4f})"
    )
