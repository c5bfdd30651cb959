"""The sync ledger (dds_sync_ledger) and the coverage view, on real SQLite, PostgreSQL and MariaDB: what a sync
against the simulator records for each day (complete, failed, held in part or no longer), that the record commits
with the rows or not at all, and the state the view gives each day."""

from datetime import date, datetime, time, timedelta, timezone

import pytest
import sqlalchemy as sa

from pipeline.api.auth import TokenAuth
from pipeline.api.client import DdsTaskCenterClient
from pipeline.api.retry import RetryPolicy
from pipeline.history import AT_RISK, FAILED, GONE, IN_PROGRESS, MISSING, SYNCED, day_state, unsynced_days
from pipeline.simulator import DdsSimulator, SimulatorConfig
from pipeline.sync import sync_days
from pipeline.warehouse.ledger import (
    LEDGER_TABLE,
    SYNC_LEDGER,
    Attempt,
    LedgerDay,
    ledger_rows,
    record_failure,
    record_snapshot_failure,
    record_snapshot_written,
    record_sync,
)
from pipeline.warehouse.store import Warehouse

TOKEN = "sim-token-for-the-ledger"
TODAY = datetime.now(timezone.utc).date()
# The simulator's clock and the syncs' "now": noon, when the API answers from 12:10 thirty days ago.
NOW = datetime.combine(TODAY, time(12), tzinfo=timezone.utc)
YESTERDAY = TODAY - timedelta(days=1)
FAILING_FAST = RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.01)


@pytest.fixture
def sim():
    config = SimulatorConfig(seed=3, jobs_per_day=50, history_days=40, token=TOKEN, now=NOW)
    with DdsSimulator(config, port=0) as simulator:
        yield simulator


def sync(sim: DdsSimulator, warehouse: Warehouse, days: list[date], now: datetime = NOW, **options):
    with DdsTaskCenterClient(sim.url, sim.project_id, TokenAuth(TOKEN), retry=FAILING_FAST) as client:
        return sync_days(client, warehouse, days, now=now, **options)


def ledger(warehouse: Warehouse) -> dict[date, LedgerDay]:
    with warehouse.connect() as connection:
        return {row.created_date: row for row in ledger_rows(connection)}


def stored_ids(warehouse: Warehouse) -> list[str]:
    return sorted(warehouse.query("SELECT id FROM dds_jobs")["id"])


def view_states(warehouse: Warehouse) -> dict[date, str]:
    rows = warehouse.query("SELECT created_date, state FROM dds_jobs_coverage")
    return {date.fromisoformat(str(day)[:10]): state for day, state in zip(rows["created_date"], rows["state"])}


def test_a_complete_sync_records_each_day_synced_with_the_jobs_the_api_returned(warehouse, sim):
    days = [YESTERDAY - timedelta(days=2), YESTERDAY - timedelta(days=1), YESTERDAY]
    result = sync(sim, warehouse, days, region="ap-southeast-1", run_id="run-1")

    rows = ledger(warehouse)
    assert sorted(rows) == days
    for day in days:
        row = rows[day]
        assert row.synced and row.last_complete_at == row.last_attempt_at == NOW
        assert row.jobs == result.days[day].api_jobs == result.days[day].stored_jobs > 0
        assert (row.project_id, row.region, row.run_id, row.last_error) == (sim.project_id, "ap-southeast-1",
                                                                            "run-1", None)
    assert set(view_states(warehouse).values()) == {SYNCED}


def test_a_failed_sync_records_its_error_and_an_earlier_complete_sync_stands(warehouse, sim):
    days = [YESTERDAY - timedelta(days=1), YESTERDAY]
    sim.faults.random({"500": 1.0}, seed=1)
    with pytest.raises(Exception) as failure:
        sync(sim, warehouse, days, run_id="run-failed")
    assert stored_ids(warehouse) == []
    rows = ledger(warehouse)
    assert sorted(rows) == days
    for row in rows.values():
        assert not row.synced and row.jobs is None and row.run_id == "run-failed"
        assert row.last_error == str(failure.value).splitlines()[0] and "HTTP 500" in row.last_error
        assert "\n" not in row.last_error and TOKEN not in row.last_error
    assert set(view_states(warehouse).values()) == {FAILED}

    # The API is back: a complete sync clears the error.
    sim.faults.clear()
    later = NOW + timedelta(minutes=5)
    sync(sim, warehouse, days, now=later, run_id="run-good")
    rows = ledger(warehouse)
    assert all(row.synced and row.last_error is None and row.run_id == "run-good" for row in rows.values())

    # It fails again: the day keeps its complete sync (its rows are stored), and says what failed since.
    sim.faults.random({"500": 1.0}, seed=2)
    with pytest.raises(Exception):
        sync(sim, warehouse, days, now=later + timedelta(minutes=5), run_id="run-failed-again")
    for row in ledger(warehouse).values():
        assert row.last_complete_at == later and row.last_attempt_at == later + timedelta(minutes=5)
        assert "HTTP 500" in row.last_error and row.jobs > 0
    assert set(view_states(warehouse).values()) == {SYNCED}


def test_a_window_whose_answers_are_broken_is_recorded_failed_never_complete(warehouse, sim):
    before = YESTERDAY - timedelta(days=1)
    sync(sim, warehouse, [before])
    # {"jobs": null, "total_count": ...} for every page: an error, never "no jobs".
    sim.answers.break_answers("null_jobs")
    with pytest.raises(Exception) as failure:
        sync(sim, warehouse, [before, YESTERDAY], now=NOW + timedelta(minutes=1))
    rows = ledger(warehouse)
    assert not rows[YESTERDAY].synced and rows[YESTERDAY].jobs is None
    assert rows[before].last_complete_at == NOW and rows[before].jobs > 0
    assert {rows[day].last_error for day in (before, YESTERDAY)} == {str(failure.value).splitlines()[0]}
    assert "jobs is null" in rows[YESTERDAY].last_error
    assert view_states(warehouse) == {before: SYNCED, YESTERDAY: FAILED}


def test_days_the_api_holds_in_part_or_no_longer_or_not_yet_whole_are_never_complete(warehouse, sim):
    # At noon the API answers from 12:10 thirty days ago: that day is held in part, the day before it not at all.
    gone, partial, whole = (TODAY - timedelta(days=n) for n in (31, 30, 29))
    result = sync(sim, warehouse, [gone, partial, whole])
    assert [result.days[d].coverage for d in (gone, partial, whole)] == ["gone", "partial", "full"]
    assert result.days[partial].api_jobs > 0
    rows = ledger(warehouse)
    assert [rows[d].synced for d in (gone, partial, whole)] == [False, False, True]
    assert rows[gone].last_attempt_at == rows[partial].last_attempt_at == NOW
    assert rows[partial].jobs is None and rows[whole].jobs == result.days[whole].api_jobs
    # Today is not over: its jobs are stored, but the day is not complete: it is in progress, not missing.
    sync(sim, warehouse, [YESTERDAY, TODAY])
    rows = ledger(warehouse)
    assert rows[YESTERDAY].synced and not rows[TODAY].synced
    states = view_states(warehouse)
    assert (states[gone], states[partial], states[whole], states[TODAY]) == (GONE, AT_RISK, SYNCED, IN_PROGRESS)


def test_the_ledger_commits_with_the_rows_or_not_at_all(warehouse, sim, monkeypatch):
    def recorded_then_broken(connection, attempt, jobs_by_day):
        record_sync(connection, attempt, jobs_by_day)
        raise RuntimeError("the process died right after the ledger's write")

    # The ledger's write ran in the load's transaction and the transaction failed: neither rows nor "complete".
    monkeypatch.setattr("pipeline.sync.record_sync", recorded_then_broken)
    with pytest.raises(RuntimeError):
        sync(sim, warehouse, [YESTERDAY])
    assert stored_ids(warehouse) == []
    [row] = ledger(warehouse).values()
    assert not row.synced and row.last_error == "the process died right after the ledger's write"


def test_a_failure_the_ledger_cannot_record_still_raises_the_sync_error(sqlite_url, sim, monkeypatch):
    warehouse = Warehouse(sqlite_url)

    def ledger_down(*args):
        raise OSError("disk I/O error")

    monkeypatch.setattr("pipeline.sync.record_failure", ledger_down)
    sim.faults.random({"500": 1.0}, seed=1)
    with pytest.raises(Exception) as failure:
        sync(sim, warehouse, [YESTERDAY])
    assert "HTTP 500" in str(failure.value)
    assert failure.value.__notes__ == ["the sync ledger could not record this failure: disk I/O error"]
    warehouse.dispose()


def test_the_coverage_view_gives_each_known_day_the_state_of_day_state(warehouse):
    # Every age around the thresholds in each of the three kinds of ledger rows, then 800 days back in time (years,
    # month ends and a leap day) to hold the view's day arithmetic to the calendar's.
    attempt = Attempt("p-view", NOW, run_id="r")
    synced = {YESTERDAY - timedelta(days=n): 10 for n in range(0, 41, 3)}
    attempted = {YESTERDAY - timedelta(days=n): None for n in range(1, 41, 3)}
    failed = [YESTERDAY - timedelta(days=n) for n in range(2, 41, 3)]
    with warehouse.transaction() as connection:
        record_sync(connection, attempt, {**synced, **attempted})
        record_failure(connection, attempt, failed, RuntimeError("DDS API kept failing"))
        record_sync(connection, Attempt("p-calendar", NOW), {TODAY - timedelta(days=n): None for n in range(800)})

    view = warehouse.query("SELECT project_id, created_date, state, age_days FROM dds_jobs_coverage")
    rows = {(p, date.fromisoformat(str(d)[:10])): (s, int(a)) for p, d, s, a in view.itertuples(index=False)}
    expected = {("p-view", day): (day_state(day, TODAY, synced=day in synced, failed=day in failed),
                                  (TODAY - day).days) for day in [*synced, *attempted, *failed]}
    assert {key: value for key, value in rows.items() if key[0] == "p-view"} == expected
    assert [age for (project, _), (_, age) in sorted(rows.items(), reverse=True) if project == "p-calendar"] == list(
        range(800))
    by_age = {age: state for (_, day), (state, age) in expected.items()}
    assert [by_age[age] for age in (2, 3, 20, 21, 22, 23, 24, 30, 31, 32, 33)] == [
        MISSING, FAILED, MISSING, FAILED, SYNCED, AT_RISK, AT_RISK, AT_RISK, SYNCED, GONE, GONE]


def test_a_failed_snapshot_keeps_its_day_due_until_a_snapshot_is_written_whatever_the_syncs_say(warehouse):
    days = [YESTERDAY - timedelta(days=n) for n in (2, 1)]
    with warehouse.transaction() as connection:
        record_sync(connection, Attempt("p-a", NOW), dict.fromkeys(days, 10))
        record_sync(connection, Attempt("p-b", NOW), dict.fromkeys(days, 10))
        record_snapshot_failure(connection, days[:1], NotADirectoryError(20, "Not a directory"))
        # A later complete sync of the day (the load after the failed snapshot) leaves the error standing.
        record_sync(connection, Attempt("p-a", NOW), dict.fromkeys(days, 11))
    with warehouse.connect() as connection:
        errors = {(row.project_id, row.created_date): row.snapshot_error for row in ledger_rows(connection)}
    # A day's file holds every project's jobs: every project's row of the day holds the error.
    assert errors == {("p-a", days[0]): "[Errno 20] Not a directory", ("p-b", days[0]): "[Errno 20] Not a directory",
                      ("p-a", days[1]): None, ("p-b", days[1]): None}
    assert unsynced_days(warehouse, "p-a", days[0], days[1]) == days[:1]
    assert unsynced_days(warehouse, None, days[0], days[1]) == days[:1]
    with warehouse.transaction() as connection:
        record_snapshot_written(connection, days)
    assert unsynced_days(warehouse, None, days[0], days[1]) == []


def test_a_ledger_made_before_snapshot_error_gets_the_column_and_keeps_its_rows(warehouse_url):
    legacy = sa.Table(LEDGER_TABLE, sa.MetaData(),
                      *(column._copy() for column in SYNC_LEDGER.columns if column.name != "snapshot_error"))
    engine = sa.create_engine(warehouse_url)
    with engine.begin() as connection:
        legacy.create(connection)
        connection.execute(legacy.insert(), [Attempt("p-old", NOW).row(YESTERDAY, connection.dialect.name, jobs=7)])
    engine.dispose()
    warehouse = Warehouse(warehouse_url)
    try:
        warehouse.ensure_schema()
        with warehouse.connect() as connection:
            [row] = ledger_rows(connection)
        assert (row.project_id, row.created_date, row.jobs, row.snapshot_error) == ("p-old", YESTERDAY, 7, None)
        assert unsynced_days(warehouse, "p-old", YESTERDAY, YESTERDAY) == []
    finally:
        warehouse.dispose()
