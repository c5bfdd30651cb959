"""Today during the day, in real Dagster runs against the simulator: the intraday ticks store the day's jobs so far
and the final state of the jobs that were Running at an earlier sync; a job created after a run's moment is the next
tick's, stored once; the day is in progress until the daily run after midnight completes it."""

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

import pyarrow.dataset as ds
from dagster import DagsterInstance, DagsterRunStatus, build_schedule_context

from pipeline.history import IN_PROGRESS, SYNCED, day_coverage
from pipeline.defs.sync.days_at_risk import coverage_result
from pipeline.defs.partitions import AS_OF_TAG
from pipeline.defs.resources import WarehouseResource
from pipeline.defs.sync.schedules import INTRADAY_TAG, REPORT_ASSET
from pipeline.definitions import build_definitions
from pipeline.config import Deployment
from pipeline.api.windows import day_window
from pipeline.warehouse.ledger import ledger_rows
from pipeline.warehouse.store import Warehouse
from tests.support.dagster_helpers import env_without_secrets, pipeline_env, pipeline_under_test, yesterday
from tests.e2e.test_cli import dagster_output
from tests.support.paths import BIN, ROOT

# The intraday day of the runs below is yesterday (each run's moment, its dds/as_of tag, is on it, so the runs see
# it as today so far) and the earlier day before it: both over by the time the daily run completes them.
DAY = yesterday()
EARLIER = DAY - timedelta(days=1)


def at(day: date, hour: int, minute: int) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=timezone.utc)


@contextmanager
def intraday_pipeline(tmp_path: Path, monkeypatch, **sim_options) -> Iterator:
    """pipeline_under_test on a Dagster instance of its own folder: a schedule looks up the instance's runs."""
    with pipeline_under_test(tmp_path, monkeypatch, **sim_options) as p:
        (tmp_path / "dagster_home").mkdir()
        with DagsterInstance.local_temp(str(tmp_path / "dagster_home")) as instance:
            p.instance = instance
            yield p


def evaluate(p, name: str, tick: datetime):
    """One real evaluation of the schedule ``name`` at ``tick``, against the pipeline's instance and warehouse."""
    defs = p.definitions()
    with build_schedule_context(instance=p.instance, scheduled_execution_time=tick,
                                repository_def=defs.get_repository_def(),
                                resources={"warehouse": WarehouseResource(url=p.settings.warehouse_url)}) as context:
        return defs.get_schedule_def(name).evaluate_tick(context)


def execute(p, request, name: str):
    """The run ``request`` of schedule ``name`` asks for, executed in process as the daemon would launch it."""
    defs = p.definitions()
    job = defs.resolve_job_def(defs.get_schedule_def(name).job_name)
    result = job.execute_in_process(instance=p.instance, partition_key=request.partition_key, tags=request.tags,
                                    asset_selection=request.asset_selection)
    assert result.success
    return result


def intraday_tick(p, tick: datetime):
    [request] = evaluate(p, "dds_jobs_intraday", tick).run_requests
    return execute(p, request, "dds_jobs_intraday")


def stored(p):
    warehouse = Warehouse(p.settings.warehouse_url)
    try:
        return warehouse.query("SELECT id, status, ended_at, created_date FROM dds_jobs")
    finally:
        warehouse.dispose()


def ledger(p) -> dict[date, object]:
    warehouse = Warehouse(p.settings.warehouse_url)
    try:
        with warehouse.connect() as connection:
            return {row.created_date: row for row in ledger_rows(connection)}
    finally:
        warehouse.dispose()


def api_jobs(p, day: date, until: datetime) -> dict[str, dict]:
    return {job["id"]: job for job in p.sim.store.visible_jobs(p.sim.project_id, day_window(day).start, until)
            if datetime.strptime(job["created_at"], "%Y-%m-%dT%H:%M:%S%z").astimezone(timezone.utc).date() == day}


def test_a_running_job_of_the_day_before_is_final_within_one_tick_and_a_late_job_is_stored_once(tmp_path, monkeypatch):
    monkeypatch.setenv("DDS_START_DATE", EARLIER.isoformat())
    with intraday_pipeline(tmp_path, monkeypatch, now=at(EARLIER, 23, 55)) as p:
        # 23:55: the earlier day so far; the backups just created are still Running.
        p.sim.store.add_jobs(3)
        intraday_tick(p, at(EARLIER, 23, 55))
        running = set(stored(p).query("status == 'Running'")["id"])
        assert running, "the simulator's evening holds no Running job"
        assert not ledger(p)[EARLIER].synced

        # After midnight they end; a job is created at 00:35, after the moment (00:30) of the next tick's run.
        p.sim.store.advance(timedelta(minutes=45))
        p.sim.store.complete_running()
        [late] = p.sim.store.add_jobs(1, created_at=at(DAY, 0, 35))
        requests_before = len(p.sim.requests)
        intraday_tick(p, at(DAY, 0, 30))

        rows = stored(p).set_index("id")
        api = api_jobs(p, EARLIER, day_window(EARLIER).end)
        # Every job Running at 23:55 now holds its final state, though its day is not the run's.
        assert {job_id: rows.loc[job_id, "status"] for job_id in running} == {
            job_id: api[job_id]["status"] for job_id in running}
        assert set(rows.loc[list(running), "status"]) <= {"Completed", "Failed"}
        assert rows.loc[list(running), "ended_at"].notna().all()
        # ... and its day's Parquet snapshot says so too.
        snapshot = ds.dataset(Path(p.settings.parquet_root) / "dds_jobs" / f"created_date={EARLIER}").to_table()
        statuses = dict(zip(snapshot["id"].to_pylist(), snapshot["status"].to_pylist()))
        assert {job_id: statuses[job_id] for job_id in running} == {job_id: api[job_id]["status"] for job_id in running}
        # The earlier day cost one request (a window over its few Running jobs: its jobs fit in one page).
        asked = p.sim.requests[requests_before:]
        assert sum(1 for r in asked if r.query["start_time"] < DAY.isoformat()) == 1
        # The late job is not the run's: its window ended at 00:30.
        assert late not in rows.index

        intraday_tick(p, at(DAY, 0, 45))
        intraday_tick(p, at(DAY, 1, 0))
        day_rows = stored(p).query(f"created_date == '{DAY}'")
        # The next tick stored it, and every job of the day so far, each exactly once.
        assert sorted(day_rows["id"]) == sorted(api_jobs(p, DAY, at(DAY, 1, 0)))
        assert list(day_rows["id"]).count(late) == 1
        assert not ledger(p)[DAY].synced
        assert [d.state for d in day_coverage(Warehouse(p.settings.warehouse_url), p.sim.project_id, DAY, DAY)] == [
            IN_PROGRESS]

        # The daily run after midnight completes both days, and rebuilds the report once.
        daily = evaluate(p, "dds_jobs_daily", at(DAY + timedelta(days=1), 0, 15)).run_requests
        assert [REPORT_ASSET in (r.asset_selection or []) for r in daily] == [True]
        execute(p, daily[0], "dds_jobs_daily")
        assert ledger(p)[DAY].synced and ledger(p)[EARLIER].synced
        states = day_coverage(Warehouse(p.settings.warehouse_url), p.sim.project_id, EARLIER, DAY + timedelta(days=1))
        assert [d.state for d in states] == [SYNCED, SYNCED, IN_PROGRESS]


def test_a_tick_is_one_run_without_the_report_and_skips_while_the_previous_one_is_going(tmp_path, monkeypatch):
    tick = at(DAY, 12, 15)
    with intraday_pipeline(tmp_path, monkeypatch, jobs_per_day=5) as p:
        [request] = evaluate(p, "dds_jobs_intraday", tick).run_requests
        assert request.partition_key == DAY.isoformat()
        assert request.tags[AS_OF_TAG] == tick.isoformat()
        assert REPORT_ASSET not in request.asset_selection
        defs = p.definitions()
        job = defs.resolve_job_def(defs.get_schedule_def("dds_jobs_intraday").job_name)
        going = p.instance.create_run_for_job(job, tags=request.tags, status=DagsterRunStatus.STARTED)

        skipped = evaluate(p, "dds_jobs_intraday", tick + timedelta(minutes=15))
        assert skipped.run_requests == []
        assert going.run_id in skipped.skip_message and "still started" in skipped.skip_message

        p.instance.report_run_failed(going)
        assert len(evaluate(p, "dds_jobs_intraday", tick + timedelta(minutes=30)).run_requests) == 1
        assert going.tags[INTRADAY_TAG] == "true"


def test_intraday_minutes_set_the_ticks_and_the_freshness_policy_and_0_takes_the_schedule_away(tmp_path, monkeypatch):
    with pipeline_under_test(tmp_path, monkeypatch, jobs_per_day=1):
        for minutes, cron, late_after in (("", "*/15 * * * *", timedelta(minutes=30)),
                                          ("25", None, timedelta(minutes=50)), ("0", None, timedelta(days=2))):
            monkeypatch.setenv("DDS_INTRADAY_MINUTES", minutes)
            defs = build_definitions(Deployment.from_env())
            schedules = {schedule.name: schedule for schedule in defs.schedules}
            if minutes == "0":
                assert set(schedules) == {"dds_jobs_daily"}
            elif cron:
                assert schedules["dds_jobs_intraday"].cron_schedule == cron
            else:
                # 25 does not divide an hour: one cron per minute past the hour, every 25 minutes from midnight.
                assert schedules["dds_jobs_intraday"].cron_schedule[:2] == ["0 0,5,10,15,20 * * *",
                                                                            "5 2,7,12,17,22 * * *"]
            [spec] = defs.get_assets_def("dds_jobs").specs
            # The UI shows dds_jobs late when no run stored it for two intervals.
            assert spec.freshness_policy.fail_window.to_timedelta() == late_after


def test_today_is_a_partition_the_dagster_cli_syncs_and_the_ledger_keeps_in_progress(tmp_path, monkeypatch):
    with pipeline_under_test(tmp_path, monkeypatch, jobs_per_day=20) as p:
        today = datetime.now(timezone.utc).date()
        home = tmp_path / "dagster_home"
        home.mkdir()
        env = {**env_without_secrets(), **pipeline_env(p.sim, tmp_path / "data"), "DAGSTER_HOME": str(home),
               "DDS_START_DATE": (today - timedelta(days=2)).isoformat()}
        command = [str(BIN / "dagster"), "asset", "materialize", "-m", "pipeline.definitions",
                   "--select", "dds_jobs,dds_jobs_parquet", "--partition", today.isoformat()]
        run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
        assert run.returncode == 0, run.stderr[-2000:]
        row = ledger(p)[today]
        # Never complete before the day has ended (a run that started after midnight could have completed it).
        assert row.synced == (row.last_attempt_at >= day_window(today).end)
        sim_today = [j for j in api_jobs(p, today, p.sim.store.now)]
        assert sorted(stored(p).query(f"created_date == '{today}'")["id"]) == sorted(sim_today)
        if not row.synced:
            warehouse = Warehouse(p.settings.warehouse_url)
            view = warehouse.query("SELECT created_date, state FROM dds_jobs_coverage")
            warehouse.dispose()
            states = dict(zip(view["created_date"].astype(str), view["state"]))
            if datetime.now(timezone.utc).date() == today:
                assert states[today.isoformat()] == IN_PROGRESS
                # The no_days_at_risk check counts it in progress too, and does not fail on it.
                warehouse = Warehouse(p.settings.warehouse_url)
                coverage = {"p": day_coverage(warehouse, p.sim.project_id, today, today)}
                warehouse.dispose()
                verdict = coverage_result(coverage, today, today)
                assert verdict.passed and verdict.metadata["days_in_progress"].value == 1
                assert verdict.metadata["days_missing"].value == 0


def test_a_bad_dds_intraday_minutes_stops_the_definitions_in_one_line_naming_it(tmp_path):
    env = {**env_without_secrets(), "DDS_DATA_DIR": str(tmp_path / "data"), "DDS_INTRADAY_MINUTES": "15m",
           "DAGSTER_HOME": str(tmp_path)}
    lines = dagster_output(["asset", "list", "-m", "pipeline.definitions"], env)
    assert lines == ["configuration error: DDS_INTRADAY_MINUTES='15m' is not a whole number"]
    assert not (tmp_path / "data").exists()
