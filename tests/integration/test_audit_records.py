"""Records that once broke a sync or its counts (issue 21): ids differing only by a NUL character, jobs without a
status, a created_at without a time or an offset, and a job whose created_at moves to another day (its old day's
Parquet snapshot must drop it). Over HTTP against the simulator, on real SQLite, PostgreSQL and MariaDB, with real
Parquet files."""

import json
from datetime import date, datetime, time, timedelta, timezone

import pyarrow.dataset as ds
import pytest

from pipeline.api.auth import TokenAuth
from pipeline.api.client import DdsTaskCenterClient
from pipeline.records.escape import unescape_text
from pipeline.records.normalize import normalize_jobs
from pipeline.simulator import DdsSimulator, SimulatorConfig
from pipeline.snapshots.store import ParquetStore
from pipeline.sync import snapshot_days, sync_days
from tests.support.records import api_record, api_time
from pipeline.warehouse.store import Warehouse
from tests.support.extra_records import ExtraRecords

DAYS = [date(2026, 11, 14) + timedelta(days=i) for i in range(3)]
NOW = datetime.combine(DAYS[-1] + timedelta(days=1), time(6), tzinfo=timezone.utc)
TOKEN = "t"


def at(day: date, hour: int) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=timezone.utc)


def span(first: date, last: date) -> tuple[datetime, datetime]:
    """The instants of the days first..last, both ends inclusive (as the simulator's visible_jobs takes them)."""
    return at(first, 0), at(last + timedelta(days=1), 0) - timedelta(seconds=1)


def simulator(extra: ExtraRecords, jobs_per_day: int = 20) -> DdsSimulator:
    return DdsSimulator(SimulatorConfig(seed=5, jobs_per_day=jobs_per_day, token=TOKEN, now=NOW,
                                        extra_routes=[extra.route()]))


def sync(sim: DdsSimulator, warehouse: Warehouse, days, now: datetime = NOW):
    with DdsTaskCenterClient(sim.url, sim.project_id, TokenAuth(TOKEN)) as client:
        return sync_days(client, warehouse, days, now=now)


def ledger_jobs(warehouse: Warehouse) -> dict[str, int]:
    rows = warehouse.query("SELECT created_date, jobs FROM dds_sync_ledger")
    return {str(day)[:10]: int(jobs) for day, jobs in zip(rows["created_date"], rows["jobs"])}


def assert_counts_match(result, warehouse: Warehouse) -> None:
    """What stored_count_matches_api compares, and the ledger's count of each day."""
    for day, synced in result.days.items():
        assert synced.stored_jobs == synced.api_jobs, day
    assert ledger_jobs(warehouse) == {day.isoformat(): s.api_jobs for day, s in result.days.items()}


# Ids differing only by a NUL (at the end, inside, alone), and one that holds the escape's text as sent.
NUL_PAIRS = [("job-{n}", "job-{n}\x00"), ("jo\x00b-{n}", "job-{n}-x"), ("\x00{n}", "\\x00{n}")]


def nul_records() -> list[tuple[datetime, dict]]:
    records = []
    for n, day in enumerate(DAYS):
        for k, pair in enumerate(NUL_PAIRS):
            for job_id in pair:
                created = at(day, 8 + k)
                records.append((created, api_record(job_id.format(n=n), created, fail_reason="disk\x00full")))
    return records


def test_ids_differing_only_by_a_nul_are_stored_apart_alike_on_every_database(warehouse):
    extra = ExtraRecords(nul_records())
    sent = {record["id"] for _, record in extra.records}
    with simulator(extra) as sim:
        first = sync(sim, warehouse, DAYS)
        again = sync(sim, warehouse, DAYS, NOW + timedelta(hours=1))  # a re-sync of the same days loads too
        simulated = {job["id"] for job in sim.store.visible_jobs(sim.project_id, *span(DAYS[0], DAYS[-1]))}
    stored = warehouse.query("SELECT id, fail_reason, raw_record FROM dds_jobs")
    ids = stored["id"].tolist()
    assert len(ids) == len(set(ids)) == len(simulated) + len(sent) == len(simulated) + 18
    assert {unescape_text(job_id) for job_id in ids} == simulated | sent  # every id as sent, none merged
    assert not any("\x00" in value for column in ("id", "fail_reason") for value in stored[column].dropna())
    escaped = stored.set_index("id").loc[["job-0\\x00", "jo\\x00b-0", "\\x5cx000"]]
    assert escaped["fail_reason"].eq("disk\\x00full").all()
    assert json.loads(escaped.loc["job-0\\x00", "raw_record"])["id"] == "job-0\x00"  # the original, JSON-escaped
    # Per day 4 ids (3 holding a NUL, 1 the text \\x) and 6 failure reasons escaped; the metadata counts them.
    assert first.text_escaped == again.text_escaped == 3 * (4 + 6)
    assert first.metadata()["text_escaped"] == 30
    assert again.inserted == 0 and again.updated == len(ids)
    assert_counts_match(again, warehouse)


def test_a_job_without_status_counts_in_its_day_and_as_an_anomaly(warehouse):
    day = DAYS[1]
    null_status = {**api_record("null-status", at(day, 9)), "status": None}
    no_status = {key: value for key, value in api_record("no-status", at(day, 10)).items() if key != "status"}
    extra = ExtraRecords([(at(day, 9), null_status), (at(day, 10), no_status)])
    with simulator(extra) as sim:
        result = sync(sim, warehouse, DAYS)
        simulated = len(sim.store.visible_jobs(sim.project_id, *span(day, day)))
    synced = result.days[day]
    assert synced.api_jobs == simulated + 2 == synced.stored_jobs
    assert synced.metadata()["missing_status"] == 2 and synced.anomalies == 2
    assert sum(synced.by_status.values()) == simulated
    assert_counts_match(result, warehouse)
    stored = warehouse.query("SELECT id, status, raw_record FROM dds_jobs WHERE id IN ('null-status', 'no-status')")
    assert stored["status"].isna().all() and stored["raw_record"].notna().all()


@pytest.mark.parametrize("created_at, problem", [("2026-11-15", "has no time of day; read as midnight UTC"),
                                                  ("2026-11-15T10:00:00", "has no UTC offset; read as UTC")])
def test_a_created_at_without_time_or_offset_is_stored_as_a_counted_logged_guess(warehouse, created_at, problem):
    day = DAYS[1]
    guessed = datetime.fromisoformat(created_at).replace(tzinfo=timezone.utc)
    record = {**api_record("guessed", guessed), "created_at": created_at}
    with simulator(ExtraRecords([(guessed, record)])) as sim:
        result = sync(sim, warehouse, DAYS)
    stored = warehouse.query("SELECT created_at, created_date, raw_record FROM dds_jobs WHERE id = 'guessed'")
    assert str(stored["created_date"][0])[:10] == day.isoformat()
    assert str(stored["created_at"][0])[:19].replace("T", " ") == guessed.strftime("%Y-%m-%d %H:%M:%S")
    assert json.loads(stored["raw_record"][0]) == record
    assert result.days[day].anomalies == 1
    assert f"created_at {problem}: 1 record(s) kept; first: job 'guessed', created_at={created_at!r}" in result.problems
    assert_counts_match(result, warehouse)


def parquet_rows_of(root, job_id: str) -> list[str]:
    """The created_date folder of every row of ``job_id`` in the whole dataset, read as analysts read it."""
    table = ds.dataset(f"{root}/dds_jobs", partitioning="hive").to_table(filter=ds.field("id") == job_id)
    return [str(day) for day in table.column("created_date").to_pylist()]


@pytest.mark.parametrize("jobs_per_day", [20, 0], ids=["day-keeps-other-jobs", "day-left-empty"])
def test_a_job_moved_to_another_day_leaves_no_copy_in_its_old_days_parquet(warehouse, tmp_path, jobs_per_day):
    day_a, day_b = DAYS[0], DAYS[1]
    store = ParquetStore(str(tmp_path / "parquet"))
    record = api_record("moving", at(day_a, 23))
    extra = ExtraRecords([(at(day_a, 23), record)])
    with simulator(extra, jobs_per_day) as sim:
        sync(sim, warehouse, [day_a])
        snapshot_days(warehouse, store, [day_a])
        assert parquet_rows_of(store.root, "moving") == [day_a.isoformat()]
        # The API now says the job was created an hour later: on day B. Only day B is synced (a daily run).
        moved = {**record, "created_at": api_time(at(day_b, 0))}
        extra.records = [(at(day_b, 0), moved)]
        result = sync(sim, warehouse, [day_b], NOW + timedelta(hours=1))
    assert result.moved_out_of == [day_a]
    refreshed = snapshot_days(warehouse, store, [day_b], result.moved_out_of)
    assert parquet_rows_of(store.root, "moving") == [day_b.isoformat()]  # exactly one row, on its new day
    assert refreshed[day_a].rows == warehouse.count_by_day([day_a])[day_a] == (jobs_per_day and refreshed[day_a].rows)
    others = ds.dataset(f"{store.root}/dds_jobs", partitioning="hive").to_table(
        filter=ds.field("created_date") == day_a.isoformat())
    assert others.num_rows == refreshed[day_a].rows and (others.num_rows > 0) == bool(jobs_per_day)
    # Nothing is lost: a day emptied so keeps its previous file in the quarantine.
    assert bool(refreshed[day_a].moved_aside) == (not jobs_per_day)


def test_a_frame_holding_a_nul_is_refused_by_postgresql_not_stripped(postgres_url):
    # Stripped, "a\0" would become "a" there: two jobs one key. Rows from normalize_jobs never hold a NUL.
    warehouse = Warehouse(postgres_url)
    try:
        frame = normalize_jobs([api_record("a", at(DAYS[0], 9)), api_record("b", at(DAYS[0], 9))], "p", NOW).frame
        frame.loc[1, "id"] = "a\x00"
        with pytest.raises(ValueError, match="^column 'id' holds a NUL character, which PostgreSQL text cannot"):
            warehouse.upsert(frame)
        assert warehouse.count_by_day([DAYS[0]]) == {DAYS[0]: 0}
    finally:
        warehouse.dispose()
