"""Service settings, read once from the environment so one image serves any model."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tsdiff.errors import ConfigError

DEFAULT_MODEL_NAME = "physionet-demo"
DEFAULT_ALIAS = "champion"
SOURCE_ROOT = Path(__file__).resolve().parents[1]
BUNDLED_MODEL = SOURCE_ROOT / "build" / "bento-model"  # what ``tsdiff.services.bundle`` writes


@dataclass(frozen=True)
class Settings:
    """Where the model comes from and how large a request may be.

    Every limit exists so that one request cannot exhaust the server: the upload is
    buffered in memory, rows and series scale the sampling work, ``max_cells`` bounds the
    grid they span (a few rows far apart in time make a huge one), and ``n_samples`` and
    ``horizon`` multiply it.
    """

    model_uri: str
    max_upload_mb: float = 32.0
    max_rows: int = 500_000
    max_series: int = 2_000
    max_horizon: int = 168
    max_samples: int = 200
    max_cells: int = 2_000_000
    api_keys: tuple[str, ...] = ()
    device: str = "auto"  # where the model runs (TSDIFF_DEVICE: auto, cpu, cuda, cuda:N)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``TSDIFF_*`` variables; a malformed value fails at start, by name."""
        env = os.environ if env is None else env
        name = env.get("TSDIFF_MODEL_NAME") or DEFAULT_MODEL_NAME
        uri = env.get("TSDIFF_MODEL_URI") or default_model_uri(name)
        keys = tuple(k.strip() for k in env.get("TSDIFF_API_KEYS", "").split(",") if k.strip())
        return cls(
            model_uri=uri,
            max_upload_mb=_number(env, "TSDIFF_MAX_UPLOAD_MB", cls.max_upload_mb, float),
            max_rows=_number(env, "TSDIFF_MAX_ROWS", cls.max_rows, int),
            max_series=_number(env, "TSDIFF_MAX_SERIES", cls.max_series, int),
            max_horizon=_number(env, "TSDIFF_MAX_HORIZON", cls.max_horizon, int),
            max_samples=_number(env, "TSDIFF_MAX_SAMPLES", cls.max_samples, int),
            max_cells=_number(env, "TSDIFF_MAX_CELLS", cls.max_cells, int),
            api_keys=keys,
            device=env.get("TSDIFF_DEVICE", "").strip() or cls.device,
        )

    def limits(self) -> dict[str, float | int]:
        """The limits as clients see them in ``GET /v1/model``."""
        return {
            "max_upload_mb": self.max_upload_mb,
            "max_rows": self.max_rows,
            "max_series": self.max_series,
            "max_horizon": self.max_horizon,
            "max_samples": self.max_samples,
            "max_cells": self.max_cells,
        }


def default_model_uri(name: str = DEFAULT_MODEL_NAME) -> str:
    """A built bento serves the model packaged with it; a source tree, the registry champion.

    (BentoML applies a bentofile's ``envs`` only in containers, so the bento case is
    recognised by its layout: ``bento.yaml`` next to the ``src`` folder holding us.)
    """
    in_bento = (SOURCE_ROOT.parent / "bento.yaml").is_file()
    if in_bento and BUNDLED_MODEL.is_dir():
        return str(BUNDLED_MODEL)
    return f"models:/{name}@{DEFAULT_ALIAS}"


def _number(env: Mapping[str, str], key: str, default: float, kind: type) -> float | int:
    text = env.get(key)
    if text is None or not text.strip():
        return default
    try:
        value = kind(text)
    except ValueError:
        raise ConfigError(f"{key} must be a positive {kind.__name__}, got {text!r}") from None
    if not value > 0:
        raise ConfigError(f"{key} must be positive, got {text!r}")
    return value
