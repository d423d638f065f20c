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


def __getattr__(name: str) -> Any:
    # Lazy so that `import tsdiff.data` or `tsdiff.metrics` does not pull in torch.
    if name == "TSDiff":
        from tsdiff.model import TSDiff

        return TSDiff
    if name == "TSDiffConfig":
        from tsdiff.config import TSDiffConfig

        return TSDiffConfig
    raise AttributeError(name)
