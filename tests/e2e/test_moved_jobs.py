"""A job whose created_at moves to another day, through Dagster: the run that syncs only its new day drops the copy
its old day's Parquet snapshot held, so the dataset read whole holds the job once. Real runs, real Parquet files."""

from datetime import datetime, time, timedelta, timezone

import pyarrow.dataset as ds

from tests.support.records import api_record, api_time
from tests.support.dagster_helpers import pipeline_under_test, yesterday
from tests.support.extra_records import ExtraRecords


def test_a_daily_run_of_a_jobs_new_day_drops_its_copy_from_the_old_days_snapshot(tmp_path, monkeypatch):
    day_b = yesterday()
    day_a = day_b - timedelta(days=1)
    late_on_a = datetime.combine(day_a, time(23, 30), tzinfo=timezone.utc)
    record = api_record("moving-job", late_on_a)
    extra = ExtraRecords([(late_on_a, record)])
    with pipeline_under_test(tmp_path, monkeypatch, jobs_per_day=20, extra_routes=[extra.route()]) as p:
        assert p.sync(day_a, day_a).success
        # The API now gives the job's creation in another zone's reading: an hour later, on day B.
        on_b = late_on_a + timedelta(hours=1)
        extra.records = [(on_b, {**record, "created_at": api_time(on_b)})]
        assert p.sync(day_b, day_b).success
        dataset = ds.dataset(f"{p.settings.parquet_root}/dds_jobs", partitioning="hive")
        copies = dataset.to_table(filter=ds.field("id") == "moving-job")
        day_a_rows = dataset.to_table(filter=ds.field("created_date") == day_a.isoformat()).num_rows
    assert [str(day) for day in copies.column("created_date").to_pylist()] == [day_b.isoformat()]
    assert day_a_rows > 0  # the old day's other jobs stay
