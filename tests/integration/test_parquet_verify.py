"""Healing and verifying the Parquet snapshots against the warehouse, on real files and real SQLite and PostgreSQL:
every kind of damage found by day, repaired from the warehouse, nothing the warehouse lacks ever deleted."""

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.snapshots.compare import compare_rows
from pipeline.snapshots.store import ParquetStore, UnreadableDayError
from pipeline.snapshots.verify import DIFFERS, OK, UNREADABLE, verify_parquet
from pipeline.sync import snapshot_days
from pipeline.warehouse.store import Warehouse
from tests.support.job_rows import DAY
from tests.support.parquet_damage import (
    GARBAGE,
    SEEN,
    assert_dataset_equals_warehouse,
    dataset_as_pandas_reads_it,
    day_file,
    edit_rows,
    fail_writes_from,
    files_below,
    jobs,
    later_state,
    plant_job,
    truncate,
    warehouse_rows,
)

WEEK = [DAY + timedelta(days=i) for i in range(7)]
ONLY_IN_PARQUET = date(2026, 10, 1)


@pytest.fixture
def warehouse(warehouse_url):
    warehouse = Warehouse(warehouse_url)
    warehouse.upsert(jobs(400, DAY, 7, seed=3))
    yield warehouse
    warehouse.dispose()


@pytest.fixture
def store(tmp_path, warehouse) -> ParquetStore:
    store = ParquetStore(tmp_path / "parquet")
    snapshot_days(warehouse, store, WEEK)
    return store


def test_the_verification_finds_every_kind_of_damage_by_day_and_repair_heals_it_all(store, warehouse):
    cut = truncate(store, WEEK[0])
    (store.day_path(WEEK[1]) / "junk.parquet").write_bytes(GARBAGE)
    store.day_path(WEEK[2]).joinpath("part-0.parquet").unlink()
    (store.day_path(WEEK[3]) / "copy.parquet").write_bytes(store.day_path(WEEK[3]).joinpath("part-0.parquet")
                                                           .read_bytes())
    edit_rows(store, WEEK[4], lambda frame: frame.assign(name=np.where(frame.index == 0, "EditedByHand",
                                                                       frame["name"])))
    edit_rows(store, WEEK[5], plant_job)
    store.write_days(jobs(20, ONLY_IN_PARQUET, 1, seed=4))
    (store.root / "dds_jobs" / "notes.txt").write_text("a note left in the dataset folder")
    with pytest.raises(Exception):
        pd.read_parquet(store.root / "dds_jobs")  # what analysts meet: the whole dataset is unreadable
    counts = warehouse.count_by_day(WEEK)
    before = files_below(store)

    report = verify_parquet(warehouse, store)
    assert files_below(store) == before  # verifying changes nothing
    verdicts = {v.day: v for v in report.days}
    assert list(verdicts) == [ONLY_IN_PARQUET, *WEEK]
    assert {day: v.status for day, v in verdicts.items()} == {
        ONLY_IN_PARQUET: DIFFERS, WEEK[0]: UNREADABLE, WEEK[1]: UNREADABLE, WEEK[2]: DIFFERS, WEEK[3]: DIFFERS,
        WEEK[4]: DIFFERS, WEEK[5]: DIFFERS, WEEK[6]: OK}
    assert "part-0.parquet" in verdicts[WEEK[0]].problems() and "junk.parquet" in verdicts[WEEK[1]].problems()
    assert verdicts[WEEK[2]].difference.missing == counts[WEEK[2]]
    assert verdicts[WEEK[3]].difference.doubled == counts[WEEK[3]] and "copy.parquet" in verdicts[WEEK[3]].problems()
    assert (verdicts[WEEK[4]].difference.changed, verdicts[WEEK[4]].difference.changed_columns) == (1, ("name",))
    assert verdicts[WEEK[4]].difference.samples[0]["parquet"] == {"name": "EditedByHand"}
    assert verdicts[WEEK[5]].difference.extra == 1 and verdicts[WEEK[5]].difference.missing == 0
    assert verdicts[ONLY_IN_PARQUET].difference.extra == 20 and verdicts[ONLY_IN_PARQUET].warehouse_rows == 0
    assert report.strays == [f"{store.root.absolute().as_posix()}/dds_jobs/notes.txt"]
    assert report.problems_remain and "8 problem(s) remain" in report.summary()

    repaired = verify_parquet(warehouse, store, repair=True)
    assert not repaired.problems_remain and repaired.counts()["days_repaired"] == 7
    assert {v.day: v.after for v in repaired.days if v.status != OK} == dict.fromkeys(
        [ONLY_IN_PARQUET, *WEEK[:6]], OK)
    assert_dataset_equals_warehouse(store, warehouse, WEEK)
    assert [v.status for v in verify_parquet(warehouse, store).days] == [OK] * 7
    # Nothing was deleted: every file taken out or rewritten is in the quarantine, byte for byte, the day only
    # Parquet held too.
    after, kept = files_below(store), files_below(store, "_quarantine")
    for relative, data in before.items():
        if relative.endswith(".lock") or after.get(relative) == data:
            continue
        folder, _, name = relative.rpartition("/")
        assert [copy for copy, copied in kept.items() if copy.startswith(f"_quarantine/{folder}/")
                and copy.endswith(f"-{name}") and copied == data], f"{relative} was not kept"
    assert cut in kept.values()
    only = [path for path in kept if f"created_date={ONLY_IN_PARQUET}" in path]
    assert len(pq.read_table(store.root / only[0])) == 20


def test_repair_leaves_the_snapshots_alone_when_the_warehouse_holds_nothing(store, tmp_path):
    empty = Warehouse(f"sqlite:///{tmp_path / 'another.db'}")
    before = files_below(store)
    report = verify_parquet(empty, store, repair=True)
    empty.dispose()
    assert [v.status for v in report.days] == [DIFFERS] * 7  # every job "not in the warehouse"
    assert report.problems_remain and "DDS_WAREHOUSE_URL" in report.summary()
    assert files_below(store) == before


def test_a_run_heals_the_days_it_writes_and_leaves_a_day_the_warehouse_lacks(store, warehouse):
    cut = truncate(store, WEEK[0])
    edit_rows(store, WEEK[1], plant_job)
    edit_rows(store, WEEK[2], later_state)
    store.write_days(jobs(20, ONLY_IN_PARQUET, 1, seed=4))
    other_day = ONLY_IN_PARQUET + timedelta(days=1)
    store.day_path(other_day).mkdir(parents=True)
    (store.day_path(other_day) / "part-0.parquet").write_bytes(GARBAGE)

    done = snapshot_days(warehouse, store, [ONLY_IN_PARQUET, other_day, *WEEK[:4]])
    assert "unreadable file part-0.parquet" in done[WEEK[0]].healed
    assert done[WEEK[1]].healed == "its files disagreed with the warehouse: 1 job not in the warehouse"
    assert "1 job differing in status, last_seen_at" in done[WEEK[2]].healed
    assert done[WEEK[3]].healed == "" and done[WEEK[3]].moved_aside == ()
    # A day the warehouse holds nothing of: its unreadable file is moved aside, its readable rows are left.
    assert done[other_day].healed.startswith("unreadable file part-0.parquet") and done[other_day].rows == 0
    assert not store.has_files(other_day)
    assert (done[ONLY_IN_PARQUET].healed, done[ONLY_IN_PARQUET].parquet_only) == ("", 20)
    assert len(store.read_days([ONLY_IN_PARQUET])) == 20
    assert done[WEEK[0]].metadata()["healed"] is True and done[WEEK[3]].metadata() == {
        "rows": warehouse.count_by_day([WEEK[3]])[WEEK[3]], "healed": False}
    assert [path.read_bytes() for path in done[WEEK[0]].moved_aside] == [cut]
    dataset = dataset_as_pandas_reads_it(store)
    pd.testing.assert_frame_equal(dataset[dataset["created_date"] != ONLY_IN_PARQUET].reset_index(drop=True),
                                  warehouse_rows(warehouse, WEEK))


def test_a_snapshot_only_older_than_the_warehouse_is_written_not_healed(store, warehouse):
    later = jobs(400, DAY, 7, seed=3, seen=SEEN + timedelta(days=1)).assign(status="Completed")
    warehouse.upsert(later)
    done = snapshot_days(warehouse, store, WEEK)
    assert {day: refreshed.healed for day, refreshed in done.items()} == dict.fromkeys(WEEK, "")
    assert not (store.root / "_quarantine").exists()
    assert_dataset_equals_warehouse(store, warehouse, WEEK)


def test_a_heal_that_fails_while_writing_leaves_every_day_as_it_was(store, warehouse, monkeypatch):
    truncate(store, WEEK[0])
    edit_rows(store, WEEK[1], plant_job)
    before = {path: data for path, data in files_below(store, "dds_jobs").items() if not path.endswith(".lock")}
    fail_writes_from(2, monkeypatch)
    with pytest.raises(OSError, match="disk full"):
        snapshot_days(warehouse, store, WEEK[:3])
    monkeypatch.undo()
    after = {path: data for path, data in files_below(store, "dds_jobs").items() if not path.endswith(".lock")}
    assert after == before
    healed = snapshot_days(warehouse, store, WEEK[:3])
    assert [bool(healed[day].healed) for day in WEEK[:3]] == [True, True, False]


def test_a_plain_write_refuses_a_day_with_an_unreadable_file_naming_it(store):
    (store.day_path(DAY) / "junk.parquet").write_bytes(GARBAGE)
    before = files_below(store)
    with pytest.raises(UnreadableDayError, match=r"2026-11-01 holds unreadable file\(s\): junk.parquet \(Parquet "
                                                 r"magic bytes not found in footer\).*verify-parquet --repair"):
        store.write_days(jobs(5, DAY, 1, seed=9))
    with pytest.raises(UnreadableDayError, match="junk.parquet"):
        store.read_days([DAY])
    assert files_below(store) == before


def test_a_file_of_another_table_is_unreadable_not_read_as_empty_jobs(store, warehouse):
    pq.write_table(pa.table({"id": ["x"], "status": ["Running"]}), day_file(store, DAY, "other.parquet"))
    found = store.read_day_files(DAY)
    assert found.unreadable == {day_file(store, DAY, "other.parquet"): "not a dds_jobs file: no column project_id, "
                                "name, instance_id, instance_name, progress_pct, fail_reason, created_at, ended_at, "
                                "duration_seconds, first_seen_at, last_seen_at, region, raw_record"}
    assert found.table.num_rows == warehouse.count_by_day([DAY])[DAY]  # part-0.parquet still reads


def test_the_comparison_takes_nulls_and_nans_as_equal_and_counts_each_difference_once():
    schema = pa.schema([("project_id", pa.string()), ("id", pa.string()), ("status", pa.string()),
                        ("progress_pct", pa.float64())])
    warehouse = pa.table([["p"] * 4, ["a", "b", "c", "d"], ["Running", None, "Completed", "Failed"],
                          [float("nan"), None, 1.0, 2.0]], schema=schema)
    files = pa.table([["p"] * 5, ["d", "c", "b", "e", "e"], ["Failed", "Failed", None, "Running", "Running"],
                      [2.0, 1.0, None, None, None]], schema=schema)
    difference = compare_rows(warehouse, files)
    assert (difference.missing, difference.extra, difference.changed, difference.doubled) == (1, 1, 1, 1)
    assert difference.changed_columns == ("status",)
    assert difference.describe() == "1 job missing, 1 job not in the warehouse, 1 job differing in status, " \
                                     "1 job held twice"
    assert compare_rows(warehouse, warehouse.take([3, 2, 1, 0])).agrees
