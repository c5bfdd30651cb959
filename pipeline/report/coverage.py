"""Coverage of a report's period: which UTC days the pipeline holds a complete sync of, from the sync ledger.

A day of the period counts as *synced* when every project the report covers has a complete sync of it in the ledger
(table ``dds_sync_ledger``). Otherwise it takes the state pipeline/history.py gives a day not synced, by its age:
*gone* (the DDS API holds none of it any more), *at risk* (the API starts forgetting it within AT_RISK_DAYS),
*failed* (the last attempt of one of the projects failed) or *missing* (never attempted, or not completed): the
rule of the view ``dds_jobs_coverage`` and of the schedule's catch-up. Today, when the period holds it, is *in
progress*: never complete before it has ended, never missing. Days before ``DDS_START_DATE`` (no partitions of the pipeline) and later days not over
yet are not counted.
"""

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from pipeline.api.windows import days_between
from pipeline.history import (
    AT_RISK,
    AT_RISK_DAYS,
    FAILED,
    GONE,
    IN_PROGRESS,
    MISSING,
    RETENTION_DAYS,
    STATES,
    SYNCED,
    day_state,
)
from pipeline.sqlfiles import read_sql

if TYPE_CHECKING:
    from pipeline.warehouse.store import Warehouse

__all__ = ["AT_RISK", "AT_RISK_DAYS", "FAILED", "GONE", "IN_PROGRESS", "MISSING", "REPORT_STATES", "RETENTION_DAYS",
           "STATES", "SYNCED"]
# The states a report counts, in its order.
REPORT_STATES = STATES
# Projects read from the ledger when none is configured: more would not fit a report anyway.
MAX_LEDGER_PROJECTS = 100


@dataclass(frozen=True)
class Coverage:
    """The state of each counted day of a period (see the module's docstring), over ``projects``."""

    first_day: date | None
    last_day: date | None
    projects: tuple[str, ...]
    states: dict[date, str] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """Days per state, every state included."""
        found = Counter(self.states.values())
        return {state: found.get(state, 0) for state in REPORT_STATES}

    def not_synced(self) -> list[tuple[date, str]]:
        """The counted days that are not synced (nor in progress), oldest first."""
        return [(day, state) for day, state in sorted(self.states.items()) if state not in (SYNCED, IN_PROGRESS)]


def read_coverage(
    warehouse: "Warehouse",
    first_day: date,
    last_day: date,
    projects: tuple[str, ...],
    start_date: date,
    now: datetime,
) -> Coverage:
    """The coverage of ``first_day``..``last_day`` over ``projects`` (empty: every project of the ledger)."""
    today = now.date()
    counted_first = max(first_day, start_date)
    if not projects:
        listed = warehouse.query(read_sql("report/sync_ledger_projects.sql"), top=MAX_LEDGER_PROJECTS)
        projects = tuple(listed["project_id"])
    if counted_first > min(last_day, today) or not projects:
        return Coverage(counted_first, min(last_day, today - timedelta(days=1)), projects)
    rows = warehouse.query(read_sql("report/sync_ledger_by_day.sql"), first_day=counted_first,
                           last_day=min(last_day, today), projects=list(projects))
    known = {as_date(row.day): (int(row.synced_projects), int(row.failing_projects)) for row in rows.itertuples()}
    # Today, when the period holds it, is in progress whatever the ledger says of it: never complete, never missing.
    counted_last = min(last_day, today)
    if counted_first > counted_last:
        return Coverage(counted_first, counted_last, projects)
    states = {}
    for day in days_between(counted_first, counted_last):
        synced, failing = known.get(day, (0, 0))
        states[day] = IN_PROGRESS if day == today else day_state(day, today, synced=synced >= len(projects),
                                                                   failed=failing > 0)
    return Coverage(counted_first, counted_last, projects, states=states)


def state_label(state: str) -> str:
    """A state as the report writes it: ``at_risk`` is "at risk"."""
    return state.replace("_", " ")


def as_date(value: object) -> date:
    """A date column's value as a date: SQLite returns its text, PostgreSQL a date."""
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
