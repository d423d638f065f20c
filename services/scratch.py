"""A private temporary folder per server process, and the removal of dead servers' ones.

BentoML copies every uploaded file into a request folder under the temporary directory
and deletes it when the request ends. A server killed mid-request (SIGKILL, OOM) never
gets there, so the copy would stay forever. Each worker therefore keeps its temporary
files in ``$TMPDIR/tsdiff-serve-<pid>/``, and a starting worker removes the folders of
workers that no longer run. The service itself writes nothing else: answers are built
in memory.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

PREFIX = "tsdiff-serve-"


def use_private_tempdir(base: str | Path | None = None) -> Path:
    """Point :mod:`tempfile` (and so BentoML's request folders) at this process' folder."""
    root = Path(base or tempfile.gettempdir())
    for old in root.glob(f"{PREFIX}*"):
        pid = old.name[len(PREFIX) :]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    mine = root / f"{PREFIX}{os.getpid()}"
    mine.mkdir(exist_ok=True)
    tempfile.tempdir = str(mine)
    atexit.register(shutil.rmtree, mine, ignore_errors=True)
    return mine


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive, and not ours to clean
        return True
    return True
