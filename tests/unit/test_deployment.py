"""The deployment's targets are always a list: the one project of DDS_PROJECT_ID is a list of one target, which the
wiring syncs, keys and tags as it does a target of DDS_TARGETS_FILE, its partitions staying plain days."""

from datetime import date, datetime, timezone

import pytest
from dagster import (
    AssetExecutionContext,
    DagsterInstance,
    DailyPartitionsDefinition,
    asset,
    build_schedule_context,
    instance_for_test,
    materialize,
)

from pipeline.defs.partitions import TARGET_TAG, REGION_TAG, dds_partitions
from pipeline.defs.resources import DdsTaskCenterResource
from pipeline.defs.steps import run_plan
from pipeline.defs.sync.schedules import build_intraday_schedule
from pipeline.config import ConfigError, Deployment

DAY = date(2026, 11, 2)


def single_project(tmp_path, **env: str) -> Deployment:
    return Deployment.from_env({"DDS_DATA_DIR": str(tmp_path / "data"), **env})


def test_a_single_project_is_a_list_of_one_target_named_by_its_project_id(tmp_path):
    deployment = single_project(tmp_path, DDS_PROJECT_ID="p1", DDS_REGION="ap-southeast-1")
    [target] = deployment.targets
    assert (target.name, target.project_id, target.region) == ("p1", "p1", "ap-southeast-1")
    assert target.endpoint == "https://dds.ap-southeast-1.myhuaweicloud.com"
    assert target.credentials_prefix == "" and not deployment.multi_target
    assert deployment.projects_shown() == {"p1": "p1"}
    # Partitions stay plain days (CONTRACT): one project is not keyed by target.
    assert isinstance(dds_partitions(deployment), DailyPartitionsDefinition)


def test_the_run_plan_of_a_single_project_is_keyed_by_its_target(tmp_path):
    deployment = single_project(tmp_path, DDS_PROJECT_ID="p1", DDS_ENDPOINT="http://127.0.0.1:9")
    plans = []

    @asset(partitions_def=dds_partitions(deployment))
    def probe(context: AssetExecutionContext) -> None:
        plans.append(run_plan(context, deployment.targets))

    result = materialize([probe], partition_key=DAY.isoformat(), instance=DagsterInstance.ephemeral())
    assert result.success
    assert plans == [{deployment.targets[0]: [DAY]}]


def test_the_intraday_run_of_a_single_project_is_tagged_with_its_target_and_a_plain_day(tmp_path):
    deployment = single_project(tmp_path, DDS_PROJECT_ID="p1", DDS_REGION="ap-southeast-1")
    schedule = build_intraday_schedule(15, deployment.targets)
    tick = datetime(2026, 11, 2, 12, 15, tzinfo=timezone.utc)
    with instance_for_test() as instance:
        with build_schedule_context(instance=instance, scheduled_execution_time=tick) as context:
            request = schedule(context)
    assert request.partition_key == DAY.isoformat()
    assert (request.tags[TARGET_TAG], request.tags[REGION_TAG]) == ("p1", "ap-southeast-1")


def test_without_a_project_id_the_definitions_load_and_the_target_refuses_a_client(tmp_path):
    deployment = single_project(tmp_path, DDS_ENDPOINT="http://127.0.0.1:9")
    [target] = deployment.targets
    assert target.project_id == "" and deployment.projects_shown() is None
    with pytest.raises(ConfigError, match="^DDS_PROJECT_ID is not set: "):
        DdsTaskCenterResource(auth_token="a-token").client(target)
