"""Child processes of the tests: each in a process group of its own, stopped as a group whatever it ignores.

A suite started in the background (``nohup pytest &``) inherits SIGINT ignored, and an ignored signal stays
ignored across ``exec``: a child asked to stop with Ctrl-C's signal would then run on after the test. conftest.py
restores SIGINT in the test process; ``stop`` also ends the whole group with SIGKILL once the child is given up on,
so servers that a child started (``dagster dev``'s webserver, daemon and code servers) never outlive a test.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TypeVar

import requests

T = TypeVar("T")


def spawn(args: Sequence[str], **popen_options) -> subprocess.Popen:
    """``args`` started as the leader of a new process group (and session), so that ``stop`` reaches its children."""
    return subprocess.Popen(args, start_new_session=True, **popen_options)


def stop(process: subprocess.Popen, first: signal.Signals = signal.SIGTERM, grace_seconds: float = 30) -> int | None:
    """Ask ``process`` (a ``spawn``'ed group leader) to stop with ``first``; after ``grace_seconds``, or once it has
    stopped, SIGKILL whatever is left of its group. The child's exit status (None if it had to be killed while
    ``communicate`` was not used)."""
    if process.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, first)
        try:
            process.wait(timeout=grace_seconds)
        except subprocess.TimeoutExpired:
            pass
    # The group outlives its leader when a child was orphaned (a code server, a webserver): end it too.
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)
    return process.returncode


def interrupt(process: subprocess.Popen, grace_seconds: float = 10) -> tuple[str, str]:
    """Press Ctrl-C in ``process`` (a ``spawn``'ed group leader with piped output): its (stdout, stderr) once it has
    stopped. One that does not stop within ``grace_seconds`` is killed with its group, and the test fails."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
    try:
        return process.communicate(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        stop(process, signal.SIGKILL, 0)
        raise AssertionError(f"{process.args[0]} did not stop within {grace_seconds}s of SIGINT") from None
    finally:
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)


def wait_until(predicate: Callable[[], T], timeout: float, what: str, every: float = 1.0) -> T:
    """``predicate``'s first truthy value, polled every ``every`` seconds; a failure naming ``what`` after
    ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def dagster_dev(cwd: Path, env: dict[str, str], log_path: Path, attempts: int = 3) -> Iterator[str]:
    """``dagster dev`` on a loopback port with ``env``; yields its base URL once it serves.

    ``dagster dev`` binds the port it is given and cannot be handed a bound socket: a port free when chosen can be
    taken before it binds. Then the server exits at once, and another port is tried; a server that answers is
    only taken for ours while our process is alive.
    """
    dagster = str(Path(sys.executable).parent / "dagster")
    with open(log_path, "w") as log:
        for attempt in range(1, attempts + 1):
            port = _unused_port()
            server = spawn([dagster, "dev", "-h", "127.0.0.1", "-p", str(port)], cwd=cwd, env=env, stdout=log,
                           stderr=subprocess.STDOUT)
            url = f"http://127.0.0.1:{port}"

            def serving() -> str | None:
                if server.poll() is not None:
                    return "exited"
                with suppress(requests.ConnectionError):
                    return "ok" if requests.get(f"{url}/server_info", timeout=2).ok else None
                return None

            try:
                if wait_until(serving, 180, "dagster dev to serve") == "ok":
                    yield url
                    return
            finally:
                stop(server, grace_seconds=60)
    raise AssertionError(f"dagster dev exited before serving, {attempts} times: see {log_path}")
