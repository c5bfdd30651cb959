"""The ``dds_jobs_report`` asset in real Dagster runs: the daily schedule's run syncs and then rebuilds the report
from what it stored; on object storage the report goes next to the Parquet snapshots."""

from datetime import datetime, time, timedelta, timezone
from pathlib import Path

import pyarrow.fs as pafs
from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterEventType,
    DagsterInstance,
    build_schedule_context,
)

from pipeline.defs.report.assets import REPORT_ASSET
from pipeline.defs.resources import WarehouseResource
from pipeline.definitions import build_definitions
from pipeline.records.normalize import normalize_jobs
from pipeline.report.coverage import as_date
from pipeline.config import Deployment
from tests.support.records import synthetic_records
from pipeline.warehouse.store import Warehouse
from tests.support.dagster_helpers import pipeline_under_test, yesterday
from tests.support.report_helpers import ReportPage, decoded_chart
from tests.support.s3 import s3_env

REPORT = AssetKey(REPORT_ASSET)


def latest_report(instance: DagsterInstance) -> dict[str, object]:
    records = instance.fetch_materializations(AssetRecordsFilter(asset_key=REPORT), limit=1).records
    assert records, "dds_jobs_report was never materialized"
    return {"run_id": records[0].run_id,
            **{name: value.value for name, value in records[0].asset_materialization.metadata.items()}}


def stored_jobs(url: str, first_day, last_day) -> int:
    warehouse = Warehouse(url)
    count = warehouse.query("SELECT COUNT(*) AS n FROM dds_jobs WHERE created_date BETWEEN :a AND :b",
                            a=first_day, b=last_day)["n"].iloc[0]
    warehouse.dispose()
    return int(count)


def ledger_first_day(url: str):
    warehouse = Warehouse(url)
    first = warehouse.query("SELECT MIN(created_date) AS first_day FROM dds_sync_ledger")["first_day"].iloc[0]
    warehouse.dispose()
    return as_date(first)


def test_the_daily_schedule_syncs_and_then_rebuilds_the_report_from_what_it_stored(tmp_path, monkeypatch):
    tick = datetime.combine(datetime.now(timezone.utc).date(), time(0, 15), tzinfo=timezone.utc)
    with pipeline_under_test(tmp_path, monkeypatch) as d:
        d.sync(yesterday() - timedelta(days=6), yesterday() - timedelta(days=2))
        before = latest_report(d.instance)
        defs = d.definitions()
        schedule = defs.get_schedule_def("dds_jobs_daily")
        warehouse = WarehouseResource(url=d.settings.warehouse_url)
        with build_schedule_context(instance=d.instance, scheduled_execution_time=tick,
                                    resources={"warehouse": warehouse}) as context:
            requests = list(schedule(context))
        assert requests, "the daily schedule asked for nothing"
        job = defs.resolve_job_def(schedule.job_name)
        # The tick rebuilds the report once: in the run of yesterday, after its sync; a catch-up run does not.
        rebuilt = []
        for request in requests:
            result = job.execute_in_process(instance=d.instance, partition_key=request.partition_key,
                                            tags=request.tags, asset_selection=request.asset_selection)
            assert result.success
            steps = [e.step_key for e in result.all_events if e.event_type == DagsterEventType.STEP_SUCCESS]
            if REPORT_ASSET in steps:
                assert steps.index(REPORT_ASSET) > steps.index("dds_jobs")
                rebuilt.append(request.tags.get("dagster/asset_partition_range_end") or request.partition_key)
        assert len(requests) > 1 and rebuilt == [yesterday().isoformat()]
        after = latest_report(d.instance)

    assert after["run_id"] == result.run_id != before["run_id"]
    # The days synced: after the first sync, its five days up to yesterday (missing), not 30 days with weeks of
    # blank days before them; after the tick, every day it synced or caught up on (the ledger's first day on).
    assert (before["first_day"], before["last_day"]) == ((yesterday() - timedelta(days=6)).isoformat(),
                                                         yesterday().isoformat())
    first_day, last_day = ledger_first_day(d.settings.warehouse_url), yesterday()
    assert (after["first_day"], after["last_day"]) == (first_day.isoformat(), last_day.isoformat())
    assert isinstance(after["instances_without_backup"], int) and isinstance(after["instances_backup_overdue"], int)
    # The run's own sync (yesterday) is in it: the figures are the warehouse's after the sync.
    stored = stored_jobs(d.settings.warehouse_url, first_day, last_day)
    assert after["jobs"] == stored > before["jobs"]
    assert f"| jobs | {stored:,} |" in after["headline"]
    path = Path(after["path"])
    assert path == tmp_path / "data" / "reports" / f"dds-jobs-report-{last_day}.html"
    page = ReportPage(path.read_text(encoding="utf-8"))
    assert dict(page.body("headline"))["jobs"] == f"{stored:,}"
    for source in page.images:
        decoded_chart(source)


def test_on_object_storage_the_report_goes_next_to_the_snapshots(
    tmp_path, monkeypatch, s3_endpoint, bucket
):
    for name, value in {**s3_env(s3_endpoint), "DDS_DATA_DIR": str(tmp_path / "data"), "DDS_PROJECT_ID": "p1",
                        "DDS_PARQUET_ROOT": f"s3://{bucket}/snapshots"}.items():
        monkeypatch.setenv(name, value)
    settings = Deployment.from_env()
    warehouse = Warehouse(settings.warehouse_url)
    records = synthetic_records(500, yesterday() - timedelta(days=9), days=10, seed=4)
    warehouse.upsert(normalize_jobs(records, "p1", seen_at=datetime.now(timezone.utc)).frame)
    warehouse.dispose()
    job = build_definitions(settings).resolve_implicit_global_asset_job_def()
    with DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(instance=instance, asset_selection=[REPORT],
                                        run_config={"ops": {REPORT_ASSET: {"config": {"days": 7}}}})
        assert result.success
        metadata = latest_report(instance)
    key = f"snapshots/reports/dds-jobs-report-{yesterday()}.html"
    assert metadata["path"] == f"s3://{bucket}/{key}"
    first_day = yesterday() - timedelta(days=6)
    assert metadata["first_day"] == first_day.isoformat()
    filesystem = pafs.S3FileSystem(access_key=s3_env(s3_endpoint)["AWS_ACCESS_KEY_ID"],
                                   secret_key=s3_env(s3_endpoint)["AWS_SECRET_ACCESS_KEY"], region="us-east-1",
                                   scheme="http", endpoint_override=s3_endpoint.removeprefix("http://"))
    with filesystem.open_input_stream(f"{bucket}/{key}") as stream:
        page = ReportPage(stream.read().decode("utf-8"))
    stored = stored_jobs(settings.warehouse_url, first_day, yesterday())
    assert stored > 0 and dict(page.body("headline"))["jobs"] == f"{stored:,}" and metadata["jobs"] == stored
    assert not (tmp_path / "data" / "reports").exists()
