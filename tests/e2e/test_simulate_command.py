"""`dds-tasks simulate` run as a user runs it, in a process of its own: it serves until Ctrl-C, its curl example
works, it refuses a bad setting in one line; with AK/SK and an IAM user it serves the gateway of
``pipeline.simulator.auth``, and the instructions it prints work without echoing a secret."""

import re
import shlex
import subprocess
import sys

import requests

from pipeline.api import DdsTaskCenterClient, TimeWindow
from pipeline.api.credentials import Credentials, build_auth
from tests.support.records import fetch_jobs
from tests.support.credentials import AK, DOMAIN, PASSWORD, SECRETS, SK, USER
from tests.support.dagster_helpers import env_without_secrets, yesterday
from tests.support.paths import BIN
from tests.support.processes import interrupt, spawn


def test_cli_serves_until_interrupted_and_its_curl_example_works():
    process = spawn([sys.executable, "-m", "pipeline.cli.simulate", "--port", "0", "--jobs-per-day", "5",
                     "--token", "cli-token"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [process.stdout.readline() for _ in range(6)]
        assert re.search(r"serving http://127\.0\.0\.1:[1-9]\d*$", lines[0].strip()) and "cli-token" in lines[2]
        example = re.search(r"'(http://\S+)'", lines[4])[1]
        assert "%2B0000" in example and "-H 'X-Auth-Token: cli-token'" in lines[4]
        answer = requests.get(example, headers={"X-Auth-Token": "cli-token"}, timeout=10)
        assert answer.status_code == 200 and "total_count" in answer.json()
    finally:
        out, err = interrupt(process)
    assert process.returncode == 0 and "stopped" in out, err
    busy = subprocess.run([sys.executable, "-m", "pipeline.cli.simulate", "--history-days", "0"],
                          capture_output=True, text=True, timeout=30)
    assert busy.returncode == 2 and busy.stderr.count("\n") == 1 and "history_days" in busy.stderr


def test_the_simulate_command_accepts_aksk_and_an_iam_user_and_its_instructions_work():
    process = spawn(
        [str(BIN / "dds-tasks"), "simulate", "--port", "0", "--jobs-per-day", "30",
         "--token", "", "--ak", AK, "--sk", SK, "--iam-user", USER, "--iam-password", PASSWORD,
         "--iam-domain", DOMAIN, "--iam-token-minutes", "90"],
        env=env_without_secrets(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        while not lines or lines[-1] != "Press Ctrl-C to stop.":
            lines.append(process.stdout.readline().rstrip("\n"))
            assert lines[-1] or process.poll() is None, process.stderr.read()
        exports = [line.split("#")[0] for line in lines if line.strip().startswith("export ")]
        printed = dict(item.split("=", 1) for line in exports for item in shlex.split(line)[1:])
        # The secret key and the password are never echoed: the user fills them in.
        assert (printed["HUAWEICLOUD_SDK_SK"], printed["DDS_IAM_PASSWORD"]) == ("<your --sk>", "<your --iam-password>")
        assert "DDS_AUTH_TOKEN" not in printed and any("tokens live 90 min" in line for line in lines)
        env = {**printed, "HUAWEICLOUD_SDK_SK": SK, "DDS_IAM_PASSWORD": PASSWORD}
        ids = {}
        for names in (("HUAWEICLOUD_SDK_AK", "HUAWEICLOUD_SDK_SK"),
                      ("DDS_IAM_ENDPOINT", "DDS_IAM_USERNAME", "DDS_IAM_DOMAIN", "DDS_IAM_PASSWORD")):
            auth, chosen = build_auth(Credentials.from_env({name: env[name] for name in names}), env["DDS_PROJECT_ID"])
            with DdsTaskCenterClient(env["DDS_ENDPOINT"], env["DDS_PROJECT_ID"], auth) as client:
                jobs = fetch_jobs(client, TimeWindow.for_days(yesterday(), yesterday())).jobs
            ids[chosen] = {job["id"] for job in jobs}
        assert ids["aksk"] == ids["iam"] and len(ids["aksk"]) > 0
    finally:
        out, err = interrupt(process)
    assert process.returncode == 0, err
    output = "\n".join(lines) + out + err
    assert not any(secret in output for secret in SECRETS)
