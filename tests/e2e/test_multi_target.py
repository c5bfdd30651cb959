"""Several projects in one deployment (DDS_TARGETS_FILE): day x target partitions, run in process and through the
Dagster CLI against one simulator serving three projects, one of which rejects its target's credentials."""

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds
from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterInstance,
    RunRequest,
    SkipReason,
    build_run_status_sensor_context,
    build_schedule_context,
)

from pipeline.defs.partitions import (
    RANGE_END_TAG,
    RANGE_START_TAG,
    REGION_TAG,
    TARGET_TAG,
    partition_key,
)
from pipeline.defs.resources import WarehouseResource
from pipeline.defs.sync.schedules import REPORT_ASSET
from pipeline.definitions import build_definitions
from pipeline.config import Deployment as LoadedDeployment
from pipeline.simulator import DdsSimulator, SimulatorConfig
from pipeline.api.windows import retained_since
from pipeline.warehouse.ledger import ledger_rows
from pipeline.warehouse.store import Warehouse
from tests.support.dagster_helpers import TOKEN, env_without_secrets, yesterday
from tests.support.paths import BIN, ROOT

PROJECTS = {"sg-prod": "proj-sg", "hk-prod": "proj-hk", "eu-prod": "proj-eu"}
REGIONS = {"sg-prod": "ap-southeast-1", "hk-prod": "ap-southeast-1", "eu-prod": "eu-west-101"}
# eu-prod reads its own variables (EU_*); the test gives it a wrong token first.
TARGETS_YAML = """
regions:
  ap-southeast-1: {{max_concurrency: 6}}
targets:
  - {{name: sg-prod, region: ap-southeast-1, project_id: proj-sg, endpoint: "{url}"}}
  - {{name: hk-prod, region: ap-southeast-1, project_id: proj-hk, endpoint: "{url}", credentials: HK_}}
  - {{name: eu-prod, region: eu-west-101, project_id: proj-eu, endpoint: "{url}", credentials: EU_,
      max_concurrency: 2}}
"""


@dataclass
class Deployment:
    sim: DdsSimulator
    env: dict[str, str]
    settings: LoadedDeployment
    instance: DagsterInstance

    def run(self, first: date, last: date, first_target: str, last_target: str | None = None):
        """One run over the rectangle of days first..last x targets first_target..last_target (file order)."""
        job = build_definitions(self.settings).resolve_implicit_global_asset_job_def()
        tags = {RANGE_START_TAG: partition_key(first, first_target),
                RANGE_END_TAG: partition_key(last, last_target or first_target)}
        return job.execute_in_process(instance=self.instance, tags=tags, raise_on_error=False)

    def stored(self) -> pd.DataFrame:
        warehouse = Warehouse(self.settings.warehouse_url)
        try:
            return warehouse.query("SELECT * FROM dds_jobs ORDER BY project_id, id")
        finally:
            warehouse.dispose()

    def expected_ids(self, target: str, first: date, last: date, since: datetime | None = None) -> list[str]:
        """The ids of target's jobs created on first..last (from ``since`` on, when given) that the API holds."""
        start = max(datetime.combine(first, datetime.min.time(), tzinfo=timezone.utc), since or datetime.min.replace(
            tzinfo=timezone.utc))
        end = datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=timezone.utc)
        jobs = self.sim.store.visible_jobs(PROJECTS[target], start, end)
        return sorted(j["id"] for j in jobs if _utc_day(j["created_at"]) <= last)

    def materialized(self, asset: str, day: date, target: str):
        records = self.instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[str(partition_key(day, target))]),
            limit=1,
        ).records
        return {k: v.value for k, v in records[0].asset_materialization.metadata.items()} if records else None


def snapshot_errors(d: "Deployment", target: str) -> list[str]:
    """The ledger's snapshot_error of each of the target's days that has one."""
    warehouse = Warehouse(d.settings.warehouse_url)
    try:
        with warehouse.connect() as connection:
            return [row.snapshot_error for row in ledger_rows(connection, PROJECTS[target]) if row.snapshot_error]
    finally:
        warehouse.dispose()


def parquet_after_failure(d: "Deployment", failed) -> list[RunRequest]:
    """What the sensor dds_jobs_parquet_after_partial_failure asks for after the failed run ``failed``."""
    sensor = build_definitions(d.settings).resolve_sensor_def("dds_jobs_parquet_after_partial_failure")
    context = build_run_status_sensor_context(
        sensor_name=sensor.name, dagster_instance=d.instance, dagster_run=failed.dagster_run,
        dagster_event=failed.get_run_failure_event()).for_run_failure()
    answer = sensor(context)
    return [] if isinstance(answer, SkipReason) else list(answer)


def retry_of_nothing(d: "Deployment", day: date):
    """A failed run whose sync step succeeded: its Parquet step fails (the Parquet root is a file)."""
    root = Path(d.settings.parquet_root)
    moved = root.with_name("parquet-aside")
    root.rename(moved)
    root.write_text("not a folder")
    try:
        result = d.run(day, day, "sg-prod")
    finally:
        root.unlink()
        moved.rename(root)
    assert not result.success and "dds_jobs_parquet" in {e.step_key for e in result.all_events if e.is_step_failure}
    return result


def ledger_days(d: "Deployment", target: str) -> list[tuple[date, bool]]:
    """(day, synced) of each day the sync ledger holds of the target's project."""
    warehouse = Warehouse(d.settings.warehouse_url)
    try:
        with warehouse.connect() as connection:
            return [(row.created_date, row.synced) for row in ledger_rows(connection, PROJECTS[target])]
    finally:
        warehouse.dispose()


def _utc_day(text: str) -> date:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S%z").astimezone(timezone.utc).date()


@contextmanager
def deployment(tmp_path: Path, monkeypatch) -> Iterator[Deployment]:
    config = SimulatorConfig(seed=5, jobs_per_day=30, history_days=40, token=TOKEN,
                             project_ids=tuple(PROJECTS.values()), now=datetime.now(timezone.utc).replace(microsecond=0))
    with DdsSimulator(config, port=0) as sim:
        targets_file = tmp_path / "targets.yaml"
        targets_file.write_text(TARGETS_YAML.format(url=sim.url))
        env = {"DDS_TARGETS_FILE": str(targets_file), "DDS_DATA_DIR": str(tmp_path / "data"),
               "DDS_AUTH_TOKEN": TOKEN, "HK_DDS_AUTH_TOKEN": TOKEN, "EU_DDS_AUTH_TOKEN": "not-the-token"}
        for name in ("DDS_PROJECT_ID", "DDS_ENDPOINT", "DDS_REGION"):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        with DagsterInstance.ephemeral() as instance:
            yield Deployment(sim, env, LoadedDeployment.from_env(), instance)


def test_one_run_over_all_targets_stores_the_healthy_ones_and_fails_only_the_bad_one(tmp_path, monkeypatch):
    last = yesterday()
    first = last - timedelta(days=2)
    with deployment(tmp_path, monkeypatch) as d:
        result = d.run(first, last, "sg-prod", "eu-prod")
        assert not result.success
        failure = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error.message
        assert "1 of 3 targets failed (eu-prod)" in failure
        stored = d.stored()
        for target in ("sg-prod", "hk-prod"):
            rows = stored[stored["project_id"] == PROJECTS[target]]
            assert sorted(rows["id"]) == d.expected_ids(target, first, last) and len(rows) > 0
            assert set(rows["region"]) == {REGIONS[target]}
            # The stored targets' days are materialized (green in the UI), the failed target's are not.
            meta = d.materialized("dds_jobs", last, target)
            assert meta is not None and meta["jobs"] == int((rows["created_date"].astype(str) == str(last)).sum())
        assert PROJECTS["eu-prod"] not in set(stored["project_id"])
        assert d.materialized("dds_jobs", last, "eu-prod") is None
        # The run's Parquet step did not run (Dagster skips it), and no other step wrote or recorded its snapshots:
        # the stored days are due again in the ledger until they are written.
        assert "dds_jobs_parquet" not in {e.step_key for e in result.all_events if e.is_step_success}
        assert not Path(d.settings.parquet_root, "dds_jobs").exists()
        assert all(d.materialized("dds_jobs_parquet", last, target) is None for target in PROJECTS)
        assert "written by the sensor dds_jobs_parquet_after_partial_failure" in failure
        pending = {target: snapshot_errors(d, target) for target in ("sg-prod", "hk-prod")}
        assert all(len(errors) == 3 and all(e.startswith(f"not written: run {result.run_id} failed on target(s) "
                                                         "eu-prod") for e in errors) for errors in pending.values())

        # The sensor runs dds_jobs_parquet once per stored target, over its days of the failed run.
        requests = parquet_after_failure(d, result)
        assert sorted((r.tags[TARGET_TAG], r.tags[RANGE_START_TAG], r.tags[RANGE_END_TAG]) for r in requests) == sorted(
            (t, str(partition_key(first, t)), str(partition_key(last, t))) for t in ("sg-prod", "hk-prod"))
        job = build_definitions(d.settings).resolve_job_def("dds_jobs_parquet_job")
        assert all(job.execute_in_process(instance=d.instance, tags=r.tags).success for r in requests)
        snapshot = ds.dataset(d.settings.parquet_root + "/dds_jobs", partitioning="hive").to_table().to_pandas()
        assert sorted(snapshot["id"]) == sorted(stored["id"])
        for target in ("sg-prod", "hk-prod"):
            assert d.materialized("dds_jobs_parquet", last, target)["rows"] == int(
                (stored["created_date"].astype(str) == str(last)).sum())
            assert snapshot_errors(d, target) == []
        assert d.materialized("dds_jobs_parquet", last, "eu-prod") is None

        # Credentials fixed, the failed target is retried alone: the others' rows are not touched.
        monkeypatch.setenv("EU_DDS_AUTH_TOKEN", TOKEN)
        retry = d.run(first, last, "eu-prod")
        assert retry.success
        after = d.stored()
        healthy = after[after["project_id"] != PROJECTS["eu-prod"]].reset_index(drop=True)
        pd.testing.assert_frame_equal(healthy, stored.reset_index(drop=True))
        eu = after[after["project_id"] == PROJECTS["eu-prod"]]
        assert sorted(eu["id"]) == d.expected_ids("eu-prod", first, last)
        assert set(eu["region"]) == {"eu-west-101"}
        assert d.materialized("dds_jobs_parquet", last, "eu-prod")["rows"] == int(
            (after["created_date"].astype(str) == str(last)).sum()
        )
        snapshot = ds.dataset(d.settings.parquet_root + "/dds_jobs", partitioning="hive").to_table().to_pandas()
        assert sorted(snapshot["project_id"].unique()) == sorted(PROJECTS.values())
        regions = snapshot.groupby("project_id")["region"].unique().map(list).to_dict()
        assert regions == {PROJECTS[target]: [REGIONS[target]] for target in PROJECTS}
        # Last, as it syncs sg-prod again: a run failing after its sync step (or the sensor's own runs) asks the sensor for nothing.
        assert parquet_after_failure(d, retry_of_nothing(d, first)) == []


def test_the_daily_schedule_asks_for_yesterday_of_every_target_in_one_run_and_catches_up_per_target(
    tmp_path, monkeypatch
):
    with deployment(tmp_path, monkeypatch) as d:
        defs = build_definitions(d.settings)
        schedule = defs.get_schedule_def("dds_jobs_daily")
        warehouse = WarehouseResource(url=d.settings.warehouse_url)
        tick = datetime.combine(datetime.now(timezone.utc).date(), time(0, 15), tzinfo=timezone.utc)

        def evaluate() -> list:
            with build_schedule_context(instance=d.instance, resources={"warehouse": warehouse},
                                        scheduled_execution_time=tick) as context:
                return list(schedule(context))

        def asked(request) -> tuple[str, str]:
            return (request.tags.get(RANGE_START_TAG) or request.partition_key,
                    request.tags.get(RANGE_END_TAG) or request.partition_key)

        def days(target: str, *runs: tuple[date, date]) -> list[tuple[str, str]]:
            return [(str(partition_key(a, target)), str(partition_key(b, target))) for a, b in runs]

        def per_target(requests) -> dict[str, list[tuple[str, str]]]:
            found = {target: [] for target in PROJECTS}
            for request in requests:
                found[request.tags[TARGET_TAG]].append(asked(request))
            return found

        requests = evaluate()
        *catch_up, every_target = requests
        # Nothing is synced yet: each target asks, in a run of its own, for every earlier day the API still answers
        # for; yesterday is one run of every target, the only one that rebuilds the report.
        oldest, last = retained_since(tick).date(), yesterday()
        assert per_target(catch_up) == {t: days(t, (oldest, last - timedelta(days=1))) for t in PROJECTS}
        assert [r.tags[REGION_TAG] for r in catch_up] == [REGIONS[t] for t in PROJECTS]
        assert asked(every_target) == (str(partition_key(last, "sg-prod")), str(partition_key(last, "eu-prod")))
        assert [REPORT_ASSET in r.asset_selection for r in requests] == [False, False, False, True]
        assert TARGET_TAG not in every_target.tags and len({r.run_key for r in requests}) == 4
        # Each request runs on its own: the bad target's failure leaves the other targets' runs green.
        job = defs.resolve_implicit_global_asset_job_def()
        # The runs fetch the oldest day from the retention edge at the moment each starts (the wall clock, not the
        # tick): the jobs of the few minutes between these two edges may or may not be stored.
        edge_before = retained_since(datetime.now(timezone.utc))
        outcomes = [job.execute_in_process(instance=d.instance, partition_key=r.partition_key, tags=r.tags,
                                           asset_selection=r.asset_selection, raise_on_error=False).success
                    for r in requests]
        edge_after = retained_since(datetime.now(timezone.utc))
        assert outcomes == [True, True, False, False]
        stored = d.stored()
        for target in ("sg-prod", "hk-prod"):
            rows = set(stored.loc[stored["project_id"] == PROJECTS[target], "id"])
            assert set(d.expected_ids(target, oldest, last, since=edge_after)) <= rows
            assert rows <= set(d.expected_ids(target, oldest, last, since=edge_before))

        # The next tick: the synced targets ask for the oldest day(s) (held only in part by the API when the runs
        # fetched them: no sync can complete them); the failed target asks for its whole month again; yesterday
        # again for every target.
        *catch_up, every_target = evaluate()
        asked_now = per_target(catch_up)
        for target in ("sg-prod", "hk-prod"):
            [(first_asked, last_asked)] = asked_now[target]
            assert first_asked == str(partition_key(oldest, target))
            # The days asked for are those the ledger holds no complete sync of: one or two, at the API's edge.
            unsynced = [day_ for day_, synced in ledger_days(d, target) if not synced and day_ < last]
            assert last_asked == str(partition_key(max(unsynced), target)) and len(unsynced) <= 2
        assert asked_now["eu-prod"] == days("eu-prod", (oldest, last - timedelta(days=1)))
        assert asked(every_target) == (str(partition_key(last, "sg-prod")), str(partition_key(last, "eu-prod")))


def test_the_intraday_tick_is_one_run_over_today_of_every_target(tmp_path, monkeypatch):
    (tmp_path / "dagster_home").mkdir()
    # A schedule that looks up runs needs an instance with a home (an ephemeral one has none).
    with deployment(tmp_path, monkeypatch) as d, DagsterInstance.local_temp(str(tmp_path / "dagster_home")) as home:
        d.instance = home
        d.sim.store.add_jobs(2, project_id=PROJECTS["hk-prod"])
        defs = build_definitions(d.settings)
        today = d.sim.store.now
        with build_schedule_context(instance=d.instance, scheduled_execution_time=today,
                                    repository_def=defs.get_repository_def()) as context:
            [request] = defs.get_schedule_def("dds_jobs_intraday").evaluate_tick(context).run_requests
        first, last = (str(partition_key(today.date(), name)) for name in ("sg-prod", "eu-prod"))
        assert (request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]) == (first, last)
        assert REGION_TAG not in request.tags and REPORT_ASSET not in request.asset_selection
        job = defs.resolve_implicit_global_asset_job_def()
        result = job.execute_in_process(instance=d.instance, tags=request.tags, asset_selection=request.asset_selection,
                                        raise_on_error=False)
        # One run synced today so far of each target; the bad one failed alone.
        assert "1 of 3 targets failed (eu-prod)" in next(
            e for e in result.all_events if e.is_step_failure).step_failure_data.error.message
        stored = d.stored()
        for target in ("sg-prod", "hk-prod"):
            rows = stored[(stored["project_id"] == PROJECTS[target])]
            assert sorted(rows["id"]) == d.expected_ids(target, today.date(), today.date())
            assert d.materialized("dds_jobs", today.date(), target) is not None
        assert PROJECTS["eu-prod"] not in set(stored["project_id"])


def test_the_contract_command_syncs_one_target_through_the_dagster_cli(tmp_path, monkeypatch):
    last = yesterday()
    first = last - timedelta(days=1)
    with deployment(tmp_path, monkeypatch) as d:
        env = {**env_without_secrets(), **d.env, "DAGSTER_HOME": str(tmp_path / "dagster_home")}
        Path(env["DAGSTER_HOME"]).mkdir()
        command = [str(BIN / "dagster"), "asset", "materialize", "-m", "pipeline.definitions",
                   "--select", "dds_jobs,dds_jobs_parquet",
                   "--partition-range", f"{first.isoformat()}|hk-prod...{last.isoformat()}|hk-prod"]
        run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
        assert run.returncode == 0, run.stderr[-2000:]
        stored = d.stored()
        assert set(stored["project_id"]) == {PROJECTS["hk-prod"]}
        assert sorted(stored["id"]) == d.expected_ids("hk-prod", first, last)
        # The secret of the target's prefixed variable never reaches Dagster's storage or output.
        assert TOKEN not in run.stdout + run.stderr
        for path in Path(env["DAGSTER_HOME"]).rglob("*"):
            if path.is_file():
                assert TOKEN.encode() not in path.read_bytes(), path
