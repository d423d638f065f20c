"""Cut the small data slices the demo and tests ship with, from ../shared/data.

Run from the repository root: ``python scripts/make_slices.py [--data-dir DIR]``.
Values are copied unchanged; only rows and columns are selected.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

PHYSIONET_VARIABLES = [
    "DiasABP",
    "HR",
    "Na",
    "Lactate",
    "NIDiasABP",
    "PaO2",
    "WBC",
    "pH",
    "Albumin",
    "ALT",
    "Glucose",
    "SaO2",
    "Temp",
    "AST",
    "Bilirubin",
    "HCO3",
    "BUN",
    "RespRate",
    "Mg",
    "HCT",
    "SysABP",
    "FiO2",
    "K",
    "GCS",
    "Cholesterol",
    "NISysABP",
    "TroponinT",
    "MAP",
    "TroponinI",
    "PaCO2",
    "Platelets",
    "Urine",
    "NIMAP",
    "Creatinine",
    "ALP",
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default="../shared/data")
    ap.add_argument("--out", default="tsdiff/resources")
    ap.add_argument("--stays", type=int, default=600)
    args = ap.parse_args()
    src, out = Path(args.data_dir), Path(args.out)

    raw = pd.read_parquet(src / "physionet2012_seta.parquet")
    ids = np.sort(raw["record_id"].unique())
    keep = np.random.default_rng(0).choice(ids, size=args.stays, replace=False)
    sl = raw[raw["record_id"].isin(keep) & raw["parameter"].isin(PHYSIONET_VARIABLES)]
    sl = sl[sl["minute"] < 48 * 60]
    sl = pd.DataFrame(
        {
            "series_id": sl["record_id"].astype("int64"),
            "timestamp": sl["minute"].astype("int64"),
            "variable": sl["parameter"].astype(str),
            "value": sl["value"].astype("float64"),
        }
    ).sort_values(["series_id", "timestamp", "variable"], kind="stable")
    sl.to_parquet(out / "physionet_slice.parquet", index=False)

    stations = [f"station_0010{i:02d}" for i in range(1, 9)]
    for name in ("pm25_ground", "pm25_missing"):
        df = pd.read_parquet(src / f"{name}.parquet")
        df = df[(df["timestamp"] >= "2014-05-01") & (df["timestamp"] < "2014-06-01")]
        df[["timestamp", *stations]].to_parquet(out / f"{name}_slice.parquet", index=False)


if __name__ == "__main__":
    main()
