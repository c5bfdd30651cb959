"""What alerts, read from the warehouse at a moment ``now`` (UTC). Each rule returns Alerts: a kind, a key that
names the event once and for good (the ledger sends each key once per destination), and the alert's line.

- ``failed_job``: a job whose status is Failed and whose ended_at is within the last ``window_hours``, of a task
  whose name matches one of the patterns (all tasks when none). A job that ended before the window never alerts,
  so switching alerts on over a long history, or backfilling old days, sends only what the window covers.
- ``day_at_risk``: a day not completely stored that the DDS API forgets within ALERT_DAYS_BEFORE_LOST days, as
  pipeline/history.py (the no_days_at_risk check) says.
- ``target_failing``: a target whose latest sync failed and that has had no successful sync for longer than two
  intraday intervals (or at all since its last success, when intraday is off: the daily run failed); keyed by the
  time it has been failing since, so one failure episode alerts once. ``target_recovered``: its first
  successful sync after an episode that alerted.
"""

import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from pipeline.alerts.ledger import Alert
from pipeline.history import AT_RISK, RETENTION_DAYS, day_coverage
from pipeline.warehouse.ledger import LedgerDay, ledger_rows

if TYPE_CHECKING:
    from pipeline.warehouse.store import Warehouse

FAILED_JOB, DAY_AT_RISK, TARGET_FAILING, TARGET_RECOVERED = (
    "failed_job", "day_at_risk", "target_failing", "target_recovered")
KINDS = (FAILED_JOB, DAY_AT_RISK, TARGET_FAILING, TARGET_RECOVERED)
# A day alerts when this close to leaving the API: no_days_at_risk warns a week ahead; a message is for the last call.
ALERT_DAYS_BEFORE_LOST = 3
# Intraday intervals a target may fail for before it alerts: one failed tick is often a blip the next one heals.
FAILING_INTERVALS = 2
FAILED_JOBS_SQL = ("SELECT project_id, instance_name, instance_id, name, id, created_at, ended_at, fail_reason "
                   "FROM dds_jobs WHERE status = 'Failed' AND ended_at >= :since ORDER BY ended_at, project_id, id")


def task_matcher(patterns: Sequence[str]) -> re.Pattern[str] | None:
    """One expression matching a task name any of ``patterns`` matches whole, ``*`` any run of characters, letter
    case ignored (as SQL's LOWER(name) LIKE does); None when every name matches."""
    if not patterns:
        return None
    alternatives = "|".join(".*".join(map(re.escape, pattern.split("*"))) for pattern in patterns)
    return re.compile(f"(?:{alternatives})", re.IGNORECASE | re.DOTALL)


def failed_job_alerts(warehouse: "Warehouse", now: datetime, window_hours: int, patterns: Sequence[str],
                      targets_of_projects: Mapping[str, str]) -> list[Alert]:
    """The failed jobs that ended within the window, of the tasks the patterns name, oldest first."""
    jobs = warehouse.query(FAILED_JOBS_SQL, since=now - timedelta(hours=window_hours))
    matcher = task_matcher(patterns)
    alerts = []
    for job in jobs.itertuples(index=False):
        if matcher is not None and not matcher.fullmatch(job.name or ""):
            continue
        created, ended = _utc(job.created_at), _utc(job.ended_at)
        target = targets_of_projects.get(job.project_id, job.project_id)
        detail = (f"{target} | {job.instance_name or '-'} ({job.instance_id or '-'}) | {job.name or '-'} | "
                  f"job {job.id} | created {created:%Y-%m-%d %H:%M:%S} UTC | ended {ended:%Y-%m-%d %H:%M:%S} UTC | "
                  f"{job.fail_reason or 'no fail reason given'}")
        alerts.append(Alert(FAILED_JOB, f"{job.project_id}/{job.id}", detail, ended))
    return alerts


def day_at_risk_alerts(warehouse: "Warehouse", projects: Mapping[str, str], first_day: date,
                       today: date) -> list[Alert]:
    """The days of ``projects`` (name shown -> project id) not synced that the API forgets within
    ALERT_DAYS_BEFORE_LOST days (or has begun to)."""
    alerts = []
    for name, project_id in projects.items():
        for day in day_coverage(warehouse, project_id, first_day, today):
            days_left = RETENTION_DAYS - (today - day.day).days
            if day.state != AT_RISK or days_left > ALERT_DAYS_BEFORE_LOST:
                continue
            when = f"within {days_left} day(s)" if days_left > 0 else "now (it holds only part of it)"
            error = f"; last error: {day.last_error}" if day.last_error else ""
            detail = f"{name} {day.day.isoformat()}: not completely stored, and the DDS API forgets it {when}{error}"
            alerts.append(Alert(DAY_AT_RISK, f"{name}|{day.day.isoformat()}", detail))
    return alerts


def target_alerts(warehouse: "Warehouse", projects: Mapping[str, str], now: datetime, intraday_minutes: int,
                  open_episodes: Sequence[str]) -> list[Alert]:
    """``target_failing`` for each target of ``projects`` failing past the threshold; ``target_recovered`` for
    each of ``open_episodes`` (keys of failing alerts not yet followed by a recovery) whose target synced since."""
    threshold = timedelta(minutes=FAILING_INTERVALS * intraday_minutes)
    alerts = []
    with warehouse.connect() as connection:
        health = {name: sync_health(ledger_rows(connection, project_id)) for name, project_id in projects.items()}
    for name, (failing_since, last_ok, error) in health.items():
        if failing_since is not None and now - failing_since > threshold:
            detail = f"{name}: its sync has failed since {failing_since:%Y-%m-%d %H:%M:%S} UTC; last error: {error}"
            alerts.append(Alert(TARGET_FAILING, f"{name}|{failing_since.isoformat()}", detail, failing_since))
    for key in open_episodes:
        name, _, since = key.partition("|")
        failing_since, last_ok, _ = health.get(name, (None, None, None))
        if failing_since is None and last_ok is not None and last_ok > datetime.fromisoformat(since):
            detail = f"{name}: recovered, synced successfully at {last_ok:%Y-%m-%d %H:%M:%S} UTC"
            alerts.append(Alert(TARGET_RECOVERED, key, detail, last_ok))
    return alerts


def sync_health(rows: Sequence[LedgerDay]) -> tuple[datetime | None, datetime | None, str | None]:
    """(failing since, last successful sync, last error) of one project's ledger rows; failing since is None when
    its latest sync did not fail. A day's row was last synced successfully at its last complete sync, or at its
    last attempt when that left no error; it failed at its last attempt when that left an error."""
    ok = [row.last_complete_at for row in rows if row.last_complete_at is not None]
    ok += [row.last_attempt_at for row in rows if row.last_error is None]
    failed = [row for row in rows if row.last_error is not None
              and (row.last_complete_at is None or row.last_attempt_at > row.last_complete_at)]
    last_ok = max(ok, default=None)
    latest_failure = max(failed, key=lambda row: row.last_attempt_at, default=None)
    if latest_failure is None or (last_ok is not None and last_ok >= latest_failure.last_attempt_at):
        return None, last_ok, None
    # The ledger keeps each day's latest attempt only: failing since the last success, or the oldest failure kept.
    since = last_ok if last_ok is not None else min(row.last_attempt_at for row in failed)
    return since, last_ok, latest_failure.last_error


def _utc(value: object) -> datetime:
    # SQLite returns the stored UTC text, PostgreSQL an aware datetime, MariaDB a naive UTC one. pandas is imported
    # by the alerts pass, not by loading the definitions.
    import pandas as pd

    stamp = pd.Timestamp(value)
    return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")).to_pydatetime()
