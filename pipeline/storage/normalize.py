"""API job records (JSON objects whose fields are all strings) into rows of ``dds_jobs``.

Built column by column with vectorized parsing, never record by record, so a month of jobs normalizes in well
under a second. Nothing the API sent is lost: a field that cannot be read becomes NULL and the record keeps its
original JSON in ``raw_record``; a record that cannot be keyed or placed in a day is returned in ``rejected``.
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

from pipeline.storage.precedence import latest_state_per_key
from pipeline.storage.schema import ARROW_SCHEMA, COLUMN_NAMES, PANDAS_DTYPES, TEXT_TYPES, series_from_arrow

# The fields of the API's JobInfo object; anything else means the API changed and the record is kept raw.
KNOWN_FIELDS = (
    "id", "name", "instance_id", "instance_name", "status", "progress", "fail_reason", "created_at", "ended_at"
)
# Always sent by the API: a record without one of these is stored but marked anomalous.
EXPECTED_TEXT_FIELDS = ("name", "instance_id", "instance_name", "status")
# The API's own form, e.g. 2022-09-05T06:24:14+0800; Arrow parses it (and Z, +08:00) fast, pandas the rest.
_API_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%z"
_OFFSET_AT_END = re.compile(r"(?:[Zz]|[+-]\d\d(?::?\d\d)?)$")
_ALL_FIELDS = itemgetter(*KNOWN_FIELDS)
MAX_SAMPLES = 20
_SAMPLE_CHARS = 60


@dataclass(frozen=True)
class NormalizedJobs:
    """The rows of one batch of API records.

    ``frame``: one row per distinct job id (dds_jobs columns and dtypes). ``anomalies``: accepted records with a
    field that could not be read as documented or with fields unknown to us (their ``raw_record`` is kept).
    ``rejected``: the records without a usable id or created_at, as sent. ``anomaly_samples``: one line per kind
    of problem met (rejections included), for the log.
    """

    frame: pd.DataFrame
    anomalies: int
    rejected: list[dict] = field(default_factory=list)
    anomaly_samples: list[str] = field(default_factory=list)


class _Findings:
    """Which records are rejected or anomalous, and one line per kind of problem.

    Rejections are flagged first; a rejected record is not also counted under later anomalies.
    """

    def __init__(self, ids: np.ndarray) -> None:
        self.ids = ids
        self.anomalous = np.zeros(len(ids), dtype=bool)
        self.rejected = np.zeros(len(ids), dtype=bool)
        self.samples: list[str] = []

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
    ids = _text(raw["id"], "id", findings, all_text)
    findings.flag(_blank(ids), "id", raw["id"], "is missing or empty", reject=True)
    created_at = _timestamps(raw["created_at"], "created_at", findings, all_text, required=True)
    text = {name: _text(raw[name], name, findings, all_text) for name in (*EXPECTED_TEXT_FIELDS, "fail_reason")}
    # Most batches hold no null at all, and looking for them in every column took a tenth of the time.
    for name in EXPECTED_TEXT_FIELDS if type(None) in kinds else ():
        findings.flag(_nulls(text[name]), name, None, "is missing")
    ended_at = _timestamps(raw["ended_at"], "ended_at", findings, all_text, required=False)
    duration = (ended_at - created_at).dt.total_seconds().to_numpy(copy=True)
    negative = duration < 0
    findings.flag(negative, "ended_at", raw["ended_at"], "is before created_at; duration left NULL")
    duration[negative] = np.nan
    progress = _progress(_text(raw["progress"], "progress", findings, all_text), findings)
    findings.flag(_with_unknown_fields(objects, raw_complete), "record", None, "has fields unknown to this version")

    keep_raw = findings.anomalous & ~findings.rejected
    seen = pd.DatetimeIndex([seen_at]).tz_convert("UTC").as_unit("us").repeat(n)
    columns = {
        "project_id": np.full(n, project_id, dtype=object),
        "id": ids,
        **{name: text[name] for name in EXPECTED_TEXT_FIELDS},
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
    if len(set(ids[kept])) < len(frame):
        frame = latest_state_per_key(frame)
    return NormalizedJobs(
        frame=frame,
        anomalies=int(keep_raw.sum()),
        rejected=[records[i] for i in np.flatnonzero(findings.rejected)],
        anomaly_samples=findings.samples,
    )


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


def _text(values: np.ndarray, name: str, findings: _Findings, all_text: bool) -> np.ndarray:
    """A field as Python strings or None; anything else the record holds there is stored as its JSON text."""
    if all_text or set(map(type, values)) <= TEXT_TYPES:
        return values
    odd = np.fromiter((v is not None and type(v) is not str for v in values), dtype=bool, count=len(values))
    findings.flag(odd, name, values, "is not a string; stored as its JSON text")
    values = values.copy()
    values[odd] = [json.dumps(v, ensure_ascii=False, default=str) for v in values[odd]]
    return values


def _timestamps(values: np.ndarray, name: str, findings: _Findings, all_text: bool, required: bool) -> pd.Series:
    """UTC instants of a timestamp field; a missing, empty or unreadable optional field gives NaT."""
    text = _text(values, name, findings, all_text)
    arrow_text = pa.array(text, type=pa.string())
    blank = pc.fill_null(pc.equal(arrow_text, ""), True)
    present = ~blank.to_numpy(zero_copy_only=False)
    instants, without_offset = _instants(text, pc.if_else(blank, None, arrow_text))
    unreadable = present & instants.isna().to_numpy()
    if required:
        findings.flag(~present, name, values, "is missing or empty", reject=True)
        findings.flag(unreadable, name, values, "is not a timestamp", reject=True)
    else:
        findings.flag(unreadable, name, values, "is not a timestamp; stored as NULL")
    findings.flag(without_offset, name, values, "has no UTC offset; read as UTC")
    return instants


def _instants(text: np.ndarray, present: pa.Array) -> tuple[pd.Series, np.ndarray]:
    """The instants of the ``present`` values (text, null where blank), NaT where unreadable; and where a value was
    read without a UTC offset."""
    without_offset = np.zeros(len(text), dtype=bool)
    try:
        # Every value in an ISO 8601 form with an offset, as the API sends them: one cast, a quarter of strptime's
        # time. A value without offset or naming an impossible date fails the whole cast and is read below.
        return series_from_arrow(present.cast(ARROW_SCHEMA.field("created_at").type)), without_offset
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
        without_offset[other_form] = others.notna() & [_OFFSET_AT_END.search(v) is None for v in text[other_form]]
    return instants.astype(PANDAS_DTYPES["created_at"]), without_offset


def _is_calendar_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _progress(text: np.ndarray, findings: _Findings) -> np.ndarray:
    """'60%' as 60.0; empty or missing as NULL; anything not a percentage from 0 to 100 as NULL, flagged."""
    present = ~_blank(text)
    percent = np.full(len(text), np.nan)
    if present.any():
        stripped = pd.Series([v.strip().removesuffix("%") for v in text[present]], dtype=object)
        number = pd.to_numeric(stripped, errors="coerce").astype(float)
        percent[present] = number.where((number >= 0) & (number <= 100)).to_numpy()
    findings.flag(present & np.isnan(percent), "progress", text, "is not a percentage from 0 to 100; stored as NULL")
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
