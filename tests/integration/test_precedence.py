"""The latest-state rule is one definition: every path that applies it (SQLite, PostgreSQL, the generic upsert on
MariaDB and on SQLite, the Parquet merge, the reduction of a batch's rows of one job) ends with the table a plain
statement of the rule (the model below) gives, on any sequence of syncs of good and degraded records."""

from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
import pandas as pd
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.records.normalize import normalize_jobs
from pipeline.records.precedence import (
    COLUMN_RULES,
    FIELD_BITS,
    INCOMPLETE,
    Merge,
    latest_states,
    merge_assignments,
)
from pipeline.records.schema import COLUMN_NAMES, conform
from pipeline.snapshots.store import ParquetStore
from tests.support.records import api_record
from pipeline.warehouse.upserts.sqlite import UpsertCounts
from tests.support.job_rows import CREATED, DAY, MONDAY
from tests.support.warehouse_helpers import stored

TERMINAL = ("Completed", "Failed")
# The columns each API field fills, and the columns of a finished state: the rule as the issue states it.
FIELD_COLUMNS = {"name": ("name",), "instance_id": ("instance_id",), "instance_name": ("instance_name",),
                 "status": ("status",), "progress": ("progress_pct",), "fail_reason": ("fail_reason",),
                 "ended_at": ("ended_at", "duration_seconds")}
SYNC_COLUMNS = ("created_at", "created_date", "region", "raw_record")  # always given by an accepted record
FINISHED = ("status", "progress_pct", "fail_reason", "ended_at", "duration_seconds")


@dataclass(frozen=True)
class Row:
    """A job's state: its column values, the API fields it does not know, and whether it comes from a record that
    lacked some field (a stored row knows every field and is complete)."""

    values: dict
    lacks: frozenset = field(default_factory=frozenset)
    incomplete: bool = False

    @property
    def terminal(self) -> bool:
        return self.values["status"] in TERMINAL and "status" not in self.lacks


def merge(stored: Row, incoming: Row) -> Row:
    """The rule, one job at a time."""
    if stored.terminal != incoming.terminal:
        wins = incoming.terminal  # a finished state beats an unfinished one, whatever the order
    else:
        wins = incoming.values["last_seen_at"] >= stored.values["last_seen_at"]  # else the later sighting
    frozen = stored.terminal and incoming.incomplete  # a finished state changes only on a complete record
    values, lacks = dict(stored.values), set(stored.lacks)
    for name, columns in [*FIELD_COLUMNS.items(), *((None, (c,)) for c in SYNC_COLUMNS)]:
        if wins and name not in incoming.lacks and not (frozen and columns[0] in FINISHED):
            values.update({column: incoming.values[column] for column in columns})
            lacks.discard(name)
    values["first_seen_at"] = min(stored.values["first_seen_at"], incoming.values["first_seen_at"])
    values["last_seen_at"] = max(stored.values["last_seen_at"], incoming.values["last_seen_at"])
    return Row(values, frozenset(lacks), incoming.incomplete if wins else stored.incomplete)


def _same(before: object, after: object) -> bool:
    return (pd.isna(before) and pd.isna(after)) if pd.isna(before) or pd.isna(after) else before == after


@dataclass
class Model:
    """The table the rule gives: per sync, each job's rows folded in order, then merged into the stored row."""

    rows: dict = field(default_factory=dict)

    def upsert(self, batch: list[Row]) -> UpsertCounts:
        folded: dict[tuple, Row] = {}
        for row in batch:
            key = (row.values["project_id"], row.values["id"])
            folded[key] = merge(folded[key], row) if key in folded else row
        inserted = finished = 0
        for key, row in folded.items():
            if key not in self.rows:
                inserted += 1
                self.rows[key] = Row(row.values)  # stored: what it does not know is stored as NULL
                continue
            before = self.rows[key]
            after = Row(merge(before, row).values)
            finished += before.terminal and not all(_same(before.values[c], after.values[c]) for c in FINISHED)
            self.rows[key] = after
        return UpsertCounts(inserted, len(folded) - inserted, finished)

    def frame(self) -> pd.DataFrame:
        rows = [self.rows[key].values for key in sorted(self.rows)]
        return conform(pd.DataFrame(rows, columns=list(COLUMN_NAMES)))


# --- Records, good and degraded ------------------------------------------------------------------------------------

STATES = [("Running", "10%", "", None), ("Running", "70%", "", None), ("Completed", "", "", 90),
          ("Completed", "", "", 120), ("Failed", "", "disk full", 90), ("Failed", "", "quota", 60),
          ("Paused", "", "", None)]
DEGRADATIONS = {  # what a record may do wrong, and the field it then does not give
    "no name": ("name", lambda r: r.pop("name")),
    "null instance_id": ("instance_id", lambda r: r.update(instance_id=None)),
    "no instance_name": ("instance_name", lambda r: r.pop("instance_name")),
    "no status": ("status", lambda r: r.pop("status")),
    "status not a string": ("status", lambda r: r.update(status=3)),
    "no progress": ("progress", lambda r: r.pop("progress")),
    "progress unreadable": ("progress", lambda r: r.update(progress="abc")),
    "no fail_reason": ("fail_reason", lambda r: r.pop("fail_reason")),
    "ended_at unreadable": ("ended_at", lambda r: r.update(ended_at="not-a-time")),
    "no ended_at": ("ended_at", lambda r: r.pop("ended_at")),
    "ended_at empty": (None, lambda r: r.update(ended_at="")),  # sent empty: a value (NULL), not unknown
}
DAYS = [DAY + timedelta(days=day) for day in range(3)]
RECORDS = st.tuples(st.integers(0, 3), st.sampled_from(STATES), st.integers(0, 1), st.integers(0, 2),
                    st.lists(st.sampled_from(sorted(DEGRADATIONS)), max_size=2, unique=True))
# Syncs at any hour in any order (late commits), each with a job met once or twice (pages overlap).
SYNCS = st.lists(st.tuples(st.integers(0, 4), st.lists(RECORDS, min_size=1, max_size=6)), min_size=1, max_size=5)


def degraded_record(job: int, state: tuple, instance: int, day: int, degradations: list[str]) -> tuple[dict, set]:
    """A record and the fields it does not give."""
    status, progress, reason, ended_after = state
    created = CREATED + timedelta(days=day)
    record = api_record(f"job-{job}", created, status=status, progress=progress, fail_reason=reason,
                        instance_id=f"instance-{instance}",
                        ended_at=created + timedelta(seconds=ended_after) if ended_after else None)
    lacks = set()
    for name in degradations:
        field_name, degrade = DEGRADATIONS[name]
        degrade(record)
        lacks |= {field_name} - {None}
    status, ended_at = record.get("status"), record.get("ended_at", "missing")
    if ended_at == "" or ended_at == "missing" and isinstance(status, str) and status not in TERMINAL:
        lacks.discard("ended_at")  # sent empty; or a job that is not finished has no end to miss
    return record, lacks


def sync_rows(sync: tuple, days_move: bool = True) -> tuple[pd.DataFrame, np.ndarray, list[Row]]:
    """One sync's normalized frame and unknown masks, and its records as the model's rows (``days_move``: a job
    may be created on another day at each sync; else each job keeps its day)."""
    hour, records = sync
    if not days_move:
        records = [(job, state, instance, job % len(DAYS), degradations)
                   for job, state, instance, _, degradations in records]
    made = [degraded_record(*record) for record in records]
    normalized = normalize_jobs([record for record, _ in made], "proj-1", MONDAY + timedelta(hours=hour),
                                region="ap-southeast-1")
    frame, unknown = normalized.frame, normalized.unknown_mask()
    rows = [Row(values, frozenset(lacks), bool(lacks)) for values, (_, lacks) in zip(frame.to_dict("records"), made)]
    return frame, unknown, rows


def check_every_sync(syncs, upsert, table) -> None:
    """``upsert(frame, unknown)`` each sync, and each time its counts and ``table()`` are the model's."""
    model = Model()
    for sync in syncs:
        frame, unknown, rows = sync_rows(sync)
        assert upsert(frame, unknown) == model.upsert(rows)
        pd.testing.assert_frame_equal(table(), model.frame())


RULE_SETTINGS = settings(max_examples=60, derandomize=True, database=None, deadline=None,
                         suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


# --- Every path, held to the model --------------------------------------------------------------------------------


def _ends_with_the_table_the_rule_defines(store) -> None:
    @RULE_SETTINGS
    @given(SYNCS)
    def same_as_the_model(syncs):
        with store.engine.begin() as connection:
            connection.execute(sa.text("DELETE FROM dds_jobs"))
        check_every_sync(syncs, store.upsert, lambda: stored(store, DAYS))

    same_as_the_model()


def test_every_warehouse_path_ends_with_the_table_the_rule_defines(warehouse):
    # SQLite's and PostgreSQL's own paths, MariaDB's generic one.
    _ends_with_the_table_the_rule_defines(warehouse)


def test_the_generic_path_on_sqlite_ends_with_the_table_the_rule_defines(generic_sqlite):
    _ends_with_the_table_the_rule_defines(generic_sqlite)


def test_the_parquet_merge_ends_with_the_table_the_rule_defines(tmp_path):
    """Parquet is written from the warehouse, whose rows know every field: its merge is the rule on such rows.
    (It merges day by day: a job that moved to another day is the snapshot's business, not the rule's.)"""
    runs = iter(range(10**6))

    @settings(RULE_SETTINGS, max_examples=30)
    @given(SYNCS)
    def same_as_the_model(syncs):
        store, model = ParquetStore(tmp_path / str(next(runs))), Model()
        for sync in syncs:
            frame, unknown, _ = sync_rows(sync, days_move=False)
            batch, _ = latest_states(frame, unknown)  # what the warehouse would have received for the sync
            store.write_days(batch)
            model.upsert([Row(values) for values in batch.to_dict("records")])
            table = store.read_days(DAYS).sort_values(["project_id", "id"], ignore_index=True)
            pd.testing.assert_frame_equal(table, model.frame())

    same_as_the_model()


@RULE_SETTINGS
@given(SYNCS)
def test_a_batch_of_several_syncs_is_reduced_by_the_rule_row_by_row(syncs):
    """latest_states on the rows of several syncs at once (the generic upsert's stored-then-incoming rows, the
    Parquet merge) folds each job's rows in order, its unknown masks included."""
    parts = [sync_rows(sync) for sync in syncs]
    frame = pd.concat([part[0] for part in parts], ignore_index=True)
    reduced, unknown = latest_states(frame, np.concatenate([part[1] for part in parts]))
    folded: dict[tuple, Row] = {}
    for row in (row for part in parts for row in part[2]):
        key = (row.values["project_id"], row.values["id"])
        folded[key] = merge(folded[key], row) if key in folded else row
    expected = [folded[key] for key in folded]  # in the order of each job's first row
    pd.testing.assert_frame_equal(reduced, conform(pd.DataFrame([row.values for row in expected])))
    lacks = [{name for name, bit in FIELD_BITS.items() if mask & bit} for mask in unknown.tolist()]
    assert lacks == [set(row.lacks) for row in expected]
    assert [bool(mask & INCOMPLETE) for mask in unknown.tolist()] == [row.incomplete for row in expected]


# --- The SQL is written from the declaration ---------------------------------------------------------------------


def test_each_column_has_one_rule_and_the_sql_leaves_out_what_a_record_lacks():
    assert tuple(rule.column for rule in COLUMN_RULES) == COLUMN_NAMES
    assigned = {text.split(" = ")[0] for text in merge_assignments("t", "i")}
    assert assigned == {rule.column for rule in COLUMN_RULES if rule.merge is not Merge.KEY}
    lacking = merge_assignments("t", "i", FIELD_BITS["ended_at"] | FIELD_BITS["name"] | INCOMPLETE)
    assert {text.split(" = ")[0] for text in lacking} == assigned - {"ended_at", "duration_seconds", "name"}
    # A record lacking a field never changes a stored finished state.
    assert all("AND NOT (COALESCE(t.status, '') IN ('Completed', 'Failed'))" in text
               for text in lacking if text.split(" = ")[0] in FINISHED)
