"""The simulator's live mode (jobs created while a client pages) and the real client paging through it."""

import argparse
from datetime import timedelta

import pytest

from pipeline.api import DdsTaskCenterClient, RetryPolicy, TimeWindow
from pipeline.simulator import DdsSimulator
from pipeline.cli.simulate import add_arguments, config_from_args, usage_text
from tests.support.records import fetch_jobs
from tests.support.simulator_http import NOW, StaticToken, TOKEN, api_time, by_id, created_at, get_jobs, live_config

# The window a tick pages ends at a fixed moment; the API shows a new job only seconds after its creation
# (docs/dds-api.md), so jobs created before that end keep appearing while the client pages. Here the simulator's clock
# (what the API shows) starts 21 s before the end: its first 10 requests create jobs inside the window (at
# NOW+2 s .. NOW+20 s, newest first: on the first page), the later ones after it.
END = NOW + timedelta(seconds=21)
DAY = TimeWindow(NOW - timedelta(days=1), END)


def test_each_request_moves_the_clock_and_creates_jobs_listed_first():
    with DdsSimulator(live_config(jobs_per_request=3, seconds_per_request=2), port=0) as sim:
        ahead = {"start_time": api_time(NOW - timedelta(days=1)), "end_time": api_time(NOW + timedelta(hours=1))}
        answers = [get_jobs(sim, limit=10, **ahead).json() for _ in range(4)]
        assert sim.store.now == NOW + timedelta(seconds=8)
        created = [job.id for job in sim.live.created]
        assert [job.created_at for job in sim.live.created] == [NOW + timedelta(seconds=2 * (i // 3 + 1))
                                                               for i in range(12)]
        for number, answer in enumerate(answers):
            # Each answer already holds the jobs its own request created, at the top.
            assert {job["id"] for job in answer["jobs"][:3]} == set(created[3 * number:3 * number + 3])
        assert answers[3]["total_count"] == answers[0]["total_count"] + 9
    with DdsSimulator(live_config(jobs_per_request=3, seconds_per_request=2), port=0) as again:
        for _ in range(4):
            get_jobs(again, limit=10, **ahead)
        assert [job.id for job in again.live.created] == created


def test_off_by_default_the_clock_stays():
    with DdsSimulator(live_config(jobs_per_request=0), port=0) as sim:
        get_jobs(sim)
        get_jobs(sim)
        assert sim.store.now == NOW and not sim.live.created


def test_simulate_options_turn_the_live_mode_on():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    config = config_from_args(parser.parse_args(["--live", "5", "--live-seconds", "3"]))
    assert (config.live_jobs_per_request, config.live_seconds_per_request) == (5, 3)
    assert config_from_args(parser.parse_args([])).live_jobs_per_request == 0
    with pytest.raises(ValueError, match="--live-seconds must be >= 0"):
        config_from_args(parser.parse_args(["--live", "1", "--live-seconds", "-1"]))
    with DdsSimulator(config, port=0) as sim:
        assert "live: 5 new job(s) and the clock 3 s on" in usage_text(sim)


def client_for(sim: DdsSimulator, max_concurrency: int) -> DdsTaskCenterClient:
    return DdsTaskCenterClient(sim.url, sim.project_id, StaticToken(TOKEN), max_concurrency=max_concurrency,
                               page_size=50, timeout=(2.0, 10.0),
                               retry=RetryPolicy(base_delay=0.01, max_delay=0.05, total_budget=20.0))


@pytest.mark.parametrize("include_total_count", [True, False], ids=["total", "no-total"])
@pytest.mark.parametrize("order", ["newest_first", "oldest_first"])
@pytest.mark.parametrize("max_concurrency", [1, 4])
def test_jobs_created_while_paging_come_once_in_the_window_they_were_created_in(
        include_total_count, order, max_concurrency):
    config = live_config(jobs_per_request=3, seconds_per_request=2, jobs_per_day=1000,
                         include_total_count=include_total_count, order=order)
    with DdsSimulator(config, port=0) as sim, client_for(sim, max_concurrency) as client:
        first = fetch_jobs(client, DAY)
        # The next tick: from the first one's end to a moment fixed when it starts.
        rest = TimeWindow(END, sim.store.now + timedelta(seconds=1))
        second = fetch_jobs(client, rest)
        first_ids, second_ids = by_id(first.jobs).keys(), by_id(second.jobs).keys()
        assert len(first_ids) == len(first.jobs) and len(second_ids) == len(second.jobs)
        # The live jobs created inside the first window after its first page was answered: the case at stake.
        assert len(sim.live.ids_created(sim.project_id, NOW + timedelta(seconds=4), END)) == 27
        before_end = {job["id"] for job in sim.store.visible_jobs(sim.project_id, DAY.start, END)
                      if created_at(job) < END}
        assert first_ids == before_end
        assert all(created_at(job) >= END for job in second.jobs)
        assert not first_ids & second_ids
        everything = by_id(sim.store.visible_jobs(sim.project_id, DAY.start, rest.end - timedelta(seconds=1)))
        assert first_ids | second_ids == everything.keys()
