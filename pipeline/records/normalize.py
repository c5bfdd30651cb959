"""API job records (JSON objects whose fields are all strings) into rows of ``dds_jobs``.

Built column by column with vectorized parsing, never record by record, so a month of jobs normalizes in well
under a second. Nothing the API sent is lost: a record with a field that cannot be read keeps its original JSON in
``raw_record``; a record that cannot be keyed or placed in a day is returned in ``rejected``.

A field a record does not give (missing, null, not a string, or unreadable such as ``ended_at: "not-a-time"``) is
*unknown*: its bit is set in the row's unknown mask (precedence.py), so that it never overwrites a stored value; a
new job stores NULL there (a value that is not a string: its JSON text). A value sent empty (``""``) is data: NULL
for progress, fail_reason and ended_at. A non-terminal record without ended_at has not ended: NULL, not unknown.
"""

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import chain
from operator import itemgetter

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.records.escape import escaped_values
from pipeline.records.precedence import FIELD_BITS, INCOMPLETE, UNKNOWN_FIELDS, no_unknowns
from pipeline.records.schema import (
    ARROW_SCHEMA,
    COLUMN_NAMES,
    PANDAS_DTYPES,
    TERMINAL_STATUSES,
    TEXT_TYPES,
    series_from_arrow,
)

# The fields of the API's JobInfo object; anything else means the API changed and the record is kept raw.
KNOWN_FIELDS = (
    "id", "name", "instance_id", "instance_name", "status", "progress", "fail_reason", "created_at", "ended_at"
)
# The API's own form, e.g. 2022-09-05T06:24:14+0800; Arrow parses it (and Z, +08:00) fast, pandas the rest.
_API_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%z"
_OFFSET_AT_END = re.compile(r"(?:[Zz]|[+-]\d\d(?::?\d\d)?)$")
# A date followed by a time of day (2026-12-01T10, 20261201 10...): what a value without one lacks.
_TIME_OF_DAY = re.compile(r"^\s*\d{4}-?\d\d-?\d\d[Tt ]\d")
# The text fields as sent, stored with their NULs escaped (pipeline/records/escape.py).
ESCAPED_FIELDS = ("id", "name", "instance_id", "instance_name", "status", "fail_reason")
_ALL_FIELDS = itemgetter(*KNOWN_FIELDS)
MAX_SAMPLES = 20
_SAMPLE_CHARS = 60


@dataclass(frozen=True)
class NormalizedJobs:
    """The rows of one batch of API records.

    ``frame``: one row per accepted record (dds_jobs columns and dtypes), in the order sent; a job sent twice has
    two rows, which precedence.latest_states reduces to one. ``anomalies``: accepted records with a field that
    could not be read as documented or with fields unknown to us (their ``raw_record`` is kept). ``rejected``: the
    records without a usable id or created_at, as sent. ``anomaly_samples``: one line per kind of problem met
    (rejections included), for the log. ``unknown``: each row's unknown mask (precedence.py); None when every row
    gives every field. ``text_escaped``: the values of accepted records stored escaped (a NUL in them, or the
    escape's own ``\\x``: pipeline/records/escape.py).
    """

    frame: pd.DataFrame
    anomalies: int
    rejected: list[dict] = field(default_factory=list)
    anomaly_samples: list[str] = field(default_factory=list)
    unknown: np.ndarray | None = None
    text_escaped: int = 0

    def unknown_mask(self) -> np.ndarray:
        return no_unknowns(len(self.frame)) if self.unknown is None else self.unknown

    def unknown_counts(self) -> dict[str, int]:
        """Rows lacking each field (only the fields some row lacks)."""
        return unknown_counts(self.unknown_mask())


def unknown_counts(unknown: np.ndarray) -> dict[str, int]:
    """Rows of the unknown masks ``unknown`` lacking each field (only the fields some row lacks)."""
    if not unknown.any():
        return {}
    counts = {name: int(((unknown & bit) != 0).sum()) for name, bit in FIELD_BITS.items()}
    return {name: count for name, count in counts.items() if count}


class _Findings:
    """Which records are rejected or anomalous, and one line per kind of problem.

    Rejections are flagged first; a rejected record is not also counted under later anomalies.
    """

    def __init__(self, ids: np.ndarray) -> None:
        self.ids = ids
        self.anomalous = np.zeros(len(ids), dtype=bool)
        self.rejected = np.zeros(len(ids), dtype=bool)
        self.unknown = no_unknowns(len(ids))
        self.samples: list[str] = []

    def lacks(self, mask: np.ndarray, what: str, values: np.ndarray | None, problem: str) -> None:
        """Records that do not give the field ``what``: anomalies, with the field unknown in their row."""
        self.flag(mask, what, values, problem)
        self.unknown[mask] |= FIELD_BITS[what]

    def flag(self, mask: np.ndarray, what: str, values: np.ndarray | None, problem: str, reject: bool = False) -> None:
        mask = mask & ~self.rejected
        count = int(mask.sum())
        if not count:
            return
        (self.rejected if reject else self.anomalous)[mask] = True
        if len(self.samples) < MAX_SAMPLES:
            row = int(np.argmax(mask))
            example = f"job {_short(self.ids[row])}" + ("" if values is None else f", {what}={_short(values[row])}")
            outcome = "rejected" if reject else "kept"
            self.samples.append(f"{what} {problem}: {count} record(s) {outcome}; first: {example}")


def normalize_jobs(
    records: Sequence[dict], project_id: str, seen_at: datetime, region: str | None = None
) -> NormalizedJobs:
    """Rows for ``records`` of ``project_id`` read at ``seen_at``; see NormalizedJobs for what comes back."""
    _check_arguments(records, project_id, seen_at, region)
    n = len(records)
    objects, not_objects = _only_objects(records)
    raw, raw_complete, kinds = _fields(objects)
    all_text = kinds <= TEXT_TYPES
    findings = _Findings(raw["id"])
    findings.flag(not_objects, "record", None, "is not a JSON object", reject=True)
    ids, _ = _text(raw["id"], "id", findings, all_text)
    findings.flag(_blank(ids), "id", raw["id"], "is missing or empty", reject=True)
    created_text, _ = _text(raw["created_at"], "created_at", findings, all_text)
    created_at, blank, unreadable = _timestamps(created_text, "created_at", raw["created_at"], findings)
    findings.flag(blank, "created_at", raw["created_at"], "is missing or empty", reject=True)
    findings.flag(unreadable, "created_at", raw["created_at"], "is not a timestamp", reject=True)
    text, odd = {}, {}
    for name in UNKNOWN_FIELDS:
        text[name], odd[name] = _text(raw[name], name, findings, all_text, unknown=True)
    # Most batches hold no null at all, and looking for them in every column took a tenth of the time.
    absent = {name: _nulls(raw[name]) for name in UNKNOWN_FIELDS} if type(None) in kinds else {}
    for name in ("name", "instance_id", "instance_name", "status", "fail_reason", "progress"):
        if name in absent:
            findings.lacks(absent[name], name, None, "is missing or null; the stored value is kept")
    ended_at, _, unreadable = _timestamps(text["ended_at"], "ended_at", raw["ended_at"], findings)
    findings.lacks(unreadable & ~odd["ended_at"], "ended_at", raw["ended_at"],
                   "is not a timestamp; the stored value is kept (NULL for a new job)")
    if "ended_at" in absent:
        # A job that is still running has no end: the API may leave the field out or null then.
        findings.lacks(absent["ended_at"] & ~_not_ended(text["status"], odd["status"]), "ended_at", None,
                       "is missing or null; the stored value is kept")
    duration = (ended_at - created_at).dt.total_seconds().to_numpy(copy=True)
    negative = duration < 0
    findings.flag(negative, "ended_at", raw["ended_at"], "is before created_at; duration left NULL")
    duration[negative] = np.nan
    progress = _progress(text["progress"], odd["progress"], findings)
    text["id"] = ids
    text_escaped = _escaped(text, findings)
    findings.flag(_with_unknown_fields(objects, raw_complete), "record", None, "has fields unknown to this version")
    unknown = findings.unknown
    unknown[unknown != 0] |= INCOMPLETE

    keep_raw = findings.anomalous & ~findings.rejected
    seen = pd.DatetimeIndex([seen_at]).tz_convert("UTC").as_unit("us").repeat(n)
    columns = {
        "project_id": np.full(n, project_id, dtype=object),
        "id": text["id"],
        **{name: text[name] for name in ("name", "instance_id", "instance_name", "status")},
        "progress_pct": progress,
        "fail_reason": np.where(_blank(text["fail_reason"]), None, text["fail_reason"]),
        "created_at": created_at,
        "ended_at": ended_at,
        "duration_seconds": duration,
        "created_date": pd.array(pc.cast(pa.array(created_at), pa.date32()), dtype=PANDAS_DTYPES["created_date"]),
        "first_seen_at": seen,
        "last_seen_at": seen,
        "region": np.full(n, region, dtype=object),
        "raw_record": _raw_records(records, keep_raw),
    }
    kept = ~findings.rejected
    # copy=False: the frame copies every column into its blocks anyway.
    frame = pd.DataFrame(
        {name: pd.Series(columns[name], dtype=PANDAS_DTYPES[name], copy=False) for name in COLUMN_NAMES}
    )
    if findings.rejected.any():
        frame = frame.loc[kept].reset_index(drop=True)
        unknown = unknown[kept]
    return NormalizedJobs(
        frame=frame,
        anomalies=int(keep_raw.sum()),
        rejected=[records[i] for i in np.flatnonzero(findings.rejected)],
        anomaly_samples=findings.samples,
        unknown=unknown if unknown.any() else None,
        text_escaped=text_escaped,
    )


def _escaped(text: dict[str, np.ndarray], findings: _Findings) -> int:
    """Escape the NULs of the ESCAPED_FIELDS of ``text`` in place (their records keep their raw_record); how many
    values of accepted records changed."""
    changed_values = 0
    for name in ESCAPED_FIELDS:
        sent = text[name]
        text[name], changed = escaped_values(sent)
        findings.flag(changed, name, sent, "holds a NUL character (or the text \\x); stored escaped, NUL as "
                      "\\x00 (docs/warehouse.md)")
        changed_values += int((changed & ~findings.rejected).sum())
    return changed_values


def _check_arguments(records: object, project_id: object, seen_at: object, region: object) -> None:
    if isinstance(records, (str, bytes, dict)) or not isinstance(records, Sequence):
        raise ValueError(f"records must be a list of job objects, got {type(records).__name__}")
    if not isinstance(project_id, str) or not project_id.strip():
        raise ValueError(f"project_id must be a non-empty string, got {project_id!r}")
    if not isinstance(seen_at, datetime) or seen_at.utcoffset() is None:
        raise ValueError(f"seen_at must be a timezone-aware datetime, got {seen_at!r}")
    if region is not None and not isinstance(region, str):
        raise ValueError(f"region must be a string or None, got {type(region).__name__}")


def _only_objects(records: Sequence[object]) -> tuple[Sequence[dict], np.ndarray]:
    """The records with anything that is not a JSON object replaced by {}, and where those were."""
    if set(map(type, records)) <= {dict}:
        return records, np.zeros(len(records), dtype=bool)
    not_objects = np.fromiter((type(r) is not dict for r in records), dtype=bool, count=len(records))
    return [r if type(r) is dict else {} for r in records], not_objects


def _fields(objects: Sequence[dict]) -> tuple[dict[str, np.ndarray], bool, set[type]]:
    """Every known field of every record (None where missing) as object arrays, read in one pass over the records;
    whether every record had every known field; the types of the values the fields hold."""
    count = len(objects) * len(KNOWN_FIELDS)
    complete = True
    try:
        values = np.fromiter(chain.from_iterable(map(_ALL_FIELDS, objects)), dtype=object, count=count)
    except KeyError:
        complete = False
        values = np.fromiter(chain.from_iterable(map(_known_values, objects)), dtype=object, count=count)
    matrix = values.reshape(len(objects), len(KNOWN_FIELDS))
    columns = {name: matrix[:, j] for j, name in enumerate(KNOWN_FIELDS)}
    # The API sends only strings: pandas' compiled scan tells that three times faster than collecting the types.
    kinds = {str} if pd.api.types.infer_dtype(values, skipna=False) == "string" else set(map(type, values))
    return columns, complete, kinds


def _known_values(record: dict) -> tuple:
    return tuple(map(record.get, KNOWN_FIELDS))


def _text(
    values: np.ndarray, name: str, findings: _Findings, all_text: bool, unknown: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """A field as Python strings or None, anything else the record holds there as its JSON text; and where it held
    something else (``unknown``: the field is then unknown in those rows)."""
    if all_text or set(map(type, values)) <= TEXT_TYPES:
        return values, np.zeros(len(values), dtype=bool)
    odd = np.fromiter((v is not None and type(v) is not str for v in values), dtype=bool, count=len(values))
    if unknown:
        findings.lacks(odd, name, values, "is not a string; the stored value is kept (a new job stores its JSON text)")
    else:
        findings.flag(odd, name, values, "is not a string; stored as its JSON text")
    values = values.copy()
    values[odd] = [json.dumps(v, ensure_ascii=False, default=str) for v in values[odd]]
    return values, odd


def _timestamps(
    text: np.ndarray, name: str, values: np.ndarray, findings: _Findings
) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """UTC instants of a timestamp field's ``text`` (NaT where blank or unreadable), where it is blank (None or
    ""), and where it is unreadable; a value read without a UTC offset is flagged (``values``: as sent)."""
    arrow_text = pa.array(text, type=pa.string())
    blank = pc.fill_null(pc.equal(arrow_text, ""), True)
    present = ~blank.to_numpy(zero_copy_only=False)
    instants, without_time, without_offset = _instants(text, pc.if_else(blank, None, arrow_text))
    # The API's form carries a time and an offset: anything else is a guess, kept with its record.
    findings.flag(without_time, name, values, "has no time of day; read as midnight UTC")
    findings.flag(without_offset & ~without_time, name, values, "has no UTC offset; read as UTC")
    return instants, ~present, present & instants.isna().to_numpy()


def _not_ended(status: np.ndarray, odd: np.ndarray) -> np.ndarray:
    """Records whose status is given and not terminal (e.g. Running)."""
    return pd.notna(status) & ~odd & ~pd.Series(status, dtype=object).isin(TERMINAL_STATUSES).to_numpy()


def _instants(text: np.ndarray, present: pa.Array) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """The instants of the ``present`` values (text, null where blank), NaT where unreadable; where a value was read
    without a time of day (a date only), and where without a UTC offset."""
    without_time = np.zeros(len(text), dtype=bool)
    without_offset = np.zeros(len(text), dtype=bool)
    try:
        # Every value in an ISO 8601 form with an offset, as the API sends them: one cast, a quarter of strptime's
        # time. A value without offset or naming an impossible date fails the whole cast and is read below.
        return series_from_arrow(present.cast(ARROW_SCHEMA.field("created_at").type)), without_time, without_offset
    except pa.ArrowInvalid:
        pass
    parsed = pc.strptime(present, format=_API_TIME_FORMAT, unit="us", error_is_null=True)
    # Arrow's strptime rolls a day past the month's end over into the next month (2026-02-30 reads as 2 March):
    # such a value names no instant.
    read = np.flatnonzero(parsed.is_valid().to_numpy(zero_copy_only=False))
    impossible = np.zeros(len(text), dtype=bool)
    impossible[read] = [not _is_calendar_date(value[:10]) for value in text[read]]
    if impossible.any():
        parsed = pc.if_else(pa.array(impossible), None, parsed)
    instants = pd.Series(parsed.to_numpy(zero_copy_only=False)).dt.tz_localize("UTC")
    other_form = np.flatnonzero(present.is_valid().to_numpy(zero_copy_only=False) & instants.isna().to_numpy())
    if len(other_form):
        others = pd.to_datetime(text[other_form], format="ISO8601", utc=True, errors="coerce", cache=False)
        instants.iloc[other_form] = others.as_unit("us")
        read_so = others.notna()
        # A date alone ends in digits an offset could end in (2026-12-01): without a time there is no offset.
        without_time[other_form] = read_so & [_TIME_OF_DAY.match(v) is None for v in text[other_form]]
        without_offset[other_form] = read_so & [_OFFSET_AT_END.search(v) is None for v in text[other_form]]
    return instants.astype(PANDAS_DTYPES["created_at"]), without_time, without_offset


def _is_calendar_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _progress(text: np.ndarray, odd: np.ndarray, findings: _Findings) -> np.ndarray:
    """'60%' as 60.0; empty or missing as NULL; anything not a percentage from 0 to 100 as NULL, unknown (``odd``:
    values that were no string, already unknown)."""
    present = ~_blank(text)
    percent = np.full(len(text), np.nan)
    if present.any():
        stripped = pd.Series([v.strip().removesuffix("%") for v in text[present]], dtype=object)
        number = pd.to_numeric(stripped, errors="coerce").astype(float)
        percent[present] = number.where((number >= 0) & (number <= 100)).to_numpy()
    findings.lacks(present & np.isnan(percent) & ~odd, "progress", text,
                   "is not a percentage from 0 to 100; the stored value is kept (NULL for a new job)")
    return percent


def _with_unknown_fields(objects: Sequence[dict], complete: bool) -> np.ndarray:
    """Records holding fields beyond the known ones (``complete``: every record holds every known field)."""
    if complete and max(map(len, objects), default=0) <= len(KNOWN_FIELDS):
        return np.zeros(len(objects), dtype=bool)
    unknown = set().union(*objects).difference(KNOWN_FIELDS)
    if not unknown:
        return np.zeros(len(objects), dtype=bool)
    return np.fromiter((not unknown.isdisjoint(r) for r in objects), dtype=bool, count=len(objects))


def _blank(text: np.ndarray) -> np.ndarray:
    """None or "" (the array holds only strings and None)."""
    return ~text.astype(bool)


def _nulls(text: np.ndarray) -> np.ndarray:
    return text == None  # noqa: E711 - elementwise on an object array holding only strings and None


def _raw_records(records: Sequence[object], keep: np.ndarray) -> np.ndarray:
    """The JSON text of the records to keep as sent, None for the others."""
    raw = np.full(len(records), None, dtype=object)
    rows = np.flatnonzero(keep)
    raw[rows] = [json.dumps(records[i], ensure_ascii=False, default=str) for i in rows]
    return raw


def _short(value: object) -> str:
    shown = repr(value)
    return shown if len(shown) <= _SAMPLE_CHARS else shown[: _SAMPLE_CHARS - 3] + "..."
