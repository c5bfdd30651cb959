"""The targets file (DDS_TARGETS_FILE): what it accepts, the one-line errors for what it refuses, and what a
deployment with targets looks like to Dagster."""

from pathlib import Path

import pytest
from dagster import EnvVar, MultiPartitionsDefinition

from pipeline.definitions import build_definitions, dds_api_resource
from pipeline.config import ConfigError, Deployment
from pipeline.targets import Target, load_targets

GOOD = """
regions:
  ap-southeast-1: {max_concurrency: 6}
targets:
  - name: sg-prod
    region: ap-southeast-1
    project_id: proj-sg
  - name: sg-test
    region: ap-southeast-1
    project_id: proj-sg-test
    max_concurrency: 2
    credentials: SG_TEST_
  - name: eu
    region: eu-west-101
    project_id: proj-eu
    endpoint: http://127.0.0.1:9/
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "targets.yaml"
    path.write_text(text)
    return path


def test_a_good_file_gives_each_target_its_endpoint_limit_and_credentials(tmp_path):
    sg, sg_test, eu = load_targets(write(tmp_path, GOOD))
    assert sg == Target("sg-prod", "ap-southeast-1", "proj-sg", "https://dds.ap-southeast-1.myhuaweicloud.com", 6, "")
    assert (sg_test.max_concurrency, sg_test.credentials_prefix) == (2, "SG_TEST_")
    # The one region outside myhuaweicloud.com is overridden by the endpoint given; no region limit: the default.
    assert (eu.endpoint, eu.max_concurrency) == ("http://127.0.0.1:9", None)
    # The method is told from the names of the variables set under the target's prefix, the unprefixed ignored.
    set_variables = {"SG_TEST_HUAWEICLOUD_SDK_AK", "SG_TEST_HUAWEICLOUD_SDK_SK", "DDS_AUTH_TOKEN"}
    assert (sg_test.credential_method(set_variables), sg.credential_method(set_variables)) == ("aksk", "token")
    with pytest.raises(ConfigError, match="^HUAWEICLOUD_SDK_AK set but HUAWEICLOUD_SDK_SK missing"):
        sg_test.credential_method({"SG_TEST_HUAWEICLOUD_SDK_AK", "HUAWEICLOUD_SDK_SK"})


BAD = [
    ("targets: [", "not valid YAML at line"),
    ("- just a list", "expected a mapping with a non-empty list 'targets'"),
    ("targets: []", "expected a mapping with a non-empty list 'targets'"),
    ("targets: [{name: a, region: ap-southeast-1, project_id: p}]\nregion: x", "unknown top-level key(s) region"),
    ("targets: [{name: a, region: ap-southeast-1, project_id: p, token: x}]", "target 'a': unknown field(s) token"),
    ("targets: [{name: a, region: ap-southeast-1}]", "target 'a': project_id is missing"),
    ("targets: [{region: ap-southeast-1, project_id: p}]", "target '#1': name is missing"),
    ("targets: [{name: 'SG prod', region: ap-southeast-1, project_id: p}]", "target 'SG prod': name must be"),
    ("targets: [{name: 'a|b', region: ap-southeast-1, project_id: p}]", "name must be 1-40 lowercase"),
    ("targets: [{name: a, region: 'ap south', project_id: p}]", "region 'ap south' is not a region name"),
    ("targets: [{name: a, region: ap-southeast-1, project_id: 'p/1'}]", "project_id must be letters"),
    ("targets: [{name: a, region: ap-southeast-1, project_id: p, credentials: 'sg-'}]", "credentials must be an"),
    ("targets: [{name: a, region: ap-southeast-1, project_id: p, endpoint: 'ftp://x'}]", "target 'a': endpoint="),
    ("targets: [{name: a, region: ap-southeast-1, project_id: p, max_concurrency: 0}]", "max_concurrency must be"),
    ("targets: [{name: a, region: ap-southeast-1, project_id: p, max_concurrency: 99}]", "in 1..32"),
    ("targets: [{name: a, region: ap-southeast-1, project_id: p, max_concurrency: 'x'}]", "max_concurrency must"),
    ("regions: {ap-southeast-1: {limit: 3}}\ntargets: [{name: a, region: ap-southeast-1, project_id: p}]",
     "region 'ap-southeast-1' accepts only max_concurrency"),
    ("regions: {ap-southeast-1: {max_rate: 0}}\ntargets: [{name: a, region: ap-southeast-1, project_id: p}]",
     "region 'ap-southeast-1': max_rate=0 is not a number of requests a second above 0"),
    ("targets: [{name: a, region: ap-southeast-1, project_id: p}, {name: a, region: eu-west-0, project_id: q}]",
     "target name 'a' appears twice"),
    ("targets: [{name: a, region: ap-southeast-1, project_id: p}, {name: b, region: ap-southeast-1, project_id: p}]",
     "two targets read the same project at the same endpoint"),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_a_malformed_file_is_refused_in_one_line_naming_the_file_and_the_target(tmp_path, text, message):
    with pytest.raises(ConfigError) as caught:
        load_targets(write(tmp_path, text))
    assert message in str(caught.value)
    assert str(tmp_path / "targets.yaml") in str(caught.value) and "\n" not in str(caught.value)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"DDS_TARGETS_FILE='.*nowhere.yaml': no such file"):
        load_targets(tmp_path / "nowhere.yaml")


def test_settings_read_the_targets_and_refuse_a_project_id_beside_them(tmp_path):
    env = {"DDS_DATA_DIR": str(tmp_path / "data"), "DDS_TARGETS_FILE": str(write(tmp_path, GOOD))}
    assert [t.name for t in Deployment.from_env(env).targets] == ["sg-prod", "sg-test", "eu"]
    assert Deployment.from_env(env).multi_target
    with pytest.raises(ConfigError, match="DDS_PROJECT_ID and DDS_TARGETS_FILE are both set"):
        Deployment.from_env({**env, "DDS_PROJECT_ID": "p"})


def test_with_targets_the_assets_are_partitioned_by_day_and_target(tmp_path):
    settings = Deployment.from_env({"DDS_DATA_DIR": str(tmp_path / "data"), "DDS_TARGETS_FILE": str(write(tmp_path, GOOD))})
    defs = build_definitions(settings)
    for name in ("dds_jobs", "dds_jobs_parquet"):
        partitions = defs.resolve_assets_def(name).partitions_def
        assert isinstance(partitions, MultiPartitionsDefinition)
        assert [d.name for d in partitions.partitions_defs] == ["date", "target"]
        assert partitions.get_partition_keys()[:3] == ["2026-10-01|sg-prod", "2026-10-01|sg-test", "2026-10-01|eu"]


def test_a_target_with_a_partial_set_of_prefixed_credentials_is_named_without_its_secret(tmp_path, monkeypatch):
    (_, sg_test, _) = load_targets(write(tmp_path, GOOD))
    monkeypatch.setenv("SG_TEST_HUAWEICLOUD_SDK_SK", "very-secret-sk")
    monkeypatch.setenv("DDS_TARGETS_FILE", str(write(tmp_path, GOOD)))
    monkeypatch.setenv("DDS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DDS_PROJECT_ID", raising=False)
    # The wiring binds the target's prefixed variables that are set, as EnvVar; the resource reads no environment.
    resource = dds_api_resource(Deployment.from_env())
    assert resource.target_credentials["sg-test"].secret_key == EnvVar("SG_TEST_HUAWEICLOUD_SDK_SK")
    with pytest.raises(ConfigError) as caught:
        resource.process_config_and_initialize().client(sg_test)
    message = str(caught.value)
    assert message.startswith("target sg-test (variables SG_TEST_*): ")
    assert "HUAWEICLOUD_SDK_AK missing" in message and "very-secret-sk" not in message


def test_dds_tasks_targets_lists_each_target_and_its_credentials_without_secrets(tmp_path, monkeypatch, capsys):
    from pipeline.cli.main import main

    for name in ("DDS_PROJECT_ID", "DDS_AUTH_TOKEN", "HUAWEICLOUD_SDK_AK", "HUAWEICLOUD_SDK_SK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DDS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DDS_TARGETS_FILE", str(write(tmp_path, GOOD)))
    monkeypatch.setenv("DDS_AUTH_TOKEN", "tok-unprefixed-secret")
    monkeypatch.setenv("SG_TEST_HUAWEICLOUD_SDK_AK", "AKIDSGTEST0001")
    monkeypatch.setenv("SG_TEST_HUAWEICLOUD_SDK_SK", "sk-very-secret")
    assert main(["targets"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert set(lines) == {"sg-prod", "sg-test", "eu"}
    assert "unprefixed (token)" in lines["sg-prod"] and "SG_TEST_* (aksk)" in lines["sg-test"]
    assert "proj-eu" in lines["eu"] and "http://127.0.0.1:9" in lines["eu"]
    assert not any(secret in out for secret in ("tok-unprefixed-secret", "sk-very-secret", "AKIDSGTEST0001"))

    monkeypatch.delenv("SG_TEST_HUAWEICLOUD_SDK_SK")
    assert main(["targets"]) == 1
    captured = capsys.readouterr()
    assert "SG_TEST_* (unusable: HUAWEICLOUD_SDK_AK set but HUAWEICLOUD_SDK_SK missing" in captured.out
    assert captured.err.strip() == "dds-tasks: 1 target(s) without usable credentials: sg-test"
