"""The alert ledger, warehouse table ``dds_alerts``: one row per (kind, alert_key, destination), an alert that a
destination was sent or is still to be sent.

A row is written the first time a pass sees its alert (``first_seen_at``), pending until a message carrying it was
delivered (``sent_at``) or it has waited GIVE_UP_AFTER (``given_up_at``). A pass *claims* the pending rows it sends
(``claimed_at``) so that two passes at once never both send one; a claim a crashed pass left expires after
CLAIM_LEASE. The ledger is in the warehouse, beside the data it speaks of: a lost Dagster home resends nothing.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa

from pipeline.records.columns import Kind, sql_type
from pipeline.warehouse.engine import create_table_when_missing
from pipeline.warehouse.ledger import error_line, read_utc, stored_utc

if TYPE_CHECKING:
    from pipeline.warehouse.store import Warehouse

ALERTS_TABLE = "dds_alerts"
# An alert that could not be delivered for this long is given up: a day-old "job failed" helps nobody.
GIVE_UP_AFTER = timedelta(hours=24)
# Longer than a pass takes to deliver its messages (bounded timeouts, delivery.py) by far.
CLAIM_LEASE = timedelta(minutes=10)
_TIMES = ("happened_at", "first_seen_at", "sent_at", "last_attempt_at", "given_up_at", "claimed_at")

DDS_ALERTS = sa.Table(
    ALERTS_TABLE,
    sa.MetaData(),
    sa.Column("kind", sql_type(Kind.TEXT, keyed=True), primary_key=True,
              comment="failed_job, day_at_risk, target_failing or target_recovered (key)"),
    # Not named "key": a reserved word in MySQL and MariaDB, which every analyst's query would have to quote.
    sa.Column("alert_key", sql_type(Kind.TEXT, keyed=True), primary_key=True,
              comment="what the alert is about: project_id/job id, target|day, target|failing since (key)"),
    sa.Column("destination", sql_type(Kind.TEXT, keyed=True), primary_key=True,
              comment="scheme://host of the apprise URL and a fingerprint of the whole URL, never a secret (key)"),
    sa.Column("happened_at", sql_type(Kind.TIMESTAMP), comment="when it happened (the job ended, ...), UTC"),
    sa.Column("detail", sql_type(Kind.TEXT), nullable=False, comment="the alert's line in its message"),
    sa.Column("first_seen_at", sql_type(Kind.TIMESTAMP), nullable=False, comment="first pass that saw it, UTC"),
    sa.Column("sent_at", sql_type(Kind.TIMESTAMP), comment="delivered at, UTC; NULL: pending or given up"),
    sa.Column("attempts", sa.Integer(), nullable=False, comment="deliveries tried"),
    sa.Column("last_attempt_at", sql_type(Kind.TIMESTAMP), comment="latest delivery tried, UTC"),
    sa.Column("last_error", sql_type(Kind.TEXT), comment="why the latest delivery failed, one line, no secret"),
    sa.Column("given_up_at", sql_type(Kind.TIMESTAMP), comment="given up undelivered after 24 h, UTC"),
    sa.Column("claimed_at", sql_type(Kind.TIMESTAMP), comment="a pass is delivering it since, UTC"),
    comment="One row per alert and destination: sent, pending or given up (exactly once per destination).",
)
_KEY = ("kind", "alert_key", "destination")


@dataclass(frozen=True)
class Alert:
    """Something to tell: its kind, what it is about (key), when it happened and its line in a message."""

    kind: str
    key: str
    detail: str
    happened_at: datetime | None = None


@dataclass(frozen=True)
class AlertRow:
    """One row of dds_alerts, timestamps UTC-aware."""

    kind: str
    alert_key: str
    destination: str
    happened_at: datetime | None
    detail: str
    first_seen_at: datetime
    sent_at: datetime | None
    attempts: int
    last_attempt_at: datetime | None
    last_error: str | None
    given_up_at: datetime | None
    claimed_at: datetime | None

    @property
    def state(self) -> str:
        return "sent" if self.sent_at else "given up" if self.given_up_at else "pending"


def ensure_alerts_table(warehouse: "Warehouse") -> None:
    """Create dds_alerts when missing, as the warehouse's other tables are."""
    with warehouse.transaction() as connection:
        create_table_when_missing(connection, DDS_ALERTS)


def record_new(connection: sa.Connection, alerts: Iterable[Alert], destination: str, now: datetime) -> int:
    """Insert the ``alerts`` that ``destination`` has no row of yet, pending; the number inserted."""
    alerts = list({(alert.kind, alert.key): alert for alert in alerts}.values())
    if not alerts:
        return 0
    columns = DDS_ALERTS.c
    known = set(connection.execute(
        sa.select(columns.kind, columns.alert_key).where(columns.destination == destination,
                                                          columns.kind.in_({a.kind for a in alerts}))).all())
    dialect = connection.dialect.name
    rows = [{"kind": a.kind, "alert_key": a.key, "destination": destination, "detail": a.detail,
             "happened_at": None if a.happened_at is None else stored_utc(a.happened_at, dialect),
             "first_seen_at": stored_utc(now, dialect), "attempts": 0}
            for a in alerts if (a.kind, a.key) not in known]
    if rows:
        connection.execute(DDS_ALERTS.insert(), rows)
    return len(rows)


def give_up_expired(connection: sa.Connection, destination: str, now: datetime) -> int:
    """Give up the pending alerts of ``destination`` first seen over GIVE_UP_AFTER ago; how many."""
    columns, dialect = DDS_ALERTS.c, connection.dialect.name
    statement = DDS_ALERTS.update().where(
        columns.destination == destination, columns.sent_at.is_(None), columns.given_up_at.is_(None),
        columns.first_seen_at < stored_utc(now - GIVE_UP_AFTER, dialect),
    ).values(given_up_at=stored_utc(now, dialect), claimed_at=None)
    return connection.execute(statement).rowcount


def claim_pending(connection: sa.Connection, destination: str, now: datetime) -> list[AlertRow]:
    """The pending alerts of ``destination`` that no other pass is delivering, claimed for this one."""
    columns, dialect = DDS_ALERTS.c, connection.dialect.name
    pending = [columns.destination == destination, columns.sent_at.is_(None), columns.given_up_at.is_(None)]
    free = sa.or_(columns.claimed_at.is_(None), columns.claimed_at < stored_utc(now - CLAIM_LEASE, dialect))
    claimed = []
    for row in _rows(connection, *pending, free):
        # Claimed row by row: a row another pass claimed in the meantime no longer matches and is left to it.
        update = DDS_ALERTS.update().where(*_key_of(row), free).values(claimed_at=stored_utc(now, dialect))
        if connection.execute(update).rowcount == 1:
            claimed.append(row)
    return claimed


def record_outcome(connection: sa.Connection, rows: Sequence[AlertRow], now: datetime,
                   error: str | BaseException | None, tried: bool = True) -> None:
    """After delivering ``rows`` in one message: sent (``error`` None), or still pending with the error; the claim
    released. ``tried`` False: released untried (an earlier message to the destination failed in this pass)."""
    dialect = connection.dialect.name
    at = stored_utc(now, dialect)
    values: dict[str, object] = {"claimed_at": None}
    if tried:
        values.update(attempts=DDS_ALERTS.c.attempts + 1, last_attempt_at=at)
        if error is None:
            values.update(sent_at=at, last_error=None)
        else:
            values.update(last_error=error if isinstance(error, str) else error_line(error))
    for row in rows:
        connection.execute(DDS_ALERTS.update().where(*_key_of(row)).values(values))


def count_pending(connection: sa.Connection, destination: str | None = None) -> int:
    """Alerts pending (of ``destination``, or of all)."""
    columns = DDS_ALERTS.c
    conditions = [columns.sent_at.is_(None), columns.given_up_at.is_(None)]
    if destination is not None:
        conditions.append(columns.destination == destination)
    return connection.execute(sa.select(sa.func.count()).select_from(DDS_ALERTS).where(*conditions)).scalar_one()


def alert_rows(connection: sa.Connection, since: datetime | None = None, kinds: Iterable[str] = ()) -> list[AlertRow]:
    """The rows first seen since ``since`` (all when None) or still pending, of ``kinds`` (all when empty), by
    first seen."""
    columns, conditions = DDS_ALERTS.c, []
    if since is not None:
        conditions.append(sa.or_(columns.first_seen_at >= stored_utc(since, connection.dialect.name),
                                 sa.and_(columns.sent_at.is_(None), columns.given_up_at.is_(None))))
    kinds = list(kinds)
    if kinds:
        conditions.append(columns.kind.in_(kinds))
    return _rows(connection, *conditions)


def _rows(connection: sa.Connection, *conditions: sa.ColumnElement[bool]) -> list[AlertRow]:
    columns = DDS_ALERTS.c
    statement = sa.select(DDS_ALERTS).where(*conditions).order_by(
        columns.first_seen_at, columns.kind, columns.happened_at, columns.alert_key, columns.destination)
    return [AlertRow(**{**row._mapping, **{name: read_utc(row._mapping[name]) for name in _TIMES}})
            for row in connection.execute(statement)]


def _key_of(row: AlertRow) -> list[sa.ColumnElement[bool]]:
    return [DDS_ALERTS.c[name] == getattr(row, name) for name in _KEY]
