"""What the warehouse tests share: a warehouse ready for a test, its rows read back, a load made to fail half-way,
loads racing in threads, and the generic upsert held to SQLite's fast path on any sequence of loads."""

import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pandas as pd
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.records import api_record
from pipeline.warehouse.store import Warehouse
from pipeline.warehouse.upserts.sqlite import UpsertCounts
from tests.support.job_rows import CREATED, DAY, MONDAY, rows


def ready_warehouse(url: str) -> Iterator[Warehouse]:
    """For fixtures: the warehouse at ``url`` with its table, indexes and views, disposed after the test."""
    store = Warehouse(url)
    store.ensure_schema()
    yield store
    store.dispose()


def stored(warehouse: Warehouse, days=(DAY,)) -> pd.DataFrame:
    return warehouse.read_days(list(days))


def poison_inserts_of(warehouse: Warehouse, job_id: str) -> None:
    """A trigger that fails the load when it reaches ``job_id``: a failure half-way through a real load."""
    with warehouse.engine.begin() as connection:
        if warehouse.dialect == "sqlite":
            connection.exec_driver_sql(
                f"CREATE TRIGGER poison BEFORE INSERT ON dds_jobs WHEN NEW.id = '{job_id}' "
                "BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
            )
        elif warehouse.dialect in ("mysql", "mariadb"):
            connection.exec_driver_sql(
                f"CREATE TRIGGER poison BEFORE INSERT ON dds_jobs FOR EACH ROW BEGIN IF NEW.id = '{job_id}' THEN "
                "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'injected failure'; END IF; END"
            )
        else:
            connection.exec_driver_sql(
                "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'injected failure'; END $$"
            )
            connection.exec_driver_sql(
                f"CREATE TRIGGER poison BEFORE INSERT ON dds_jobs FOR EACH ROW WHEN (NEW.id = '{job_id}') "
                "EXECUTE FUNCTION poison()"
            )


def load_concurrently(url: str, frames: list[pd.DataFrame], *, repeat: int = 1, ensure_schema: bool = False,
                      together: bool = False) -> list[UpsertCounts]:
    """Each frame loaded ``repeat`` times by a thread of its own, with a Warehouse of its own (``ensure_schema``
    before each load, as a run does; ``together``: the threads start their first load at once). The counts of
    every load; the test fails on any error a thread met."""
    counts, errors = [], []
    start = threading.Barrier(len(frames))

    def load(frame: pd.DataFrame) -> None:
        store = Warehouse(url)
        try:
            if together:
                start.wait(10)
            for _ in range(repeat):
                if ensure_schema:
                    store.ensure_schema()
                counts.append(store.upsert(frame))
        except Exception as exc:  # noqa: BLE001 - reported below with the thread's failure
            errors.append(exc)
        finally:
            store.dispose()

    threads = [threading.Thread(target=load, args=(frame,)) for frame in frames]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return counts


# --- The same rule as SQLite's fast path, on any sequence of loads ---------------------------------------------

STATES = st.sampled_from([("Running", "10%", ""), ("Running", "70%", ""), ("Completed", "", ""),
                          ("Failed", "", "disk full"), ("Paused", "", "")])
# A job may also move to another instance or day between loads: the values SQLite's fast path rewrites in place
# only when they stay.
MOVES = st.tuples(st.integers(0, 1), st.integers(0, 2))
MOVED_TO = [DAY + timedelta(days=day) for day in range(3)]
LOADS = st.lists(  # loads of (job, state, move) rows, each load seen at its own hour, in any order
    st.tuples(st.integers(0, 3), st.lists(st.tuples(st.integers(0, 3), STATES, MOVES), min_size=1, max_size=6)),
    min_size=1, max_size=5,
)


def _load_frames(loads) -> list[pd.DataFrame]:
    frames = []
    for hour, jobs in loads:
        records = [api_record(f"job-{job}", CREATED + timedelta(days=day), status=status, progress=progress,
                              fail_reason=reason, instance_id=f"instance-{instance}")
                   for job, (status, progress, reason), (instance, day) in jobs]
        frames.append(rows(records, MONDAY + timedelta(hours=hour)))
    return frames


def _fast_sqlite_result(tmp_path, frames: list[pd.DataFrame]) -> tuple[list[UpsertCounts], pd.DataFrame]:
    reference = Warehouse(f"sqlite:///{tmp_path / f'{uuid.uuid4().hex}.db'}")
    try:
        return [reference.upsert(frame) for frame in frames], stored(reference, MOVED_TO)
    finally:
        reference.dispose()


def assert_same_as_sqlite_fast_path(store: Warehouse, tmp_path) -> None:
    """On any sequence of LOADS, ``store`` (emptied first) ends with the same rows and counts as SQLite's fast path."""

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(LOADS)
    def same_as_fast_path(loads):
        frames = _load_frames(loads)
        with store.engine.begin() as connection:
            connection.execute(sa.text("DELETE FROM dds_jobs"))
        counts = [store.upsert(frame) for frame in frames]
        expected_counts, expected_rows = _fast_sqlite_result(tmp_path, frames)
        assert counts == expected_counts
        pd.testing.assert_frame_equal(stored(store, MOVED_TO), expected_rows)

    same_as_fast_path()
