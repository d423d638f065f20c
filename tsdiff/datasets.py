"""Loaders for the benchmark data, in the library's data contract.

The repository ships small slices (``tsdiff/resources``, provenance in its README)
so the demo and tests run anywhere; full data sets are read from a data directory:
``--data-dir``, else ``TSDIFF_DATA_DIR``, else ``../shared/data`` from the working
directory or, in a source checkout, from the repository.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from tsdiff.checkout import source_root
from tsdiff.errors import DataError

RESOURCES = Path(__file__).parent / "resources"

# The CSDI protocol's 35 time-varying PhysioNet 2012 parameters.
PHYSIONET_VARIABLES = (
    "DiasABP", "HR", "Na", "Lactate", "NIDiasABP", "PaO2", "WBC", "pH", "Albumin", "ALT",
    "Glucose", "SaO2", "Temp", "AST", "Bilirubin", "HCO3", "BUN", "RespRate", "Mg", "HCT",
    "SysABP", "FiO2", "K", "GCS", "Cholesterol", "NISysABP", "TroponinT", "MAP", "TroponinI",
    "PaCO2", "Platelets", "Urine", "NIMAP", "Creatinine", "ALP",
)  # fmt: skip


def default_data_dir() -> Path | None:
    """``$TSDIFF_DATA_DIR``, else ``../shared/data`` from the working directory, else
    (in a source checkout only, never beside an installed package) from the repository."""
    env = os.environ.get("TSDIFF_DATA_DIR")
    if env:
        return Path(env)
    repo = source_root()
    for base in (Path.cwd(), *([repo] if repo is not None else [])):
        cand = base.parent / "shared" / "data"
        if cand.is_dir():
            return cand
    return None


def _physionet_contract(raw: pd.DataFrame) -> pd.DataFrame:
    """Long contract frame: series_id, timestamp (minutes since admission), variable, value.

    The raw files repeat some (stay, minute, parameter) rows; as CSDI's parser does,
    the later row wins. Minute 2880 (hour 48) is dropped: the protocol keeps hours 0..47.
    """
    df = raw[raw["variable"].isin(PHYSIONET_VARIABLES) & (raw["timestamp"] < 48 * 60)]
    df = df.drop_duplicates(["series_id", "timestamp", "variable"], keep="last")
    return df.reset_index(drop=True)


def physionet_slice() -> pd.DataFrame:
    """600 ICU stays of PhysioNet 2012 set-a shipped with the package (long layout)."""
    return _physionet_contract(pd.read_parquet(RESOURCES / "physionet_slice.parquet"))


def load_physionet(data_dir: str | Path | None = None) -> pd.DataFrame:
    """The full set-a (3,996 stays) from the data directory, in the long contract."""
    path = _data_file("physionet2012_seta.parquet", data_dir)
    raw = pd.read_parquet(path)
    raw = pd.DataFrame(
        {
            "series_id": raw["record_id"].astype("int64"),
            "timestamp": raw["minute"].astype("int64"),
            "variable": raw["parameter"].astype(str),
            "value": raw["value"].astype("float64"),
        }
    )
    return _physionet_contract(raw)


def pm25_slice(which: str = "ground") -> pd.DataFrame:
    """May 2014 for 8 Beijing stations (wide layout); ``which`` is ground or missing."""
    return pd.read_parquet(RESOURCES / f"pm25_{which}_slice.parquet")


def _data_file(name: str, data_dir: str | Path | None) -> Path:
    base = Path(data_dir) if data_dir else default_data_dir()
    if base is None:
        raise DataError(f"no data directory: pass --data-dir or set TSDIFF_DATA_DIR ({name})")
    path = base / name
    if not path.is_file():
        raise DataError(f"{name} not found in {base}")
    return path
