"""Reading a parquet input series by series without loading all of it.

:func:`open_input` opens a file or a (hive-partitioned) directory and checks that all
files share one schema. :func:`scan_series` reads only the id column, row group by row
group, to list the series, their row counts and the row groups they live in.
:func:`plan_batches` cuts the series into batches (series of one row group together, so
a batch reads few), and :func:`read_batch` reads one batch with a filter on the id
column from its row groups only: memory holds a batch and the row groups it touches.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from tsdiff.errors import DataError, EmptyInputError
from tsdiff.pipelines.common import SchemaMismatchError

SCAN_BATCH_ROWS = 1 << 16


@dataclass
class InputDataset:
    """An opened input: the pyarrow dataset, its files, their row groups (the units
    read) and the hive partition columns."""

    path: Path
    dataset: ds.FileSystemDataset
    fragments: list[ds.ParquetFileFragment]
    partition_cols: list[str]
    row_groups: list[ds.ParquetFileFragment] = field(default_factory=list)

    @property
    def schema(self) -> pa.Schema:
        """Columns of the files plus the partition columns (pandas metadata and a saved
        pandas index dropped)."""
        s = self.dataset.schema.remove_metadata()
        return pa.schema([f for f in s if not _is_index(f.name)])

    @property
    def files(self) -> list[str]:
        return [f.path for f in self.fragments]


@dataclass
class SeriesIndex:
    """Every series key with its row count and the row groups (indexes into
    ``InputDataset.row_groups``) holding its rows."""

    rows: dict[Any, int] = field(default_factory=dict)
    units: dict[Any, set[int]] = field(default_factory=lambda: defaultdict(set))

    @property
    def n_rows(self) -> int:
        return sum(self.rows.values())


def open_input(path: str | Path) -> InputDataset:
    """Open a parquet file or directory; files that disagree on their schema are a
    :class:`SchemaMismatchError` naming them (checked from the footers only)."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"input not found: {path}")
    try:
        dataset = ds.dataset(p, format="parquet", partitioning="hive")
        fragments = list(dataset.get_fragments())
    except (OSError, pa.ArrowInvalid) as e:
        raise DataError(f"cannot read {path} as parquet: {e}") from e
    if not fragments:
        raise EmptyInputError(f"no parquet files under {path}")
    schemas = []
    for frag in fragments:
        try:
            schemas.append(frag.physical_schema)
        except (OSError, pa.ArrowInvalid) as e:
            raise DataError(f"cannot read {frag.path} as parquet: {e}") from e
    _check_schemas([f.path for f in fragments], schemas, p)
    file_cols = set(schemas[0].names)
    partition_cols = [n for n in dataset.schema.names if n not in file_cols]
    row_groups = [rg for frag in fragments for rg in frag.split_by_row_group()]
    return InputDataset(p, dataset, fragments, partition_cols, row_groups)


def _check_schemas(files: list[str], schemas: list[pa.Schema], root: Path) -> None:
    """Compare every file's columns and types with the first file's."""

    def rel(f: str) -> str:
        try:
            return str(Path(f).relative_to(root))
        except ValueError:
            return f

    def kind(t: pa.DataType) -> str:
        # writers differ in timestamp units (pandas 2 writes ns, pandas 3 and Spark us);
        # the values mean the same and the scanner casts them to the dataset's unit
        return f"timestamp[tz={t.tz}]" if pa.types.is_timestamp(t) else str(t)

    def cols(s: pa.Schema) -> dict[str, str]:
        return {f.name: kind(f.type) for f in s if not _is_index(f.name)}

    ref = cols(schemas[0])
    names = list(ref)
    for s in schemas[1:]:
        names += [n for n in cols(s) if n not in names]
    problems = []
    for name in names:
        by_type: dict[str, list[str]] = defaultdict(list)
        for f, s in zip(files, schemas, strict=True):
            by_type[cols(s).get(name, "missing")].append(rel(f))
        if len(by_type) > 1:
            shown = "; ".join(
                f"{t} in {', '.join(fs[:3])}{f' (+{len(fs) - 3} more)' if len(fs) > 3 else ''}"
                for t, fs in sorted(by_type.items(), key=lambda kv: -len(kv[1]))
            )
            problems.append(f"column {name!r}: {shown}")
    if problems:
        raise SchemaMismatchError(
            "input files disagree on their schema, nothing was written: " + " | ".join(problems)
        )


def scan_series(inp: InputDataset, id_col: str) -> SeriesIndex:
    """List the series by reading the id column alone, row group by row group."""
    index = SeriesIndex()
    schema = inp.dataset.schema
    for i, frag in enumerate(inp.row_groups):
        scanner = ds.Scanner.from_fragment(
            frag, schema=schema, columns=[id_col], batch_size=SCAN_BATCH_ROWS
        )
        for batch in scanner.to_batches():
            if batch.num_rows == 0:
                continue
            counts = pc.value_counts(batch.column(0))
            keys = counts.field("values").to_pylist()
            for key, n in zip(keys, counts.field("counts").to_pylist(), strict=True):
                index.rows[key] = index.rows.get(key, 0) + int(n)
                index.units[key].add(i)
    if not index.rows:
        raise EmptyInputError(f"the input {inp.path} has no rows")
    return index


def count_rows(inp: InputDataset) -> int:
    """Rows of the input, from the parquet footers (no data is read)."""
    return sum(frag.count_rows() for frag in inp.fragments)


def plan_batches(index: SeriesIndex, batch_series: int) -> list[list[Any]]:
    """Series in batches of ``batch_series``, ordered by first row group then key, so a
    batch touches few row groups and the plan is the same on every run over the same
    input."""

    def order(key: Any) -> tuple[int, bool, Any]:
        return (min(index.units[key]), key is None, key if key is not None else 0)

    try:
        keys = sorted(index.rows, key=order)
    except TypeError:  # keys that do not compare (should not happen within one column)
        keys = sorted(index.rows, key=lambda k: (min(index.units[k]), str(k)))
    return [keys[i : i + batch_series] for i in range(0, len(keys), batch_series)]


def batch_units(index: SeriesIndex, keys: Sequence[Any]) -> list[int]:
    return sorted(set().union(*(index.units[k] for k in keys)))


def read_batch(
    inp: InputDataset, index: SeriesIndex, id_col: str, keys: Sequence[Any]
) -> pd.DataFrame:
    """All rows of the series ``keys``, read with a filter from their row groups only."""
    present = [k for k in keys if k is not None]
    expr = pc.field(id_col).isin(present)
    if len(present) < len(keys):
        expr = expr | pc.field(id_col).is_null()
    schema = inp.dataset.schema
    tables = [
        inp.row_groups[i].to_table(schema=schema, columns=inp.schema.names, filter=expr)
        for i in batch_units(index, keys)
    ]
    table = pa.concat_tables(tables).replace_schema_metadata(None)
    return table.to_pandas()


def _is_index(name: str) -> bool:
    """pandas' name for an index it saved as a column."""
    return name.startswith("__index_level_") and name.endswith("__")
