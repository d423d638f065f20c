"""tsdiff: conditional score-based diffusion for time-series imputation and forecasting.

Canonical tensor layout, used everywhere a window of a panel is handled::

    (B, K, L)   B windows (or window × sample rows), K variables, L time steps

The denoiser works channels-last inside, ``(B, K, L, C)``; everything that crosses a
module boundary is ``(B, K, L)``. Forecasting is imputation of a masked future.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["TSDiff", "TSDiffConfig", "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from tsdiff.config import TSDiffConfig
    from tsdiff.model import TSDiff


def _map_source_folders() -> None:
    """``tsdiff.services``, ``tsdiff.pipelines`` and ``tsdiff.benchmarks`` in a source tree.

    The wheel installs them inside ``tsdiff/``; a repository (or a bento's ``src/``)
    keeps them as folders beside it. An editable install maps the names itself
    (pyproject.toml); this finder gives a bare tree the same names (``PYTHONPATH=.``,
    Spark workers, ``bentoml build``). It answers for those three names only, and only
    when ``tsdiff/`` lacks the folder, so an installed wheel never consults it.
    """
    import sys
    from importlib.machinery import PathFinder
    from pathlib import Path

    here = Path(__file__).resolve().parent
    folders = {
        f"{__name__}.{name}": str(here.parent)
        for name in ("services", "pipelines", "benchmarks")
        if not (here / name).exists() and (here.parent / name / "__init__.py").is_file()
    }
    if not folders:
        return

    class _SourceFolders:
        @staticmethod
        def find_spec(fullname: str, path: Any = None, target: Any = None) -> Any:
            where = folders.get(fullname)
            return None if where is None else PathFinder.find_spec(fullname, [where])

    sys.meta_path.insert(0, _SourceFolders)


_map_source_folders()


def __getattr__(name: str) -> Any:
    # Lazy so that `import tsdiff.data` or `tsdiff.metrics` does not pull in torch.
    if name == "TSDiff":
        from tsdiff.model import TSDiff

        return TSDiff
    if name == "TSDiffConfig":
        from tsdiff.config import TSDiffConfig

        return TSDiffConfig
    raise AttributeError(name)
