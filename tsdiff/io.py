"""Reading inputs and writing outputs atomically.

Every output goes to a temporary file in the destination's folder and is renamed
into place, so readers never see half a file and a failed run leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from tsdiff.errors import DataError


def read_frame(path: str | Path) -> pd.DataFrame:
    """A parquet (or .csv) file as a DataFrame; unreadable input is a :class:`DataError`."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"input not found: {path}")
    try:
        if p.suffix.lower() == ".csv":
            return pd.read_csv(p)
        return pd.read_parquet(p)
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read {path} as parquet: {e}") from e


def write_atomic(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp_path)``, then rename the result to ``path``."""
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.stem}.", suffix=dest.suffix, dir=dest.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; outputs are shared
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_parquet(df: pd.DataFrame, path: str | Path) -> Path:
    return write_atomic(path, lambda p: df.to_parquet(p, index=False))


def write_json(obj: Any, path: str | Path) -> Path:
    return write_atomic(path, lambda p: p.write_text(json.dumps(obj, indent=2) + "\n"))
