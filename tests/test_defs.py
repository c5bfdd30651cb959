"""The definitions load the way dg loads them, and hold every asset, check, schedule and job the public interface
names (issue 23 item 11): `dg check defs` and `dg list defs --json` from the checkout, and ``defs()`` in process."""

import json
import os
import subprocess

import pytest

from tests.support.paths import BIN, ROOT

ASSETS = {"dds_jobs", "dds_jobs_parquet", "dds_jobs_report", "dds_jobs_alerts"}
CHECKS = {("dds_jobs", "no_duplicate_keys"), ("dds_jobs", "ended_not_before_created"),
          ("dds_jobs", "stored_count_matches_api"), ("dds_jobs", "no_days_at_risk"),
          ("dds_jobs_parquet", "parquet_matches_warehouse"), ("dds_jobs_alerts", "alerts_delivered")}
SCHEDULES = {"dds_jobs_daily", "dds_jobs_intraday"}
JOBS = {"dds_parquet_verify"}
# With DDS_ALERT_URLS set, the sensor that alerts after a failed sync.
ALERTS_SENSOR = "dds_jobs_alerts_after_failure"


def dg_env(tmp_path, **settings: str) -> dict[str, str]:
    """This environment without the user's pipeline settings, on a data folder and Dagster home of the test's."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DDS_", "HUAWEICLOUD_", "DAGSTER_"))}
    (tmp_path / "home").mkdir(exist_ok=True)
    return {**clean, "PYTHONPATH": str(ROOT), "DAGSTER_HOME": str(tmp_path / "home"),
            "DDS_DATA_DIR": str(tmp_path / "data"), **settings}


def dg(tmp_path, *args: str, **settings: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "dg"), *args], cwd=ROOT, env=dg_env(tmp_path, **settings),
                          capture_output=True, text=True, timeout=300)


def test_dg_check_defs_passes_from_the_checkout(tmp_path):
    done = dg(tmp_path, "check", "defs")
    assert done.returncode == 0, done.stderr[-3000:]


def test_dg_lists_every_asset_check_schedule_sensor_and_job_of_the_interface(tmp_path):
    done = dg(tmp_path, "list", "defs", "--json", DDS_ALERT_URLS="json://127.0.0.1:9/alerts")
    assert done.returncode == 0, done.stderr[-3000:]
    listed = json.loads(done.stdout)
    assert ASSETS <= {asset["asset_key"] for asset in listed["assets"]}
    assert CHECKS <= {(check["asset_key"], check["name"]) for check in listed["asset_checks"]}
    assert SCHEDULES <= {schedule["name"] for schedule in listed["schedules"]}
    assert ALERTS_SENSOR in {sensor["name"] for sensor in listed["sensors"]}
    assert JOBS <= {job["name"] for job in listed["jobs"]}


@pytest.fixture
def loaded(tmp_path, monkeypatch):
    """``pipeline.definitions.defs()`` in process, as dg and Dagster's code server call it."""
    for name in [name for name in os.environ if name.startswith(("DDS_", "HUAWEICLOUD_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("DDS_DATA_DIR", str(tmp_path / "data"))
    from pipeline.definitions import defs

    return defs()


def test_defs_loaded_in_process_hold_the_interface(loaded):
    assert ASSETS <= {key.to_user_string() for key in loaded.resolve_all_asset_keys()}
    graph = loaded.get_repository_def().asset_graph
    assert CHECKS <= {(key.asset_key.to_user_string(), key.name) for key in graph.asset_check_keys}
    assert SCHEDULES <= {schedule.name for schedule in loaded.schedules}
    assert JOBS <= {job.name for job in loaded.jobs}
    # Alerts off (DDS_ALERT_URLS unset): no sensor to run them.
    assert not list(loaded.sensors or [])


def test_no_days_at_risk_says_its_error_severity_where_the_ui_shows_the_check(loaded):
    graph = loaded.get_repository_def().asset_graph
    specs = {key.name: graph.get_check_spec(key) for key in graph.asset_check_keys}
    at_risk = specs["no_days_at_risk"]
    assert not at_risk.blocking and at_risk.metadata["severity"] == "ERROR"
    assert "ERROR severity" in at_risk.description


def test_every_value_a_run_needs_is_bound_by_variable_name_at_wiring(tmp_path, monkeypatch):
    """Credentials (a target's prefixed ones too) and the S3 options are EnvVar fields of the resources: the UI
    shows which variable each comes from, and the resources read no environment themselves."""
    from dagster import EnvVar

    from pipeline.definitions import defs

    for name in [name for name in os.environ if name.startswith(("DDS_", "HUAWEICLOUD_", "AWS_"))]:
        monkeypatch.delenv(name)
    targets = tmp_path / "targets.yaml"
    targets.write_text("targets:\n  - {name: sg-prod, region: ap-southeast-1, project_id: p1, credentials: SG_}\n")
    for name, value in {"DDS_TARGETS_FILE": str(targets), "DDS_DATA_DIR": str(tmp_path / "data"),
                        "DDS_PARQUET_ROOT": "s3://bucket/dds", "DDS_S3_ENDPOINT": "http://127.0.0.1:9",
                        "AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "s3-secret",
                        "SG_DDS_AUTH_TOKEN": "sg-token"}.items():
        monkeypatch.setenv(name, value)
    resources = defs().resources
    assert resources["dds_api"].target_credentials["sg-prod"].auth_token == EnvVar("SG_DDS_AUTH_TOKEN")
    bound = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "DDS_S3_ENDPOINT"}
    for name in ("parquet", "reports"):
        assert resources[name].s3_variables == {variable: EnvVar(variable) for variable in bound}


def test_settings_set_as_given_are_bound_by_name_and_defaults_by_value(tmp_path, monkeypatch):
    from dagster import EnvVar

    from pipeline.definitions import defs

    for name in [name for name in os.environ if name.startswith(("DDS_", "HUAWEICLOUD_"))]:
        monkeypatch.delenv(name)
    for name, value in {"DDS_DATA_DIR": str(tmp_path / "data"), "DDS_PROJECT_ID": "p1",
                        "DDS_ENDPOINT": "http://127.0.0.1:9", "DDS_MAX_CONCURRENCY": "4"}.items():
        monkeypatch.setenv(name, value)
    resources = defs().resources
    api = resources["dds_api"]
    assert (api.project_id, api.endpoint) == (EnvVar("DDS_PROJECT_ID"), EnvVar("DDS_ENDPOINT"))
    assert api.process_config_and_initialize().max_concurrency == 4
    # Not set: the default, as a value (the data folder's Parquet root is derived from DDS_DATA_DIR).
    assert resources["parquet"].root == str(tmp_path / "data" / "parquet")


def test_the_ui_shows_each_credential_by_its_variable_and_no_secret(tmp_path, monkeypatch):
    """The resource page of Dagster's UI (the repository snapshot its GraphQL reads): the unprefixed credentials
    are fields of their own, each an env var by name; a target's prefixed ones name their variables too."""
    from dagster import serialize_value
    from dagster._core.remote_representation.external_data import RepositorySnap, ResourceConfigEnvVarSnap

    from pipeline.definitions import defs

    for name in [name for name in os.environ if name.startswith(("DDS_", "HUAWEICLOUD_", "SG_"))]:
        monkeypatch.delenv(name)
    targets = tmp_path / "targets.yaml"
    targets.write_text("targets:\n  - {name: sg-prod, region: ap-southeast-1, project_id: p1, credentials: SG_}\n"
                       "  - {name: eu, region: eu-west-101, project_id: p2}\n")
    secrets = {"HUAWEICLOUD_SDK_AK": "AKUNPREFIXED01", "HUAWEICLOUD_SDK_SK": "sk-unprefixed-secret",
               "SG_DDS_IAM_USERNAME": "sg-user", "SG_DDS_IAM_PASSWORD": "sg-iam-secret", "SG_DDS_IAM_DOMAIN": "acct"}
    for name, value in {"DDS_TARGETS_FILE": str(targets), "DDS_DATA_DIR": str(tmp_path / "data"), **secrets}.items():
        monkeypatch.setenv(name, value)
    [api] = [resource for resource in RepositorySnap.from_def(defs().get_repository_def()).resources
             if resource.name == "dds_api"]
    shown = api.configured_values
    assert shown["access_key"] == ResourceConfigEnvVarSnap(name="HUAWEICLOUD_SDK_AK")
    assert shown["secret_key"] == ResourceConfigEnvVarSnap(name="HUAWEICLOUD_SDK_SK")
    assert json.loads(shown["auth_token"]) is None
    sg_prod = json.loads(shown["target_credentials"])["sg-prod"]
    assert {field: sg_prod[field] for field in ("iam_username", "iam_password", "iam_domain", "auth_token")} == {
        "iam_username": {"env": "SG_DDS_IAM_USERNAME"}, "iam_password": {"env": "SG_DDS_IAM_PASSWORD"},
        "iam_domain": {"env": "SG_DDS_IAM_DOMAIN"}, "auth_token": None}
    stored = serialize_value(api)
    assert not [value for value in secrets.values() if value in stored]
