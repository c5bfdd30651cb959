"""The adaptive request rate over real HTTP against the simulator's gateway quota (a token bucket per user).

Every figure is counted from the simulator's log of what it received and answered, never timed by the test; the
bounds leave room for a loaded machine (a 429 more or less), not for the fixed behaviour (about half the requests
answered 429 under a quota).
"""

import logging
import threading
import time
import uuid

from pipeline.api import DdsTaskCenterClient, FetchStats, RetryPolicy
from pipeline.api.client import throttling_warning
from pipeline.config import DEFAULT_MAX_CONCURRENCY
from pipeline.simulator import DdsSimulator, SimulatorConfig
from tests.support.records import fetch_jobs
from tests.support.simulator_http import NOW, WEEK, StaticToken, by_id

TOKEN = "sim-token-quota"
# Waits as the client's default (a 429 waits its Retry-After), attempts enough for a storm of 5xx.
RETRIES = RetryPolicy(base_delay=0.01, max_delay=0.05, max_attempts=40, total_budget=60.0)


def simulator(*, pages: int, **overrides: object) -> DdsSimulator:
    """A simulator holding about ``pages`` full pages of jobs in WEEK."""
    settings: dict[str, object] = dict(seed=5, project_ids=("p1",), token=TOKEN, now=NOW, history_days=9,
                                       jobs_per_day=pages * 100 // 7)
    settings.update(overrides)
    return DdsSimulator(SimulatorConfig(**settings), port=0)


def client_for(sim: DdsSimulator, project_id: str | None = None, **overrides: object) -> DdsTaskCenterClient:
    # A region of the test's own: the limiters are process-wide, and no other test may share this one's.
    settings: dict[str, object] = dict(retry=RETRIES, timeout=(2.0, 10.0), max_concurrency=DEFAULT_MAX_CONCURRENCY,
                                       region=f"test-{uuid.uuid4().hex[:8]}")
    settings.update(overrides)
    return DdsTaskCenterClient(sim.url, project_id or sim.project_id, StaticToken(TOKEN), **settings)


def visible(sim: DdsSimulator, project_id: str | None = None) -> dict[str, dict]:
    return by_id(sim.store.visible_jobs(project_id or sim.project_id, WEEK.start, WEEK.end))


def throttled(requests: list) -> int:
    return sum(1 for request in requests if request.status == 429)


def since_first(sim: DdsSimulator, seconds: float) -> list:
    """The requests received ``seconds`` or more after the first one."""
    start = sim.requests[0].received_at
    return [request for request in sim.requests if request.received_at - start >= seconds]


def most_in_one_second(sim: DdsSimulator) -> int:
    """The most requests the simulator received within one second: over [t, t + 1 s) from each arrival t."""
    times = sorted(request.received_at for request in sim.requests)
    most, end = 0, 0
    for begin, moment in enumerate(times):
        while end < len(times) and times[end] < moment + 1.0:
            end += 1
        most = max(most, end - begin)
    return most


def test_under_a_fixed_quota_the_rate_settles_under_it_and_few_requests_are_throttled():
    with simulator(pages=120, rate_limit=20, latency_s=0.01) as sim, client_for(sim) as client:
        result = fetch_jobs(client, WEEK)
        assert by_id(result.jobs) == visible(sim)
        total, settled = throttled(sim.requests), throttled(since_first(sim, 1.0))
        # Learning the quota costs the requests in flight when the first 429 comes (a handful); after it, at
        # most one 429 each time the pace tests whether the quota has grown (about every ten seconds).
        assert total <= 0.1 * len(sim.requests), f"{total} of {len(sim.requests)} throttled"
        assert settled <= 0.05 * len(since_first(sim, 1.0)), f"{settled} throttled after the first second"
        assert result.stats.pacing.throttled == total == result.stats.retries["429"]
        assert 10 <= client.limiter.rate <= 30


def test_the_rate_follows_a_quota_that_falls_and_rises_again():
    # 40/s, from second 2 on 5/s, from second 5 on 40/s again; the fetch is stopped at second 15.
    schedule = ((0, 40), (2, 5), (5, 40))
    with simulator(pages=400, rate_limit=schedule) as sim, client_for(sim) as client:
        samples: list[tuple[float, float | None]] = []
        pages = client.iter_pages(WEEK, stats=FetchStats())
        for _ in pages:
            seconds = time.monotonic() - sim.requests[0].received_at
            samples.append((seconds, client.limiter.rate))
            if seconds >= 15:
                break
        pages.close()
        learned_high = [rate for at, rate in samples if 1.5 <= at < 2 and rate is not None]
        low = min(rate for at, rate in samples if 2 <= at < 5 and rate is not None)
        end = samples[-1][1]
        assert learned_high and min(learned_high) >= 20, samples[:40]
        assert low <= 6, "the pace did not follow the quota down to 5/s"
        assert end >= 2 * low and end >= 9, f"the pace did not climb back: {low:.1f}/s, then {end:.1f}/s"
        # Counted by the simulator: in the last 3 s more requests passed than a 5/s quota lets through (5 a second
        # plus a full bucket of 5).
        last = [r for r in since_first(sim, samples[-1][0] - 3) if r.status == 200]
        assert len(last) > 20, f"{len(last)} answered in the last 3 s"


def test_targets_of_one_region_share_one_limiter_and_learn_the_quota_together():
    with simulator(pages=60, rate_limit=20, latency_s=0.01, project_ids=("p1", "p2")) as sim:
        region = f"test-{uuid.uuid4().hex[:8]}"
        first, second = client_for(sim, "p1", region=region), client_for(sim, "p2", region=region)
        elsewhere = client_for(sim, "p1")
        assert first.limiter is second.limiter and elsewhere.limiter is not first.limiter
        results: dict[str, object] = {}

        def fetch(client: DdsTaskCenterClient) -> None:
            results[client.project_id] = fetch_jobs(client, WEEK)

        threads = [threading.Thread(target=fetch, args=(client,)) for client in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for client in (first, second, elsewhere):
            client.close()
        assert {pid: by_id(result.jobs) for pid, result in results.items()} == {
            pid: visible(sim, pid) for pid in ("p1", "p2")}
        # One user's quota, two targets: together they stay under it, as one client would.
        assert throttled(sim.requests) <= 0.08 * len(sim.requests), f"{throttled(sim.requests)} throttled"
        assert first.limiter.throttled == throttled(sim.requests)


def test_dds_max_rate_is_never_passed_even_by_an_api_without_a_quota():
    with simulator(pages=70) as sim, client_for(sim, max_rate=20) as client:
        result = fetch_jobs(client, WEEK)
        assert by_id(result.jobs) == visible(sim)
        assert len(sim.requests) >= 60 and client.limiter.rate == 20
        # The client sends one request every 1/20 s at most and never saves up unused time for a burst. A second
        # [t, t + 1 s) from one arrival then holds 20 of them, and the 21st is due exactly at its end: any delay of
        # the first on its way (threads, loopback) lets that one in, and a delay of up to one interval (50 ms) of
        # a single request a second one. Without the cap, the whole fetch arrives within a fraction of a second.
        assert most_in_one_second(sim) <= 20 + 2
        arrivals = [request.received_at for request in sim.requests]
        assert (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) <= 20 * 1.02


def test_a_storm_of_5xx_lowers_the_window_and_the_pace_and_the_fetch_completes_exactly():
    with simulator(pages=70, latency_s=0.02) as sim, client_for(sim, max_rate=60) as client:
        windows: list[tuple[int, int, float | None]] = []

        def watch(page, stats: FetchStats) -> None:
            if stats.pages == 25:
                sim.faults.random({"500": 0.4, "502_html": 0.1}, seed=2)
            windows.append((stats.pages, client.limiter.window, client.limiter.rate))

        result = fetch_jobs(client, WEEK, on_page=watch)
        assert by_id(result.jobs) == visible(sim)
        before = [(window, rate) for page, window, rate in windows if page <= 25]
        during = [(window, rate) for page, window, rate in windows if page > 25]
        assert max(window for window, _ in before) == 12 and {rate for _, rate in before} == {60}
        assert min(window for window, _ in during) <= 3
        assert min(rate for _, rate in during) <= 0.75 * 60
        assert result.stats.retries["5xx"] > 0 and result.stats.pacing.throttled == 0


def test_a_requests_turn_at_the_pace_does_not_count_against_its_retry_budget():
    # 12 pages wait their turn at 4 requests a second (up to 3 s each), far past a 1 s retry budget; a third of the
    # answers fail, so most pages are retried: only their attempts and the waits between them count.
    budget = RetryPolicy(base_delay=0.01, max_delay=0.05, total_budget=1.0)
    with simulator(pages=15) as sim, client_for(sim, max_rate=4, retry=budget) as client:
        sim.faults.random({"500": 0.3}, seed=4)
        result = fetch_jobs(client, WEEK)
        assert by_id(result.jobs) == visible(sim)
        assert result.stats.retries["5xx"] > 0
        arrivals = [request.received_at for request in sim.requests]
        assert arrivals[-1] - arrivals[0] > 3 * budget.total_budget


def test_each_429_retry_is_logged_at_info_and_a_throttled_share_over_5_percent_is_one_warning(caplog):
    caplog.set_level("INFO", logger="pipeline.api")
    with simulator(pages=20, rate_limit=5) as sim, client_for(sim) as client:
        result = fetch_jobs(client, WEEK)
    assert by_id(result.jobs) == visible(sim)
    refused, sent = throttled(sim.requests), len(sim.requests)
    retried = [record for record in caplog.records if "retrying in" in record.getMessage()]
    assert refused >= 1 and len(retried) == refused == result.stats.pacing.throttled
    assert {record.levelname for record in retried} == {"INFO"}
    assert [record for record in caplog.records if record.levelno >= logging.WARNING] == []
    # The run's one warning, when more than 5% of its requests were throttled, carries the figures.
    warning = throttling_warning([result.stats])
    if refused > 0.05 * sent:
        assert warning is not None and f"{refused} of {sent} requests ({refused / sent:.1%}) were answered 429" in warning
    else:
        assert warning is None


def test_the_throttling_warning_comes_above_5_percent_of_the_requests_only():
    # The gateway's 429s, queued: 2 of about 12 requests is above 5%, 2 of about 60 below it.
    shares = {}
    for pages in (10, 60):
        with simulator(pages=pages) as sim, client_for(sim) as client:
            sim.faults.inject("429", times=2, retry_after=0)
            stats = fetch_jobs(client, WEEK).stats
        assert throttled(sim.requests) == stats.pacing.throttled == 2 and stats.requests == len(sim.requests)
        shares[pages] = (stats.requests, throttling_warning([stats]))
    (few, warned), (many, quiet) = shares[10], shares[60]
    assert 2 > 0.05 * few and 2 < 0.05 * many
    assert warned.startswith(f"DDS API throttling: 2 of {few} requests ({2 / few:.1%}) were answered 429 in this run, "
                             "more than 5%")
    assert "DDS_MAX_RATE" in warned and "\n" not in warned
    assert quiet is None
    assert throttling_warning([]) is None
