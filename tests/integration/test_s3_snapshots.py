"""Parquet snapshots on S3-compatible storage (moto's server on loopback): the hive layout, merges, writes that
fail or are killed half-way, and the S3 settings. The production setup as a whole (Dagster on PostgreSQL, its
daemon): tests/e2e/test_production.py."""

import socket
import subprocess
import sys
import threading
from datetime import date

import pandas as pd
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from pipeline.config import ConfigError, Deployment
from pipeline.snapshots.s3 import S3Options
from pipeline.snapshots.store import ParquetStore
from tests.support.records import api_record, synthetic_records
from tests.support.dagster_helpers import env_without_secrets
from tests.support.job_rows import CREATED, DAY, MONDAY, TUESDAY, by_key, rows
from tests.support.paths import ROOT
from tests.support.s3 import ACCESS_KEY, SECRET_KEY, s3_env


def objects(store: ParquetStore) -> list[str]:
    """Every object key under the store's bucket."""
    bucket = str(store.root).removeprefix("s3://").split("/")[0]
    found = store.filesystem.get_file_info(pafs.FileSelector(bucket, recursive=True))
    return sorted(info.path.removeprefix(f"{bucket}/") for info in found if info.type == pafs.FileType.File)


def day_object(store: ParquetStore, day: date) -> bytes:
    with store.filesystem.open_input_stream(f"{str(store.day_path(day)).removeprefix('s3://')}/part-0.parquet") as f:
        return f.read()


# --- Parquet snapshots on S3 ---------------------------------------------------------------------------------

def test_days_round_trip_through_s3_in_the_hive_layout(s3_store, week):
    written = s3_store.write_days(week)
    days = sorted(set(week["created_date"]))
    assert sorted(written) == days and sum(written.values()) == len(week)
    assert objects(s3_store) == [f"snapshots/dds_jobs/created_date={d.isoformat()}/part-0.parquet" for d in days]
    assert s3_store.day_path(DAY) == f"{s3_store.root}/dds_jobs/created_date=2026-11-01"
    for read in (s3_store.read_all(), s3_store.read_days(days)):
        pd.testing.assert_frame_equal(by_key(read), by_key(week))
    dataset_path = str(s3_store.dataset_path).removeprefix("s3://")
    table = ds.dataset(dataset_path, filesystem=s3_store.filesystem, partitioning="hive").to_table()
    assert table.num_rows == len(week) and "created_date" in table.column_names


def test_a_later_write_merges_into_the_day_object_and_removes_a_copied_file(s3_store):
    s3_store.write_days(rows([api_record("job", CREATED, status="Running", progress="30%")], MONDAY))
    folder = str(s3_store.day_path(DAY)).removeprefix("s3://")
    s3_store.filesystem.copy_file(f"{folder}/part-0.parquet", f"{folder}/copied-by-hand.parquet")
    assert s3_store.read_days([DAY])["id"].tolist() == ["job", "job"]
    assert s3_store.write_days(rows([api_record("job", CREATED), api_record("new", CREATED)], TUESDAY)) == {DAY: 2}
    job = s3_store.read_days([DAY]).set_index("id").loc["job"]
    assert job["status"] == "Completed" and job["first_seen_at"] == pd.Timestamp(MONDAY)
    assert objects(s3_store) == ["snapshots/dds_jobs/created_date=2026-11-01/part-0.parquet"]
    assert s3_store.write_days(rows([api_record("new", CREATED)], TUESDAY)) == {DAY: 2}  # fewer jobs delete none


def test_a_write_that_fails_while_serializing_uploads_nothing(s3_store, week, monkeypatch):
    s3_store.write_days(week)
    before, keys = day_object(s3_store, DAY), objects(s3_store)
    real_write_table = pq.write_table

    def crash_half_way(table, where, **kwargs):
        real_write_table(table.slice(0, table.num_rows // 2), where, **kwargs)
        raise OSError("out of memory")

    monkeypatch.setattr(pq, "write_table", crash_half_way)  # the library call, not ours: a crash mid-write
    with pytest.raises(OSError, match="out of memory"):
        s3_store.write_days(week[week["created_date"] == DAY].assign(status="Failed",
                                                                     last_seen_at=pd.Timestamp(TUESDAY)))
    monkeypatch.undo()
    assert day_object(s3_store, DAY) == before and objects(s3_store) == keys


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
import os, sys
from datetime import date, datetime, timezone
from pipeline.config import s3_options
from pipeline.records.normalize import normalize_jobs
from pipeline.snapshots.store import ParquetStore
from tests.support.records import synthetic_records
records = synthetic_records(3000, date(2026, 11, 1), days=1, seed=5)
store = ParquetStore(sys.argv[1], s3=s3_options(os.environ))
store.write_days(normalize_jobs(records, "proj-1", datetime.now(timezone.utc)).frame)
"""


def test_a_writer_killed_mid_upload_leaves_the_previous_day_object_intact(s3_store, s3_endpoint):
    s3_store.write_days(rows(synthetic_records(100, DAY, days=1, seed=4)))
    before, keys, frame = day_object(s3_store, DAY), objects(s3_store), s3_store.read_days([DAY])
    proxy = StallingProxy(s3_endpoint)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(s3_store.root)], cwd=ROOT,
                              env={**env_without_secrets(), **s3_env(proxy.url)}, stderr=subprocess.PIPE)
    try:
        assert proxy.stalled.wait(60), writer.stderr.read().decode() if writer.poll() is not None else "no PUT seen"
    finally:
        writer.kill()  # a crash: no exception handler, no cleanup runs in the writer
        writer.wait(30)
        proxy.close()
    assert writer.returncode == -9
    assert day_object(s3_store, DAY) == before and objects(s3_store) == keys
    pd.testing.assert_frame_equal(s3_store.read_days([DAY]), frame)
    assert s3_store.write_days(rows([api_record("after", CREATED)], TUESDAY)) == {DAY: len(frame) + 1}


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
        Deployment.from_env({"DDS_DATA_DIR": str(tmp_path / "data"), "DDS_PARQUET_ROOT": root, **env})
    text = str(refused.value)
    assert "\n" not in text and SECRET_KEY not in text and ("DDS_" in text or "AWS_" in text)
    assert not (tmp_path / "data").exists()


def test_s3_options_come_from_the_standard_variables_and_never_show_secrets(s3_endpoint):
    env = {**s3_env(s3_endpoint), "AWS_SESSION_TOKEN": "session-secret", "DDS_S3_ADDRESSING_STYLE": "Virtual",
           "AWS_ENDPOINT_URL": "http://ignored.example"}
    options = S3Options.from_variables(env)
    assert (options.endpoint, options.region, options.access_key, options.addressing_style) == (
        s3_endpoint, "us-east-1", ACCESS_KEY, "virtual")
    assert options.secret_key == SECRET_KEY and options.session_token == "session-secret"
    shown = repr(options) + repr(ParquetStore("s3://bucket/x", s3=options)) + str(options)
    assert SECRET_KEY not in shown and "session-secret" not in shown
    assert S3Options.from_variables({"AWS_ENDPOINT_URL_S3": "https://obs.ap-southeast-1.myhuaweicloud.com/"}).endpoint == (
        "https://obs.ap-southeast-1.myhuaweicloud.com")
