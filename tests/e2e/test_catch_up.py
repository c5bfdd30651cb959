"""Catch-up and the coverage check in real Dagster runs against the simulator: the days a failed sync left are asked
for again at every tick until they are synced, and days left unsynced until the API is about to forget them fail
the ERROR check no_days_at_risk, by name."""

from datetime import date, timedelta

from dagster import (
    AssetCheckKey,
    AssetKey,
    AssetSelection,
    DagsterRunStatus,
    Definitions,
    RunsFilter,
    define_asset_job,
)

from pipeline.defs.partitions import REGION_TAG, TARGET_TAG, range_tags
from pipeline.warehouse.ledger import Attempt, ledger_rows, record_sync
from pipeline.warehouse.store import Warehouse
from tests.support.dagster_helpers import last_day, pipeline_under_test
from tests.support.reliability_helpers import (
    SyncChild,
    assert_exact_data,
    stored_jobs,
    sync_with_api,
    wait_for,
)
from tests.support.schedule_helpers import asked_days, evaluate_daily_schedule, tick_at

FAILING_FAST = {"retry_max_attempts": 2, "retry_base_delay_seconds": 0.01}


def today() -> date:
    """Today as the running test started (the day after its last day)."""
    return last_day() + timedelta(days=1)


def synced_days(p) -> list[str]:
    warehouse = Warehouse(p.settings.warehouse_url)
    try:
        with warehouse.connect() as connection:
            return [row.created_date.isoformat() for row in ledger_rows(connection) if row.synced]
    finally:
        warehouse.dispose()


def test_the_days_of_a_failed_sync_are_asked_for_at_every_tick_until_they_are_synced(tmp_path, monkeypatch):
    last = last_day()
    failed = [last - timedelta(days=n) for n in (3, 2, 1)]
    monkeypatch.setenv("DDS_START_DATE", failed[0].isoformat())
    with pipeline_under_test(tmp_path, monkeypatch, jobs_per_day=60) as p:
        # The API answers 500 to everything: the 3-day sync fails.
        p.sim.faults.random({"500": 1.0}, seed=1)
        assert not sync_with_api(p, failed[0], failed[-1], **FAILING_FAST).success
        assert len(p.instance.get_run_records(RunsFilter(statuses=[DagsterRunStatus.FAILURE]))) == 1

        # The tick of the next morning asks for the three days (one run), and the catch-up fails again.
        first_tick = evaluate_daily_schedule(p, tick_at(last))
        assert asked_days(first_tick) == [(failed[0].isoformat(), failed[-1].isoformat())]
        # The range of days, and the run's target (the one project) and region as tags.
        assert {k: v for k, v in first_tick[0].tags.items() if k not in (TARGET_TAG, REGION_TAG)} == range_tags(
            failed[0], failed[-1])
        assert first_tick[0].tags[TARGET_TAG] == p.sim.project_id
        assert not sync_with_api(p, failed[0], failed[-1], **FAILING_FAST).success

        # The next tick asks for them again, with yesterday, under a new run key; the API is back and they heal.
        p.sim.faults.clear()
        second_tick = evaluate_daily_schedule(p, tick_at(today()))
        assert asked_days(second_tick) == [(failed[0].isoformat(), last.isoformat())]
        assert second_tick[0].run_key != first_tick[0].run_key
        assert sync_with_api(p, failed[0], last).success
        assert_exact_data(p, failed[0], last)
        healed = [day for day in failed if day.isoformat() in synced_days(p)]
        assert healed == failed and last.isoformat() in synced_days(p)
        print(f"\ncatch-up: a 3-day sync failed (HTTP 500 to everything); the next tick asked for "
              f"{asked_days(second_tick)}; days healed by it: {len(healed)} of 3 (+ yesterday)")

        # Synced, they are not asked for again.
        assert asked_days(evaluate_daily_schedule(p, tick_at(today()))) == [(last.isoformat(), last.isoformat())]


def check_of(result, name: str = "no_days_at_risk"):
    [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == name]
    return evaluation


def test_days_not_synced_before_the_api_forgets_them_fail_the_error_check_by_name(tmp_path, monkeypatch):
    last = last_day()
    start = today() - timedelta(days=26)
    at_risk = f"{start.isoformat()}...{(today() - timedelta(days=23)).isoformat()}"
    monkeypatch.setenv("DDS_START_DATE", start.isoformat())
    with pipeline_under_test(tmp_path, monkeypatch, jobs_per_day=30) as p:
        # Two of the old days failed; then only yesterday is synced.
        p.sim.faults.random({"500": 1.0}, seed=1)
        failed_run = sync_with_api(p, start + timedelta(days=1), start + timedelta(days=2), **FAILING_FAST)
        p.sim.faults.clear()
        result = p.sync(last, last)
        assert not failed_run.success and result.success

        check = check_of(result)
        assert check.passed is False and check.severity.value == "ERROR"
        assert check.description.startswith("4 day(s) not synced") and at_risk in check.description
        meta = {key: value.value for key, value in check.metadata.items()}
        assert meta["at_risk_days_by_project"] == {p.sim.project_id: [at_risk]}
        assert [meta[f"days_{state}"] for state in ("synced", "failed", "missing", "at_risk", "gone")] == [
            1, 0, 21, 4, 0]
        # The table of the UI: days per state, then the days not synced with the error of the failed ones.
        table = meta["coverage"]
        assert "| project | synced | failed | missing | at risk | gone |" in table
        assert f"| {p.sim.project_id} | 1 | 0 | 21 | 4 | 0 |" in table
        assert f"| {p.sim.project_id} | at_risk | {at_risk} | " in table and "HTTP 500" in table

        # The backfill of the whole history heals it: the check passes.
        result = p.sync(start, last - timedelta(days=1))
        assert result.success
        check = check_of(result)
        assert check.passed is True
        assert {key: check.metadata[f"days_{key}"].value for key in ("synced", "at_risk", "missing")} == {
            "synced": 26, "at_risk": 0, "missing": 0}


def test_days_already_gone_are_shown_in_the_coverage_without_failing_the_check(tmp_path, monkeypatch):
    start = today() - timedelta(days=35)
    monkeypatch.setenv("DDS_START_DATE", start.isoformat())
    with pipeline_under_test(tmp_path, monkeypatch) as p:
        # Every day the API still holds is synced; the five before them were never synced and are gone for good.
        warehouse = Warehouse(p.settings.warehouse_url)
        with warehouse.transaction() as connection:
            record_sync(connection, Attempt(p.sim.project_id, p.sim.store.now),
                        {today() - timedelta(days=n): 40 for n in range(1, 31)})
        warehouse.dispose()
        # The check alone, as launched from the UI's check list.
        job = define_asset_job("coverage_only", selection=AssetSelection.checks(
            AssetCheckKey(AssetKey("dds_jobs"), "no_days_at_risk")))
        defs = Definitions.merge(p.definitions(), Definitions(jobs=[job]))
        check = check_of(defs.resolve_job_def("coverage_only").execute_in_process(instance=p.instance))

        assert check.passed is True
        assert [check.metadata[f"days_{state}"].value for state in ("synced", "missing", "at_risk", "gone")] == [
            30, 0, 0, 5]
        gone = f"{start.isoformat()}...{(today() - timedelta(days=31)).isoformat()}"
        assert f"| {p.sim.project_id} | gone | {gone} |  |" in check.metadata["coverage"].value


def test_a_run_killed_inside_its_load_leaves_its_days_to_the_next_tick(tmp_path, monkeypatch):
    last = last_day()
    first = last - timedelta(days=2)
    monkeypatch.setenv("DDS_START_DATE", first.isoformat())
    with pipeline_under_test(tmp_path, monkeypatch, jobs_per_day=400) as p:
        # A first sync of the days, in a process of its own, killed at the 500th of its ~1,200 rows.
        marker = tmp_path / "reached"
        child = SyncChild(first, last, tmp_path / "child.log", stop_at="sqlite-upsert:500", marker=marker)
        try:
            wait_for(lambda: marker.exists() or child.process.poll() is not None, "the child to reach its load")
            assert marker.exists(), child.output()[-3000:]
            child.kill()
        finally:
            child.stop()
        # Neither its rows nor its ledger entry were committed: the days hold no complete sync...
        assert stored_jobs(p.settings.warehouse_url).empty and synced_days(p) == []
        # ...so the next tick asks for them, and its run completes them.
        requests = evaluate_daily_schedule(p, tick_at(today()))
        assert asked_days(requests) == [(first.isoformat(), last.isoformat())]
        assert sync_with_api(p, first, last).success
        assert_exact_data(p, first, last)
        assert synced_days(p) == [first.isoformat(), (first + timedelta(days=1)).isoformat(), last.isoformat()]
