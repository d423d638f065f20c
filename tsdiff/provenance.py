"""Where a result came from: the git commit of the code that produced it.

Tracked runs (:mod:`tsdiff.registry`) tag the full commit; benchmark results record the
short one, marked ``+changes`` when the measured code differs from it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

UNKNOWN = "unknown"
_SOURCE = Path(__file__).resolve().parent  # git runs here: the checkout tsdiff comes from


def git_commit(*, short: bool = False, changes_in: Sequence[str | Path] = ()) -> str:
    """The commit checked out where tsdiff's source lives, ``"unknown"`` outside a git
    checkout (or without git).

    ``short``: git's abbreviated hash instead of the full 40 digits. ``changes_in``:
    paths (files or folders of the checkout) whose tracked files, when they differ from
    the commit, add ``+changes`` to it; untracked files do not count.
    """
    head = _git("rev-parse", *(["--short"] if short else []), "HEAD")
    if not head:
        return UNKNOWN
    if changes_in:
        paths = [str(Path(p).resolve()) for p in changes_in]
        changed = _git("status", "--porcelain", "--untracked-files=no", "--", *paths)
        if changed:
            return head + "+changes"
    return head


def _git(*args: str) -> str | None:
    """git's stripped output, or None when it fails or is not there."""
    try:
        r = subprocess.run(
            ["git", *args], cwd=_SOURCE, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() if r.returncode == 0 else None
