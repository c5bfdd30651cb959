"""normalize_jobs: API job records (all strings) into dds_jobs rows, with anomalies and rejections accounted for."""

import json
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.records.escape import escape_text, unescape_text
from pipeline.records.normalize import normalize_jobs
from pipeline.records.precedence import FIELD_BITS, INCOMPLETE, latest_states
from pipeline.records.schema import COLUMN_NAMES, PANDAS_DTYPES
from tests.support.records import api_record

SEEN = datetime(2026, 11, 8, 1, 2, 3, 456789, tzinfo=timezone.utc)
CREATED = datetime(2026, 11, 1, 22, 30, tzinfo=timezone.utc)


def normalize(records: list, **kwargs):
    return normalize_jobs(records, "proj-1", SEEN, **kwargs)


def only_row(records: list) -> pd.Series:
    frame = normalize(records).frame
    assert len(frame) == 1
    return frame.iloc[0]


def test_the_documented_example_becomes_one_row():
    record = {
        "id": "2f406db7-bdc4-402f-9dc4-2c1b094a5f93", "name": "RestartReplicaSetInstance", "status": "Completed",
        "created_at": "2022-09-05T06:24:14+0000", "ended_at": "2022-09-05T06:25:43+0000", "progress": "",
        "instance_id": "1f311e6a299345d7bbc878874844e233in02", "instance_name": "dds-6be2-fwyrestore",
        "fail_reason": "",
    }
    result = normalize([record], region="ap-southeast-1")
    row = result.frame.iloc[0].to_dict()
    assert row["project_id"] == "proj-1" and row["id"] == record["id"] and row["name"] == record["name"]
    assert row["instance_id"] == record["instance_id"] and row["instance_name"] == record["instance_name"]
    assert row["status"] == "Completed" and row["region"] == "ap-southeast-1"
    assert row["created_at"] == pd.Timestamp("2022-09-05 06:24:14", tz="UTC")
    assert row["ended_at"] == pd.Timestamp("2022-09-05 06:25:43", tz="UTC")
    assert row["duration_seconds"] == 89.0
    assert row["created_date"] == date(2022, 9, 5)
    assert np.isnan(row["progress_pct"]) and row["fail_reason"] is None and row["raw_record"] is None
    assert row["first_seen_at"] == row["last_seen_at"] == pd.Timestamp(SEEN)
    assert (result.anomalies, result.rejected, result.anomaly_samples) == (0, [], [])


def test_frame_has_the_schema_columns_and_dtypes_even_when_empty():
    for records in ([], [api_record("a", CREATED)]):
        frame = normalize(records).frame
        assert list(frame.columns) == list(COLUMN_NAMES)
        assert frame.dtypes.to_dict() == PANDAS_DTYPES


@pytest.mark.parametrize(
    "text",
    ["2026-11-02T06:30:00+0800", "2026-11-01T22:30:00+0000", "2026-11-01T22:30:00Z", "2026-11-02T06:30:00+08:00",
     "2026-11-01T19:00:00-0330", "2026-11-01T22:30:00.000+0000"],
)
def test_every_offset_form_gives_the_same_utc_instant(text):
    row = only_row([{**api_record("a", CREATED), "created_at": text}])
    assert row["created_at"] == pd.Timestamp(CREATED)
    assert row["created_date"] == date(2026, 11, 1)
    assert row["raw_record"] is None


def test_created_date_is_the_utc_day_not_the_local_one():
    # 07:30 in Beijing on 2 November is still 1 November in UTC.
    row = only_row([{**api_record("a", CREATED), "created_at": "2026-11-02T07:30:00+0800"}])
    assert row["created_date"] == date(2026, 11, 1)


def test_a_timestamp_without_offset_is_read_as_utc_and_counted():
    record = {**api_record("a", CREATED), "created_at": "2026-11-01T22:30:00"}
    result = normalize([record])
    row = result.frame.iloc[0]
    assert row["created_at"] == pd.Timestamp(CREATED)
    assert result.anomalies == 1 and json.loads(row["raw_record"]) == record
    assert "created_at has no UTC offset" in result.anomaly_samples[0] and "'a'" in result.anomaly_samples[0]


@pytest.mark.parametrize("text, problem", [
    ("2026-11-01", "has no time of day; read as midnight UTC"),
    ("20261101", "has no time of day; read as midnight UTC"),
    ("2026-11", "has no time of day; read as midnight UTC"),
    ("2026-11-01T00:00", "has no UTC offset; read as UTC"),
])
@pytest.mark.parametrize("field", ["created_at", "ended_at"])
def test_a_timestamp_without_time_or_offset_is_a_guess_counted_with_the_job_id(text, problem, field):
    before_midnight = datetime(2026, 10, 31, 23, tzinfo=timezone.utc)
    record = {**api_record("job-7", before_midnight, ended_at=before_midnight + timedelta(hours=2)), field: text}
    result = normalize([record, api_record("fine", CREATED)])
    row = result.frame.set_index("id").loc["job-7"]
    assert row[field] == pd.Timestamp("2026-11-01T00:00:00Z")
    assert result.anomalies == 1 and json.loads(row["raw_record"]) == record
    assert result.anomaly_samples == [f"{field} {problem}: 1 record(s) kept; first: job 'job-7', {field}={text!r}"]


_ids_with_nuls = st.text(st.sampled_from(["a", "\\", "x", "0", "5", "c", "\x00"]), max_size=12)


@given(st.text(), st.text())
def test_property_the_nul_escape_is_reversible_holds_no_nul_and_keeps_distinct_texts_apart(text, other):
    assert unescape_text(escape_text(text)) == text
    assert "\x00" not in escape_text(text)
    assert (escape_text(text) == escape_text(other)) == (text == other)


@given(_ids_with_nuls, _ids_with_nuls)
def test_property_the_escape_keeps_ids_made_of_its_own_characters_apart(text, other):
    # Texts made only of NULs, backslashes and the characters of the escapes: where a careless escape collides.
    assert unescape_text(escape_text(text)) == text
    assert (escape_text(text) == escape_text(other)) == (text == other)


@pytest.mark.parametrize("text", ["C:\\data\\new", "ends with \\", "a\\nb", "plain", "重启实例"])
def test_text_without_a_nul_or_the_escape_is_stored_as_sent(text):
    assert escape_text(text) == text


def test_ids_differing_only_by_a_nul_stay_distinct_and_keep_their_records():
    records = [api_record(job_id, CREATED, name="Re\x00start") for job_id in ("a", "a\x00", "a\\x00")]
    result = normalize(records)
    frame = result.frame
    assert frame["id"].tolist() == ["a", "a\\x00", "a\\x5cx00"]
    assert frame["name"].tolist() == ["Re\\x00start"] * 3
    assert [unescape_text(job_id) for job_id in frame["id"]] == [r["id"] for r in records]
    # 3 names and 2 ids escaped; each changed record keeps its original, whose JSON holds no NUL character.
    assert result.text_escaped == 5 and result.anomalies == 3
    assert [json.loads(raw) for raw in frame["raw_record"]] == records
    assert not any("\x00" in raw for raw in frame["raw_record"])


@pytest.mark.parametrize("progress, expected", [("60%", 60.0), ("0%", 0.0), ("100%", 100.0), ("12.5%", 12.5)])
def test_progress_percent_becomes_a_number(progress, expected):
    row = only_row([api_record("a", CREATED, status="Running", progress=progress)])
    assert row["progress_pct"] == expected and row["raw_record"] is None


@pytest.mark.parametrize("field", ["progress", "fail_reason", "ended_at"])
def test_an_optional_field_sent_empty_is_null_and_known(field):
    result = normalize([{**api_record("a", CREATED, status="Running"), field: ""}])
    row = result.frame.iloc[0]
    assert pd.isna(row[{"progress": "progress_pct"}.get(field, field)]) and pd.isna(row["duration_seconds"])
    assert result.anomalies == 0 and result.unknown is None and row["raw_record"] is None


@pytest.mark.parametrize("status", ["Running", "Completed"])
@pytest.mark.parametrize("field", ["name", "instance_id", "instance_name", "status", "progress", "fail_reason",
                                   "ended_at"])
@pytest.mark.parametrize("value", [None, "missing"])
def test_a_null_or_missing_field_is_unknown_and_an_anomaly(field, value, status):
    record = api_record("a", CREATED, status=status)
    if value == "missing":
        del record[field]
    else:
        record[field] = value
    result = normalize([record])
    row = result.frame.iloc[0]
    column = {"progress": "progress_pct"}.get(field, field)
    assert pd.isna(row[column])
    if field == "ended_at" and status == "Running":  # a job still running has no end: nothing is missing
        assert result.anomalies == 0 and result.unknown is None
        return
    assert result.unknown.tolist() == [FIELD_BITS[field] | INCOMPLETE]
    assert result.unknown_counts() == {field: 1}
    assert result.anomalies == 1 and json.loads(row["raw_record"]) == record
    assert f"{field} is missing or null; the stored value is kept" in result.anomaly_samples[0]


@pytest.mark.parametrize(
    "field, value, column",
    [("progress", "abc", "progress_pct"), ("progress", "150%", "progress_pct"), ("progress", "-5%", "progress_pct"),
     ("ended_at", "yesterday", "ended_at"), ("ended_at", "2026-13-45T00:00:00+0800", "ended_at"),
     # Days past the month's end, which a lenient parser rolls over into the next month.
     ("ended_at", "2026-02-30T10:00:00+0800", "ended_at"), ("ended_at", "2026-04-31T10:00:00Z", "ended_at")],
)
def test_an_unreadable_field_is_null_and_the_record_kept_raw(field, value, column):
    record = {**api_record("a", CREATED), field: value}
    result = normalize([record])
    row = result.frame.iloc[0]
    assert pd.isna(row[column]) and row["status"] == "Completed"
    assert result.anomalies == 1 and json.loads(row["raw_record"]) == record
    assert result.anomaly_samples and field in result.anomaly_samples[0] and repr(value) in result.anomaly_samples[0]
    assert result.unknown.tolist() == [FIELD_BITS[field] | INCOMPLETE]


def test_an_end_before_the_start_keeps_both_times_but_no_duration():
    record = api_record("a", CREATED, ended_at=CREATED - timedelta(minutes=5))
    result = normalize([record])
    row = result.frame.iloc[0]
    assert row["ended_at"] == pd.Timestamp(CREATED - timedelta(minutes=5)) and np.isnan(row["duration_seconds"])
    assert result.anomalies == 1 and row["raw_record"] is not None
    assert result.unknown is None  # a readable value: data, that the check ended_not_before_created reports


def test_unknown_fields_keep_the_record_raw():
    record = {**api_record("a", CREATED), "job_type": "new-in-v4", "detail": {"step": 3}}
    result = normalize([record])
    assert result.anomalies == 1 and json.loads(result.frame.iloc[0]["raw_record"]) == record
    assert "unknown" in result.anomaly_samples[0]


def test_non_string_values_are_kept_as_their_json_text():
    record = {**api_record("a", CREATED, status="Running"), "progress": 40, "instance_name": ["x", "y"]}
    result = normalize([record])
    row = result.frame.iloc[0]
    assert row["progress_pct"] == 40.0 and row["instance_name"] == '["x", "y"]'
    assert result.anomalies == 1 and json.loads(row["raw_record"]) == record
    # What the API should never send: a new job stores it, a stored value is never replaced by it.
    assert result.unknown_counts() == {"progress": 1, "instance_name": 1}


def test_unknown_statuses_and_names_are_kept_as_sent():
    row = only_row([api_record("a", CREATED, status="Cancelled", name="SomethingNewInTheApi")])
    assert (row["status"], row["name"]) == ("Cancelled", "SomethingNewInTheApi")


@pytest.mark.parametrize(
    "record, reason",
    [({"name": "x", "created_at": "2026-11-01T00:00:00Z"}, "id is missing"),
     ({"id": "", "created_at": "2026-11-01T00:00:00Z"}, "id is missing"),
     ({"id": None, "created_at": "2026-11-01T00:00:00Z"}, "id is missing"),
     ({"id": "a"}, "created_at is missing"),
     ({"id": "a", "created_at": ""}, "created_at is missing"),
     ({"id": "a", "created_at": "yesterday"}, "created_at is not a timestamp"),
     ({"id": "a", "created_at": "2026-02-29T10:00:00+0800"}, "created_at is not a timestamp"),
     ("not an object", "not a JSON object"),
     (None, "not a JSON object")],
)
def test_records_without_id_or_created_at_are_returned_as_rejected(record, reason):
    good = api_record("good", CREATED)
    result = normalize([good, record])
    assert list(result.frame["id"]) == ["good"]
    assert result.rejected == [record] and result.anomalies == 0
    assert reason in result.anomaly_samples[0] and "rejected" in result.anomaly_samples[0]


@pytest.mark.parametrize(
    "statuses, kept",
    [(["Running", "Completed"], 1), (["Completed", "Running"], 0), (["Failed", "Running", "Running"], 0),
     (["Running", "Running"], 1), (["Completed", "Failed"], 1), (["Running", "Cancelled"], 1)],
)
def test_duplicate_ids_keep_the_terminal_state_else_the_last(statuses, kept):
    records = [api_record("dup", CREATED, status=s, fail_reason=f"copy {i}") for i, s in enumerate(statuses)]
    result = normalize([api_record("other", CREATED), *records])
    assert len(result.frame) == 2 + len(statuses) - 1  # every record has its row; the batch reduces them once
    frame, _ = latest_states(result.frame, result.unknown)
    assert sorted(frame["id"]) == ["dup", "other"]
    row = frame.set_index("id").loc["dup"]
    assert (row["status"], row["fail_reason"]) == (statuses[kept], f"copy {kept}")


def test_non_ascii_text_and_a_100_kb_fail_reason_survive():
    reason = ("复制集节点异常 ✗ " * 8000)[:100_000]
    row = only_row([api_record("a", CREATED, status="Failed", instance_name="数据库-生产-ü", fail_reason=reason)])
    assert row["instance_name"] == "数据库-生产-ü" and row["fail_reason"] == reason


@pytest.mark.parametrize(
    "arguments, message",
    [(({"jobs": []}, "p", SEEN), "records must be a list"),
     (([], "", SEEN), "project_id"),
     (([], "p", datetime(2026, 11, 1)), "timezone-aware"),
     (([], "p", "2026-11-01"), "timezone-aware")],
)
def test_bad_arguments_are_refused_in_one_line(arguments, message):
    with pytest.raises(ValueError, match=message) as error:
        normalize_jobs(*arguments)
    assert "\n" not in str(error.value)


def test_seen_at_in_another_zone_is_stored_in_utc():
    beijing = SEEN.astimezone(timezone(timedelta(hours=8)))
    row = normalize_jobs([api_record("a", CREATED)], "p", beijing).frame.iloc[0]
    assert row["first_seen_at"] == pd.Timestamp(SEEN) and str(row["first_seen_at"].tz) == "UTC"


# --- property: whatever the API sends, every id is accounted for and instants survive -------------------------

_instants = st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31), timezones=st.just(timezone.utc))
_offsets = st.sampled_from([timedelta(0), timedelta(hours=8), timedelta(hours=-3, minutes=-30), timedelta(hours=14)])
_forms = st.sampled_from(["%Y-%m-%dT%H:%M:%S%z", "colon", "Z"])


def _api_text(instant: datetime, offset: timedelta, form: str) -> str:
    local = instant.astimezone(timezone(offset))
    if form == "Z":
        return instant.strftime("%Y-%m-%dT%H:%M:%SZ")
    text = local.strftime("%Y-%m-%dT%H:%M:%S%z")
    return text[:-2] + ":" + text[-2:] if form == "colon" else text


@st.composite
def _records(draw):
    count = draw(st.integers(0, 30))
    records = []
    for _ in range(count):
        instant = draw(_instants).replace(microsecond=0)
        job = {"id": draw(st.sampled_from(["a", "b", "c", "d", "e", "f", "g", "h"])),
               "status": draw(st.sampled_from(["Running", "Completed", "Failed", "Queued"])),
               "name": draw(st.text(max_size=8)), "instance_name": draw(st.text(max_size=8))}
        kind = draw(st.sampled_from(["good", "good", "good", "no id", "bad time", "no time"]))
        if kind == "no id":
            del job["id"]
        if kind != "no time":
            job["created_at"] = "garbage" if kind == "bad time" else _api_text(instant, draw(_offsets), draw(_forms))
        if draw(st.booleans()):
            job["progress"] = draw(st.sampled_from(["", "5%", "101%", "x"]))
        records.append((job, instant if kind == "good" else None))
    return records


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_records())
def test_property_every_id_accounted_for_and_instants_round_trip(generated):
    records = [job for job, _ in generated]
    result = normalize(records)
    frame, _ = latest_states(result.frame, result.unknown)
    acceptable = {job["id"] for job, instant in generated if instant is not None}
    assert list(frame["id"]).count(None) == 0 and frame["id"].is_unique
    assert set(frame["id"]) == acceptable  # nothing lost, nothing invented
    assert len(frame) + len(result.rejected) == len(acceptable) + sum(instant is None for _, instant in generated)
    assert set(frame["id"]) | {job.get("id") for job in result.rejected} >= {job.get("id") for job in records}
    for job_id, row in frame.set_index("id").iterrows():
        candidates = [(job, instant) for job, instant in generated if instant is not None and job["id"] == job_id]
        assert pd.Timestamp(row["created_at"]) in {pd.Timestamp(instant) for _, instant in candidates}
        assert row["created_date"] == row["created_at"].date()
        assert str(row["created_at"].tz) == "UTC"
        terminal = [job for job, _ in candidates if job["status"] in ("Completed", "Failed")]
        expected = (terminal or [job for job, _ in candidates])[-1]
        # Every generated record lacks fields (instance_id): the first finished state stays, as later incomplete
        # records never change it; the other fields are the latest state's.
        finished = terminal[0] if terminal else expected
        assert row["status"] == finished["status"] and row["name"] == escape_text(expected["name"])
