"""The latest-state rule: what a stored row of a job becomes when another record of the job arrives. The one
definition; every path takes it from here (the SQL of SQLite and PostgreSQL, the generic upsert, the Parquet merge
and the reduction of a batch's rows of one job).

The API answers with a job's state at the time it is asked, answers may arrive out of order (a re-sync of an old
partition, pages read while the job moves on), and a record may come degraded (a field missing, null, not a
string, or unreadable such as ``ended_at: "not-a-time"``). The rule, per row and then per column:

- **Which state wins.** A terminal state (TERMINAL_STATUSES) is final: it beats a non-terminal one whatever the
  order. Between two states of equal rank the later sighting (last_seen_at) wins, and on a tie the incoming row.
  A record whose status is unknown ranks as non-terminal.
- **Field by field.** A column takes the winner's value, except where the incoming record did not give its field
  (its bit in the row's *unknown* mask): that column keeps the stored value. A stored row knows all its fields.
  ``""`` is a value (progress, fail_reason, ended_at: NULL), never unknown.
- **Finished jobs.** When the stored state is terminal, its finished state (FINISHED columns: status, progress,
  fail_reason, ended_at, duration) changes only on a complete record: one without any unknown field.
- first_seen_at keeps the earliest sighting and last_seen_at the latest, whichever state wins.

COLUMN_RULES declares each column's part; ``merge_assignments`` writes them as SQL for one unknown mask, and
``latest_states`` applies them to frames. Rows of one job in one batch are folded in row order by the same rule
(the earlier row in the role of the stored one), and the result merged into what is stored.
"""

import enum
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.records.schema import KEY_COLUMNS, TERMINAL_STATUSES

# The API fields whose value a record may fail to give: missing, null, not a string, or unreadable. One bit each
# in a row's unknown mask, and INCOMPLETE: the row's state comes from a record that lacked some field.
UNKNOWN_FIELDS = ("name", "instance_id", "instance_name", "status", "progress", "fail_reason", "ended_at")
FIELD_BITS = {name: 1 << position for position, name in enumerate(UNKNOWN_FIELDS)}
INCOMPLETE = 1 << len(UNKNOWN_FIELDS)
UNKNOWN_DTYPE = np.dtype(np.uint16)


class Merge(enum.Enum):
    """How a column of a stored row and of an incoming row of the same job become one value."""

    KEY = "the job's identity; never changes"
    EARLIEST = "the earlier of the two"
    LATEST = "the later of the two"
    STATE = "the winning state's value, unless the incoming record did not give it"
    FINISHED = "as STATE; when the stored state is terminal, only a complete record changes it"


@dataclass(frozen=True)
class ColumnRule:
    """One column's part in the rule; ``field`` is the API field it is read from (its bit in the unknown mask)."""

    column: str
    merge: Merge
    field: str | None = None

    @property
    def bit(self) -> int:
        return FIELD_BITS[self.field] if self.field else 0


COLUMN_RULES: tuple[ColumnRule, ...] = (
    ColumnRule("project_id", Merge.KEY),
    ColumnRule("id", Merge.KEY),
    ColumnRule("name", Merge.STATE, "name"),
    ColumnRule("instance_id", Merge.STATE, "instance_id"),
    ColumnRule("instance_name", Merge.STATE, "instance_name"),
    ColumnRule("status", Merge.FINISHED, "status"),
    ColumnRule("progress_pct", Merge.FINISHED, "progress"),
    ColumnRule("fail_reason", Merge.FINISHED, "fail_reason"),
    ColumnRule("created_at", Merge.STATE),
    ColumnRule("ended_at", Merge.FINISHED, "ended_at"),
    ColumnRule("duration_seconds", Merge.FINISHED, "ended_at"),
    ColumnRule("created_date", Merge.STATE),
    ColumnRule("first_seen_at", Merge.EARLIEST),
    ColumnRule("last_seen_at", Merge.LATEST),
    ColumnRule("region", Merge.STATE),
    ColumnRule("raw_record", Merge.STATE),
)
RULES_BY_COLUMN = {rule.column: rule for rule in COLUMN_RULES}
FINISHED_COLUMNS = tuple(rule.column for rule in COLUMN_RULES if rule.merge is Merge.FINISHED)


def incoming_wins(stored_terminal, incoming_terminal, stored_seen, incoming_seen):
    """Whether the incoming state replaces the stored one (scalars or arrays): a terminal state beats a
    non-terminal one; between equal ranks the later sighting, on a tie the incoming one."""
    same_rank = np.equal(stored_terminal, incoming_terminal)
    return np.greater(incoming_terminal, stored_terminal) | (same_rank & np.greater_equal(incoming_seen, stored_seen))


# --- The rule in SQL ----------------------------------------------------------------------------------------------


def sql_quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def terminal_sql(row: str) -> str:
    """SQL: whether the status of ``row`` (a table name or alias) is terminal (a NULL status is not)."""
    return f"COALESCE({row}.status, '') IN ({', '.join(sql_quoted(s) for s in TERMINAL_STATUSES)})"


def incoming_wins_sql(stored: str, incoming: str, unknown: int = 0) -> str:
    """SQL of incoming_wins for a stored and an incoming row whose unknown mask is ``unknown``."""
    later = f"{incoming}.last_seen_at >= {stored}.last_seen_at"
    incoming_terminal = "FALSE" if unknown & FIELD_BITS["status"] else terminal_sql(incoming)
    # A stored terminal state yields only to a terminal one seen later; a stored non-terminal state yields to any
    # terminal one, or to anything seen later.
    return (f"CASE WHEN {terminal_sql(stored)} THEN {incoming_terminal} AND {later}"
            f" ELSE {incoming_terminal} OR {later} END")


def merge_assignments(stored: str, incoming: str, unknown: int = 0) -> list[str]:
    """``column = expression`` for every column the rule may change, for an incoming row whose unknown mask is
    ``unknown`` (a column whose field it lacks is left out: it keeps the stored value)."""
    wins = incoming_wins_sql(stored, incoming, unknown)
    if unknown & INCOMPLETE:
        finished_wins = f"({wins}) AND NOT ({terminal_sql(stored)})"
    else:
        finished_wins = wins
    conditions = {
        Merge.EARLIEST: "{incoming}.{column} < {stored}.{column}",
        Merge.LATEST: "{incoming}.{column} > {stored}.{column}",
        Merge.STATE: wins,
        Merge.FINISHED: finished_wins,
    }
    assignments = []
    for rule in COLUMN_RULES:
        if rule.merge is Merge.KEY or unknown & rule.bit:
            continue
        condition = conditions[rule.merge].format(incoming=incoming, stored=stored, column=rule.column)
        assignments.append(f"{rule.column} = CASE WHEN {condition} THEN {incoming}.{rule.column}"
                           f" ELSE {stored}.{rule.column} END")
    return assignments


def finished_unchanged_sql(stored: str, incoming: str, same: str, columns: tuple[str, ...]) -> str:
    """SQL: the stored state is not terminal, or ``incoming`` holds the same values in ``columns`` (finished
    columns); ``same`` is the dialect's null-safe equality."""
    equal = " AND ".join(f"{stored}.{name} {same} {incoming}.{name}" for name in columns)
    return f"(NOT ({terminal_sql(stored)}) OR ({equal}))"


# --- The rule on frames ---------------------------------------------------------------------------------------------


def no_unknowns(rows: int) -> np.ndarray:
    """The unknown mask of ``rows`` rows that each know every field."""
    return np.zeros(rows, dtype=UNKNOWN_DTYPE)


def latest_state_per_key(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (project_id, id) of ``frame`` (rows knowing every field): see latest_states."""
    return latest_states(frame)[0]


def latest_states(frame: pd.DataFrame, unknown: np.ndarray | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """One row per (project_id, id) of ``frame``, in the order of each key's first row, and its unknown mask:
    each key's rows folded in row order by the rule (``unknown``: the rows' masks, None when they know every
    field). Stored rows followed by incoming ones give the stored rows' new state."""
    unknown = no_unknowns(len(frame)) if unknown is None else np.asarray(unknown, dtype=UNKNOWN_DTYPE)
    if len(unknown) != len(frame):
        raise ValueError(f"the unknown mask has {len(unknown)} entries for {len(frame)} rows")
    if len(frame) == 0 or _single_project_distinct_ids(frame):
        return frame, unknown
    keys = frame.groupby(list(KEY_COLUMNS), sort=False, dropna=False).ngroup().to_numpy()
    if keys.max() + 1 == len(keys):
        return frame, unknown
    fold = _Fold(frame, unknown, keys)
    return fold.result(frame), fold.unknown


class _Fold:
    """Each key's rows merged in row order, column by column, as the row each column's value comes from.

    Every value the rule keeps is one of the rows' own (first_seen_at the earliest, last_seen_at the latest), so
    the fold moves row numbers only; the values are gathered once at the end. The k-th rows of all keys are
    merged at once, in as many rounds as a key has rows at most (two, where pages overlapped)."""

    def __init__(self, frame: pd.DataFrame, unknown: np.ndarray, keys: np.ndarray) -> None:
        order = np.argsort(keys, kind="stable")
        starts = np.flatnonzero(np.r_[True, keys[order][1:] != keys[order][:-1]])
        occurrence = np.empty(len(keys), dtype=np.int64)
        occurrence[order] = np.arange(len(keys)) - np.repeat(starts, np.diff(np.r_[starts, len(keys)]))
        first_rows = order[starts]  # ngroup numbers keys by first appearance: key k's first row
        self.terminal = frame["status"].isin(TERMINAL_STATUSES).to_numpy(dtype=bool, na_value=False)
        self.instants = {name: _micros(frame[name]) for name in ("first_seen_at", "last_seen_at")}
        self.source = {rule.column: first_rows.copy() for rule in COLUMN_RULES}
        self.unknown = unknown[first_rows].copy()
        self._row_unknown = unknown
        for round_ in range(1, int(occurrence.max()) + 1):
            rows = np.flatnonzero(occurrence == round_)
            self._merge(keys[rows], rows)

    def _known(self, mask: np.ndarray, field: str) -> np.ndarray:
        return (mask & FIELD_BITS[field]) == 0

    def _merge(self, keys: np.ndarray, rows: np.ndarray) -> None:
        """Merge ``rows`` (one per key) into the kept state of ``keys``."""
        kept_unknown, row_unknown = self.unknown[keys], self._row_unknown[rows]
        kept_terminal = self.terminal[self.source["status"][keys]] & self._known(kept_unknown, "status")
        row_terminal = self.terminal[rows] & self._known(row_unknown, "status")
        seen = self.instants["last_seen_at"]
        wins = incoming_wins(kept_terminal, row_terminal, seen[self.source["last_seen_at"][keys]], seen[rows])
        frozen = kept_terminal & ((row_unknown & INCOMPLETE) != 0)
        merged_unknown = np.where(wins, row_unknown, kept_unknown) & INCOMPLETE
        for rule in COLUMN_RULES:
            if rule.merge is Merge.KEY:
                continue
            kept = self.source[rule.column][keys]
            if rule.merge is Merge.LATEST:
                take = self.instants[rule.column][rows] > self.instants[rule.column][kept]
            elif rule.merge is Merge.EARLIEST:
                take = self.instants[rule.column][rows] < self.instants[rule.column][kept]
            else:
                take = wins & ((row_unknown & rule.bit) == 0)
                if rule.merge is Merge.FINISHED:
                    take &= ~frozen
                merged_unknown |= np.where(take, 0, kept_unknown & rule.bit).astype(UNKNOWN_DTYPE)
            self.source[rule.column][keys] = np.where(take, rows, kept)
        self.unknown[keys] = merged_unknown

    def result(self, frame: pd.DataFrame) -> pd.DataFrame:
        # Most columns come from the same rows (the winning ones): taken together, block by block, and the other
        # columns replaced after. (All rows of a key hold the key.)
        base = self.source["status"]
        result = frame.take(base).reset_index(drop=True)
        for rule in COLUMN_RULES:
            source = self.source[rule.column]
            if rule.merge is not Merge.KEY and not np.array_equal(source, base):
                result[rule.column] = frame[rule.column].take(source).reset_index(drop=True)
        return result


def finished_changes(before: pd.DataFrame, after: pd.DataFrame) -> tuple[int, str]:
    """How many of the rows of ``before`` (stored states) with a terminal status hold other finished values in
    ``after`` (the same jobs, in the same order, afterwards), and one line describing the first."""
    differs = {}
    for name in FINISHED_COLUMNS:
        old, new = before[name].reset_index(drop=True), after[name].reset_index(drop=True)
        differs[name] = ~((old == new).to_numpy(dtype=bool, na_value=False) | (old.isna() & new.isna()).to_numpy())
    terminal = before["status"].isin(TERMINAL_STATUSES).to_numpy(dtype=bool, na_value=False)
    changed = terminal & np.logical_or.reduce(list(differs.values()))
    if not changed.any():
        return 0, ""
    row = int(np.argmax(changed))
    shown = ", ".join(f"{name} {_shown(before[name].iloc[row])} -> {_shown(after[name].iloc[row])}"
                      for name in FINISHED_COLUMNS if differs[name][row])
    return int(changed.sum()), f"job {before['id'].iloc[row]!r} (project {before['project_id'].iloc[row]!r}): {shown}"


def _shown(value: object) -> str:
    if pd.isna(value):
        return "NULL"
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _single_project_distinct_ids(frame: pd.DataFrame) -> bool:
    """The usual case, told apart ten times faster than by grouping: one project, and no id twice."""
    projects, ids = frame["project_id"].to_numpy(), frame["id"].to_numpy()
    return bool((projects == projects[0]).all()) and len(set(ids.tolist())) == len(ids)


def _micros(instants: pd.Series) -> np.ndarray:
    return instants.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[us]").view(np.int64)
