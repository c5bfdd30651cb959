"""Talking to the simulator over HTTP as the API's clients do: its configuration for the tests, requests of its
jobs route and their pages, the API's error answers, and a client auth sending a fixed token."""

import re
from datetime import datetime, timedelta, timezone

import requests
from requests.auth import AuthBase

from pipeline.api import TimeWindow
from pipeline.simulator import DdsSimulator, SimulatorConfig

NOW = datetime(2026, 11, 20, 12, 0, 0, tzinfo=timezone.utc)
TOKEN = "sim-token"
AUTH = {"X-Auth-Token": TOKEN}
# The clients' window: the week up to the simulator's clock.
WEEK = TimeWindow(NOW - timedelta(days=7), NOW)
UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def config(**overrides) -> SimulatorConfig:
    """The simulator's configuration: its clock at NOW, TOKEN required, with ``overrides``."""
    return SimulatorConfig(**{"now": NOW, "token": TOKEN, **overrides})


def live_config(jobs_per_request: int = 3, seconds_per_request: int = 2, **overrides) -> SimulatorConfig:
    """``config`` in the live mode: each jobs request moves the clock ``seconds_per_request`` on and creates
    ``jobs_per_request`` jobs at it (pipeline/simulator/live.py)."""
    return config(live_jobs_per_request=jobs_per_request, live_seconds_per_request=seconds_per_request, **overrides)


def created_at(job: dict) -> datetime:
    """A job's ``created_at`` as sent (``2026-11-20T20:00:02+0800``), UTC."""
    return datetime.strptime(job["created_at"], "%Y-%m-%dT%H:%M:%S%z").astimezone(timezone.utc)


def api_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def get_jobs(simulator: DdsSimulator, session=requests, headers=AUTH, project_id=None, **params):
    """One request of the jobs route, over the 30 days before the simulator's clock unless ``params`` say."""
    window = {"start_time": api_time(simulator.store.now - timedelta(days=30)),
              "end_time": api_time(simulator.store.now)}
    return session.get(f"{simulator.url}/v3.1/{project_id or simulator.project_id}/jobs",
                       params={**window, **params}, headers=headers, timeout=10)


def all_pages(simulator: DdsSimulator, limit: int = 100, session=requests, **params) -> list[dict]:
    jobs, offset = [], 0
    while True:
        response = get_jobs(simulator, session=session, offset=offset, limit=limit, **params)
        assert response.status_code == 200, response.text
        page = response.json()["jobs"]
        jobs.extend(page)
        if len(page) < limit:
            return jobs
        offset += limit


def assert_api_error(response: requests.Response, status: int, code: str, fragment: str = "") -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error_code"] == code
    assert fragment in body["error_msg"]
    assert UUID4.fullmatch(response.headers["X-Request-Id"])


class StaticToken(AuthBase):
    """Sends a fixed X-Auth-Token, like pipeline.api.auth.TokenAuth."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["X-Auth-Token"] = self._token
        return request


def by_id(jobs: list[dict]) -> dict[str, dict]:
    return {job["id"]: job for job in jobs}
