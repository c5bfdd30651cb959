"""The production setup for real: Parquet snapshots on S3-compatible storage (moto's server on loopback), and a
Dagster instance loaded from deploy/dagster.yaml on PostgreSQL, whose daemon queues and runs syncs."""

import json
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from dagster import DagsterInstance, DagsterRunStatus, RunRecord, RunsFilter
from moto.server import ThreadedMotoServer

from pipeline.dds.partitions import range_tags
from pipeline.jobs.normalize import normalize_jobs
from pipeline.settings import ConfigError, Settings
from pipeline.simulator import DdsSimulator, SimulatorConfig
from pipeline.snapshots.s3 import S3Options
from pipeline.snapshots.store import ParquetStore
from pipeline.testing import api_record, synthetic_records
from pipeline.warehouse.store import Warehouse
from tests.support.dagster_helpers import (
    TOKEN,
    env_without_secrets,
    expected_jobs,
    pipeline_env,
    yesterday,
)
from tests.support.paths import ROOT
from tests.support.processes import spawn, stop

BIN = Path(sys.executable).parent
DAY = date(2026, 11, 1)
CREATED = datetime(2026, 11, 1, 9, 30, tzinfo=timezone.utc)
MONDAY = datetime(2026, 11, 2, 0, 15, tzinfo=timezone.utc)
TUESDAY = MONDAY + timedelta(days=1)
ACCESS_KEY, SECRET_KEY = "AKIDPRODTESTS", "s3-secret-key-for-production-tests"


def rows(records: list[dict], seen_at: datetime = MONDAY) -> pd.DataFrame:
    return normalize_jobs(records, "proj-1", seen_at).frame


def by_key(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["project_id", "id"], ignore_index=True)


def s3_env(endpoint: str) -> dict[str, str]:
    """The variables that point the Parquet snapshots' S3 client at ``endpoint``."""
    return {"DDS_S3_ENDPOINT": endpoint, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on a free loopback port."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def bucket(s3_endpoint) -> str:
    name = f"dds-{uuid.uuid4().hex[:12]}"
    pafs.S3FileSystem(access_key=ACCESS_KEY, secret_key=SECRET_KEY, region="us-east-1", scheme="http",
                      endpoint_override=s3_endpoint.removeprefix("http://"), allow_bucket_creation=True
                      ).create_dir(name)
    return name


@pytest.fixture
def store(s3_endpoint, bucket) -> ParquetStore:
    return ParquetStore(f"s3://{bucket}/snapshots/", s3=S3Options.from_env(s3_env(s3_endpoint)))


@pytest.fixture
def week() -> pd.DataFrame:
    return rows(synthetic_records(400, DAY, days=7, seed=3))


def objects(store: ParquetStore) -> list[str]:
    """Every object key under the store's bucket."""
    bucket = str(store.root).removeprefix("s3://").split("/")[0]
    found = store.filesystem.get_file_info(pafs.FileSelector(bucket, recursive=True))
    return sorted(info.path.removeprefix(f"{bucket}/") for info in found if info.type == pafs.FileType.File)


def day_object(store: ParquetStore, day: date) -> bytes:
    with store.filesystem.open_input_stream(f"{str(store.day_path(day)).removeprefix('s3://')}/part-0.parquet") as f:
        return f.read()


# --- Parquet snapshots on S3 ---------------------------------------------------------------------------------

def test_days_round_trip_through_s3_in_the_hive_layout(store, week):
    written = store.write_days(week)
    days = sorted(set(week["created_date"]))
    assert sorted(written) == days and sum(written.values()) == len(week)
    assert objects(store) == [f"snapshots/dds_jobs/created_date={d.isoformat()}/part-0.parquet" for d in days]
    assert store.day_path(DAY) == f"{store.root}/dds_jobs/created_date=2026-11-01"
    for read in (store.read_all(), store.read_days(days)):
        pd.testing.assert_frame_equal(by_key(read), by_key(week))
    dataset_path = str(store.dataset_path).removeprefix("s3://")
    table = ds.dataset(dataset_path, filesystem=store.filesystem, partitioning="hive").to_table()
    assert table.num_rows == len(week) and "created_date" in table.column_names


def test_a_later_write_merges_into_the_day_object_and_removes_a_copied_file(store):
    store.write_days(rows([api_record("job", CREATED, status="Running", progress="30%")], MONDAY))
    folder = str(store.day_path(DAY)).removeprefix("s3://")
    store.filesystem.copy_file(f"{folder}/part-0.parquet", f"{folder}/copied-by-hand.parquet")
    assert store.read_days([DAY])["id"].tolist() == ["job", "job"]
    assert store.write_days(rows([api_record("job", CREATED), api_record("new", CREATED)], TUESDAY)) == {DAY: 2}
    job = store.read_days([DAY]).set_index("id").loc["job"]
    assert job["status"] == "Completed" and job["first_seen_at"] == pd.Timestamp(MONDAY)
    assert objects(store) == ["snapshots/dds_jobs/created_date=2026-11-01/part-0.parquet"]
    assert store.write_days(rows([api_record("new", CREATED)], TUESDAY)) == {DAY: 2}  # fewer jobs delete none


def test_a_write_that_fails_while_serializing_uploads_nothing(store, week, monkeypatch):
    store.write_days(week)
    before, keys = day_object(store, DAY), objects(store)
    real_write_table = pq.write_table

    def crash_half_way(table, where, **kwargs):
        real_write_table(table.slice(0, table.num_rows // 2), where, **kwargs)
        raise OSError("out of memory")

    monkeypatch.setattr(pq, "write_table", crash_half_way)  # the library call, not ours: a crash mid-write
    with pytest.raises(OSError, match="out of memory"):
        store.write_days(week[week["created_date"] == DAY].assign(status="Failed", last_seen_at=pd.Timestamp(TUESDAY)))
    monkeypatch.undo()
    assert day_object(store, DAY) == before and objects(store) == keys


class StallingProxy:
    """A loopback TCP proxy to the S3 server that forwards the first half of the body of every PUT of
    ``part-0.parquet``, then holds the rest back and sets ``stalled``: an upload caught half way."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self._upstream = (host, int(port))
        self.stalled = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._sockets = [self._listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._upstream)
            self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, upload: bool) -> None:
        allowance = None  # bytes of the current day-object PUT still to forward
        try:
            while data := source.recv(65536):
                first_line = data.split(b"\r\n", 1)[0]
                if upload and allowance is None and first_line.startswith(b"PUT ") and b"part-0.parquet" in first_line:
                    head = data.partition(b"\r\n\r\n")[0]
                    # The AWS SDK streams the body aws-chunked: its length is in x-amz-decoded-content-length.
                    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                                  if line.lower().startswith((b"content-length:", b"x-amz-decoded-content-length:")))
                    allowance = len(head) + 4 + length // 2
                if allowance is not None:
                    data, allowance = data[:allowance], allowance - min(allowance, len(data))
                sink.sendall(data)
                if allowance == 0:
                    self.stalled.set()
                    while source.recv(65536):  # swallowed until the writer is gone
                        pass
                    return
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        for sock in self._sockets:
            sock.close()


WRITER = """
import sys
from datetime import date, datetime, timezone
from pipeline.jobs.normalize import normalize_jobs
from pipeline.snapshots.store import ParquetStore
from pipeline.testing import synthetic_records
records = synthetic_records(3000, date(2026, 11, 1), days=1, seed=5)
ParquetStore(sys.argv[1]).write_days(normalize_jobs(records, "proj-1", datetime.now(timezone.utc)).frame)
"""


def test_a_writer_killed_mid_upload_leaves_the_previous_day_object_intact(store, s3_endpoint):
    store.write_days(rows(synthetic_records(100, DAY, days=1, seed=4)))
    before, keys, frame = day_object(store, DAY), objects(store), store.read_days([DAY])
    proxy = StallingProxy(s3_endpoint)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(store.root)], cwd=ROOT,
                              env={**env_without_secrets(), **s3_env(proxy.url)}, stderr=subprocess.PIPE)
    try:
        assert proxy.stalled.wait(60), writer.stderr.read().decode() if writer.poll() is not None else "no PUT seen"
    finally:
        writer.kill()  # a crash: no exception handler, no cleanup runs in the writer
        writer.wait(30)
        proxy.close()
    assert writer.returncode == -9
    assert day_object(store, DAY) == before and objects(store) == keys
    pd.testing.assert_frame_equal(store.read_days([DAY]), frame)
    assert store.write_days(rows([api_record("after", CREATED)], TUESDAY)) == {DAY: len(frame) + 1}


# --- configuration -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("root, env, message", [
    ("s3://", {}, "does not name a valid bucket"),
    ("s3://My_Bucket/x", {}, "does not name a valid bucket"),
    ("s3://bucket/a//b", {}, "empty path segment"),
    ("s3://bucket/x?endpoint_override=h", {}, "DDS_S3_\\* variables"),
    (f"s3://{ACCESS_KEY}:{SECRET_KEY}@bucket/x", {}, "must not hold credentials"),
    (f"gs://{ACCESS_KEY}:{SECRET_KEY}@bucket/x", {}, "names a gs:// URI: only local folders and s3://"),
    ("s3://bucket/x", {"AWS_ACCESS_KEY_ID": ACCESS_KEY}, "^AWS_SECRET_ACCESS_KEY is not set"),
    ("s3://bucket/x", {"AWS_SECRET_ACCESS_KEY": SECRET_KEY}, "^AWS_ACCESS_KEY_ID is not set"),
    ("s3://bucket/x", {"DDS_S3_ENDPOINT": f"http://{ACCESS_KEY}:{SECRET_KEY}@obs"}, "^DDS_S3_ENDPOINT is not"),
    ("s3://bucket/x", {"AWS_ENDPOINT_URL": "obs.example.com"}, "^AWS_ENDPOINT_URL is not an http"),
    ("s3://bucket/x", {"AWS_ENDPOINT_URL_S3": "http://obs:port"}, "^AWS_ENDPOINT_URL_S3 is not an http"),
    ("s3://bucket/x", {"DDS_S3_ENDPOINT": "https://obs.example.com/bucket"}, "bucket goes in DDS_PARQUET_ROOT"),
    ("s3://bucket/x", {"DDS_S3_ADDRESSING_STYLE": "dns"}, "neither 'path' nor 'virtual'"),
    ("s3://bucket/x", {"AWS_CA_BUNDLE": "/nonexistent/ca.pem"}, "AWS_CA_BUNDLE='/nonexistent/ca.pem' is not a file"),
])
def test_bad_s3_settings_are_refused_in_one_line_without_secrets_before_any_write(root, env, message, tmp_path):
    with pytest.raises(ConfigError, match=message) as refused:
        Settings.from_env({"DDS_DATA_DIR": str(tmp_path / "data"), "DDS_PARQUET_ROOT": root, **env})
    text = str(refused.value)
    assert "\n" not in text and SECRET_KEY not in text and ("DDS_" in text or "AWS_" in text)
    assert not (tmp_path / "data").exists()


def test_s3_options_come_from_the_standard_variables_and_never_show_secrets(s3_endpoint):
    env = {**s3_env(s3_endpoint), "AWS_SESSION_TOKEN": "session-secret", "DDS_S3_ADDRESSING_STYLE": "Virtual",
           "AWS_ENDPOINT_URL": "http://ignored.example"}
    options = S3Options.from_env(env)
    assert (options.endpoint, options.region, options.access_key, options.addressing_style) == (
        s3_endpoint, "us-east-1", ACCESS_KEY, "virtual")
    assert options.secret_key == SECRET_KEY and options.session_token == "session-secret"
    shown = repr(options) + repr(ParquetStore("s3://bucket/x", s3=options)) + str(options)
    assert SECRET_KEY not in shown and "session-secret" not in shown
    assert S3Options.from_env({"AWS_ENDPOINT_URL_S3": "https://obs.ap-southeast-1.myhuaweicloud.com/"}).endpoint == (
        "https://obs.ap-southeast-1.myhuaweicloud.com")


# --- Dagster on PostgreSQL -----------------------------------------------------------------------------------

@pytest.fixture
def dagster_database(postgres_server_url) -> Iterator[dict[str, str]]:
    """A scratch PostgreSQL database for Dagster's own storage, as the DAGSTER_PG_* variables of deploy/dagster.yaml."""
    server = sa.engine.make_url(postgres_server_url)
    name = f"dagster_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield {"DAGSTER_PG_HOST": server.host or "127.0.0.1", "DAGSTER_PG_PORT": str(server.port or 5432),
           "DAGSTER_PG_DB": name, "DAGSTER_PG_USERNAME": server.username or "postgres",
           "DAGSTER_PG_PASSWORD": server.password or ""}
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@contextmanager
def daemon(env: dict[str, str], log_path: Path) -> Iterator[None]:
    """``dagster-daemon run`` from the project root, as docs/deployment.md starts it; stopped on exit."""
    with open(log_path, "w") as log:
        process = spawn([str(BIN / "dagster-daemon"), "run"], cwd=ROOT, env=env, stdout=log,
                        stderr=subprocess.STDOUT)
        try:
            yield
        finally:
            # The daemon's code server may outlive it, orphaned, in the group the daemon led: stop ends it too.
            stop(process, grace_seconds=60)


def launch(env: dict[str, str], first: date, last: date, run_id: str) -> subprocess.Popen:
    """Queue a sync of first..last through the instance's run coordinator, as the UI's Materialize does
    (``__ASSET_JOB`` is Dagster's implicit job of all assets)."""
    tags = range_tags(first, last)
    return subprocess.Popen([str(BIN / "dagster"), "job", "launch", "-m", "pipeline.definitions", "-j", "__ASSET_JOB",
                             "--tags", json.dumps(tags), "--run-id", run_id], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finished_runs(instance: DagsterInstance, run_ids: list[str]) -> list[RunRecord] | None:
    """The records of ``run_ids`` once every one of them has finished."""
    records = instance.get_run_records(RunsFilter(run_ids=run_ids))
    return records if len(records) == len(run_ids) and all(r.dagster_run.is_finished for r in records) else None


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.mark.postgres
@pytest.mark.slow
def test_a_production_instance_queues_syncs_one_at_a_time_into_postgres_and_s3(
    tmp_path, monkeypatch, postgres_url, dagster_database, s3_endpoint, bucket
):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    last = yesterday()
    runs = {str(uuid.uuid4()): (last - timedelta(days=3), last), str(uuid.uuid4()): (last - timedelta(days=1), last)}
    for name, value in dagster_database.items():
        monkeypatch.setenv(name, value)
    with DdsSimulator(SimulatorConfig(seed=8, jobs_per_day=40, token=TOKEN, history_days=40), port=0) as sim:
        env = {**env_without_secrets(), **pipeline_env(sim, tmp_path / "data"), **dagster_database,
               **s3_env(s3_endpoint), "DAGSTER_HOME": str(home), "DDS_WAREHOUSE_URL": postgres_url,
               "DDS_PARQUET_ROOT": f"s3://{bucket}/prod"}
        pool_set = subprocess.run([str(BIN / "dagster"), "instance", "concurrency", "set", "dds_api", "1"],
                                  env=env, capture_output=True, text=True, timeout=120)
        assert pool_set.returncode == 0, pool_set.stderr[-3000:]
        with daemon(env, tmp_path / "daemon.log"), DagsterInstance.from_config(str(home)) as instance:
            launches = [launch(env, first, last_day, run_id) for run_id, (first, last_day) in runs.items()]
            outputs = [process.communicate(timeout=120)[0] for process in launches]
            assert all(process.returncode == 0 for process in launches), [o[-3000:] for o in outputs]
            records = wait_for(lambda: finished_runs(instance, list(runs)), 180, "the daemon to run both syncs")
            assert {r.dagster_run.status for r in records} == {DagsterRunStatus.SUCCESS}, (
                (tmp_path / "daemon.log").read_text()[-3000:])
            # The pool dds_api (limit 1, run granularity) let the second run start only once the first ended.
            earlier, later = sorted(records, key=lambda r: r.start_time)
            assert earlier.end_time <= later.start_time
            pool = instance.event_log_storage.get_concurrency_info("dds_api")
            assert pool.slot_count == 1 and type(instance.run_storage).__name__ == "PostgresRunStorage"
            want = expected_jobs(sim, last - timedelta(days=3), last)
        daemon_log = (tmp_path / "daemon.log").read_text()

    dagster_db = sa.create_engine(sa.engine.URL.create(
        "postgresql+psycopg", username=dagster_database["DAGSTER_PG_USERNAME"],
        host=dagster_database["DAGSTER_PG_HOST"], port=int(dagster_database["DAGSTER_PG_PORT"]),
        database=dagster_database["DAGSTER_PG_DB"]))
    with dagster_db.connect() as conn:
        statuses = dict(conn.execute(sa.text("SELECT run_id, status FROM runs")).all())
        events = conn.execute(sa.text(
            "SELECT run_id, dagster_event_type, asset_key, partition FROM event_logs WHERE run_id <> ''")).all()
        daemons = {row[0] for row in conn.execute(sa.text("SELECT daemon_type FROM daemon_heartbeats"))}
        stored_text = "".join(row[0] for row in conn.execute(sa.text("SELECT event FROM event_logs")))
        stored_text += "".join(row[0] for row in conn.execute(sa.text("SELECT run_body FROM runs")))
    dagster_db.dispose()
    assert statuses == {run_id: "SUCCESS" for run_id in runs}
    for run_id, (first, last_day) in runs.items():
        days = {(first + timedelta(days=n)).isoformat() for n in range((last_day - first).days + 1)}
        for asset in ("dds_jobs", "dds_jobs_parquet"):
            # asset_key holds the key's path as JSON, e.g. ["dds_jobs"]: quoted, so dds_jobs_parquet differs.
            materialized = {p for r, kind, key, p in events
                            if r == run_id and kind == "ASSET_MATERIALIZATION" and f'"{asset}"' in (key or "")}
            assert materialized == days
    assert {"SCHEDULER", "QUEUED_RUN_COORDINATOR"} <= daemons
    assert TOKEN not in stored_text + daemon_log and SECRET_KEY not in stored_text + daemon_log + "".join(outputs)

    warehouse = Warehouse(postgres_url)
    days = [last - timedelta(days=n) for n in range(3, -1, -1)]
    stored = warehouse.read_days(days)
    warehouse.dispose()
    assert sorted(stored["id"]) == sorted(want)
    snapshot = ParquetStore(f"s3://{bucket}/prod", s3=S3Options.from_env(s3_env(s3_endpoint)))
    pd.testing.assert_frame_equal(by_key(snapshot.read_days(days)), by_key(stored), check_dtype=False)
