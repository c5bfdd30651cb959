"""``dds-tasks demo --ui``: Dagster's UI (``dg dev``) on the demo's Dagster home, configuration and simulator.

The UI shows the demo's runs, partitions, checks and plots, and a backfill launched from it fetches from the same
simulator (kept serving by the demo's process) into the demo's folder. Ctrl-C (SIGINT), SIGTERM or a closed
terminal (SIGHUP) stop ``dg dev`` and everything it started, then the simulator: nothing is left running.
"""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

from pipeline.cli.shellcommands import shell_path

LOOPBACK = "127.0.0.1"
# dg dev loads the definitions in a code server before it answers: up to a minute on a busy 2-core host.
READY_TIMEOUT_SECONDS = 180
# dg dev asks its webserver and daemon to stop and waits for them; past this, the rest of the group is killed.
STOP_TIMEOUT_SECONDS = 30
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def usable_port(port: int) -> int:
    """``port`` when it is free on 127.0.0.1, else a free one (the UI's default 3000 is often taken)."""
    for wanted in (port, 0):
        with socket.socket() as probe:
            try:
                probe.bind((LOOPBACK, wanted))
            except OSError:
                continue
            return probe.getsockname()[1]
    raise OSError("no free port on 127.0.0.1")


def group_alive(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs (zombies waiting to be reaped do not count)."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            # The command name (2nd field) may hold spaces and parentheses: the fields after its last ")" are fixed.
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def stop_process_group(process: subprocess.Popen, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
    """SIGTERM to the process group that ``process`` leads (started with ``start_new_session=True``), then SIGKILL
    to what is left of it after ``timeout``. SIGTERM, not SIGINT: a process started from a shell that ignores
    SIGINT (a background job) ignores it too."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if process.poll() is not None and not group_alive(process.pid):
                return
            time.sleep(0.2)
    process.poll()


def _answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/server_info", timeout=2).ok
    except requests.RequestException:
        return False


def serve_ui(folder: Path, env: dict[str, str], port: int) -> int:
    """Runs ``dg dev`` on the demo until a stop signal; 0 when stopped so, 1 when it ended by itself."""
    stop = threading.Event()
    # Handlers (rather than KeyboardInterrupt) so that SIGTERM and SIGHUP stop the same way, and Ctrl-C works even
    # where the shell started us with SIGINT ignored. dg dev gets the default handlers back at exec.
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in _STOP_SIGNALS}
    port = usable_port(port)
    url = f"http://{LOOPBACK}:{port}"
    log_path = folder / "dagster_dev.log"
    print(f"\nStarting Dagster's UI on the demo (dg dev, its log in {shell_path(log_path)}) ...", flush=True)
    with open(log_path, "ab") as log:
        server = subprocess.Popen(
            # -m: the demo's folder is no dg project (nor is an installed package's); dg then serves the module
            # as `dagster dev -m` did, without its SupersessionWarning.
            [os.path.join(os.path.dirname(os.path.abspath(sys.executable)), "dg"), "dev",
             "-m", "pipeline.definitions", "-h", LOOPBACK, "-p", str(port)],
            cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while not stop.is_set() and server.poll() is None and not _answers(url):
            if time.monotonic() > deadline:
                print(f"dds-tasks demo: Dagster's UI did not answer within {READY_TIMEOUT_SECONDS}s; see "
                      f"{shell_path(log_path)}", file=sys.stderr)
                return 1
            stop.wait(0.5)
        if server.poll() is None and not stop.is_set():
            print(f"Dagster UI: {url}   (the demo's assets, partitions, checks and plots; Ctrl-C stops it and "
                  "the simulator)", flush=True)
        while not stop.is_set() and server.poll() is None:
            stop.wait(0.5)
        if not stop.is_set():
            print(f"dds-tasks demo: dg dev stopped by itself (exit {server.returncode}); see "
                  f"{shell_path(log_path)}", file=sys.stderr)
            return 1
        print("\nStopping Dagster's UI and the simulator ...", flush=True)
        return 0
    finally:
        stop_process_group(server)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
