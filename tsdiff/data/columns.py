"""Column names of the input table, kept with a fitted model so outputs match its inputs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from tsdiff.errors import ConfigError


@dataclass(frozen=True)
class Columns:
    """Names of the series-id, timestamp, variable and value columns.

    ``var_col`` and ``value_col`` are only used by long tables; ``id_col`` is optional in
    the data (absent means a single series).
    """

    id_col: str = "series_id"
    time_col: str = "timestamp"
    var_col: str = "variable"
    value_col: str = "value"

    def __post_init__(self) -> None:
        names = [getattr(self, f.name) for f in fields(self)]
        for f, name in zip(fields(self), names, strict=False):
            if not isinstance(name, str) or not name:
                raise ConfigError(f"column name {f.name} must be a non-empty string, got {name!r}")
        if len(set(names)) != len(names):
            raise ConfigError(f"column names must be distinct, got {names}")

    def to_dict(self) -> dict[str, str]:
        """Plain dict, for saving next to a model."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Columns:
        """Inverse of :meth:`to_dict`; unknown keys are a ConfigError (a corrupt file)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(
                f"unknown column settings {unknown}; expected some of {sorted(known)}"
            )
        return cls(**{k: d[k] for k in known if k in d})
