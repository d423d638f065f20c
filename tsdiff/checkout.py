"""Where tsdiff runs from: a source checkout (editable install, ``PYTHONPATH``) or a wheel.

The wheel installs one top-level package, ``tsdiff`` (with ``tsdiff.services``,
``tsdiff.pipelines`` and ``tsdiff.benchmarks``), so nothing may assume that folders of
the repository sit beside it: results go under the working directory, and fallbacks
next to the repository apply only when :func:`source_root` finds one.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def source_root() -> Path | None:
    """The repository root when tsdiff runs from a source checkout, else None.

    A checkout is recognised by ``pyproject.toml`` beside the ``tsdiff`` folder; an
    installed wheel's parent is ``site-packages``, which holds none.
    """
    root = PACKAGE_DIR.parent
    return root if (root / "pyproject.toml").is_file() else None
