"""Bad input and the security points: every malformed setting is refused in one line naming it, before any
request or write; every record the API should never send is stored or counted, never a crash or a silent drop;
TLS is verified unless a CA bundle says whom to trust; the simulator answers on loopback only.

docs/reliability.md tables each input tried here and what the user gets.
"""

import json
import shutil
import socket
import ssl
import subprocess
import threading
from datetime import date, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest

from pipeline.api.errors import DdsApiError
from pipeline.api.windows import TimeWindow
from pipeline.defs.resources import DdsTaskCenterResource
from pipeline.definitions import dds_api_resource
from pipeline.config import ConfigError, Deployment
from pipeline.simulator import DdsSimulator, SimulatorConfig, json_response
from pipeline.simulator.server import JOBS_PATH, list_jobs
from tests.support.records import fetch_jobs
from tests.support.dagster_helpers import (
    last_day,
    env_without_secrets,
    expected_jobs,
    pipeline_env,
    pipeline_under_test,
)
from tests.support.paths import BIN
from tests.support.reliability_helpers import (
    failure_messages,
    snapshot_jobs,
    stored_jobs,
    sync_with_api,
)

def first_day() -> date:
    return last_day() - timedelta(days=1)


def assert_one_line_naming(message: str, setting: str) -> None:
    assert "\n" not in message.strip() and setting in message, message


def files_under(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


# --- Configuration -------------------------------------------------------------------------------------------

A_FILE = "{a_file}"  # replaced by the path of a regular file: a folder cannot be made under it
# Replaced when the test runs, not at import: a suite collected before midnight runs some tests after it.
TOMORROW = "{tomorrow}"


@pytest.mark.parametrize(
    "variable, value",
    [
        ("DDS_ENDPOINT", "dds.ap-southeast-1.myhuaweicloud.com"),
        ("DDS_ENDPOINT", "ftp://dds.example.com"),
        ("DDS_ENDPOINT", "https://dds.example.com:https"),
        ("DDS_ENDPOINT", "https://dds example.com"),
        ("DDS_WAREHOUSE_URL", "mysql+mysqldb://etl:s3cret-pw@db.example.com/dds"),
        ("DDS_WAREHOUSE_URL", "nosuchdb://db.example.com/dds"),
        ("DDS_WAREHOUSE_URL", "warehouse.db"),
        ("DDS_DATA_DIR", f"{A_FILE}/data"),
        ("DDS_PARQUET_ROOT", f"{A_FILE}/parquet"),
        ("DDS_START_DATE", "2026-13-01"),
        ("DDS_START_DATE", TOMORROW),
        ("DDS_MAX_CONCURRENCY", "many"),
        ("DDS_MAX_CONCURRENCY", "0"),
        ("DDS_MAX_RATE", "fast"),
        ("DDS_MAX_RATE", "0"),
        ("DDS_MAX_RATE", "-5"),
        ("DDS_MAX_RATE", "inf"),
        ("DDS_RETRY_BUDGET_SECONDS", "5m"),
        ("DDS_RETRY_BUDGET_SECONDS", "0"),
        ("DDS_RETRY_BUDGET_SECONDS", "86400"),
        ("DDS_INTRADAY_MINUTES", "15m"),
        ("DDS_INTRADAY_MINUTES", "1.5"),
        ("DDS_INTRADAY_MINUTES", "-1"),
        ("DDS_INTRADAY_MINUTES", "1441"),
    ],
)
def test_a_malformed_setting_is_refused_in_one_line_naming_it_before_any_write(tmp_path, variable, value):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    tomorrow = (datetime.now(timezone.utc).date() + timedelta(days=1)).isoformat()
    env = {"DDS_DATA_DIR": str(tmp_path / "data"),
           variable: value.replace(A_FILE, str(a_file)).replace(TOMORROW, tomorrow)}
    with pytest.raises(ConfigError) as caught:
        Deployment.from_env(env)
    assert_one_line_naming(str(caught.value), variable)
    assert "s3cret-pw" not in str(caught.value)
    assert files_under(tmp_path) == ["a-file"]


@pytest.mark.parametrize(
    "api_fields, days_ago, setting",
    [
        ({"project_id": ""}, (1, 0), "DDS_PROJECT_ID"),
        ({"endpoint": "dds.ap-southeast-1.myhuaweicloud.com"}, (1, 0), "DDS_ENDPOINT"),
        ({"ca_bundle": "/nonexistent/ca.pem"}, (1, 0), "DDS_CA_BUNDLE"),
        ({"retry_max_attempts": 0}, (1, 0), "retry_max_attempts=0"),
        ({"max_rate": -1}, (1, 0), "DDS_MAX_RATE=-1"),
        ({}, (0, 1), "partition range {0}...{1}"),
    ],
    ids=["no-project-id", "endpoint-not-a-url", "missing-ca-bundle", "no-attempts", "negative-max-rate",
         "start-after-end"],
)
def test_a_run_with_a_bad_setting_fails_in_one_line_before_any_request_or_write(
    tmp_path, monkeypatch, api_fields, days_ago, setting
):
    # Days counted back from the last day, made days when the test runs (never at collection).
    days = [last_day() - timedelta(days=n) for n in days_ago]
    with pipeline_under_test(tmp_path, monkeypatch, jobs_per_day=10) as p:
        result = sync_with_api(p, *days, **api_fields)
        assert not result.success
        [message] = failure_messages(result)
        assert_one_line_naming(message, setting.format(*(day.isoformat() for day in days)))
        assert p.sim.requests == []
        assert not p.settings.data_dir.exists()


@pytest.mark.slow
@pytest.mark.parametrize("selection", [["--partition", "2026-13-01"], ["--partition-range", "yesterday...2026-11-20"]])
def test_a_partition_key_that_is_not_a_date_is_refused_by_name(tmp_path, selection):
    with DdsSimulator(SimulatorConfig(jobs_per_day=10, token="t"), port=0) as sim:
        (tmp_path / "home").mkdir()
        env = {**env_without_secrets(), **pipeline_env(sim, tmp_path / "data"), "DAGSTER_HOME": str(tmp_path / "home")}
        done = subprocess.run(
            [str(BIN / "dagster"), "asset", "materialize", "-m", "pipeline.definitions",
             "--select", "dds_jobs,dds_jobs_parquet", *selection],
            env=env, capture_output=True, text=True, timeout=240,
        )
        assert sim.requests == []
    assert done.returncode != 0
    key = selection[1].split("...")[0]
    # Dagster's own refusal, after its traceback: the last line names the key.
    assert f"partition key `{key}`" in done.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "data").exists()


# --- Records the API should never send ---------------------------------------------------------------------

def record(job_id: str, **fields: object) -> dict:
    """A job as the API sends it, created on the last day, with ``fields`` changed (None: left out)."""
    job = {"id": job_id, "name": "RestartInstance", "instance_id": "f0e1d2c3in02", "instance_name": "dds-orders",
           "status": "Completed", "progress": "", "fail_reason": "",
           "created_at": f"{last_day().isoformat()}T18:00:00+0800",
           "ended_at": f"{last_day().isoformat()}T18:05:00+0800"}
    job.update(fields)
    return {key: value for key, value in job.items() if value is not None}


LONG_REASON = "Restoration failed: " + "é" * 50_000  # 100 kB of UTF-8


def kept_records() -> dict[str, dict]:
    """The records stored although something in them is wrong, by id (made when the test runs: they are of the
    last day)."""
    return {
        "bad-progress-abc": record("bad-progress-abc", status="Running", progress="abc", ended_at=""),
        "bad-progress-150": record("bad-progress-150", status="Running", progress="150%", ended_at=""),
        "bad-no-offset": record("bad-no-offset", created_at=f"{last_day().isoformat()}T10:00:00", ended_at=None),
        "bad-unknown-status": record("bad-unknown-status", status="Suspended"),
        "bad-long-reason": record("bad-long-reason", status="Failed", fail_reason=LONG_REASON),
        "bad-non-ascii": record("bad-non-ascii", name="重启实例", instance_name="dds-生产-Zürich-🚀"),
        "bad-extra-fields": record("bad-extra-fields", engine="rocksDB", tags={"env": "prod"}),
        "bad-sql-text": record("bad-sql-text", name="x'); DROP TABLE dds_jobs; --", instance_name="a\"b';--"),
    }


def rejected_records() -> list[dict]:
    return [
        record("", name="EmptyId"),
        {key: value for key, value in record("x").items() if key != "id"},
        record("bad-no-created-at", created_at=None),
        record("bad-created-yesterday", created_at="yesterday"),
    ]


# progress abc and 150%, the timestamp without offset, the extra fields: kept with their raw record.
ANOMALIES = 4


def with_records(extra: list) -> tuple:
    """A jobs route answering the simulator's first page of a window with ``extra`` records added."""

    def answer(sim, request):
        response = list_jobs(sim, request)
        if response.status != 200 or request.query.get("offset", "0") != "0":
            return response
        payload = json.loads(response.body)
        payload["jobs"] += extra
        payload["total_count"] += len(extra)
        return json_response(200, payload)

    return ("GET", JOBS_PATH, answer)


def test_records_the_api_should_never_send_are_stored_or_counted_never_dropped(tmp_path, monkeypatch, warehouse_url):
    monkeypatch.setenv("DDS_WAREHOUSE_URL", warehouse_url)
    kept, rejected = kept_records(), rejected_records()
    routes = [with_records([*kept.values(), *rejected])]
    with pipeline_under_test(tmp_path, monkeypatch, jobs_per_day=20, extra_routes=routes) as p:
        result = p.sync(first_day(), last_day())
        assert result.success
        meta = p.day_metadata("dds_jobs", last_day())
        # Rejected records have no day of their own: the run's summary counts them.
        assert p.run_summaries("dds_jobs")[0]["rejected"] == len(rejected)
        assert meta["anomalies"] == ANOMALIES
        rows = stored_jobs(warehouse_url).set_index("id")
        assert set(rows.index) == expected_jobs(p.sim, first_day(), last_day()).keys() | kept.keys()
        snapshot = snapshot_jobs(p.settings.parquet_root).set_index("id")
        for stored in (rows, snapshot):
            assert stored.loc[["bad-progress-abc", "bad-progress-150"], "progress_pct"].isna().all()
            no_offset = pd.to_datetime(stored.loc["bad-no-offset", "created_at"], utc=True)  # SQLite gives text
            assert no_offset == pd.Timestamp(f"{last_day().isoformat()}T10:00:00Z")
            assert stored.loc["bad-unknown-status", "status"] == "Suspended"
            assert stored.loc["bad-long-reason", "fail_reason"] == LONG_REASON
            assert tuple(stored.loc["bad-non-ascii", ["name", "instance_name"]]) == ("重启实例", "dds-生产-Zürich-🚀")
            assert stored.loc["bad-sql-text", "name"] == "x'); DROP TABLE dds_jobs; --"
            raw = {job_id: json.loads(text) for job_id, text in stored["raw_record"].dropna().items()}
            assert raw.keys() == {"bad-progress-abc", "bad-progress-150", "bad-no-offset", "bad-extra-fields"}
            assert raw["bad-extra-fields"] == kept["bad-extra-fields"]


# --- Security: TLS and the simulator's binding ---------------------------------------------------------------

class _OneJobHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"jobs": [record("tls-job")], "total_count": 1}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def tls_endpoint(tmp_path_factory):
    """An HTTPS jobs endpoint on loopback with a self-signed certificate: (its URL, the certificate's PEM file)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OneJobHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}", str(cert)
    server.shutdown()
    server.server_close()


def window() -> TimeWindow:
    return TimeWindow.for_days(first_day(), last_day())


def tls_client(endpoint: str, **fields: object):
    resource = DdsTaskCenterResource(project_id="p1", endpoint=endpoint, auth_token="tls-test-token", **fields)
    return resource.project_client()[0]


@pytest.mark.parametrize("environment", [{}, {"CURL_CA_BUNDLE": "", "REQUESTS_CA_BUNDLE": ""}], ids=["", "empty-env"])
def test_an_untrusted_certificate_is_refused_at_once_and_says_how_to_trust_it(tls_endpoint, monkeypatch, environment):
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with tls_client(tls_endpoint[0]) as client, pytest.raises(DdsApiError) as caught:
        fetch_jobs(client, window())
    assert caught.value.attempts == 1
    assert_one_line_naming(str(caught.value), "DDS_CA_BUNDLE")
    assert "TLS certificate not trusted (self-signed certificate)" in str(caught.value)


def test_dds_ca_bundle_names_the_certificates_to_trust(tls_endpoint):
    endpoint, cert = tls_endpoint
    assert dds_api_resource(Deployment.from_env({"DDS_ENDPOINT": endpoint, "DDS_CA_BUNDLE": cert})).ca_bundle == cert
    with tls_client(endpoint, ca_bundle=cert) as client:
        assert [job["id"] for job in fetch_jobs(client, window()).jobs] == ["tls-job"]


@pytest.mark.parametrize("value", ["false", "0", "no", "off"])
def test_verification_cannot_be_switched_off_through_the_ca_bundle(tls_endpoint, value):
    with pytest.raises(ConfigError) as caught:
        tls_client(tls_endpoint[0], ca_bundle=value)
    assert_one_line_naming(str(caught.value), "DDS_CA_BUNDLE")


def outward_address() -> str:
    """This machine's address towards the network (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))
        return probe.getsockname()[0]


def test_the_simulator_answers_on_loopback_only():
    with DdsSimulator(SimulatorConfig(jobs_per_day=1), port=0) as sim:
        assert sim.url.startswith("http://127.0.0.1:")
        with socket.create_connection(("127.0.0.1", sim.port), timeout=5):
            pass
        address = outward_address()
        assert not address.startswith("127.")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((address, sim.port), timeout=5)
    with pytest.raises(ValueError, match="127.0.0.1 only"):
        DdsSimulator(host="0.0.0.0")
