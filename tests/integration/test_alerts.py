"""The alerts over a real warehouse (SQLite, PostgreSQL, MariaDB) and real destinations on loopback (a JSON
webhook, an SMTP server): what alerts, that each alert is delivered once per destination, retried while a
destination fails and given up after 24 hours, and a digest of many failed jobs."""

from datetime import datetime, timedelta, timezone

import pytest

from pipeline.alerts.delivery import Destination, deliver
from pipeline.alerts.dispatch import AlertRules, run_pass
from pipeline.alerts.ledger import alert_rows
from pipeline.alerts.messages import MAX_LISTED
from pipeline.alerts.rules import DAY_AT_RISK, FAILED_JOB, TARGET_FAILING, TARGET_RECOVERED
from pipeline.history import RETENTION_DAYS
from tests.support.records import api_record
from pipeline.warehouse.ledger import Attempt, record_failure, record_sync
from tests.support.alert_servers import WEBHOOK_TOKEN, refused_port, smtp_server, webhook_server
from tests.support.job_rows import rows

NOW = datetime.now(timezone.utc).replace(microsecond=0)
PROJECT = "proj-1"
# Every day synced: only the rule under test alerts.
QUIET_RULES = AlertRules(first_day=NOW.date(), projects={"sg-prod": PROJECT})


def failed(job_id: str, ended_at: datetime, name: str = "Backup", reason: str = "disk full") -> dict:
    return api_record(job_id, ended_at - timedelta(minutes=5), status="Failed", name=name, ended_at=ended_at,
                      fail_reason=reason)


def store(warehouse, *records: dict) -> None:
    warehouse.upsert(rows(list(records), seen_at=NOW, project_id=PROJECT))


def passes(warehouse, hook, rules=QUIET_RULES, now=NOW):
    return run_pass(warehouse, rules, [Destination(hook.url())], now)


def test_failed_jobs_alert_once_in_one_digest_naming_target_instance_task_job_times_and_reason(warehouse):
    store(warehouse, failed("job-a", NOW - timedelta(hours=1)), failed("job-b", NOW - timedelta(hours=2)),
          api_record("job-ok", NOW - timedelta(hours=1)))
    with webhook_server() as hook:
        first = passes(warehouse, hook)
        second = passes(warehouse, hook)
    assert [len(hook.posts), first.total("sent_alerts"), second.total("sent_alerts")] == [1, 2, 0]
    message = hook.posts[0]["message"]
    assert hook.posts[0]["title"] == "DDS: 2 failed job(s)"
    ended = NOW - timedelta(hours=1)
    assert (f"sg-prod | dds-6be2 (1f311e6a299345d7bbc878874844e233in02) | Backup | job job-a | created "
            f"{ended - timedelta(minutes=5):%Y-%m-%d %H:%M:%S} UTC | ended {ended:%Y-%m-%d %H:%M:%S} UTC | disk full"
            ) in message
    assert message.index("job-b") < message.index("job-a") and "job-ok" not in message


def test_a_destination_answering_500_keeps_the_alert_pending_and_the_next_pass_delivers_it(warehouse):
    store(warehouse, failed("job-a", NOW - timedelta(hours=1)))
    with webhook_server() as hook:
        hook.answer(500)
        failing = passes(warehouse, hook)
        later = passes(warehouse, hook, now=NOW + timedelta(minutes=15))
        after = passes(warehouse, hook, now=NOW + timedelta(minutes=30))
    outcome = failing.destinations[0]
    assert (outcome.pending, outcome.sent_alerts, outcome.name) == (1, 0, f"json://127.0.0.1:{hook.port}")
    assert "500" in outcome.failure and WEBHOOK_TOKEN not in outcome.failure
    assert (later.total("sent_alerts"), later.total("pending"), after.total("sent_alerts")) == (1, 0, 0)
    assert len(hook.posts) == 1
    with warehouse.connect() as connection:
        [row] = alert_rows(connection)
    assert (row.state, row.attempts, row.last_error) == ("sent", 2, None)
    assert WEBHOOK_TOKEN not in row.destination


def test_an_alert_undelivered_for_24_hours_is_given_up(warehouse):
    store(warehouse, failed("job-a", NOW - timedelta(hours=1)))
    dead = Destination(f"json://127.0.0.1:{refused_port()}/hooks/{WEBHOOK_TOKEN}")
    refused = run_pass(warehouse, QUIET_RULES, [dead], NOW)
    assert refused.destinations[0].pending == 1 and "127.0.0.1" in refused.destinations[0].failure
    kept = run_pass(warehouse, QUIET_RULES, [dead], NOW + timedelta(hours=23))
    gone = run_pass(warehouse, QUIET_RULES, [dead], NOW + timedelta(hours=24, seconds=1))
    assert (kept.total("given_up"), kept.total("pending")) == (0, 1)
    assert (gone.total("given_up"), gone.total("pending"), gone.failures) == (1, 0, [])
    with warehouse.connect() as connection:
        assert [row.state for row in alert_rows(connection)] == ["given up"]


def test_500_failed_jobs_are_one_digest_of_50_then_how_many_more_and_sql_that_lists_them_all(warehouse):
    store(warehouse, *(failed(f"job-{n:03}", NOW - timedelta(minutes=n + 1)) for n in range(500)))
    with webhook_server() as hook:
        outcome = passes(warehouse, hook)
    assert (len(hook.posts), outcome.total("sent_alerts")) == (1, 500)
    message = hook.posts[0]["message"]
    assert message.count("\n- ") + message.startswith("- ") == MAX_LISTED
    assert "... and 450 more. All of them: SELECT" in message
    sql = message[message.index("SELECT"):]
    listed = warehouse.query(sql)
    assert sorted(listed["id"]) == [f"job-{n:03}" for n in range(500)]


def test_the_task_filter_and_the_window_at_its_edges(warehouse):
    window = timedelta(hours=6)
    store(warehouse,
          failed("inside", NOW - window + timedelta(seconds=1), name="FullBackup"),
          failed("edge", NOW - window, name="IncrementalBackup"),
          failed("outside", NOW - window - timedelta(seconds=1), name="FullBackup"),
          failed("other-task", NOW - timedelta(hours=1), name="RestartInstance"))
    rules = AlertRules(first_day=NOW.date(), projects={"sg-prod": PROJECT}, window_hours=6,
                       task_patterns=("*backup*",))
    with webhook_server() as hook:
        passes(warehouse, hook, rules)
    message = hook.posts[0]["message"]
    assert [job for job in ("inside", "edge", "outside", "other-task") if f"job {job} " in message] == \
        ["inside", "edge"]


def test_a_day_about_to_leave_the_api_unsynced_alerts_once(warehouse):
    today = NOW.date()
    rules = AlertRules(first_day=today - timedelta(days=RETENTION_DAYS - 1), projects={"sg-prod": PROJECT})
    with webhook_server() as hook:
        passes(warehouse, hook, rules)
        passes(warehouse, hook, rules)
    assert len(hook.posts) == 1 and hook.posts[0]["title"].startswith("DDS: 3 day(s)")
    with warehouse.connect() as connection:
        keys = [row.alert_key for row in alert_rows(connection, kinds=[DAY_AT_RISK])]
    assert keys == [f"sg-prod|{today - timedelta(days=age)}" for age in (RETENTION_DAYS - 1, RETENTION_DAYS - 2,
                                                                           RETENTION_DAYS - 3)]


def test_a_target_failing_past_two_intervals_alerts_once_then_recovered_once(warehouse):
    yesterday, today = NOW.date() - timedelta(days=1), NOW.date()
    rules = AlertRules(first_day=today, projects={"sg-prod": PROJECT}, intraday_minutes=15)
    ok_at = NOW - timedelta(minutes=40)
    with warehouse.transaction() as connection:
        record_sync(connection, Attempt(PROJECT, ok_at), {yesterday: 10})
        record_failure(connection, Attempt(PROJECT, NOW - timedelta(minutes=20)), [today], RuntimeError("HTTP 503"))
    with webhook_server() as hook:
        # Failing for 20 minutes only, since the success 40 minutes ago... the threshold is from the last success.
        passes(warehouse, hook, rules, now=ok_at + timedelta(minutes=29))
        assert hook.posts == []
        passes(warehouse, hook, rules, now=ok_at + timedelta(minutes=31))
        passes(warehouse, hook, rules, now=ok_at + timedelta(minutes=45))
        with warehouse.transaction() as connection:
            record_sync(connection, Attempt(PROJECT, NOW + timedelta(minutes=10)), {today - timedelta(days=2): 5})
        passes(warehouse, hook, rules, now=NOW + timedelta(minutes=11))
        passes(warehouse, hook, rules, now=NOW + timedelta(minutes=26))
    assert [post["title"] for post in hook.posts] == ["DDS: the sync of 1 target(s) is failing",
                                                      "DDS: the sync of 1 target(s) recovered"]
    assert "HTTP 503" in hook.posts[0]["message"]
    with warehouse.connect() as connection:
        kinds = sorted(row.kind for row in alert_rows(connection))
    assert kinds == [TARGET_FAILING, TARGET_RECOVERED]


def test_each_destination_gets_its_own_copy_once_the_mail_by_smtp(warehouse):
    store(warehouse, failed("job-a", NOW - timedelta(hours=1)))
    with webhook_server() as hook, smtp_server() as mailbox:
        targets = [Destination(hook.url()), Destination(mailbox.url())]
        run_pass(warehouse, QUIET_RULES, targets, NOW)
        run_pass(warehouse, QUIET_RULES, targets, NOW + timedelta(minutes=5))
    assert len(hook.posts) == 1 and len(mailbox.messages) == 1
    mail = mailbox.messages[0]
    assert mail["Subject"] == "DDS: 1 failed job(s)" and mail["To"] == "ops@example.com"
    assert "job job-a" in mailbox.text(0)
    with warehouse.connect() as connection:
        assert {row.kind for row in alert_rows(connection)} == {FAILED_JOB}
        assert len(alert_rows(connection)) == 2


@pytest.mark.parametrize("status", [500, 404])
def test_deliver_says_why_not_without_the_url_secret(status):
    with webhook_server() as hook:
        hook.answer(status)
        delivery = deliver(Destination(hook.url()), "t", "b")
    assert not delivery.delivered and str(status) in delivery.reason and WEBHOOK_TOKEN not in delivery.reason


def test_the_sql_of_docs_alerts_md_runs_as_written(warehouse):
    import re

    from tests.support.paths import ROOT

    [sql] = re.findall(r"```sql\n(.*?)```", (ROOT / "docs" / "alerts.md").read_text(), flags=re.S)
    store(warehouse, failed("job-a", NOW - timedelta(hours=1)))
    run_pass(warehouse, QUIET_RULES, [Destination(f"json://127.0.0.1:{refused_port()}/hooks/{WEBHOOK_TOKEN}")], NOW)
    pending = warehouse.query(sql)
    assert list(pending["alert_key"]) == [f"{PROJECT}/job-a"] and list(pending["attempts"]) == [1]


def test_a_destination_that_never_answers_is_given_up_on_after_the_read_timeout():
    import socket

    # A server that accepts the connection and never answers: the stall apprise's read timeout bounds.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        delivery = deliver(Destination(f"json://127.0.0.1:{port}/hooks/{WEBHOOK_TOKEN}"), "t", "b",
                           connect_timeout=1.0, read_timeout=0.5)
    assert not delivery.delivered and WEBHOOK_TOKEN not in delivery.reason
    assert "127.0.0.1" in delivery.reason
