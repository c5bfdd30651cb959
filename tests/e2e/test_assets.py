"""The Dagster assets, run in process against the simulator over loopback HTTP, into real SQLite (and MariaDB) and
Parquet."""

from datetime import datetime, time, timedelta, timezone

import pandas as pd
import pyarrow.dataset as ds
import sqlalchemy as sa

from pipeline.defs.partitions import REGION_TAG, TARGET_TAG
from pipeline.warehouse.store import Warehouse
from tests.support.dagster_helpers import expected_jobs, pipeline_under_test, yesterday


def stored(settings, project_id=None) -> pd.DataFrame:
    warehouse = Warehouse(settings.warehouse_url)
    try:
        return warehouse.query("SELECT * FROM dds_jobs ORDER BY id")
    finally:
        warehouse.dispose()


def test_a_multi_day_run_stores_exactly_the_api_jobs_with_per_day_metadata(tmp_path, monkeypatch):
    last = yesterday()
    first = last - timedelta(days=2)
    # A deployment that begins with these days: once they are synced, no day of its history is at risk.
    monkeypatch.setenv("DDS_START_DATE", first.isoformat())
    with pipeline_under_test(tmp_path, monkeypatch) as p:
        result = p.sync(first, last)
        assert result.success
        want = expected_jobs(p.sim, first, last)
        rows = stored(p.settings)
        assert sorted(rows["id"]) == sorted(want)
        assert rows["id"].is_unique
        for day in (first, first + timedelta(days=1), last):
            meta = p.day_metadata("dds_jobs", day)
            jobs_of_day = [j for j in rows.itertuples() if str(j.created_date)[:10] == day.isoformat()]
            assert meta["jobs"] == len(jobs_of_day) > 0
            assert meta["source_holds_day"] is True and meta["stored_jobs"] == meta["jobs"]
            # A day's partition holds the day's own figures; the run's are given once, in its summary.
            assert not {"inserted", "fetch_requests", "window_start", "sync_seconds"} & meta.keys()
            assert p.day_metadata("dds_jobs_parquet", day)["rows"] == len(jobs_of_day)
        [summary] = p.run_summaries("dds_jobs")
        assert summary["days"] == 3 and summary["inserted"] == len(want) and summary["fetch_jobs"] == len(want)
        assert summary["fetch_requests"] >= summary["fetch_pages"] >= 1
        assert summary["window_start"] == f"{first.isoformat()}T00:00:00+00:00"
        # No retries happened: no retry figure is recorded (it would plot as an always-zero series).
        assert not any(name.startswith(("fetch_retries", "fetch_refetches")) for name in summary)
        [snapshot_summary] = p.run_summaries("dds_jobs_parquet")
        assert (snapshot_summary["days"], snapshot_summary["rows"]) == (3, len(want))
        # Every asset check ran and passed on good data.
        checks = {e.check_name: e.passed
                  for e in result.get_asset_check_evaluations()}
        assert checks == {"stored_count_matches_api": True, "no_duplicate_keys": True,
                          "ended_not_before_created": True, "parquet_matches_warehouse": True,
                          "no_days_at_risk": True, "alerts_delivered": True}
        snapshot = ds.dataset(p.settings.parquet_root + "/dds_jobs", partitioning="hive").to_table().to_pandas()
        assert sorted(snapshot["id"]) == sorted(want)


def test_a_run_launched_by_hand_carries_the_one_projects_target_and_region_as_tags(tmp_path, monkeypatch):
    monkeypatch.setenv("DDS_REGION", "ap-southeast-1")
    with pipeline_under_test(tmp_path, monkeypatch) as p:
        result = p.sync(yesterday(), yesterday())
        assert result.success
        tags = p.instance.get_run_by_id(result.run_id).tags
        assert (tags[TARGET_TAG], tags[REGION_TAG]) == (p.sim.project_id, "ap-southeast-1")


def test_a_later_sync_turns_running_jobs_into_one_row_with_the_final_state(tmp_path, monkeypatch):
    last = yesterday()
    # The simulator's clock stands late yesterday, so the evening's jobs are still running at the first sync.
    late_yesterday = datetime.combine(last, time(23, 40), tzinfo=timezone.utc)
    with pipeline_under_test(tmp_path, monkeypatch, jobs_per_day=400, now=late_yesterday) as p:
        assert p.sync(last, last).success
        first_rows = stored(p.settings).set_index("id")
        running = first_rows.index[first_rows["status"] == "Running"]
        assert len(running) > 0
        p.sim.store.complete_running()
        assert p.sync(last, last).success
        rows = stored(p.settings).set_index("id")
        assert rows.index.is_unique and len(rows) == len(first_rows)
        assert (rows.loc[running, "status"] != "Running").all()
        assert (rows.loc[running, "first_seen_at"] == first_rows.loc[running, "first_seen_at"]).all()
        assert (rows["last_seen_at"] >= first_rows["last_seen_at"]).all()


def test_days_beyond_the_api_retention_keep_what_is_stored(tmp_path, monkeypatch):
    old_day = yesterday() - timedelta(days=35)
    with pipeline_under_test(tmp_path, monkeypatch) as p:
        assert p.sync(yesterday(), yesterday()).success
        # Plant history the API no longer holds, as an earlier deployment would have stored it.
        engine = sa.create_engine(p.settings.warehouse_url)
        with engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO dds_jobs (project_id, id, name, instance_id, instance_name, status, created_at, "
                "created_date, first_seen_at, last_seen_at) SELECT project_id, 'old-job', name, instance_id, "
                "instance_name, 'Completed', created_at, :day, first_seen_at, last_seen_at FROM dds_jobs LIMIT 1"
            ), {"day": old_day})
        engine.dispose()
        before = stored(p.settings)
        result = p.sync(old_day, old_day)
        assert result.success
        after = stored(p.settings)
        pd.testing.assert_frame_equal(before, after)
        meta = p.day_metadata("dds_jobs", old_day)
        assert meta["source_holds_day"] is False and meta["source_coverage"] == "gone"
        assert not any(r.query.get("start_time", "").startswith(old_day.isoformat()) for r in p.sim.requests)


def test_an_api_refusal_fails_the_run_with_its_one_line_logged_first(tmp_path, monkeypatch):
    with pipeline_under_test(tmp_path, monkeypatch) as p:
        monkeypatch.setenv("DDS_AUTH_TOKEN", "a-revoked-token")
        result = p.sync(yesterday(), yesterday(), raise_on_error=False)
        assert not result.success
        failure = next(event for event in result.all_events if event.is_step_failure)
        line = failure.step_failure_data.user_failure_data.description
        # What the CLI and the UI show first: the API's refusal and what to do, in one line.
        assert line.startswith("DDS rejected the request: ") and "HTTP 401" in line and "check the credentials" in line
        assert "\n" not in line and "a-revoked-token" not in line
        logged = [entry.user_message for entry in p.instance.all_logs(result.run_id)]
        assert logged.index(line) < logged.index(failure.message)
        assert p.sim.requests and not p.run_summaries("dds_jobs")


def test_a_dagster_run_on_mariadb_passes_its_checks(mariadb_url, tmp_path, monkeypatch):
    monkeypatch.setenv("DDS_WAREHOUSE_URL", mariadb_url)
    last = yesterday()
    monkeypatch.setenv("DDS_START_DATE", (last - timedelta(days=1)).isoformat())
    with pipeline_under_test(tmp_path, monkeypatch) as p:
        result = p.sync(last - timedelta(days=1), last)
        assert result.success
        checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
        assert checks == {"stored_count_matches_api": True, "no_duplicate_keys": True,
                          "ended_not_before_created": True, "parquet_matches_warehouse": True,
                          "no_days_at_risk": True, "alerts_delivered": True}
        assert p.day_metadata("dds_jobs", last)["stored_jobs"] == len(expected_jobs(p.sim, last, last)) > 0


def test_a_dagster_run_counts_unknown_fields_and_logs_a_changed_finished_state(tmp_path, monkeypatch):
    last = yesterday()
    with pipeline_under_test(tmp_path, monkeypatch) as p:
        assert p.sync(last, last).success
        jobs = expected_jobs(p.sim, last, last)
        finished = sorted(job_id for job_id, job in jobs.items() if job["status"] == "Completed")[0]
        render = p.sim.store.render

        def late_answers(job):
            record = render(job)
            if record["id"] == finished:  # complete and well-formed: the provider now reports a failure
                record.update(status="Failed", fail_reason="reported late")
            else:
                record.pop("instance_name")
            return record

        monkeypatch.setattr(p.sim.store, "render", late_answers)
        result = p.sync(last, last)
        assert result.success
        metadata = p.day_metadata("dds_jobs", last)
        # Per day, the unknown fields; per run, once, the finished jobs whose state changed.
        assert metadata["unknown_fields"] == len(jobs) - 1 and "finished_changed" not in metadata
        assert p.run_summaries("dds_jobs")[0]["finished_changed"] == 1
        messages = [entry.user_message for entry in p.instance.all_logs(result.run_id)]
        [line] = [m for m in messages if "finished job(s) changed their finished state" in m]
        assert line.startswith(f"1 finished job(s) changed their finished state on a complete record; first: "
                               f"job '{finished}'")
        assert line.endswith("status 'Completed' -> 'Failed', fail_reason NULL -> 'reported late'")
        table = Warehouse(p.settings.warehouse_url).read_days([last]).set_index("id")
        assert table["instance_name"].notna().all() and table.loc[finished, "status"] == "Failed"
