"""The messages of a pass: the pending alerts of one destination, one message per kind (several failed jobs at
once are one digest). A digest lists at most MAX_LISTED alerts, then says how many more and gives the SQL that
lists them all, as the warehouse's database runs it."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from pipeline.alerts.ledger import AlertRow
from pipeline.alerts.rules import DAY_AT_RISK, FAILED_JOB, KINDS, TARGET_FAILING, TARGET_RECOVERED
from pipeline.warehouse.engine import POSTGRESQL

MAX_LISTED = 50
_TITLES = {
    FAILED_JOB: "DDS: {n} failed job(s)",
    DAY_AT_RISK: "DDS: {n} day(s) about to leave the DDS API unsynced",
    TARGET_FAILING: "DDS: the sync of {n} target(s) is failing",
    TARGET_RECOVERED: "DDS: the sync of {n} target(s) recovered",
}
TEST_TITLE = "DDS task sync: test message"


@dataclass(frozen=True)
class Message:
    """One message to one destination, and the ledger rows it delivers."""

    title: str
    body: str
    rows: tuple[AlertRow, ...]


def compose(rows: Sequence[AlertRow], dialect: str, patterns: Sequence[str] = ()) -> list[Message]:
    """The messages of ``rows`` (one destination's pending alerts), in the order of KINDS."""
    messages = []
    for kind in KINDS:
        of_kind = sorted((row for row in rows if row.kind == kind),
                         key=lambda row: (row.happened_at or row.first_seen_at, row.alert_key))
        if not of_kind:
            continue
        lines = [f"- {row.detail}" for row in of_kind[:MAX_LISTED]]
        more = len(of_kind) - MAX_LISTED
        if more > 0:
            lines.append(f"... and {more} more. All of them: {failed_jobs_sql(of_kind, dialect, patterns)}"
                         if kind == FAILED_JOB else f"... and {more} more.")
        messages.append(Message(_TITLES[kind].format(n=len(of_kind)), "\n".join(lines), tuple(of_kind)))
    return messages


def failed_jobs_sql(rows: Sequence[AlertRow], dialect: str, patterns: Sequence[str]) -> str:
    """A SELECT listing the failed jobs of ``rows`` (their ended_at span, the task patterns) on ``dialect``."""
    times = [row.happened_at for row in rows if row.happened_at is not None]
    first = min(times).replace(microsecond=0)
    last = (max(times) + timedelta(seconds=1)).replace(microsecond=0)
    condition = f"ended_at >= {_timestamp(first, dialect)} AND ended_at < {_timestamp(last, dialect)}"
    if patterns:
        likes = " OR ".join(f"LOWER(name) LIKE {_like(pattern)}" for pattern in patterns)
        condition += f" AND ({likes})"
    return ("SELECT project_id, instance_name, instance_id, name, id, created_at, ended_at, fail_reason "
            f"FROM dds_jobs WHERE status = 'Failed' AND {condition} ORDER BY ended_at, project_id, id;")


def probe_message(destination: str, now: datetime) -> tuple[str, str]:
    """The title and body of ``dds-tasks alerts test``."""
    return TEST_TITLE, (f"A test of the DDS task sync's alerts to {destination}, sent {now:%Y-%m-%d %H:%M:%S} UTC. "
                        "Failed jobs, days about to be lost and failing syncs will be reported here.")


def _timestamp(at: datetime, dialect: str) -> str:
    # PostgreSQL stores timestamptz: the literal names its zone. The others store UTC wall time, as text on SQLite,
    # compared as such.
    text = f"{at:%Y-%m-%d %H:%M:%S}"
    return f"TIMESTAMPTZ '{text}+00'" if dialect == POSTGRESQL else f"'{text}'"


def _like(pattern: str) -> str:
    escaped = pattern.lower().replace("'", "''")
    # The patterns' only wildcard is *; LIKE's own % and _ would match more than the Python filter does.
    if "%" in escaped or "_" in escaped:
        escaped = escaped.replace("!", "!!").replace("%", "!%").replace("_", "!_")
        return f"'{escaped.replace('*', '%')}' ESCAPE '!'"
    return f"'{escaped.replace('*', '%')}'"
