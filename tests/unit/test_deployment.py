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


def test_the_deployment_holds_what_the_commands_need_and_its_repr_shows_no_secret(tmp_path):
    """The commands read the alert URLs and the S3 options from the deployment, the one reader of the environment;
    its repr names the destinations and variables only."""
    alert_url = "json://hooks.example.com/hook-secret-token"
    s3 = {"DDS_S3_ENDPOINT": "http://127.0.0.1:9000", "AWS_ACCESS_KEY_ID": "AKIDS3",
          "AWS_SECRET_ACCESS_KEY": "s3-secret"}
    local = single_project(tmp_path, DDS_ALERT_URLS=alert_url, **s3)
    assert local.alert_urls == (alert_url,) and local.alert_destinations == ("json://hooks.example.com",)
    options = local.s3_options()
    assert (options.endpoint, options.access_key, options.secret_key) == (s3["DDS_S3_ENDPOINT"], "AKIDS3", "s3-secret")
    # A local Parquet root binds no S3 variable to the resources; an s3:// one binds those that are set.
    assert local.s3_variables == frozenset()
    on_s3 = single_project(tmp_path, DDS_PARQUET_ROOT="s3://bucket/dds", **s3)
    assert on_s3.s3_variables == set(s3)
    for shown in (repr(local), str(local), repr(on_s3)):
        assert "hook-secret-token" not in shown and "s3-secret" not in shown
        assert "AWS_SECRET_ACCESS_KEY" in shown


def test_a_bad_s3_variable_is_refused_when_a_command_needs_the_options(tmp_path):
    # Checked at load with an s3:// Parquet root; with a local one, by the command that writes to object storage.
    local = single_project(tmp_path, DDS_S3_ADDRESSING_STYLE="dns")
    with pytest.raises(ConfigError, match="^DDS_S3_ADDRESSING_STYLE='dns' is neither 'path' nor 'virtual'$"):
        local.s3_options()
    with pytest.raises(ConfigError, match="^DDS_S3_ADDRESSING_STYLE="):
        single_project(tmp_path, DDS_PARQUET_ROOT="s3://bucket/dds", DDS_S3_ADDRESSING_STYLE="dns")


@pytest.mark.parametrize("value", ["many", "0", "33", "1.5"])
def test_a_dds_max_concurrency_that_is_no_whole_number_in_1_to_32_is_refused_in_one_line(tmp_path, value):
    with pytest.raises(ConfigError, match="^DDS_MAX_CONCURRENCY") as refused:
        single_project(tmp_path, DDS_MAX_CONCURRENCY=value)
    assert "\n" not in str(refused.value)
    assert single_project(tmp_path, DDS_MAX_CONCURRENCY=" 32 ").max_concurrency == 32
