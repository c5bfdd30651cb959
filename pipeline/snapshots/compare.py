"""How the rows of a day's Parquet files differ from the warehouse's rows of that day.

The one comparison behind the run's healing (pipeline/snapshots/heal.py), the asset check
``parquet_matches_warehouse`` and the on-demand verification (pipeline/snapshots/verify.py). It works on
Arrow tables of ``ARROW_SCHEMA``'s types, in the columns' own types: a job is the same on both sides when each
compared column holds the same value (null equals null), and a side holds a job *twice* when its key is there
more than once.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.records.schema import KEY_COLUMNS, PARTITION_COLUMN

# Jobs shown per day as examples of what differs, and characters shown of each value.
SAMPLES_PER_DAY = 5
_VALUE_LENGTH = 80
_BY_KEY = [(name, "ascending") for name in KEY_COLUMNS]


@dataclass(frozen=True)
class RowDifference:
    """How one day's files differ from the warehouse, counted in jobs (keys)."""

    missing: int = 0  # jobs the warehouse holds and the files lack
    extra: int = 0  # jobs the files hold and the warehouse lacks
    changed: int = 0  # jobs on both sides with another value in some compared column
    doubled: int = 0  # jobs the files hold more than once
    doubled_in_warehouse: int = 0  # jobs the warehouse holds more than once (a table without its primary key)
    changed_columns: tuple[str, ...] = ()
    # A few of the jobs behind the counts: key, what differs, and the values on each side.
    samples: tuple[dict[str, object], ...] = ()

    @property
    def jobs(self) -> int:
        """The jobs behind the counts (a job both missing here and held twice there counted in each)."""
        return self.missing + self.extra + self.changed + self.doubled + self.doubled_in_warehouse

    @property
    def agrees(self) -> bool:
        return self.jobs == 0

    def describe(self) -> str:
        """What differs, in words, e.g. ``2 jobs missing, 1 job differing in status``; "" when nothing does."""
        parts = [f"{_jobs(self.missing)} missing", f"{_jobs(self.extra)} not in the warehouse",
                 f"{_jobs(self.changed)} differing in {', '.join(self.changed_columns)}",
                 f"{_jobs(self.doubled)} held twice", f"{_jobs(self.doubled_in_warehouse)} twice in the warehouse"]
        counts = (self.missing, self.extra, self.changed, self.doubled, self.doubled_in_warehouse)
        return ", ".join(part for part, count in zip(parts, counts) if count)


def compare_rows(warehouse: pa.Table, files: pa.Table, samples: int = SAMPLES_PER_DAY) -> RowDifference:
    """How ``files`` (one day's rows in Parquet) differ from ``warehouse`` (the warehouse's rows of that day), in
    the columns both hold (the key columns among them). Of a job held twice, the first row is compared."""
    columns = [name for name in warehouse.column_names if name in files.column_names]
    warehouse, doubled_in_warehouse = _first_per_key(warehouse.select(columns).sort_by(_BY_KEY))
    files, doubled = _first_per_key(files.select(columns).sort_by(_BY_KEY))
    if warehouse.num_rows == files.num_rows and all(warehouse[k].equals(files[k]) for k in KEY_COLUMNS):
        ours, theirs, missing, extra = warehouse, files, _no_rows(warehouse), _no_rows(files)
    else:
        ours, theirs, missing, extra = _matched(warehouse, files)
    differing = {name: _differs(ours[name], theirs[name]) for name in columns
                 if name not in KEY_COLUMNS and not ours[name].equals(theirs[name])}
    differing = {name: mask for name, mask in differing.items() if pc.any(mask).as_py()}
    changed = _any_of(list(differing.values()), ours.num_rows)
    shown = [*_samples(missing, "only in the warehouse", samples), *_samples(extra, "only in Parquet", samples),
             *_changed_samples(ours, theirs, changed, differing, samples)][:samples]
    return RowDifference(
        missing=missing.num_rows, extra=extra.num_rows, changed=int(np.count_nonzero(changed)), doubled=doubled,
        doubled_in_warehouse=doubled_in_warehouse, changed_columns=tuple(differing), samples=tuple(shown),
    )


def rows_by_day(table: pa.Table) -> dict[date, pa.Table]:
    """A table holding created_date split into one table per day, each sorted by key."""
    table = table.sort_by([(PARTITION_COLUMN, "ascending"), *_BY_KEY])
    days = table[PARTITION_COLUMN].to_numpy()
    distinct = np.unique(days)
    bounds = np.searchsorted(days, distinct, side="right")
    return {day.item(): table.slice(start, end - start)
            for day, start, end in zip(distinct, np.r_[0, bounds[:-1]], bounds)}


def doubled_keys(table: pa.Table) -> int:
    """Keys ``table`` holds more than once."""
    return _first_per_key(table.select(list(KEY_COLUMNS)).sort_by(_BY_KEY))[1]


def _first_per_key(table: pa.Table) -> tuple[pa.Table, int]:
    """A table sorted by key with only its first row of each key, and how many keys had more than one."""
    if table.num_rows < 2:
        return table, 0
    same = np.ones(table.num_rows - 1, dtype=bool)
    for name in KEY_COLUMNS:
        values = table[name].combine_chunks()
        same &= pc.equal(values[1:], values[:-1]).to_numpy(zero_copy_only=False)
    if not same.any():
        return table, 0
    # A key's repeats are a run of `same`: count each run once.
    doubled = int(np.count_nonzero(same & ~np.r_[False, same[:-1]]))
    return table.filter(pa.array(~np.r_[False, same])), doubled


def _matched(warehouse: pa.Table, files: pa.Table) -> tuple[pa.Table, pa.Table, pa.Table, pa.Table]:
    """The rows of the keys both sides hold, aligned (warehouse's, files'), then the rows of either side alone."""
    left = warehouse.select(list(KEY_COLUMNS)).append_column("_w", pa.array(np.arange(warehouse.num_rows)))
    right = files.select(list(KEY_COLUMNS)).append_column("_f", pa.array(np.arange(files.num_rows)))
    joined = left.join(right, keys=list(KEY_COLUMNS), join_type="full outer")
    ours, theirs = joined["_w"].to_numpy(zero_copy_only=False), joined["_f"].to_numpy(zero_copy_only=False)
    both = ~np.isnan(ours) & ~np.isnan(theirs)
    # Taken in the warehouse's key order, so that what is shown does not depend on how the join ordered its rows.
    order = np.argsort(ours[both], kind="stable")
    return (warehouse.take(ours[both][order].astype(np.int64)), files.take(theirs[both][order].astype(np.int64)),
            warehouse.take(np.sort(ours[np.isnan(theirs)]).astype(np.int64)),
            files.take(np.sort(theirs[np.isnan(ours)]).astype(np.int64)))


def _differs(ours: pa.ChunkedArray, theirs: pa.ChunkedArray) -> np.ndarray:
    """Per row, whether the two values differ; two nulls (and two NaNs) are the same."""
    unequal = pc.or_kleene(pc.not_equal(ours, theirs), pc.xor(pc.is_null(ours), pc.is_null(theirs)))
    if pa.types.is_floating(ours.type):
        unequal = pc.and_kleene(unequal, pc.invert(pc.and_(pc.is_nan(ours), pc.is_nan(theirs))))
    return pc.fill_null(unequal, False).to_numpy(zero_copy_only=False)


def _any_of(masks: Sequence[np.ndarray], rows: int) -> np.ndarray:
    return np.logical_or.reduce(masks) if masks else np.zeros(rows, dtype=bool)


def _no_rows(table: pa.Table) -> pa.Table:
    return table.slice(0, 0)


def _samples(rows: pa.Table, problem: str, limit: int) -> list[dict[str, object]]:
    return [{**_key(rows, i), "problem": problem} for i in range(min(limit, rows.num_rows))]


def _changed_samples(ours: pa.Table, theirs: pa.Table, changed: np.ndarray, differing: dict[str, np.ndarray],
                     limit: int) -> list[dict[str, object]]:
    shown = []
    for row in np.flatnonzero(changed)[:limit]:
        columns = [name for name, mask in differing.items() if mask[row]]
        shown.append({**_key(ours, int(row)), "problem": f"differs in {', '.join(columns)}",
                      "warehouse": {name: _shown(ours[name][row]) for name in columns},
                      "parquet": {name: _shown(theirs[name][row]) for name in columns}})
    return shown


def _key(table: pa.Table, row: int) -> dict[str, object]:
    return {name: table[name][row].as_py() for name in KEY_COLUMNS}


def _shown(value: pa.Scalar) -> str | None:
    text = None if not value.is_valid else str(value.as_py())
    return text if text is None or len(text) <= _VALUE_LENGTH else text[:_VALUE_LENGTH] + "..."


def _jobs(count: int) -> str:
    return f"{count} job" if count == 1 else f"{count} jobs"
