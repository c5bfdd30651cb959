"""The simulator's HTTP side: a stdlib threaded server on 127.0.0.1 that routes requests through a table,
checks them with one pluggable authenticator, injects faults and records every request."""

import logging
import re
import socket
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pipeline.simulator.answers import AnswerModes, check_answer_modes
from pipeline.simulator.faults import Fault, FaultInjector
from pipeline.simulator.jobs import (
    ORDERS,
    RUNNING_ENDED_AT_STYLES,
    InvalidQuery,
    JobStore,
    parse_job_query,
)
from pipeline.simulator.live import LiveCreation, check_live_settings
from pipeline.simulator.outages import Outages
from pipeline.simulator.protocol import (  # noqa: F401 - re-exported: handlers and tests import them from here
    ApiError,
    Authenticator,
    OpenAuthenticator,
    RecordedRequest,
    RequestInfo,
    Response,
    Route,
    TokenAuthenticator,
    as_route,
    error_response,
    json_response,
)
from pipeline.simulator.ratelimit import RateSchedule, UserRateLimit

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
DEFAULT_PROJECT_ID = "0b6f0c4e2a9d4c1f8e3a5b7d9c1e2f30"
JOBS_PATH = re.compile(r"/v3\.1/(?P<project_id>[^/]+)/jobs")
_PROJECT_ID = re.compile(r"[A-Za-z0-9_-]+")
@dataclass(frozen=True)
class SimulatorConfig:
    """What the simulated provider holds and how it answers. now=None: the current UTC time at start-up, then
    frozen (truncated to the second). token=None: no authentication (unless `authenticator` is set).

    Answers the API should never give (``pipeline.simulator.answers``, changeable later through ``sim.answers``):
    `broken_answer` breaks every jobs answer (one of BROKEN_ANSWERS), `reported_total_count` replaces every
    answer's total_count, `degraded_fraction` degrades that share of the jobs (seeded by `seed`), `error_shape`
    "nested" answers errors as {"error": {"code", "message"}}. Outages from start-up (``sim.outages``):
    `down_for_seconds` (every jobs request answers 503), `storm_seconds` (about half of them fail). The gateway's
    quota (``pipeline.simulator.ratelimit``): `rate_limit`, requests a second per user, or (from second, limit)
    steps. The live mode (``pipeline.simulator.live``): each jobs request moves the clock
    `live_seconds_per_request` seconds on and creates `live_jobs_per_request` jobs at it (0, the default: off, the clock frozen)."""
    seed: int = 7
    project_ids: tuple[str, ...] = (DEFAULT_PROJECT_ID,)
    token: str | None = field(default="sim-token", repr=False)
    jobs_per_day: int = 40
    history_days: int = 40
    retention_days: int = 30
    now: datetime | None = None
    include_total_count: bool = True
    latency_s: float = 0.0
    running_ended_at: str = "empty"
    order: str = "newest_first"
    authenticator: Authenticator | None = None
    extra_routes: Sequence["Route | tuple[Any, ...]"] = ()
    broken_answer: str | None = None
    reported_total_count: int | None = None
    degraded_fraction: float = 0.0
    error_shape: str = "flat"
    down_for_seconds: float | None = None
    storm_seconds: float | None = None
    rate_limit: "float | Sequence[tuple[float, float]] | None" = None
    live_jobs_per_request: int = 0
    live_seconds_per_request: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.project_ids, str) or not self.project_ids:
            raise ValueError(f"project_ids must be a non-empty sequence of ids, got {self.project_ids!r}")
        object.__setattr__(self, "project_ids", tuple(self.project_ids))
        for pid in self.project_ids:
            if not isinstance(pid, str) or not _PROJECT_ID.fullmatch(pid):
                raise ValueError(f"project id {pid!r} must be letters, digits, '-' or '_'")
        for name, low in (("jobs_per_day", 0), ("history_days", 1), ("retention_days", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if self.token is not None and (not isinstance(self.token, str) or not self.token):
            raise ValueError("token must be a non-empty string or None")
        if self.now is not None and (not isinstance(self.now, datetime) or self.now.tzinfo is None):
            raise ValueError(f"now must be a time-zone aware datetime or None, got {self.now!r}")
        if not isinstance(self.latency_s, (int, float)) or self.latency_s < 0:
            raise ValueError(f"latency_s must be a number of seconds >= 0, got {self.latency_s!r}")
        for name, allowed in (("running_ended_at", RUNNING_ENDED_AT_STYLES), ("order", ORDERS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        object.__setattr__(self, "extra_routes", tuple(as_route(spec) for spec in self.extra_routes))
        check_answer_modes(self.broken_answer, self.reported_total_count, self.degraded_fraction, self.error_shape)
        if self.down_for_seconds is not None and self.storm_seconds is not None:
            raise ValueError("down_for_seconds and storm_seconds are exclusive: give one of them")
        for name in ("down_for_seconds", "storm_seconds"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
                raise ValueError(f"{name} must be a number of seconds > 0 or None, got {value!r}")
        if self.rate_limit is not None:
            object.__setattr__(self, "rate_limit", RateSchedule.of(self.rate_limit).steps)
        check_live_settings(self.live_jobs_per_request, self.live_seconds_per_request)

    def resolved_authenticator(self) -> Authenticator:
        if self.authenticator is not None:
            return self.authenticator
        return OpenAuthenticator() if self.token is None else TokenAuthenticator(self.token)


def list_jobs(sim: "DdsSimulator", request: RequestInfo) -> Response:
    """`GET /v3.1/{project_id}/jobs`: one page of the project's jobs in the requested window.

    Errors: 400 DBS.200001 for a bad parameter; 403 DBS.200011 for a project id the simulator does not serve
    (the provider's answer to a token scoped to another project); authentication (401) is checked before.
    Every answer is ready ``latency_s`` after the request arrived.
    """
    try:
        return _jobs_page(sim, request)
    finally:
        # The simulator's own work (the query, the JSON) counts in the latency, as a real API's work counts in its
        # answer time: added on top, it made a 20 ms simulator answer in 21.5 ms and more (12 requests in flight
        # queue for its one interpreter), and the client looked that much slower than its floor.
        remaining = sim.config.latency_s - (time.monotonic() - request.received_at)
        if remaining > 0:
            time.sleep(remaining)


def _jobs_page(sim: "DdsSimulator", request: RequestInfo) -> Response:
    project_id = request.path_params["project_id"]
    if not sim.store.has_project(project_id):
        raise ApiError(403, "DBS.200011", f"The project ID {project_id} does not match the token's project.")
    try:
        query = parse_job_query(request.query)
    except InvalidQuery as exc:
        raise ApiError(400, "DBS.200001", str(exc)) from None
    sim.live.before_answer(sim.store, project_id)
    return json_response(200, sim.answers.page(sim.store, project_id, query, sim.config.include_total_count))


class _SimulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # Many clients page concurrently; the default backlog of 5 makes connects stall on SYN retries.
    request_queue_size = 128

    def __init__(self, simulator: "DdsSimulator", port: int) -> None:
        self.simulator = simulator
        self.open_connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__((LOOPBACK, port), _RequestHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.open_connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.open_connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeout on a "slow" fault) breaks the pipe: routine here, not worth a traceback.
        if isinstance(sys.exc_info()[1], ConnectionError):
            log.debug("simulator: the client %s went away", client_address)
        else:
            log.exception("simulator: failed to serve %s", client_address)

    def close_open_connections(self) -> None:
        """Ends kept-alive connections, so that a stopped simulator answers nothing more."""
        with self.connections_lock:
            for connection in list(self.open_connections):
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without this, Nagle + delayed ACK add ~40 ms per request.
    disable_nagle_algorithm = True
    server: _SimulatorHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("simulator: " + format, *args)

    def _dispatch(self) -> None:
        received_at = time.monotonic()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        headers = {name: value for name, value in self.headers.items()}
        simulator = self.server.simulator
        response, fault = simulator.respond(self.command, self.path, headers, body)
        target = urlsplit(self.path)
        # Recorded before answering, so that a client seeing the answer also sees its record.
        simulator.record(RecordedRequest(
            self.command, target.path, dict(parse_qsl(target.query, keep_blank_values=True)), headers,
            0 if response is None else response.status, fault.kind if fault else None, target.query, received_at))
        if response is None:
            self.close_connection = True
            return
        self.send_response(response.status)
        for name, value in {**response.headers, "Content-Length": str(len(response.body)),
                            "X-Request-Id": str(uuid.uuid4())}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch


class DdsSimulator:
    """The fake DDS API on http://127.0.0.1:PORT; start()/stop() or use as a context manager."""

    def __init__(self, config: SimulatorConfig | None = None, port: int = 0, host: str = LOOPBACK) -> None:
        if host != LOOPBACK:
            raise ValueError(f"the simulator binds to {LOOPBACK} only, refusing host {host!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an integer 0..65535 (0: any free port), got {port!r}")
        self.config = config if config is not None else SimulatorConfig()
        now = self.config.now or datetime.now(timezone.utc)
        self.store = JobStore(seed=self.config.seed, project_ids=self.config.project_ids,
                              jobs_per_day=self.config.jobs_per_day, history_days=self.config.history_days,
                              retention_days=self.config.retention_days, now=now.replace(microsecond=0),
                              running_ended_at=self.config.running_ended_at, order=self.config.order)
        self.faults = FaultInjector()
        config = self.config
        self.answers = AnswerModes(seed=config.seed, broken_answer=config.broken_answer,
                                   reported_total_count=config.reported_total_count,
                                   degraded_fraction=config.degraded_fraction, error_shape=config.error_shape)
        self.outages = Outages()
        self.live = LiveCreation(config.live_jobs_per_request, config.live_seconds_per_request)
        # The gateway's quota per user, in front of the jobs route (and its faults).
        self.throttle = UserRateLimit(RateSchedule.of(config.rate_limit)) if config.rate_limit else None
        self.requests: list[RecordedRequest] = []
        self.routes: list[Route] = [*self.config.extra_routes,
                                    Route("GET", JOBS_PATH, list_jobs, authenticated=True, faultable=True)]
        self.authenticator = self.config.resolved_authenticator()
        self._requested_port = port
        self._requests_lock = threading.Lock()
        self._server: _SimulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def project_id(self) -> str:
        return self.config.project_ids[0]

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the simulator is not running: call start() first")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """The endpoint a client is configured with; jobs are at {url}/v3.1/{project_id}/jobs."""
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> "DdsSimulator":
        if self._server is not None:
            raise RuntimeError(f"the simulator already serves {self.url}")
        self._server = _SimulatorHTTPServer(self, self._requested_port)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"dds-simulator-{self.port}", daemon=True)
        self._thread.start()
        # Outages of the configuration count from the moment the simulator serves.
        if self.config.down_for_seconds is not None:
            self.outages.down(seconds=self.config.down_for_seconds)
        elif self.config.storm_seconds is not None:
            self.outages.storm(seconds=self.config.storm_seconds)
        return self

    def stop(self) -> None:
        server, thread, self._server, self._thread = self._server, self._thread, None, None
        if server is None:
            return
        server.shutdown()
        server.close_open_connections()
        server.server_close()
        if thread is not None:
            thread.join()

    def __enter__(self) -> "DdsSimulator":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "stopped"
        return f"DdsSimulator({where}, projects={list(self.config.project_ids)})"

    def record(self, request: RecordedRequest) -> None:
        with self._requests_lock:
            self.requests.append(request)

    def _route(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        path_matched = False
        for route in self.routes:
            match = route.pattern.fullmatch(path)
            if match is None:
                continue
            if route.method == method:
                return route, match.groupdict()
            path_matched = True
        if path_matched:
            raise ApiError(405, "APIG.0101", f"The method {method} is not allowed for {path}.")
        raise ApiError(404, "APIG.0101", "The API does not exist or has not been published in the environment.")

    def respond(self, method: str, target: str, headers: dict[str, str],
                body: bytes) -> tuple[Response | None, Fault | None]:
        """The answer to one request (None: drop the connection) and the fault injected into it, if any."""
        path, _, raw_query = target.partition("?")
        try:
            route, path_params = self._route(method, path)
        except ApiError as exc:
            return self.answers.error_response(exc), None
        request = RequestInfo(method, path, raw_query, dict(parse_qsl(raw_query, keep_blank_values=True)),
                              headers, body, path_params)
        if route.faultable and self.throttle is not None:
            throttled = self.throttle.check(request)
            if throttled is not None:
                return throttled, None
        fault = (self.faults.next_fault() or self.outages.next_fault()) if route.faultable else None
        if fault is not None:
            if fault.drops_connection:
                return None, fault
            replacement = fault.replacement()
            if replacement is not None:
                return Response(*replacement), fault
            time.sleep(fault.delay_s)
        response = self._answer(route, request)
        if fault is not None:
            status, spoiled = fault.corrupt(response.status, response.body)
            response = Response(status, response.headers, spoiled)
        return response, fault

    def _answer(self, route: Route, request: RequestInfo) -> Response:
        try:
            if route.authenticated:
                refusal = self.authenticator.check(request)
                if refusal is not None:
                    raise refusal
            return route.handler(self, request)
        except ApiError as exc:
            return self.answers.error_response(exc)
        except Exception:
            log.exception("simulator: the handler of %s %s failed", request.method, request.path)
            internal = ApiError(500, "DBS.200999", "Internal server error. Try again later.")
            return self.answers.error_response(internal)
