"""One pass of the alerts: what the rules find now is recorded for each destination, and every pending alert of
a destination goes out, a message per kind, each recorded sent right after it was delivered (a crash in between
repeats that one message at most). A message that cannot be delivered leaves its alerts pending for the next pass
and stops this pass's sending to that destination; an alert pending for GIVE_UP_AFTER is given up."""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa

from pipeline.alerts.delivery import Delivery, Destination, deliver
from pipeline.alerts.ledger import (
    Alert,
    alert_rows,
    claim_pending,
    count_pending,
    ensure_alerts_table,
    give_up_expired,
    record_new,
    record_outcome,
)
from pipeline.alerts.messages import compose
from pipeline.alerts.rules import (
    TARGET_FAILING,
    TARGET_RECOVERED,
    day_at_risk_alerts,
    failed_job_alerts,
    target_alerts,
)
from pipeline.history import ledger_projects

if TYPE_CHECKING:
    from pipeline.warehouse.store import Warehouse


@dataclass(frozen=True)
class AlertRules:
    """What the rules read besides the warehouse: the settings of docs/alerts.md and the projects (name shown ->
    project id; None: every project the sync ledger holds)."""

    first_day: date
    projects: Mapping[str, str] | None = None
    window_hours: int = 24
    task_patterns: tuple[str, ...] = ()
    intraday_minutes: int = 15

    def alerts(self, warehouse: "Warehouse", now: datetime) -> list[Alert]:
        """Every alert the warehouse calls for at ``now``, sent before or not."""
        projects = self.projects if self.projects is not None else {p: p for p in ledger_projects(warehouse)}
        with warehouse.connect() as connection:
            episodes = {row.alert_key for row in alert_rows(connection, kinds=[TARGET_FAILING])}
            episodes -= {row.alert_key for row in alert_rows(connection, kinds=[TARGET_RECOVERED])}
        return [
            *failed_job_alerts(warehouse, now, self.window_hours, self.task_patterns,
                               {project: name for name, project in projects.items()}),
            *day_at_risk_alerts(warehouse, projects, self.first_day, now.date()),
            *target_alerts(warehouse, projects, now, self.intraday_minutes, sorted(episodes)),
        ]


@dataclass
class DestinationOutcome:
    """What a pass did for one destination (named masked)."""

    name: str
    new: int = 0
    sent_messages: int = 0
    sent_alerts: int = 0
    pending: int = 0
    given_up: int = 0
    failure: str | None = None


@dataclass
class PassOutcome:
    destinations: list[DestinationOutcome] = field(default_factory=list)

    def total(self, figure: str) -> int:
        return sum(getattr(outcome, figure) for outcome in self.destinations)

    @property
    def failures(self) -> list[DestinationOutcome]:
        return [outcome for outcome in self.destinations if outcome.failure]


Send = Callable[[Destination, str, str], Delivery]


def run_pass(warehouse: "Warehouse", rules: AlertRules, targets: Sequence[Destination], now: datetime,
             send: Send = deliver) -> PassOutcome:
    """Record and send the alerts of ``now`` to each of ``targets``; nothing when there are none (alerts off)."""
    outcome = PassOutcome()
    if not targets:
        return outcome
    ensure_alerts_table(warehouse)
    alerts = rules.alerts(warehouse, now)
    for destination in targets:
        outcome.destinations.append(_to_destination(warehouse, destination, alerts, rules, now, send))
    return outcome


def _to_destination(warehouse: "Warehouse", destination: Destination, alerts: Sequence[Alert], rules: AlertRules,
                    now: datetime, send: Send) -> DestinationOutcome:
    done = DestinationOutcome(destination.name)
    key = destination.ledger_name
    for attempt in (1, 2):
        try:
            with warehouse.transaction() as connection:
                done.new = record_new(connection, alerts, key, now)
                done.given_up = give_up_expired(connection, key, now)
                claimed = claim_pending(connection, key, now)
            break
        except sa.exc.IntegrityError:
            # A pass running at the same moment recorded the same new alert first: read again what it recorded.
            if attempt == 2:
                raise
    messages = compose(claimed, warehouse.dialect, rules.task_patterns)
    for index, message in enumerate(messages):
        delivery = send(destination, message.title, message.body)
        with warehouse.transaction() as connection:
            record_outcome(connection, message.rows, now, None if delivery.delivered else delivery.reason)
            if not delivery.delivered:
                # The destination is down: its other messages wait for the next pass rather than for more timeouts.
                for later in messages[index + 1:]:
                    record_outcome(connection, later.rows, now, None, tried=False)
        if not delivery.delivered:
            done.failure = delivery.reason
            break
        done.sent_messages += 1
        done.sent_alerts += len(message.rows)
    with warehouse.connect() as connection:
        done.pending = count_pending(connection, key)
    return done
