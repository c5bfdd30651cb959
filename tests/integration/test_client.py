"""The DDS client over real HTTP against the in-process simulator: exact job sets, faults, refusals, limits."""

import dataclasses
import time
from datetime import datetime, timedelta

import pytest
import requests

from pipeline.api import (
    DdsApiError,
    DdsTaskCenterClient,
    FetchStats,
    RetryPolicy,
    TimeWindow,
)
from pipeline.simulator import (
    ApiError,
    DdsSimulator,
    RequestInfo,
    Response,
    SimulatorConfig,
    error_response,
)
from pipeline.simulator.answers import BROKEN_ANSWERS
from pipeline.simulator.server import JOBS_PATH, list_jobs
from tests.support.records import fetch_jobs, record_replaces
from tests.support.simulator_http import NOW, WEEK, StaticToken, by_id

PROJECT = "p1"
TOKEN = "sim-token-0123456789abcdef"


def simulator(**overrides: object) -> DdsSimulator:
    settings: dict[str, object] = dict(seed=7, project_ids=(PROJECT,), token=TOKEN, now=NOW, jobs_per_day=40,
                                       history_days=40, retention_days=30)
    settings.update(overrides)
    return DdsSimulator(SimulatorConfig(**settings), port=0)


def fast_retry(**overrides: object) -> RetryPolicy:
    settings: dict[str, object] = dict(base_delay=0.01, max_delay=0.05, total_budget=20.0)
    settings.update(overrides)
    return RetryPolicy(**settings)


def client_for(sim: DdsSimulator, token: str = TOKEN, **overrides: object) -> DdsTaskCenterClient:
    settings: dict[str, object] = dict(retry=fast_retry(), timeout=(2.0, 10.0))
    settings.update(overrides)
    return DdsTaskCenterClient(sim.url, sim.project_id, StaticToken(token), **settings)


def visible(sim: DdsSimulator, window: TimeWindow) -> dict[str, dict]:
    return by_id(sim.store.visible_jobs(sim.project_id, window.start, window.end))


def assert_within_api_limits(sim: DdsSimulator) -> None:
    for request in sim.requests:
        start = datetime.strptime(request.query["start_time"], "%Y-%m-%dT%H:%M:%S%z")
        end = datetime.strptime(request.query["end_time"], "%Y-%m-%dT%H:%M:%S%z")
        assert timedelta(0) < end - start <= timedelta(days=30)
        assert 1 <= int(request.query["limit"]) <= 100


@pytest.fixture
def sim():
    with simulator() as running:
        yield running


@pytest.mark.parametrize("include_total_count", [True, False], ids=["total", "no-total"])
@pytest.mark.parametrize("order", ["newest_first", "oldest_first"])
@pytest.mark.parametrize("page_size, max_concurrency", [(100, 4), (7, 3), (100, 1)])
def test_exact_job_set_across_pages(include_total_count, order, page_size, max_concurrency):
    with simulator(include_total_count=include_total_count, order=order) as sim:
        with client_for(sim, page_size=page_size, max_concurrency=max_concurrency) as client:
            result = fetch_jobs(client, WEEK)
        expected = visible(sim, WEEK)
        assert len(expected) > 2 * page_size
        assert len(result.jobs) == len(expected)
        assert by_id(result.jobs) == expected
        assert result.stats.jobs == len(expected) and result.stats.refetches == 0
        assert result.stats.requests == len(sim.requests) == result.stats.pages
        # One more page when the jobs fill the last one exactly; without a total, the pages requested ahead and the
        # first page asked once more (for jobs created on pages already read).
        recheck = 0 if include_total_count else 1
        assert -(-len(expected) // page_size) <= result.stats.pages <= (
            len(expected) // page_size + max_concurrency + recheck)
        assert_within_api_limits(sim)


def test_pages_stream_with_their_slice_offset_and_total(sim):
    stats = FetchStats()
    with client_for(sim) as client:
        pages = list(client.iter_pages(WEEK, stats=stats))
    expected = visible(sim, WEEK)
    assert sorted(page.offset for page in pages) == list(range(0, len(expected), 100))
    assert {page.slice for page in pages} == {WEEK}
    assert {page.total_count for page in pages} == {len(expected)}
    assert sum(len(page.jobs) for page in pages) == len(expected)
    assert (stats.slices, stats.pages, stats.requests) == (1, len(pages), len(pages))


def test_window_over_30_days_is_sliced_and_deduplicated_at_the_boundary():
    with simulator(retention_days=60) as sim:
        window = TimeWindow(NOW - timedelta(days=40), NOW)
        boundary = window.split()[0].end
        on_boundary = set(sim.store.add_jobs(3, created_at=boundary))
        received: list[str] = []
        with client_for(sim) as client:
            result = fetch_jobs(client, window, on_page=lambda page, stats: received.extend(j["id"] for j in page.jobs))
        expected = visible(sim, window)
        assert on_boundary <= expected.keys()
        assert len(result.jobs) == len(expected) and by_id(result.jobs) == expected
        assert result.stats.slices == 2
        assert_within_api_limits(sim)
        # The API's end_time is inclusive: the boundary jobs came in both slices, and were kept once.
        assert all(received.count(job_id) == 2 for job_id in on_boundary)
        assert len(received) == len(expected) + len(on_boundary)


def test_filters_are_sent_and_honoured(sim):
    everything = list(visible(sim, WEEK).values())
    some_id = everything[5]["id"]
    with client_for(sim) as client:
        failed = fetch_jobs(client, WEEK, status="Failed")
        backups = fetch_jobs(client, WEEK, name="MongodbSnapshotBackup")
        one = fetch_jobs(client, WEEK, job_id=some_id)
    assert by_id(failed.jobs) == by_id([j for j in everything if j["status"] == "Failed"]) != {}
    assert by_id(backups.jobs) == by_id([j for j in everything if j["name"] == "MongodbSnapshotBackup"]) != {}
    assert [job["id"] for job in one.jobs] == [some_id]
    sent = [(r.query.get("status"), r.query.get("name"), r.query.get("id")) for r in sim.requests]
    assert ("Failed", None, None) in sent and (None, "MongodbSnapshotBackup", None) in sent
    assert (None, None, some_id) in sent


def test_plus_of_the_time_offset_is_percent_encoded(sim):
    with client_for(sim) as client:
        fetch_jobs(client, WEEK)
    request = sim.requests[0]
    assert "start_time=2026-11-13T12%3A00%3A00%2B0000" in request.raw_query
    assert "+" not in request.raw_query
    assert request.query["end_time"] == "2026-11-20T12:00:00+0000"
    # The simulator, like the API, reads a bare `+` as a space and refuses the time.
    bare = requests.get(f"{sim.url}/v3.1/{PROJECT}/jobs?start_time=2026-11-13T12:00:00+0000"
                        f"&end_time=2026-11-20T12:00:00+0000", headers={"X-Auth-Token": TOKEN}, timeout=5)
    assert bare.status_code == 400


@pytest.mark.parametrize(
    "fault, params, kind",
    [
        ("429", {"retry_after": 0}, "429"),
        ("429_no_retry_after", {}, "429"),
        ("500", {}, "5xx"),
        ("502_html", {}, "5xx"),
        ("drop", {}, "connection"),
        ("truncate", {}, "invalid_json"),
        ("invalid_json", {}, "invalid_json"),
        ("slow", {"delay": 1.0}, "timeout"),
    ],
)
def test_every_fault_kind_is_retried_and_counted(sim, fault, params, kind, caplog):
    caplog.set_level("INFO", logger="pipeline.api")
    sim.faults.inject(fault, times=2, **params)
    # Only the stalled answers need a short read timeout; under it, a busy machine may time out an answer that was
    # not stalled too, so for them the counts are bounds rather than exact.
    stalls = kind == "timeout"
    with client_for(sim, timeout=(2.0, 0.3 if stalls else 10.0)) as client:
        result = fetch_jobs(client, WEEK)
    assert by_id(result.jobs) == visible(sim, WEEK)
    retries = sum(result.stats.retries.values())
    assert (result.stats.retries[kind] >= 2 and retries == result.stats.retries[kind]) if stalls else (
        result.stats.retries[kind] == retries == 2)
    assert result.stats.requests == result.stats.pages + retries == len(recorded(sim, result.stats.requests))
    assert result.stats.as_metadata()[f"retries_{kind}"] == result.stats.retries[kind]
    assert caplog.text.count("retrying in") == retries and TOKEN not in caplog.text
    # Each retry is INFO: the policy working, not a problem (a run with many 429s warns once: test_ratelimit_runs).
    assert {record.levelname for record in caplog.records if "retrying in" in record.message} == {"INFO"}


def test_random_faults_under_concurrency_still_give_the_exact_set(sim):
    sim.faults.random({"500": 0.1, "drop": 0.05, "truncate": 0.05, "429_no_retry_after": 0.05}, seed=3)
    with client_for(sim, page_size=10, max_concurrency=4, retry=fast_retry(max_attempts=10)) as client:
        result = fetch_jobs(client, WEEK)
    assert by_id(result.jobs) == visible(sim, WEEK)
    assert result.stats.requests == result.stats.pages + sum(result.stats.retries.values())
    assert sum(result.stats.retries.values()) > 0


def test_retry_after_is_honoured_and_zero_never_loops_hot(sim):
    sleeps: list[float] = []
    sim.faults.inject("429", retry_after=3)
    sim.faults.inject("429", times=3, retry_after=0)
    policy = RetryPolicy(base_delay=0.01, max_delay=1.0, sleep=sleeps.append)
    with client_for(sim, retry=policy) as client:
        result = fetch_jobs(client, WEEK)
    assert by_id(result.jobs) == visible(sim, WEEK)
    # Retry-After: 3 is waited out; Retry-After: 0 still gets the (unjittered) exponential backoff.
    assert sleeps == [3.0, 0.02, 0.04, 0.08]
    assert result.stats.retries["429"] == 4


def recorded(sim: DdsSimulator, count: int) -> list:
    """The simulator's records once it holds ``count`` (a "slow" answer is recorded after its delay)."""
    deadline = time.monotonic() + 5
    while len(sim.requests) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return sim.requests


def refusing_route(status: int, code: str, message: str) -> tuple:
    return ("GET", JOBS_PATH, lambda sim, request: error_response(ApiError(status, code, message)), True, False)


def assert_refused_once(sim: DdsSimulator, error: DdsApiError, status: int, code: str | None) -> None:
    assert len(sim.requests) == 1
    assert (error.status, error.error_code, error.attempts) == (status, code, 1)
    assert error.request_id and error.request_id in str(error)
    assert str(error).startswith("DDS rejected the request:") and "\n" not in str(error)
    assert str(WEEK.split()[0]) == error.window and error.window in str(error)
    for text in (str(error), repr(error)):
        assert TOKEN not in text and "wrong-token" not in text


def test_400_is_not_retried_and_reported_clearly():
    route = refusing_route(400, "DBS.200001", "Invalid parameter end_time.")
    with simulator(extra_routes=[route]) as sim, client_for(sim) as client:
        with pytest.raises(DdsApiError) as caught:
            fetch_jobs(client, WEEK)
    assert_refused_once(sim, caught.value, 400, "DBS.200001")
    assert "DBS.200001 Invalid parameter end_time. (HTTP 400, request id" in str(caught.value)


def test_a_token_echoed_by_an_error_body_is_masked():
    def echo_token(sim: DdsSimulator, request: RequestInfo) -> Response:
        message = f"token {request.header('X-Auth-Token')} is not allowed here"
        return error_response(ApiError(403, "DBS.200011", message))

    with simulator(extra_routes=[("GET", JOBS_PATH, echo_token)]) as sim, client_for(sim) as client:
        with pytest.raises(DdsApiError) as caught:
            fetch_jobs(client, WEEK)
    assert_refused_once(sim, caught.value, 403, "DBS.200011")
    assert "token *** is not allowed here" in str(caught.value) and TOKEN not in caught.value.error_msg


def test_401_is_not_retried_and_never_shows_the_token(sim):
    with client_for(sim, token="wrong-token-do-not-print") as client:
        with pytest.raises(DdsApiError) as caught:
            fetch_jobs(client, WEEK)
    assert_refused_once(sim, caught.value, 401, "APIG.0301")
    assert "check the credentials" in str(caught.value)


def test_403_for_a_project_the_token_does_not_serve_is_not_retried(sim):
    with DdsTaskCenterClient(sim.url, "other", StaticToken(TOKEN), retry=fast_retry()) as client:
        with pytest.raises(DdsApiError) as caught:
            fetch_jobs(client, WEEK)
    assert_refused_once(sim, caught.value, 403, "DBS.200011")


def test_redirect_is_not_followed():
    route = ("GET", JOBS_PATH, lambda sim, request: Response(302, {"Location": "http://127.0.0.2/x"}, b""))
    with simulator(extra_routes=[route]) as sim, client_for(sim) as client:
        with pytest.raises(DdsApiError, match=r"\(HTTP 302") as caught:
            fetch_jobs(client, WEEK)
    assert_refused_once(sim, caught.value, 302, None)
    # The Location's host only, never its path (tests/integration/test_redirects.py has every 3xx and credential).
    assert "redirect to host 127.0.0.2 not followed" in str(caught.value) and "/x" not in str(caught.value)


def test_exhausted_retries_raise_with_the_last_failure(sim):
    sim.faults.inject("502_html", times=10)
    with client_for(sim, retry=fast_retry(max_attempts=3)) as client:
        with pytest.raises(DdsApiError) as caught:
            fetch_jobs(client, WEEK)
    error = caught.value
    assert len(sim.requests) == 3 and error.attempts == 3 and error.status == 502
    assert str(error).startswith("DDS API kept failing after 3 attempts (last: HTTP 502 <html>")
    assert "502 Bad Gateway" in str(error) and error.request_id in str(error)


def test_api_ignoring_offset_is_detected_not_paged_forever():
    def same_page(sim: DdsSimulator, request: RequestInfo) -> Response:
        return list_jobs(sim, dataclasses.replace(request, query={**request.query, "offset": "0"}))

    with simulator(extra_routes=[("GET", JOBS_PATH, same_page)], include_total_count=False) as sim:
        with client_for(sim, max_concurrency=1) as client, pytest.raises(DdsApiError, match="ignore offset"):
            fetch_jobs(client, WEEK)
        assert len(sim.requests) == 3


@pytest.mark.parametrize("include_total_count", [True, False], ids=["total", "no-total"])
@pytest.mark.parametrize("order", ["newest_first", "oldest_first"])
@pytest.mark.parametrize("max_concurrency", [1, 4])
def test_jobs_created_while_paging_are_neither_missed_nor_doubled(include_total_count, order, max_concurrency):
    with simulator(include_total_count=include_total_count, order=order) as sim:
        window = TimeWindow(NOW - timedelta(days=7), NOW + timedelta(hours=1))
        before = visible(sim, window)
        created: list[str] = []

        def create_jobs_after_first_page(page, stats) -> None:
            if not created:
                created.extend(sim.store.add_jobs(150))

        with client_for(sim, max_concurrency=max_concurrency) as client:
            result = fetch_jobs(client, window, on_page=create_jobs_after_first_page)
        ids = [job["id"] for job in result.jobs]
        assert len(ids) == len(set(ids))
        assert before.keys() < set(ids) == visible(sim, window).keys()
        # Newest first, the new jobs land on the first page, read already: the slice is paged once more.
        assert result.stats.refetches == (1 if order == "newest_first" else 0)


@pytest.mark.parametrize("max_concurrency", [1, 4])
def test_jobs_vanishing_while_paging_trigger_one_sequential_repage(max_concurrency):
    # Oldest first, jobs leaving the retention go from the front: later offsets shift down and skip some.
    # The window ends now, so that the jobs the advancing clock creates stay out of it.
    with simulator(order="oldest_first") as sim:
        window = TimeWindow(NOW - timedelta(days=30), NOW)
        before = visible(sim, window)

        def expire_a_day_after_first_page(page, stats) -> None:
            if stats.pages == 1:
                sim.store.advance(timedelta(days=1))

        with client_for(sim, max_concurrency=max_concurrency) as client:
            result = fetch_jobs(client, window, on_page=expire_a_day_after_first_page)
        after = visible(sim, window)
        ids = {job["id"] for job in result.jobs}
        assert len(before.keys() - after.keys()) > 20
        assert (before.keys() & after.keys()) <= ids <= (before.keys() | after.keys())
        assert result.stats.refetches == 1
        assert [request.query["offset"] for request in sim.requests].count("0") == 2


def test_a_job_finished_is_not_turned_back_to_running():
    def kept(*copies: dict) -> dict:  # fetch_jobs' choice between the copies of one job, in page order
        latest = copies[0]
        for copy in copies[1:]:
            latest = copy if record_replaces(latest, copy) else latest
        return latest

    assert kept({"id": "a", "status": "Running"}, {"id": "a", "status": "Failed"})["status"] == "Failed"
    assert kept({"id": "b", "status": "Completed"}, {"id": "b", "status": "Running"})["status"] == "Completed"
    assert kept({"id": "c", "status": "Running", "progress": "10%"},
                {"id": "c", "status": "Running", "progress": "60%"})["progress"] == "60%"
    assert kept({"id": "d", "status": "Failed"}, {"id": "d"}, {"id": "d", "status": 3})["status"] == "Failed"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"endpoint": "ftp://dds.example.com"}, "endpoint must be an http(s) URL"),
        ({"endpoint": "dds.example.com"}, "endpoint must be an http(s) URL"),
        ({"endpoint": "https://user:hunter2secret@dds.example.com"}, "must not embed credentials"),
        ({"project_id": ""}, "project_id must be a non-empty string"),
        ({"project_id": "p1/../x"}, "project_id must be a non-empty string"),
        ({"page_size": 101}, "page_size must be an integer 1..100"),
        ({"page_size": 0}, "page_size must be an integer 1..100"),
        ({"max_concurrency": 0}, "max_concurrency must be a whole number in 1..32, got 0"),
        # The one bound of every setting of concurrency (pipeline/values.py), also for a client made in code.
        ({"max_concurrency": 33}, "max_concurrency must be a whole number in 1..32, got 33"),
        ({"timeout": (5, 0)}, "timeout must be seconds > 0"),
        ({"auth": "raw-token-value"}, "auth must be a requests AuthBase"),
    ],
)
def test_construction_validates_with_one_line(kwargs, message):
    settings: dict[str, object] = {"endpoint": "https://dds.ap-southeast-1.myhuaweicloud.com", "project_id": "p1"}
    settings.update(kwargs)
    with pytest.raises(ValueError) as caught:
        DdsTaskCenterClient(**settings)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert "hunter2secret" not in str(caught.value) and "raw-token-value" not in str(caught.value)


def test_bad_arguments_fail_before_any_request(sim):
    with client_for(sim) as client:
        with pytest.raises(ValueError, match="window must be a TimeWindow"):
            fetch_jobs(client, (NOW - timedelta(days=1), NOW))
        with pytest.raises(ValueError, match="filter status must be a non-empty printable string"):
            client.iter_pages(WEEK, status="")
        assert TOKEN not in repr(client) and "StaticToken" in repr(client)
    assert sim.requests == []


@pytest.mark.parametrize("include_total_count", [True, False], ids=["total", "no-total"])
def test_throughput_30000_jobs_at_20ms_latency(include_total_count):
    latency, concurrency = 0.02, 4
    settings = dict(jobs_per_day=1000, history_days=31, latency_s=latency, include_total_count=include_total_count)
    with simulator(**settings) as sim:
        window = TimeWindow(NOW - timedelta(days=30), NOW)
        expected = len(visible(sim, window))
        with client_for(sim, max_concurrency=concurrency) as client:
            started = time.perf_counter()
            result = fetch_jobs(client, window)
            elapsed = time.perf_counter() - started
    assert len(result.jobs) == expected > 25_000
    ideal = result.stats.pages * latency / concurrency
    print(f"\ntotal_count={include_total_count}: {expected} jobs, {result.stats.pages} pages in {elapsed:.2f} s; "
          f"pages*latency/concurrency = {ideal:.2f} s; ratio {elapsed / ideal:.2f}")


# --- Answers the API should never give, and total_count as a hint (issue 13) ---------------------------------

BROKEN_KINDS = [(kind, "broken_answer") for kind in BROKEN_ANSWERS] + [("invalid_json", "invalid_json"),
                                                                      ("truncate", "invalid_json")]


def break_answers(sim: DdsSimulator, kind: str, times: int | None) -> None:
    """The next ``times`` jobs answers (None: all) broken as ``kind``: a simulator answer mode or a fault."""
    if kind in BROKEN_ANSWERS:
        sim.answers.break_answers(kind, times=times)
    elif times is None:
        sim.faults.random({kind: 1.0})
    else:
        sim.faults.inject(kind, times=times)


@pytest.mark.parametrize("kind, retry_kind", BROKEN_KINDS)
def test_a_broken_answer_is_retried_never_read_as_data(sim, kind, retry_kind):
    break_answers(sim, kind, times=2)
    with client_for(sim, max_concurrency=4) as client:
        result = fetch_jobs(client, WEEK)
    assert by_id(result.jobs) == visible(sim, WEEK)
    assert result.stats.retries[retry_kind] == 2 and sum(result.stats.retries.values()) == 2
    assert result.stats.requests == result.stats.pages + 2 == len(sim.requests)


@pytest.mark.parametrize("kind, retry_kind", BROKEN_KINDS)
def test_an_answer_broken_for_good_fails_the_fetch_naming_the_window(sim, kind, retry_kind):
    break_answers(sim, kind, times=None)
    pages: list = []
    with client_for(sim, retry=fast_retry(total_budget=0.5)) as client:
        with pytest.raises(DdsApiError) as caught:
            fetch_jobs(client, WEEK, on_page=lambda page, stats: pages.append(page))
    message = str(caught.value)
    assert pages == [] and caught.value.attempts > 1 and caught.value.attempts == len(sim.requests)
    assert message.startswith(f"DDS API kept failing after {caught.value.attempts} attempts (the next wait of")
    assert caught.value.window == str(WEEK) and message.endswith(f"for window {WEEK}") and "\n" not in message
    assert caught.value.status == 200 and TOKEN not in message


def test_an_error_body_sent_with_status_200_is_named_by_its_code(sim):
    def error_as_200(sim: DdsSimulator, request: RequestInfo) -> Response:
        return Response(200, {}, b'{"error": {"code": "DBS.280001", "message": "Backend busy"}}')

    with simulator(extra_routes=[("GET", JOBS_PATH, error_as_200)]) as sim:
        with client_for(sim, retry=fast_retry(max_attempts=2)) as client, pytest.raises(DdsApiError) as caught:
            fetch_jobs(client, WEEK)
    assert caught.value.error_code == "DBS.280001" and "(last: HTTP 200 DBS.280001 Backend busy" in str(caught.value)


@pytest.mark.parametrize("max_concurrency", [1, 4, 12])
def test_an_inflated_total_count_costs_no_more_than_the_look_ahead(max_concurrency):
    with simulator(jobs_per_day=60, reported_total_count=10_000_000) as sim:
        window = TimeWindow(NOW - timedelta(days=6), NOW)
        with client_for(sim, max_concurrency=max_concurrency) as client:
            result = fetch_jobs(client, window)
        expected = visible(sim, window)
        assert 300 < len(expected) < 400 and by_id(result.jobs) == expected
        pages_needed = len(expected) // 100 + 1
        assert pages_needed <= len(sim.requests) == result.stats.requests <= pages_needed + max_concurrency - 1
        assert result.stats.refetches == 0
        print(f"\ninflated total_count, concurrency {max_concurrency}: {len(expected)} jobs, "
              f"{len(sim.requests)} requests ({pages_needed} pages needed)")


@pytest.mark.parametrize("reported", [0, 5, 150])
def test_a_total_count_short_of_the_jobs_does_not_stop_the_paging(reported):
    with simulator(reported_total_count=reported) as sim:
        with client_for(sim, max_concurrency=4) as client:
            result = fetch_jobs(client, WEEK)
        assert by_id(result.jobs) == visible(sim, WEEK) and len(result.jobs) > 250


def test_failing_pages_past_the_last_one_are_abandoned_not_retried_for_their_budget():
    # Every offset past the window's jobs fails: only the look-ahead asks for them, and once the short page has
    # proved the end, their retries stop instead of running the whole 30 s budget.
    def fail_past_the_jobs(sim: DdsSimulator, request: RequestInfo) -> Response:
        if int(request.query["offset"]) > 300:
            return error_response(ApiError(500, "DBS.200999", "Internal server error. Try again later."))
        return list_jobs(sim, request)

    with simulator(jobs_per_day=60, reported_total_count=10_000_000,
                   extra_routes=[("GET", JOBS_PATH, fail_past_the_jobs)]) as sim:
        window = TimeWindow(NOW - timedelta(days=6), NOW)
        with client_for(sim, max_concurrency=8, retry=fast_retry(total_budget=30.0, max_delay=0.02)) as client:
            result = fetch_jobs(client, window)
        assert by_id(result.jobs) == visible(sim, window)
        failed = [r for r in sim.requests if r.status == 500]
        # Retried for the budget, each of them would have sent about 1,500 requests.
        assert 0 < len(failed) < 100
