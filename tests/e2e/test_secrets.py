"""Secrets stay secret end to end: real Dagster syncs with each authentication method, then a search of everything
they wrote (captured output and logs, the Dagster instance's files, the warehouse, the Parquet files, reprs and
resource config) for every secret, as written and in the encodings a leak would take (percent, JSON, hex, base64).

The search reads inside SQLite files (Dagster zlib-compresses its job snapshots) and decodes Parquet pages; a
test plants secrets in each of those forms to prove it finds them.
"""

import base64
import gzip
import json
import os
import re
import sqlite3
import subprocess
import threading
import zlib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import quote, quote_plus

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from dagster import DagsterInstance, ExecuteInProcessResult, build_resources
from dagster._serdes import serialize_value

from pipeline.api.credentials import (
    ENV_VARIABLES,
    STATIC_TOKEN_WARNING,
    build_auth,
)
from pipeline.definitions import build_definitions
from pipeline.cli.demo import run_demo
from pipeline.config import Deployment
from pipeline.simulator import (
    DdsSimulator,
    RequestInfo,
    Response,
    Route,
    SimulatorConfig,
    json_response,
)
from pipeline.simulator.auth import SimulatorAuthenticator
from pipeline.simulator.server import JOBS_PATH, list_jobs
from pipeline.warehouse.store import Warehouse
from tests.support.dagster_helpers import (
    PipelineUnderTest,
    env_without_secrets,
    expected_jobs,
    pipeline_env,
    pipeline_under_test,
    yesterday,
)
from tests.support.paths import BIN

STATIC_TOKEN = "tok-Sentinel-4Fq9-static-token"
AK, SK = "AKSENTINEL4FQ9PERM", "sk/Sentinel+4Fq9=permanent-secret"
TEMP_AK, TEMP_SK, SECURITY_TOKEN = "AKSENTINEL4FQ9TEMP", "sk/Sentinel+4Fq9=temporary-secret", "sts-Sentinel-4Fq9-x"
USER, DOMAIN, PASSWORD = "sync-robot", "sentinel-account", 'pw"Sentinel\\4Fq9 pässwörd'
WRONG_SK, WRONG_PASSWORD = "sk/Sentinel+4Fq9=WRONG-secret", 'pw"Sentinel\\4Fq9 WRONG'
SECRETS = {"static token": STATIC_TOKEN, "SK": SK, "temporary SK": TEMP_SK, "security token": SECURITY_TOKEN,
           "IAM password": PASSWORD, "wrong SK": WRONG_SK, "wrong IAM password": WRONG_PASSWORD}
# Not secret, but promised to be shown masked ("AKSE***") wherever the pipeline shows them.
ACCESS_KEYS = {"access key": AK, "temporary access key": TEMP_AK}
SUCCEEDING = ("token", "aksk", "aksk-temporary", "iam")
# Each command run costs seconds of start-up: temporary keys, a variant of AK/SK, run in process only.
CLI_SUCCEEDING = ("token", "aksk", "iam")
FAILING = {"aksk-wrong-sk": "DDS rejected the request: APIG.0301 Incorrect IAM authentication information",
           "iam-wrong-password": f"IAM refused a token for user '{USER}' at "}
# The variable whose value each case keeps secret: Dagster must record its name (the EnvVar), never its value.
SECRET_VARIABLE = {"token": "DDS_AUTH_TOKEN", "aksk": "HUAWEICLOUD_SDK_SK", "aksk-wrong-sk": "HUAWEICLOUD_SDK_SK",
                   "aksk-temporary": "HUAWEICLOUD_SDK_SECURITY_TOKEN", "iam": "DDS_IAM_PASSWORD",
                   "iam-wrong-password": "DDS_IAM_PASSWORD"}


def credentials_env(case: str, sim: DdsSimulator) -> dict[str, str]:
    iam = {"DDS_IAM_USERNAME": USER, "DDS_IAM_DOMAIN": DOMAIN, "DDS_IAM_ENDPOINT": sim.url}
    return {
        "token": {"DDS_AUTH_TOKEN": STATIC_TOKEN},
        "aksk": {"HUAWEICLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_SK": SK},
        "aksk-temporary": {"HUAWEICLOUD_SDK_AK": TEMP_AK, "HUAWEICLOUD_SDK_SK": TEMP_SK,
                           "HUAWEICLOUD_SDK_SECURITY_TOKEN": SECURITY_TOKEN},
        "iam": {**iam, "DDS_IAM_PASSWORD": PASSWORD},
        "aksk-wrong-sk": {"HUAWEICLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_SK": WRONG_SK},
        "iam-wrong-password": {**iam, "DDS_IAM_PASSWORD": WRONG_PASSWORD},
    }[case]


class Gateway:
    """The simulator's gateway and IAM holding the distinctive credentials; it records the IAM tokens it issues
    and, with ``revoke_after_pages``, revokes every issued token once that many jobs pages were served."""

    def __init__(self, revoke_after_pages: int | None = None) -> None:
        self.auth = SimulatorAuthenticator(tokens=[STATIC_TOKEN], keys={AK: SK},
                                           temporary_keys={TEMP_AK: (TEMP_SK, SECURITY_TOKEN)},
                                           iam_users={USER: (PASSWORD, DOMAIN)})
        self.issued: list[str] = []
        self.pages_served = 0
        self._revoke_after_pages = revoke_after_pages
        self._lock = threading.Lock()

    def _login(self, sim: DdsSimulator, request: RequestInfo) -> Response:
        status, headers, body = self.auth.issue_token(request.body)
        if "X-Subject-Token" in headers:
            self.issued.append(headers["X-Subject-Token"])
        return json_response(status, body, headers)

    def _jobs(self, sim: DdsSimulator, request: RequestInfo) -> Response:
        # Reached only by requests the gateway accepted: the page revoking the tokens is still served.
        with self._lock:
            self.pages_served += 1
            if self.pages_served == self._revoke_after_pages:
                self.auth.revoke_all()
        return list_jobs(sim, request)

    def sim_options(self) -> dict:
        routes = [Route("POST", re.compile(r"/v3/auth/tokens"), self._login, authenticated=False),
                  Route("GET", JOBS_PATH, self._jobs, authenticated=True, faultable=True)]
        return {"authenticator": self.auth, "extra_routes": routes, "jobs_per_day": 40}

    def secrets(self) -> dict[str, str]:
        return {**SECRETS, **ACCESS_KEYS, **{f"issued IAM token {n}": token for n, token in enumerate(self.issued)}}


# --- the search --------------------------------------------------------------------------------------------

def encoded_forms(secret: str) -> dict[str, bytes]:
    """How ``secret`` may look once written: as is, percent-, JSON- and repr-escaped, hex, and base64 at each
    of the three byte alignments (only the characters that the secret's bytes alone determine)."""
    raw = secret.encode()
    forms = {"plain": secret, "percent": quote(secret, safe=""), "form": quote_plus(secret),
             "json": json.dumps(secret)[1:-1], "repr": repr(secret)[1:-1], "hex": raw.hex()}
    for shift in range(3):
        for name, encode in (("base64", base64.b64encode), ("base64url", base64.urlsafe_b64encode)):
            forms[f"{name}+{shift}"] = encode(b"\0" * shift + raw).decode()[4 if shift else 0:-4]
    return {name: form.encode() for name, form in forms.items()}


def _sqlite_tables(path: Path) -> Iterator[tuple[str, bytes]]:
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            cells = []
            for row in db.execute(f'SELECT * FROM "{table}"'):
                for value in row:
                    if isinstance(value, bytes):
                        try:
                            value = zlib.decompress(value)
                        except zlib.error:
                            pass
                    cells.append(value if isinstance(value, bytes) else str(value).encode())
            yield f"{path} table {table}", b"\n".join(cells)


def file_haystacks(root: Path) -> Iterator[tuple[str, bytes]]:
    """(where, content) of every file under ``root``: its bytes, plus SQLite tables (blobs decompressed),
    decoded Parquet tables and gunzipped files."""
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        raw = path.read_bytes()
        yield str(path), raw
        if raw.startswith(b"SQLite format 3\0"):
            yield from _sqlite_tables(path)
        elif raw.startswith(b"PAR1"):
            parquet = pq.ParquetFile(path)
            yield f"{path} decoded", f"{parquet.metadata.metadata}\n{parquet.read().to_pylist()}".encode()
        elif raw.startswith(b"\x1f\x8b"):
            yield f"{path} gunzipped", gzip.decompress(raw)


def find_leaks(secrets: Mapping[str, str], haystacks: Iterable[tuple[str, bytes | str]]) -> list[str]:
    """``<secret> (<form>) in <where>`` for every form of every secret found."""
    forms = [(name, form_name, form) for name, secret in secrets.items()
             for form_name, form in encoded_forms(secret).items()]
    found = []
    for where, content in haystacks:
        content = content.encode() if isinstance(content, str) else content
        found.extend(f"{name} ({form_name}) in {where}" for name, form_name, form in forms if form in content)
    return found


def holders(needle: str, haystacks: Iterable[tuple[str, bytes]]) -> list[str]:
    return [where for where, content in haystacks if needle.encode() in content]


def in_stored_job_snapshot(needle: str, haystacks: Iterable[tuple[str, bytes]]) -> bool:
    """Whether the job snapshots of the Dagster run storage (zlib-compressed) hold ``needle``."""
    return any("runs.db table snapshots" in where for where in holders(needle, haystacks))


def stored_ids(warehouse_url: str) -> list[str]:
    warehouse = Warehouse(warehouse_url)
    try:
        return sorted(warehouse.query("SELECT id FROM dds_jobs")["id"])
    finally:
        warehouse.dispose()


def test_the_search_finds_a_secret_however_it_was_written(tmp_path):
    (tmp_path / "clean.log").write_text("nothing to see here\n" * 50)
    for shift in range(3):
        (tmp_path / f"b64-{shift}.log").write_bytes(base64.b64encode(b"x" * shift + SK.encode() + b"tail"))
    (tmp_path / "url.log").write_text(f"GET /?sk={quote(SK, safe='')}&a=1")
    (tmp_path / "event.json").write_text(json.dumps({"message": PASSWORD}))
    (tmp_path / "old.log.gz").write_bytes(gzip.compress(STATIC_TOKEN.encode()))
    with closing(sqlite3.connect(tmp_path / "runs.db")) as db:
        db.execute("CREATE TABLE snapshots (body BLOB)")
        db.execute("INSERT INTO snapshots VALUES (?)", (zlib.compress(json.dumps({"sk": TEMP_SK}).encode()),))
        db.commit()
    table = pa.table({"note": [f"{SECURITY_TOKEN}-{n}" for n in range(500)]})
    # Without statistics, whose min/max would hold values in the clear.
    pq.write_table(table, tmp_path / "part-0.parquet", compression="zstd", write_statistics=False)
    leaks = find_leaks({**SECRETS, **ACCESS_KEYS}, file_haystacks(tmp_path))
    assert not any(leak.endswith("clean.log") for leak in leaks)
    for expected in ("SK (base64+0) in", "SK (base64+1) in", "SK (base64+2) in", "SK (percent) in",
                     "IAM password (json) in", "static token (plain) in " + str(tmp_path / "old.log.gz gunzipped"),
                     "temporary SK (plain) in " + str(tmp_path / "runs.db table snapshots"),
                     "security token (plain) in " + str(tmp_path / "part-0.parquet decoded")):
        assert any(leak.startswith(expected) for leak in leaks), (expected, leaks)
    # Compressed, these are invisible to a plain byte search: the decoding above is what finds them.
    assert not any(leak.startswith(("temporary SK (plain) in", "security token (plain) in"))
                   and leak.endswith(("runs.db", "part-0.parquet")) for leak in leaks)


# --- in-process syncs through the helpers --------------------------------------------------------------------

def use_credentials(monkeypatch: pytest.MonkeyPatch, env: Mapping[str, str]) -> None:
    for variable in ENV_VARIABLES.values():
        monkeypatch.delenv(variable, raising=False)
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)


def config_views(settings: Deployment) -> list[tuple[str, str]]:
    """reprs of the resources (as defined and as resolved for a run), their credentials, the client and its
    auth, the resource config Dagster derives (defaults) and the job snapshot it stores."""
    defs = build_definitions(settings)
    views = [(f"repr of {key}", f"{resource!r} {resource!s}") for key, resource in defs.resources.items()]
    top_level = defs.get_repository_def().get_top_level_resources()
    views += [(f"config of {key}", json.dumps(resource.config_schema.as_field().default_value))
              for key, resource in top_level.items()]
    views.append(("job snapshot", serialize_value(defs.resolve_implicit_global_asset_job_def().get_job_snapshot())))
    with build_resources(dict(defs.resources)) as resolved:
        credentials = resolved.dds_api.to_credentials()
        auth, _ = build_auth(credentials, settings.project_id or "")
        with resolved.dds_api.project_client()[0] as client:
            views.append(("resolved resources", f"{resolved.dds_api!r} {resolved.warehouse!r} {client!r}"))
        views.append(("credentials and auth", f"{credentials!r} {auth!r}"))
    return views


@contextmanager
def synced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str, first: date, last: date,
           gateway: Gateway) -> Iterator[tuple[PipelineUnderTest, ExecuteInProcessResult]]:
    """One in-process run of first..last with ``case``'s credentials, on an instance stored under tmp_path."""
    with pipeline_under_test(tmp_path, monkeypatch, **gateway.sim_options()) as p:
        use_credentials(monkeypatch, credentials_env(case, p.sim))
        (tmp_path / "dagster_home").mkdir()
        with DagsterInstance.local_temp(str(tmp_path / "dagster_home")) as instance:
            p = replace(p, settings=Deployment.from_env(), instance=instance)
            yield p, p.sync(first, last, raise_on_error=False)


def everything_written(tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture,
                       result: ExecuteInProcessResult, settings: Deployment) -> list[tuple[str, bytes]]:
    """Everything the run wrote or shows: captured output and logs, its events, config views, files."""
    out, err = capfd.readouterr()
    events = "\n".join(serialize_value(event) for event in result.all_events)
    texts = [("stdout", out), ("stderr", err), ("caplog", caplog.text), ("result events", events),
             *config_views(settings)]
    return [*((where, text.encode()) for where, text in texts), *file_haystacks(tmp_path)]


def user_error(result: ExecuteInProcessResult) -> str:
    """The message of the exception that failed step dds_jobs (beneath Dagster's wrapping)."""
    error = result.failure_data_for_node("dds_jobs").error
    while error.cause is not None:
        error = error.cause
    return error.message.strip()


@pytest.mark.parametrize("case", SUCCEEDING)
def test_a_sync_with_each_method_leaves_no_secret_anywhere(tmp_path, monkeypatch, caplog, capfd, case):
    caplog.set_level("DEBUG")
    gateway = Gateway()
    last = yesterday()
    first = last - timedelta(days=2)
    with synced(tmp_path, monkeypatch, case, first, last, gateway) as (p, result):
        assert result.success
        assert stored_ids(p.settings.warehouse_url) == sorted(expected_jobs(p.sim, first, last))
        haystacks = everything_written(tmp_path, caplog, capfd, result, p.settings)
        assert gateway.auth.accepted.keys() == {case.split("-")[0]} and not gateway.auth.rejections
    assert len(gateway.issued) == (1 if case == "iam" else 0)
    assert find_leaks(gateway.secrets(), haystacks) == []
    # The search reached what it had to: the stored job snapshot (compressed), the warehouse, the Parquet files.
    assert in_stored_job_snapshot(SECRET_VARIABLE[case], haystacks)
    assert any(where.endswith("table dds_jobs") for where in holders(p.sim.project_id, haystacks))
    assert len([w for w in holders(p.sim.project_id, haystacks) if w.endswith(".parquet decoded")]) == 3
    assert (STATIC_TOKEN_WARNING in caplog.text) == (case == "token")


@pytest.mark.parametrize("case", FAILING)
def test_a_run_with_a_wrong_secret_fails_once_with_a_clear_error_and_no_secret(tmp_path, monkeypatch, caplog,
                                                                                 capfd, case):
    caplog.set_level("DEBUG")
    gateway = Gateway()
    with synced(tmp_path, monkeypatch, case, yesterday(), yesterday(), gateway) as (p, result):
        assert not result.success
        message = user_error(result)
        haystacks = everything_written(tmp_path, caplog, capfd, result, p.settings)
        requested = [recorded.path for recorded in p.sim.requests]
    assert FAILING[case] in message and "\n" not in message
    # Never a loop of refusals: one signed request, or one login and no request at all.
    assert requested == ([f"/v3.1/{p.sim.project_id}/jobs"] if case == "aksk-wrong-sk" else ["/v3/auth/tokens"])
    assert find_leaks(gateway.secrets(), haystacks) == []
    assert in_stored_job_snapshot(SECRET_VARIABLE[case], haystacks)


def test_an_iam_token_expiring_mid_backfill_is_refreshed_and_the_run_completes(tmp_path, monkeypatch, caplog,
                                                                                capfd):
    caplog.set_level("DEBUG")
    gateway = Gateway(revoke_after_pages=2)
    last = yesterday()
    first = last - timedelta(days=9)
    with synced(tmp_path, monkeypatch, "iam", first, last, gateway) as (p, result):
        assert result.success
        assert stored_ids(p.settings.warehouse_url) == sorted(expected_jobs(p.sim, first, last))
        assert all(p.day_metadata("dds_jobs", first + timedelta(days=n))["jobs"] > 0 for n in range(10))
        haystacks = everything_written(tmp_path, caplog, capfd, result, p.settings)
    assert gateway.pages_served > 2 and len(gateway.issued) == 2
    # Every request the expiry caught was refused once as expired, then resent with the new token.
    assert set(gateway.auth.rejections) == {"APIG.0307"} and gateway.auth.rejections["APIG.0307"] >= 1
    assert "DDS API rejected the IAM token (APIG.0307)" in caplog.text
    assert find_leaks(gateway.secrets(), haystacks) == []


@pytest.mark.postgres
def test_a_warehouse_password_stays_out_of_the_dagster_storage(tmp_path, monkeypatch, caplog, capfd,
                                                               postgres_url):
    caplog.set_level("DEBUG")
    secrets = {"warehouse password": "Wh-Sentinel-4Fq9-password"}
    # The local server trusts every connection: the password travels but is not checked.
    url = sa.engine.make_url(postgres_url).set(password=secrets["warehouse password"])
    monkeypatch.setenv("DDS_WAREHOUSE_URL", url.render_as_string(hide_password=False))
    with synced(tmp_path, monkeypatch, "aksk", yesterday(), yesterday(), Gateway()) as (p, result):
        assert result.success
        haystacks = everything_written(tmp_path, caplog, capfd, result, p.settings)
        haystacks.append(("repr of the settings", repr(p.settings).encode()))
    assert find_leaks(secrets, haystacks) == []
    assert in_stored_job_snapshot("DDS_WAREHOUSE_URL", haystacks)


# --- the docs/dagster.md materialize command, as processes --------------------------------------------------

@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory) -> Iterator[dict[str, dict]]:
    """Each case through `dagster asset materialize` with a DAGSTER_HOME of its own; the processes run at once."""
    last = yesterday()
    first = last - timedelta(days=2)
    runs, sims = {}, []
    try:
        for case in (*CLI_SUCCEEDING, *FAILING):
            root = tmp_path_factory.mktemp(case)
            gateway = Gateway()
            sim = DdsSimulator(SimulatorConfig(seed=11, history_days=45, **gateway.sim_options()), port=0).start()
            sims.append(sim)
            (root / "dagster_home").mkdir()
            env = {**env_without_secrets(), **pipeline_env(sim, root / "data"),
                   "DAGSTER_HOME": str(root / "dagster_home")}
            env.pop("DDS_AUTH_TOKEN")
            process = subprocess.Popen(
                [str(BIN / "dagster"), "asset", "materialize", "-m", "pipeline.definitions", "--select",
                 "dds_jobs,dds_jobs_parquet", "--partition-range", f"{first}...{last}"],
                env={**env, **credentials_env(case, sim)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            runs[case] = {"root": root, "sim": sim, "gateway": gateway, "process": process}
        for run in runs.values():
            out, err = run["process"].communicate(timeout=240)
            run["haystacks"] = [("stdout", out.encode()), ("stderr", err.encode()), *file_haystacks(run["root"])]
            run["err"], run["expected"] = err, expected_jobs(run["sim"], first, last)
        yield runs
    finally:
        for run in runs.values():
            if run["process"].poll() is None:
                run["process"].kill()
        for sim in sims:
            sim.stop()


@pytest.mark.slow
@pytest.mark.parametrize("case", CLI_SUCCEEDING)
def test_the_materialize_command_with_each_method_leaves_no_secret_anywhere(cli_runs, case):
    run = cli_runs[case]
    assert run["process"].returncode == 0, run["err"][-3000:]
    assert stored_ids(f"sqlite:///{run['root'] / 'data' / 'warehouse.db'}") == sorted(run["expected"])
    assert find_leaks(run["gateway"].secrets(), run["haystacks"]) == []
    assert in_stored_job_snapshot(SECRET_VARIABLE[case], run["haystacks"])
    assert any("compute_logs" in where for where, _ in run["haystacks"])
    assert (STATIC_TOKEN_WARNING in run["err"]) == (case == "token")


@pytest.mark.slow
@pytest.mark.parametrize("case", FAILING)
def test_the_materialize_command_with_a_wrong_secret_fails_clearly_without_it(cli_runs, case):
    run = cli_runs[case]
    assert run["process"].returncode != 0
    assert FAILING[case] in run["err"]
    assert len(run["sim"].requests) == 1
    assert find_leaks(run["gateway"].secrets(), run["haystacks"]) == []


# --- the demo ----------------------------------------------------------------------------------------------

def test_the_demo_signs_with_aksk_and_prints_no_secret(tmp_path, monkeypatch, caplog, capfd):
    caplog.set_level("DEBUG")
    monkeypatch.setenv("DDS_DATA_DIR", str(tmp_path / "data"))
    # The user's own credentials, even a partial set, are set aside during the demo and restored after it.
    use_credentials(monkeypatch, {"DDS_AUTH_TOKEN": STATIC_TOKEN, "DDS_IAM_USERNAME": USER})
    # The demo passes its configuration to its run as values: this process's environment never holds them.
    seen_during_run = []
    real_run = subprocess.run

    def run_watching_environment(*args, **kwargs):
        seen_during_run.append(dict(os.environ))
        return real_run(*args, **kwargs)

    monkeypatch.setattr("pipeline.cli.demo.subprocess.run", run_watching_environment)
    before = dict(os.environ)
    assert run_demo(days=2, jobs_per_day=30, key_pair=(AK, SK), folder=tmp_path / "demo") == 0
    assert seen_during_run == [before]
    out, err = capfd.readouterr()
    aside = next(line for line in out.splitlines() if "set aside for the demo" in line)
    assert all(name in aside for name in ("DDS_AUTH_TOKEN", "DDS_IAM_USERNAME", "DDS_DATA_DIR"))
    assert "asset checks: 6 of 6 passed" in out and "access key AKSE*** (AK/SK" in out
    assert "authentication: aksk" in err and STATIC_TOKEN_WARNING not in out + err + caplog.text
    haystacks = [("stdout", out), ("stderr", err), ("caplog", caplog.text), *file_haystacks(tmp_path)]
    assert find_leaks({**SECRETS, **ACCESS_KEYS}, haystacks) == []
    assert os.environ["DDS_AUTH_TOKEN"] == STATIC_TOKEN and os.environ["DDS_IAM_USERNAME"] == USER
    assert "HUAWEICLOUD_SDK_SK" not in os.environ and "DDS_ENDPOINT" not in os.environ
