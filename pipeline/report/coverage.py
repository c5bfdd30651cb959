"""Coverage of a report's period: which UTC days the pipeline holds a complete sync of, from the sync ledger.

The ledger (table ``dds_sync_ledger``, one row per project and day) records each day's last attempt and its
last complete sync. A day of the period counts as *synced* when every project the report covers has a complete
sync of it. Otherwise it is, in this order of precedence:

- *gone*: the DDS API no longer answers for it (older than its one-month retention): it cannot be synced now;
- *at risk*: it leaves the API's month within ``AT_RISK_WITHIN``: sync it now or lose it;
- *failed*: a sync tried it and did not complete;
- *missing*: no sync ever tried it (no ledger row).

Days before ``DDS_START_DATE`` (not partitions of the pipeline) and days not over yet are not counted.
"""

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import sqlalchemy as sa

from pipeline.sqlfiles import read_sql
from pipeline.storage.warehouse import Warehouse
from pipeline.sync import GONE, coverage

LEDGER_TABLE = "dds_sync_ledger"
SYNCED, FAILED, MISSING, AT_RISK, GONE_STATE = "synced", "failed", "missing", "at risk", "gone"
STATES = (SYNCED, FAILED, MISSING, AT_RISK, GONE_STATE)
# The same week of warning the pipeline's own coverage check gives before a day leaves the API's month.
AT_RISK_WITHIN = timedelta(days=7)
# Projects read from the ledger when none is configured: more would not fit a report anyway.
MAX_LEDGER_PROJECTS = 100


@dataclass(frozen=True)
class Coverage:
    """The state of each counted day of a period (see the module's docstring), over ``projects``.

    ``ledger_present`` is False when the warehouse has no sync ledger yet: then no day has a state.
    """

    first_day: date | None
    last_day: date | None
    projects: tuple[str, ...]
    ledger_present: bool
    states: dict[date, str] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """Days per state, every state included."""
        found = Counter(self.states.values())
        return {state: found.get(state, 0) for state in STATES}

    def not_synced(self) -> list[tuple[date, str]]:
        """The counted days that are not synced, oldest first."""
        return [(day, state) for day, state in sorted(self.states.items()) if state != SYNCED]


def day_state(day: date, synced: int, attempted: int, projects: int, now: datetime) -> str:
    """The state of one day: ``synced`` of the ``projects`` have a complete sync of it, ``attempted`` a ledger row."""
    if synced >= projects:
        return SYNCED
    if coverage(day, now) == GONE:
        return GONE_STATE
    if coverage(day, now + AT_RISK_WITHIN) == GONE:
        return AT_RISK
    return FAILED if attempted > synced else MISSING


def read_coverage(
    warehouse: Warehouse,
    first_day: date,
    last_day: date,
    projects: tuple[str, ...],
    start_date: date,
    now: datetime,
) -> Coverage:
    """The coverage of ``first_day``..``last_day`` over ``projects`` (empty: every project of the ledger)."""
    counted_first = max(first_day, start_date)
    counted_last = min(last_day, now.date() - timedelta(days=1))
    if not sa.inspect(warehouse.engine).has_table(LEDGER_TABLE):
        return Coverage(counted_first, counted_last, projects, ledger_present=False)
    if not projects:
        listed = warehouse.query(read_sql("report/sync_ledger_projects.sql"), top=MAX_LEDGER_PROJECTS)
        projects = tuple(listed["project_id"])
    if counted_first > counted_last or not projects:
        return Coverage(counted_first, counted_last, projects, ledger_present=True)
    rows = warehouse.query(read_sql("report/sync_ledger_by_day.sql"), first_day=counted_first,
                           last_day=counted_last, projects=list(projects))
    known = {
        as_date(row.day): (int(row.synced_projects), int(row.attempted_projects)) for row in rows.itertuples()
    }
    states = {}
    day = counted_first
    while day <= counted_last:
        synced, attempted = known.get(day, (0, 0))
        states[day] = day_state(day, synced, attempted, len(projects), now)
        day += timedelta(days=1)
    return Coverage(counted_first, counted_last, projects, ledger_present=True, states=states)


def as_date(value: object) -> date:
    """A date column's value as a date: SQLite returns its text, PostgreSQL a date."""
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
