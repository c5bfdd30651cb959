"""Commands run as a user pastes them: in a fresh clone's layout, with the venv not activated, servers stopped by
process group; and what they leave running or untracked."""

import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

from pipeline.cli.demo_ui import STOP_TIMEOUT_SECONDS, usable_port
from tests.support.dagster_helpers import env_without_secrets
from tests.support.paths import ROOT
from tests.support.processes import spawn, stop

# What a server prints once it answers: `dds-tasks demo --ui` and dagster dev's own log line.
SERVING = re.compile(r"(?:Dagster UI:|Serving dagster-webserver on) (http://127\.0\.0\.1:\d+)")


def fresh_clone(target: Path) -> Path:
    """The project's files (committed or not, never the ignored ones) in ``target``, committed to a new git
    repository so that what commands leave behind shows as untracked; ``.venv`` links to this interpreter's venv."""
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_symlink():  # pipeline/sql links to sql/: a link in the clone too, as git checks it out
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            (target / name).symlink_to(os.readlink(ROOT / name))
        elif (ROOT / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)
    (target / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    git = ["git", "-C", str(target), "-c", "user.name=test", "-c", "user.email=test@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "clone"], check=True)
    return target


def untracked(clone: Path) -> list[str]:
    """Files the commands left in the clone that .gitignore does not cover."""
    return subprocess.run(["git", "-C", str(clone), "status", "--porcelain", "--untracked-files=all"],
                          capture_output=True, text=True, check=True).stdout.splitlines()


def processes_left_in(folder: Path, grace_seconds: float = 30) -> list[str]:
    """``processes_in(folder)`` once they have ended, or after ``grace_seconds``: a server told to stop ends its
    children in its own time (SIGTERM first, SIGKILL after STOP_TIMEOUT_SECONDS), and their exit is not instant."""
    deadline = time.monotonic() + grace_seconds
    while (found := processes_in(folder)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return found


def processes_in(folder: Path) -> list[str]:
    """Processes (other than this one) working in ``folder`` or below it: what a command left running."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if int(proc.name) != os.getpid() and Path(os.readlink(proc / "cwd")).is_relative_to(folder):
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except (OSError, ValueError):
            continue
    return found


def user_shell_env() -> dict[str, str]:
    """The environment of a shell in which the venv is not activated, nor any DDS_* variable set."""
    venv_bin = Path(sys.executable).parent.resolve()
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and Path(p).resolve() != venv_bin]
    env = {k: v for k, v in env_without_secrets().items() if k not in ("VIRTUAL_ENV", "DAGSTER_HOME")}
    return {**env, "PATH": os.pathsep.join(path)}


class Shell:
    """Lines run by bash at the clone's root, as pasted: an ``export`` line sets variables for the lines after it."""

    def __init__(self, cwd: Path, env: dict[str, str]):
        self.cwd, self.env = cwd, dict(env)

    def export(self, line: str) -> None:
        words = shlex.split(line, comments=True)
        assert words[0] == "export", line
        self.env.update(word.split("=", 1) for word in words[1:])

    def run(self, line: str, timeout: float = 300) -> subprocess.CompletedProcess:
        done = subprocess.run(["bash", "-c", line], cwd=self.cwd, env=self.env, capture_output=True, text=True,
                              timeout=timeout)
        assert done.returncode == 0, f"{line!r} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        return done

    def serve(self, line: str, timeout: float = 300, attempts: int = 3) -> str:
        """Runs a server until it answers, then stops its process group; its output up to then.

        A port free when chosen (``DAGSTER_CLI_DEV_PORT`` for ``dagster dev``, ``DAGSTER_DG_DEV_PORT`` for ``dg
        dev``) can be taken before the server binds it: the server then exits at once, and is started again on
        another.
        """
        for _ in range(attempts):
            for variable in ("DAGSTER_CLI_DEV_PORT", "DAGSTER_DG_DEV_PORT"):
                if variable in self.env:
                    self.env[variable] = str(usable_port(0))
            output, url = self._serve_once(line, timeout)
            if url or "address already in use" not in output.lower():
                break
        assert url, f"{line!r} ended before serving:\n{output[-3000:]}"
        return output

    def _serve_once(self, line: str, timeout: float) -> tuple[str, str | None]:
        server = spawn(["bash", "-c", f"exec {line}"], cwd=self.cwd, env=self.env, text=True,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(server.stdout), daemon=True)
        reader.start()
        try:
            deadline = time.monotonic() + timeout
            while not (url := next((m[1] for m in map(SERVING.search, list(lines)) if m), None)):
                if server.poll() is not None:
                    break
                assert time.monotonic() < deadline, f"{line!r} did not serve within {timeout:.0f}s"
                time.sleep(0.5)
            while url:
                try:
                    answer = requests.get(f"{url}/server_info", timeout=10)
                except requests.ConnectionError:
                    # It said where it would serve, then could not bind the port (taken meanwhile by another
                    # test's server): it exits, and serve() starts it again on another port.
                    try:
                        server.wait(timeout=1)
                        url = None
                    except subprocess.TimeoutExpired:
                        assert time.monotonic() < deadline, f"{line!r} did not answer at {url} in {timeout:.0f}s"
                    continue
                assert answer.ok and "dagster_webserver_version" in answer.json(), answer.text
                break
        finally:
            # Time for the server to stop what it started (dagster dev's own group) before its group is killed.
            stop(server, grace_seconds=STOP_TIMEOUT_SECONDS + 30)
        reader.join(timeout=10)
        return "".join(lines), url
