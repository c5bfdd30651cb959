"""Writing days of the Parquet snapshots from the warehouse, and healing the days whose files have gone wrong.

The warehouse is the system of record of the snapshots. A day is *refreshed* while it is held against other writers
(ParquetStore.claim): the warehouse's rows of the day are read then, so nothing a writer of the day wrote before is
newer than them, and the day's file is made to hold exactly those rows. Before that, the day's files are compared
with them (pipeline/snapshots/compare.py) and the day is *healed*, reported with the reason, when its files

- hold a file that does not read (truncated, not Parquet, another table's): the run used to fail on it;
- hold a job twice;
- hold rows the warehouse's newer state does not replace: merged with the warehouse's rows by the latest-state rule
  (merged_with_stored, as every write merges), they still differ from them (a job the warehouse lacks, a state the
  warehouse never had).

A stored row that is only older than the warehouse's is what a snapshot taken before the last sync holds: the day is
written, not healed. What a heal takes out of a day is never lost: the day's previous files are first copied to the
quarantine (``{root}/_quarantine/...``, see pipeline/snapshots/store.py). A day the warehouse holds no job of is never
emptied by a run: its unreadable files are moved to the quarantine, and rows it holds are left and reported
(``parquet_only``); only ``rewrite`` (the on-demand repair, pipeline/snapshots/verify.py) moves them aside.
"""

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

import pyarrow as pa

from pipeline.records.precedence import latest_state_per_key
from pipeline.records.schema import ARROW_SCHEMA, arrow_to_frame, as_days, frame_to_arrow
from pipeline.snapshots.compare import compare_rows, doubled_keys, rows_by_day
from pipeline.snapshots.store import (
    DayFiles,
    ParquetStore,
    by_day_file,
    merged_with_stored,
)

# Reads the warehouse's rows of some days: a table of ARROW_SCHEMA (e.g. Warehouse.read_days_table).
ReadWarehouse = Callable[[Sequence[date]], pa.Table]


@dataclass(frozen=True)
class DayRefresh:
    """What refreshing one day did."""

    day: date
    rows: int = 0  # rows the day's file was written with (0: not written, the warehouse holds no job of the day)
    healed: str = ""  # why the day was healed (rewritten from the warehouse and its old files moved aside), or ""
    moved_aside: tuple[Path | str, ...] = field(default=())  # the quarantined copies of its previous files
    parquet_only: int = 0  # rows its files hold although the warehouse holds no job of the day (left in place)

    def metadata(self) -> dict[str, object]:
        """Plain values for the day's materialization of dds_jobs_parquet."""
        shown: dict[str, object] = {"rows": self.rows, "healed": bool(self.healed)}
        if self.healed:
            shown["healed_reason"] = self.healed
            shown["moved_aside"] = [str(path) for path in self.moved_aside]
        if self.parquet_only:
            shown["parquet_only_rows"] = self.parquet_only
        return shown


def refresh_days(
    store: ParquetStore, days: Iterable[date], read_warehouse: ReadWarehouse, rewrite: Mapping[date, str] | None = None
) -> dict[date, DayRefresh]:
    """Make each of ``days`` hold the warehouse's rows, healing those whose files have gone wrong (module doc).
    ``rewrite`` names days to heal whatever their files hold, with the reason to report (a verification's finding).
    A failure leaves every day as it was (the days' files are replaced as ParquetStore.replace replaces them)."""
    days, rewrite = as_days(days), dict(rewrite or {})
    with store.claim(days):
        wanted = _one_row_per_key(_checked(read_warehouse(days)))
        wanted_by_day = rows_by_day(wanted) if wanted.num_rows else {}
        found = {day: store.read_day_files(day) for day in days}
        reasons = {**_disagreements(found, wanted, wanted_by_day, rewrite), **rewrite}
        moved = [path for day in reasons
                 for path in _moved(found[day], whole_day=day in wanted_by_day or day in rewrite)]
        copies = store.copy_to_quarantine(moved)
        written = store.replace(by_day_file(wanted, list(wanted_by_day)), remove=moved)
    copy_of = dict(zip(moved, copies))
    return {day: DayRefresh(
        day, rows=written.get(day, 0), healed=reasons.get(day, ""),
        moved_aside=tuple(copy_of[path] for path in found[day].files if path in copy_of),
        parquet_only=found[day].table.num_rows if day not in wanted_by_day and day not in rewrite else 0,
    ) for day in days}


def _disagreements(found: Mapping[date, DayFiles], wanted: pa.Table, wanted_by_day: Mapping[date, pa.Table],
                   rewrite: Mapping[date, str]) -> dict[date, str]:
    """Why each day whose files have gone wrong is healed (module doc); days not named are fine."""
    reasons = {day: f"unreadable file {files.why_unreadable()}" for day, files in found.items() if files.unreadable}
    compared = [day for day, files in found.items() if day in wanted_by_day and files.table.num_rows
                and day not in reasons and day not in rewrite]
    if not compared:
        return reasons
    merged = rows_by_day(merged_with_stored([found[day].table for day in compared], wanted))
    for day in compared:
        difference = compare_rows(wanted_by_day[day], merged.get(day, wanted.slice(0, 0)), samples=0)
        difference = replace(difference, doubled=doubled_keys(found[day].table))
        if not difference.agrees:
            reasons[day] = f"its files disagreed with the warehouse: {difference.describe()}"
    return reasons


def _moved(files: DayFiles, whole_day: bool) -> list[str]:
    """The files a heal takes out of a day: all of them when the day is rewritten, else the unreadable ones only."""
    return list(files.files) if whole_day else list(files.unreadable)


def _checked(table: pa.Table) -> pa.Table:
    if not isinstance(table, pa.Table) or not table.schema.equals(ARROW_SCHEMA):
        raise ValueError("read_warehouse must return an Arrow table of dds_jobs' ARROW_SCHEMA")
    return table


def _one_row_per_key(table: pa.Table) -> pa.Table:
    """The warehouse's rows with one row per job, as a snapshot holds them (a table without its primary key may hold
    a job twice: the latest state is kept, by the rule every write applies)."""
    return frame_to_arrow(latest_state_per_key(arrow_to_frame(table))) if doubled_keys(table) else table
