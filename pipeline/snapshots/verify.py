"""The Parquet snapshots verified against the warehouse, day by day, and repaired on demand.

Every day the warehouse or the Parquet root holds is checked: each of the day's files reads as dds_jobs rows (as the
dataset's readers read it, see pipeline/snapshots/files.py), the day is the one file ``part-0.parquet``, it
holds one row per job, and its rows equal the warehouse's rows of the day in every column. A day is ``ok``,
``unreadable`` (a file does not read) or ``differs`` (jobs missing, jobs not in the warehouse, jobs whose values
differ, jobs held twice, stray files). Files of the dataset folder outside any day folder are reported as strays.

Repair makes the snapshots what the warehouse says (the warehouse is the system of record) and never deletes data:

- a bad day the warehouse holds jobs of is rewritten from the warehouse (pipeline/snapshots/heal.py), its
  previous files copied to the quarantine (``{root}/_quarantine/...``) first;
- a day only the Parquet root holds is moved to the quarantine whole: out of the dataset, kept for the operator to
  look at or load back. When the warehouse holds no job at all, such days are left in place: that looks like a
  wrong DDS_WAREHOUSE_URL rather than a history to put aside;
- strays of the dataset folder are moved to the quarantine.

Repaired days are verified again; the report says which are ok now. The comparison is the one the run's healing and
the check parquet_matches_warehouse use (pipeline/snapshots/compare.py).
"""

from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime

import pyarrow as pa

from pipeline.records.schema import ARROW_SCHEMA, COLUMN_NAMES
from pipeline.snapshots.compare import RowDifference, compare_rows, rows_by_day
from pipeline.snapshots.files import name_in_day
from pipeline.snapshots.heal import refresh_days
from pipeline.snapshots.store import ROWS_AT_ONCE, DayFiles, ParquetStore
from pipeline.sqlfiles import read_sql
from pipeline.warehouse.store import Warehouse

OK, UNREADABLE, DIFFERS = "ok", "unreadable", "differs"
# Days shown in the UI's table; the command line shows them all.
MARKDOWN_ROWS = 100
_COLUMNS = ("day", "status", "warehouse", "parquet", "missing", "extra", "changed", "twice", "repair", "after",
            "problems")


@dataclass
class DayVerdict:
    """One day compared: the warehouse's rows of it, its files, how they differ, and what a repair did."""

    day: date
    warehouse_rows: int
    files: DayFiles
    difference: RowDifference  # of the readable files' rows (all of them when none is unreadable)
    repair: str = ""  # what the repair did, "" when it did nothing
    after: str = ""  # the day's status once repaired and verified again, "" when not repaired

    @property
    def status(self) -> str:
        if self.files.unreadable:
            return UNREADABLE
        return OK if self.difference.agrees and not self.files.stray else DIFFERS

    @property
    def resolved(self) -> bool:
        """Whether the day is ok, or ok since the repair."""
        return (self.after or self.status) == OK

    def problems(self) -> str:
        """What is wrong with the day, in one line ("" when it is ok)."""
        parts = [f"unreadable file {self.files.why_unreadable()}"] if self.files.unreadable else []
        stray = [name_in_day(path) for path in self.files.stray if path not in self.files.unreadable]
        if stray:
            parts.append(f"stray file(s) {', '.join(stray)}")
        if not self.difference.agrees:
            parts.append(self.difference.describe())
        return "; ".join(parts)

    def row(self) -> dict[str, object]:
        """The day as one row of the report's table."""
        d = self.difference
        return {"day": self.day.isoformat(), "status": self.status, "warehouse": self.warehouse_rows,
                "parquet": self.files.table.num_rows, "missing": d.missing, "extra": d.extra, "changed": d.changed,
                "twice": d.doubled, "repair": self.repair or "-", "after": self.after or "-",
                "problems": self.problems() or "-"}


@dataclass
class VerifyReport:
    """The verification of every day, and what a repair did."""

    days: list[DayVerdict]
    strays: list[str]  # files of the dataset folder outside any day folder
    quarantine: str  # where a repair moves files to
    repaired: bool = False
    strays_left: list[str] = field(default_factory=list)  # the strays still there after the repair
    moved_aside: list[str] = field(default_factory=list)  # quarantined copies made by the repair
    notes: list[str] = field(default_factory=list)

    @property
    def problems_remain(self) -> bool:
        return bool(self.strays_left if self.repaired else self.strays) or not all(v.resolved for v in self.days)

    def counts(self) -> dict[str, int]:
        """Days per status (before any repair), days repaired and days still bad, stray files found and left."""
        status = {f"days_{name}": sum(v.status == key for v in self.days)
                  for name, key in (("ok", OK), ("unreadable", UNREADABLE), ("differing", DIFFERS))}
        return {"days": len(self.days), **status, "days_repaired": sum(v.after == OK for v in self.days),
                "days_still_bad": sum(not v.resolved for v in self.days), "stray_files": len(self.strays),
                "stray_files_left": len(self.strays_left if self.repaired else self.strays)}

    def summary(self) -> str:
        """One line: days per status, and what the repair did or what remains."""
        c = self.counts()
        span = f" ({self.days[0].day}..{self.days[-1].day})" if self.days else ""
        line = (f"{c['days']} day(s) verified{span}: {c['days_ok']} ok, {c['days_unreadable']} unreadable, "
                f"{c['days_differing']} differ"
                + (f"; {c['stray_files']} stray file(s) outside the day folders" if c["stray_files"] else ""))
        if self.repaired:
            line += f"; {c['days_repaired']} repaired, {len(self.moved_aside)} file(s) moved to {self.quarantine}"
        remain = c["days_still_bad"] + c["stray_files_left"]
        line += f"; {remain} problem(s) remain" if self.problems_remain else "; all ok"
        return " ".join([line, *self.notes])

    def rows(self, only_bad: bool = False) -> list[dict[str, object]]:
        """One row per day (per day that was not ok), and one per stray file."""
        return [*(v.row() for v in self.days if not only_bad or v.status != OK),
                *(self._stray_row(path) for path in self.strays)]

    def text(self) -> str:
        """Every day as a text table, for the command line."""
        rows = self.rows()
        if not rows:
            return "(no day in the warehouse or the snapshots)"
        widths = {name: max(len(name), *(len(str(row[name])) for row in rows)) for name in rows[0]}
        lines = [[name.ljust(width) for name, width in widths.items()],
                 *([str(row[name]).ljust(width) for name, width in widths.items()] for row in rows)]
        return "\n".join("  ".join(line).rstrip() for line in lines)

    def markdown(self, limit: int = MARKDOWN_ROWS) -> str:
        """The summary, then the days that were not ok as a Markdown table (the first ``limit``), for the UI."""
        rows = self.rows(only_bad=True)
        if not rows:
            return self.summary()
        header = list(rows[0])
        cells = [[str(row[name]).replace("|", "\\|") for name in header] for row in rows[:limit]]
        lines = [self.summary(), "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header),
                 *("| " + " | ".join(row) + " |" for row in cells)]
        if len(rows) > limit:
            lines += ["", f"... and {len(rows) - limit} more: `dds-tasks verify-parquet` lists every day."]
        return "\n".join(lines)


    def _stray_row(self, path: str) -> dict[str, object]:
        repair = "-" if not self.repaired else "kept" if path in self.strays_left else "moved to the quarantine"
        return {**dict.fromkeys(_COLUMNS, "-"), "status": "stray", "repair": repair, "problems": path}


def compare_days(
    warehouse: Warehouse, store: ParquetStore, days: Iterable[date], columns: Sequence[str] = COLUMN_NAMES,
    files: dict[date, list[str]] | None = None,
) -> dict[date, DayVerdict]:
    """Each of ``days`` compared in ``columns`` (the key columns and created_date among them): the warehouse's rows
    of the day with its files'. ``files``: the days' files from a listing of the dataset (else each is listed)."""
    verdicts: dict[date, DayVerdict] = {}
    # The files are read beside the database (both mostly outside the GIL): a batch takes the longer of the two.
    with ThreadPoolExecutor(max_workers=1) as beside:
        for batch in warehouse.day_batches(days, ROWS_AT_ONCE):
            reading = beside.submit(lambda days: [store.read_day_files(
                day, columns, None if files is None else files.get(day, [])) for day in days], batch)
            stored = rows_by_day(warehouse.read_days_table(batch, columns=columns))
            for found in reading.result():
                ours = stored.get(found.day, _empty(columns))
                verdicts[found.day] = DayVerdict(found.day, ours.num_rows, found, compare_rows(ours, found.table))
    return verdicts


def verify_parquet(warehouse: Warehouse, store: ParquetStore, repair: bool = False) -> VerifyReport:
    """Verify every day the warehouse or the snapshots hold; with ``repair``, repair the bad ones (module doc)."""
    listing = store.dataset_files()
    stored = {_as_date(day): int(jobs) for day, jobs in
              warehouse.query(read_sql("checks/jobs_by_day.sql")).itertuples(index=False)}
    days = sorted(set(stored) | set(listing.days))
    report = VerifyReport(list(compare_days(warehouse, store, days, files=dict(listing.days)).values()),
                          list(listing.strays), str(store.quarantine_path))
    if repair:
        _repair(warehouse, store, report, warehouse_is_empty=not stored)
    return report


def _repair(warehouse: Warehouse, store: ParquetStore, report: VerifyReport, warehouse_is_empty: bool) -> None:
    report.repaired = True
    bad = {v.day: v for v in report.days if v.status != OK}
    if warehouse_is_empty and bad:
        report.notes.append("The warehouse holds no job at all: nothing was moved (is DDS_WAREHOUSE_URL the right "
                            "database?).")
        bad = {}
    for batch in warehouse.day_batches(list(bad), ROWS_AT_ONCE):
        done = refresh_days(store, batch, warehouse.read_days_table,
                            rewrite={day: bad[day].problems() for day in batch})
        for day, refreshed in done.items():
            bad[day].repair = (f"rewritten from the warehouse ({refreshed.rows} rows)" if refreshed.rows
                               else "moved to the quarantine (no job of the day in the warehouse)")
            report.moved_aside += [str(path) for path in refreshed.moved_aside]
    if report.strays:
        report.moved_aside += [str(path) for path in store.copy_to_quarantine(report.strays)]
        store.replace({}, remove=report.strays)
        report.strays_left = store.dataset_files().strays
    for day, verdict in compare_days(warehouse, store, list(bad)).items():
        bad[day].after = verdict.status


def _empty(columns: Sequence[str]) -> pa.Table:
    return pa.schema([f for f in ARROW_SCHEMA if f.name in columns]).empty_table()


def _as_date(value: object) -> date:
    """A created_date as the database returns it: a date (PostgreSQL) or its ISO text (SQLite)."""
    if isinstance(value, datetime):
        return value.date()
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
