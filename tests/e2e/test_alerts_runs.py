"""dds_jobs_alerts through real Dagster runs, on instances kept on disk, against the simulator and a JSON webhook on
loopback: a sync's failed jobs alert once, a fresh Dagster home resends nothing, a destination that answers 500
leaves the run green with the alerts pending and the WARN check failed, a backfill of old days sends nothing, and
no file the runs write holds the URL's token."""

import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, RunRequest, build_run_status_sensor_context

from pipeline.defs.alerts.assets import AFTER_FAILURE_SENSOR, ALERTS_ASSET, ALERTS_DELIVERED, ALERTS_JOB
from pipeline.warehouse.store import Warehouse
from tests.support.alert_servers import WEBHOOK_TOKEN, webhook_server
from tests.support.dagster_helpers import expected_jobs, pipeline_under_test
from tests.support.days import last_day

WINDOW_HOURS = 48


def materialize_alerts(p, home: Path):
    """One materialization of dds_jobs_alerts alone, recorded in the Dagster home ``home``."""
    home.mkdir(exist_ok=True)
    with DagsterInstance.local_temp(str(home)) as instance:
        job = p.definitions().resolve_implicit_global_asset_job_def()
        result = job.execute_in_process(instance=instance, asset_selection=[AssetKey(ALERTS_ASSET)])
        [materialization] = result.asset_materializations_for_node(ALERTS_ASSET)
        [evaluation] = result.get_asset_check_evaluations()
        logs = [event.message for event in result.all_events if event.event_type_value == "ENGINE_EVENT"
                or event.is_step_event]
        return ({name: value.value for name, value in materialization.metadata.items()}, evaluation, logs,
                result.success)


def failed_in_window(sim) -> list[str]:
    now = datetime.now(timezone.utc)
    jobs = expected_jobs(sim, last_day() - timedelta(days=1), last_day()).values()
    return sorted(job["id"] for job in jobs if job["status"] == "Failed" and job["ended_at"]
                  and datetime.strptime(job["ended_at"], "%Y-%m-%dT%H:%M:%S%z") >= now - timedelta(hours=WINDOW_HOURS))


def files_holding(folder: Path, secret: str) -> list[str]:
    return [str(path) for path in folder.rglob("*") if path.is_file() and secret.encode() in path.read_bytes()]


@pytest.fixture
def hook(monkeypatch):
    with webhook_server() as server:
        monkeypatch.setenv("DDS_ALERT_URLS", server.url())
        monkeypatch.setenv("DDS_ALERT_WINDOW_HOURS", str(WINDOW_HOURS))
        monkeypatch.setenv("DDS_START_DATE", (last_day() - timedelta(days=1)).isoformat())
        yield server


def sync_result_of_alerts(result):
    """The metadata of dds_jobs_alerts in a sync's run (the asset job materializes it after dds_jobs)."""
    [materialization] = result.asset_materializations_for_node(ALERTS_ASSET)
    [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == ALERTS_DELIVERED]
    return {name: value.value for name, value in materialization.metadata.items()}, evaluation


def test_failed_jobs_alert_once_and_a_fresh_dagster_home_resends_nothing(tmp_path, monkeypatch, hook):
    with pipeline_under_test(tmp_path, monkeypatch, jobs_per_day=120) as p:
        first, check = sync_result_of_alerts(p.sync(last_day() - timedelta(days=1), last_day()))
        failed = failed_in_window(p.sim)
        again, _, _, ok = materialize_alerts(p, tmp_path / "home-a")
        fresh, _, _, _ = materialize_alerts(p, tmp_path / "home-b")
    assert failed, "the simulator's days hold failed jobs that ended in the window"
    assert ok and check.passed
    assert (first["sent_alerts"], first["pending"]) == (len(failed), 0)
    assert [(m["new_alerts"], m["sent_alerts"]) for m in (again, fresh)] == [(0, 0), (0, 0)]
    [post] = hook.posts
    assert all(f"job {job_id} " in post["message"] for job_id in failed[:50])
    assert files_holding(tmp_path, WEBHOOK_TOKEN) == []


def test_a_destination_answering_500_leaves_the_run_green_the_check_warning_and_the_next_run_delivers(
        tmp_path, monkeypatch, hook):
    with pipeline_under_test(tmp_path, monkeypatch, jobs_per_day=120) as p:
        hook.answer(500)
        result = p.sync(last_day() - timedelta(days=1), last_day())
        failing, check = sync_result_of_alerts(result)
        later, check_later, logs, ok = materialize_alerts(p, tmp_path / "home")
        warnings = [(entry.level, entry.user_message) for entry in p.instance.all_logs(result.run_id)
                    if "not delivered" in entry.user_message]
    assert result.success and failing["pending"] > 0 and failing["sent_alerts"] == 0
    assert not check.passed and check.severity.value == "WARN"
    assert f"json://127.0.0.1:{hook.port}: {failing['pending']} pending" in check.description
    assert [level for level, line in warnings if f"alerts to json://127.0.0.1:{hook.port} not delivered (" in line
            and WEBHOOK_TOKEN not in line] == [logging.WARNING]
    assert ok and (later["sent_alerts"], later["pending"]) == (failing["pending"], 0) and check_later.passed
    assert len(hook.posts) == 1
    assert files_holding(tmp_path, WEBHOOK_TOKEN) == []


def test_a_backfill_of_old_days_with_alerts_on_sends_nothing(tmp_path, monkeypatch, hook):
    first, last = last_day() - timedelta(days=20), last_day() - timedelta(days=18)
    monkeypatch.setenv("DDS_START_DATE", first.isoformat())
    with pipeline_under_test(tmp_path, monkeypatch, jobs_per_day=120) as p:
        in_run, check = sync_result_of_alerts(p.sync(first, last))
        warehouse = Warehouse(p.settings.warehouse_url)
        stored_failed = warehouse.query("SELECT COUNT(*) AS n FROM dds_jobs WHERE status = 'Failed'")["n"][0]
        warehouse.dispose()
        by_hand, _, _, ok = materialize_alerts(p, tmp_path / "home")
    assert stored_failed > 0, "the old days hold failed jobs, which ended long before the window"
    assert ok and check.passed
    assert [(m["new_alerts"], m["sent_alerts"]) for m in (in_run, by_hand)] == [(0, 0), (0, 0)]
    assert hook.posts == []


def test_a_failed_sync_is_reported_by_the_sensor_s_run_as_a_failing_target(tmp_path, monkeypatch, hook):
    monkeypatch.setenv("DDS_INTRADAY_MINUTES", "0")
    monkeypatch.setenv("DDS_RETRY_BUDGET_SECONDS", "1")
    with pipeline_under_test(tmp_path, monkeypatch) as p:
        p.sim.faults.random({"500": 1.0}, seed=1)
        failed_run = p.sync(last_day(), last_day(), raise_on_error=False)
        assert not failed_run.success and hook.posts == []
        defs = p.definitions()
        sensor = defs.resolve_sensor_def(AFTER_FAILURE_SENSOR)
        context = build_run_status_sensor_context(
            sensor_name=AFTER_FAILURE_SENSOR, dagster_instance=p.instance, dagster_run=failed_run.dagster_run,
            dagster_event=failed_run.get_run_failure_event()).for_run_failure()
        assert isinstance(sensor(context), RunRequest)
        alerts_run = defs.resolve_job_def(ALERTS_JOB).execute_in_process(instance=p.instance)
    assert alerts_run.success
    [post] = hook.posts
    assert post["title"] == "DDS: the sync of 1 target(s) is failing" and p.sim.project_id in post["message"]
