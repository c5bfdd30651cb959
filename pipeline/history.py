"""Coverage: which days of a project hold a complete sync, and what becomes of those that do not.

A day's *state* on a given ``today`` (the UTC date), from the sync ledger (pipeline/warehouse/ledger.py) and the day's age
(``today - day``; yesterday is 1):

- ``synced``: a sync fetched the whole day without error;
- ``gone``: not synced, and the API holds none of it any more (older than RETENTION_DAYS + 1);
- ``at_risk``: not synced, and the API starts forgetting the day within AT_RISK_DAYS, or has begun to (a day it holds
  only in part can no longer be synced whole);
- ``failed``: not synced, and its last attempt failed;
- ``missing``: not synced otherwise: never attempted, or attempted without completing it;
- ``in_progress``: today (age 0), which no sync can complete before it has ended: the intraday ticks store its jobs
  so far, the first run after midnight completes it.

The view dds_jobs_coverage applies the same rule in SQL to the days the ledger knows. A day no sync ever attempted
has no ledger row, so the days between DDS_START_DATE and today are listed here: for the daily schedule's
catch-up and for the no_days_at_risk check.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

from pipeline.api.windows import API_RETENTION, GONE, days_between
from pipeline.warehouse.ledger import LedgerDay, ledger_rows

if TYPE_CHECKING:
    from pipeline.warehouse.store import Warehouse

# GONE: the API holds none of the day any more, as the API layer classes a day (held_by_api).
SYNCED, FAILED, MISSING, AT_RISK = "synced", "failed", "missing", "at_risk"
IN_PROGRESS = "in_progress"
STATES = (SYNCED, FAILED, MISSING, AT_RISK, GONE, IN_PROGRESS)
# The API answers for about a month: a day starts leaving it RETENTION_DAYS after it began, and has left a day later.
RETENTION_DAYS = API_RETENTION.days
# How long before that a day not synced is reported: time enough for an operator to act.
AT_RISK_DAYS = 7


def day_state(day: date, today: date, *, synced: bool, failed: bool) -> str:
    """The state of ``day`` on ``today``: see the module's docstring (and sql/views/dds_jobs_coverage.sql)."""
    age = (today - day).days
    if age <= 0:
        return IN_PROGRESS
    if synced:
        return SYNCED
    if age > RETENTION_DAYS:
        return GONE
    if age >= RETENTION_DAYS - AT_RISK_DAYS:
        return AT_RISK
    return FAILED if failed else MISSING


@dataclass(frozen=True)
class DayCoverage:
    """One day of one project: its state, and the last failed attempt's error while it is not synced."""

    project_id: str
    day: date
    state: str
    last_error: str | None = None


def day_coverage(warehouse: Warehouse, project_id: str, first_day: date, today: date) -> list[DayCoverage]:
    """The state of every day of ``project_id`` from ``first_day`` (DDS_START_DATE) to ``today`` (in progress)."""
    last_day = today
    with warehouse.connect() as connection:
        known = {row.created_date: row for row in ledger_rows(connection, project_id, first_day, last_day)}
    return [_day(project_id, day, known.get(day), today) for day in days_between(first_day, last_day)]


def unsynced_days(warehouse: Warehouse, project_id: str | None, first_day: date, last_day: date) -> list[date]:
    """The days ``first_day``..``last_day`` that hold no complete sync of ``project_id`` (of any project, when
    None): never attempted, failed, or attempted without being fetched whole; and the synced days whose Parquet
    snapshot failed since (a run rewrites it)."""
    with warehouse.connect() as connection:
        synced = {row.created_date for row in ledger_rows(connection, project_id, first_day, last_day)
                  if row.stored_and_snapshotted}
    return [day for day in days_between(first_day, last_day) if day not in synced]


def ledger_projects(warehouse: Warehouse) -> list[str]:
    """The projects the ledger holds days of."""
    with warehouse.connect() as connection:
        return sorted({row.project_id for row in ledger_rows(connection)})


def counts(days: Iterable[DayCoverage]) -> dict[str, int]:
    """Days per state, every state included."""
    found = Counter(day.state for day in days)
    return {state: found.get(state, 0) for state in STATES}


def contiguous_runs(days: Iterable[date]) -> list[tuple[date, date]]:
    """Sorted days grouped into (first, last) runs of consecutive days."""
    runs: list[tuple[date, date]] = []
    for day in sorted(set(days)):
        if runs and day - runs[-1][1] == timedelta(days=1):
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


def day_ranges(days: Iterable[date]) -> list[str]:
    """Days as text, a run of consecutive days as one range: ``2026-11-03...2026-11-05``, ``2026-11-07``."""
    return [first.isoformat() if first == last else f"{first.isoformat()}...{last.isoformat()}"
            for first, last in contiguous_runs(days)]


def _day(project_id: str, day: date, row: LedgerDay | None, today: date) -> DayCoverage:
    synced, error = (row.synced, row.last_error) if row is not None else (False, None)
    state = day_state(day, today, synced=synced, failed=error is not None)
    return DayCoverage(project_id, day, state, None if synced else error)
