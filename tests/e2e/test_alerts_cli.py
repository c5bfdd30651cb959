"""``dds-tasks alerts test`` and ``dds-tasks alerts list`` as a user runs them: processes reading the environment,
talking to a JSON webhook and an SMTP server on loopback, showing each destination by scheme and host only."""

import subprocess
from datetime import datetime, timedelta, timezone

from pipeline.alerts.delivery import Destination
from pipeline.alerts.dispatch import AlertRules, run_pass
from tests.support.records import api_record
from pipeline.warehouse.store import Warehouse
from tests.support.alert_servers import WEBHOOK_TOKEN, refused_port, smtp_server, webhook_server
from tests.support.dagster_helpers import env_without_secrets
from tests.support.job_rows import rows
from tests.support.paths import BIN


def dds_tasks(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "dds-tasks"), "alerts", *args], env=env, capture_output=True, text=True,
                          timeout=120)


def test_alerts_test_sends_one_message_to_each_destination_and_says_which_took_it(tmp_path):
    dead_port = refused_port()
    with webhook_server() as hook, smtp_server() as mailbox:
        urls = f"{hook.url()}, {mailbox.url()}\n json://127.0.0.1:{dead_port}/hooks/{WEBHOOK_TOKEN}-dead"
        done = dds_tasks("test", env={**env_without_secrets(), "DDS_ALERT_URLS": urls,
                                      "DDS_DATA_DIR": str(tmp_path / "data")})
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines() == [
        f"json://127.0.0.1:{hook.port}: delivered",
        f"mailto://127.0.0.1:{mailbox.port}: delivered",
        f"json://127.0.0.1:{dead_port}: not delivered: A Connection error occurred sending JSON notification to "
        "127.0.0.1.",
    ]
    assert WEBHOOK_TOKEN not in done.stdout + done.stderr
    assert [post["title"] for post in hook.posts] == ["DDS task sync: test message"]
    assert mailbox.messages[0]["Subject"] == "DDS task sync: test message"


def test_a_url_apprise_cannot_parse_is_one_line_naming_its_position_not_its_text(tmp_path):
    secret = "s3cr3t-token-never-shown"
    env = {**env_without_secrets(), "DDS_ALERT_URLS": f"json://127.0.0.1:9/x nonsense://{secret}",
           "DDS_DATA_DIR": str(tmp_path / "data")}
    for args in (["test"], ["list"]):
        done = dds_tasks(*args, env=env)
        assert done.returncode == 2
        assert done.stderr.splitlines() == [
            "dds-tasks: configuration error: DDS_ALERT_URLS: URL 2 of 2 is not a URL apprise can parse (see "
            "https://github.com/caronc/apprise/wiki for each service's form)"]
        assert secret not in done.stdout + done.stderr


def test_alerts_list_shows_what_was_sent_and_what_is_pending(tmp_path):
    data = tmp_path / "data"
    warehouse = Warehouse(f"sqlite:///{data / 'warehouse.db'}")
    now = datetime.now(timezone.utc)
    warehouse.upsert(rows([api_record("job-a", now - timedelta(hours=2), status="Failed", fail_reason="oops",
                                      ended_at=now - timedelta(hours=1))], seen_at=now))
    rules = AlertRules(first_day=now.date(), projects={"proj-1": "proj-1"})
    with webhook_server() as hook:
        run_pass(warehouse, rules, [Destination(hook.url())], now)
    dead = Destination(f"json://127.0.0.1:{refused_port()}/hooks/{WEBHOOK_TOKEN}")
    run_pass(warehouse, rules, [dead], now)
    warehouse.dispose()
    done = dds_tasks("list", "--days", "2", env={**env_without_secrets(), "DDS_DATA_DIR": str(data)})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:4] == ["state", "kind", "key", "destination"]
    states = {line.split()[0] + " " + line.split()[3] for line in lines[1:-1]}
    assert states == {f"sent json://127.0.0.1:{hook.port}", f"pending {dead.name}"}
    assert lines[-1] == "2 alert(s): 1 sent, 1 pending, 0 given up"
    assert WEBHOOK_TOKEN not in done.stdout
    bad = dds_tasks("list", "--days", "0", env={**env_without_secrets(), "DDS_DATA_DIR": str(data)})
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1
