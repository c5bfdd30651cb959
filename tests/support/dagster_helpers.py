"""Helpers for tests that run the real Dagster definitions against the simulator: the pipeline under test, what
the API holds, and runs of the asset checks alone."""

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from dagster import (
    AssetCheckEvaluation,
    AssetKey,
    AssetRecordsFilter,
    AssetSelection,
    DagsterInstance,
    Definitions,
    ExecuteInProcessResult,
    TableMetadataValue,
    define_asset_job,
)

from pipeline.defs.snapshots.checks import parquet_matches_warehouse
from pipeline.defs.sync.checks import ended_not_before_created, no_duplicate_keys
from pipeline.defs.partitions import range_tags
from pipeline.definitions import build_definitions
from pipeline.config import Deployment
from pipeline.simulator import DdsSimulator, SimulatorConfig
from tests.support.days import last_day, late_on_last_day, yesterday  # noqa: F401 - the days the tests sync

TOKEN = "sim-token-for-tests"


def pipeline_env(sim: DdsSimulator, data_dir: Path) -> dict[str, str]:
    """The docs/configuration.md variables that point the pipeline at a simulator and a data directory."""
    return {
        "DDS_ENDPOINT": sim.url,
        "DDS_PROJECT_ID": sim.project_id,
        "DDS_AUTH_TOKEN": TOKEN,
        "DDS_DATA_DIR": str(data_dir),
    }


@dataclass
class PipelineUnderTest:
    sim: DdsSimulator
    settings: Deployment
    instance: DagsterInstance

    def definitions(self) -> Definitions:
        return build_definitions(self.settings)

    def sync(self, first: date, last: date, *, raise_on_error: bool = True) -> ExecuteInProcessResult:
        """Materialize dds_jobs and dds_jobs_parquet for first..last as one run, like a backfill does."""
        job = self.definitions().resolve_implicit_global_asset_job_def()
        return job.execute_in_process(instance=self.instance, tags=range_tags(first, last),
                                      raise_on_error=raise_on_error)

    def day_metadata(self, asset: str, day: date) -> Mapping[str, object]:
        records = self.instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[day.isoformat()]), limit=1
        ).records
        assert records, f"no materialization of {asset} for {day}"
        return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}

    def run_summaries(self, asset: str) -> list[Mapping[str, object]]:
        """The run-wide figures of each run of ``asset`` (its unpartitioned observations), newest first; a table
        (retries by kind) as a dict of its rows."""
        records = self.instance.fetch_observations(AssetRecordsFilter(asset_key=AssetKey(asset)), limit=100).records
        return [{name: _plain(value) for name, value in r.asset_observation.metadata.items()} for r in records
                if r.asset_observation.partition is None]


@contextmanager
def pipeline_under_test(tmp_path: Path, monkeypatch, **sim_options) -> Iterator[PipelineUnderTest]:
    options = {"seed": 11, "jobs_per_day": 60, "history_days": 45, "token": TOKEN,
               "now": datetime.now(timezone.utc).replace(microsecond=0), **sim_options}
    with DdsSimulator(SimulatorConfig(**options), port=0) as sim:
        for name, value in pipeline_env(sim, tmp_path / "data").items():
            monkeypatch.setenv(name, value)
        with DagsterInstance.ephemeral() as instance:
            yield PipelineUnderTest(sim, Deployment.from_env(), instance)


def _plain(value: object) -> object:
    if isinstance(value, TableMetadataValue):
        return {record.data["kind"]: record.data["count"] for record in value.records}
    return getattr(value, "value", value)


def expected_jobs(sim: DdsSimulator, first: date, last: date) -> dict[str, dict]:
    """What the API holds for the days first..last (UTC days of created_at), by id."""
    start = datetime.combine(first, datetime.min.time(), tzinfo=timezone.utc)
    end = datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=timezone.utc)
    jobs = sim.store.visible_jobs(sim.project_id, start, end)
    return {j["id"]: j for j in jobs if _utc_day(j["created_at"]) <= last}


def _utc_day(text: str) -> date:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S%z").astimezone(timezone.utc).date()


def env_without_secrets() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("DDS_", "HUAWEICLOUD_"))}


def run_checks_only(p, day) -> dict[str, bool]:
    """Whether each check that runs on its own passed over ``day``."""
    return {name: evaluation.passed for name, evaluation in check_evaluations(p, day).items()}


def check_evaluations(p, day) -> dict[str, AssetCheckEvaluation]:
    """The evaluations of a run of the checks alone over ``day``, by check name."""
    # The checks that run on their own (the in-asset count check runs only with a sync).
    job = define_asset_job("checks_only", selection=AssetSelection.checks(
        no_duplicate_keys, ended_not_before_created, parquet_matches_warehouse))
    defs = Definitions.merge(p.definitions(), Definitions(jobs=[job]))
    result = defs.resolve_job_def("checks_only").execute_in_process(instance=p.instance, tags=range_tags(day, day))
    return {e.check_name: e for e in result.get_asset_check_evaluations()}
