"""Every command the README and the demo print, run as printed in a fresh clone's layout with the venv not
activated (quick ones to the end, servers until they answer); every SQL and Python snippet of the README, run on
the demo's warehouse and Parquet files; and what all of it leaves behind, covered by .gitignore."""

import os
import re
import signal
import sqlite3
import subprocess
from datetime import date
from pathlib import Path

import pytest

from pipeline.simulator import DdsSimulator, SimulatorConfig
from pipeline.simulator.auth import SimulatorAuthenticator
from pipeline.cli.simulate import config_from_args
from tests.support.dagster_helpers import expected_jobs
from tests.support.paths import ROOT
from tests.support.shell_helpers import (
    Shell,
    fresh_clone,
    processes_left_in,
    untracked,
    user_shell_env,
)

README = (ROOT / "README.md").read_text()
# Run by .ci/run as printed (checked below), not by this test: they install the venv these tests run in.
SET_UP = ("python3 -m venv .venv", ".venv/bin/pip install -e '.[dev]'", ".venv/bin/python -m pytest")
SERVERS = re.compile(r"\b(dagster|dg) dev\b|\bdds-tasks demo\b.*--ui")
PLACEHOLDER = re.compile(r"<[^<>]+>")
AK, SK = "READMEAKEXAMPLE0001", "readme-secret-key-for-the-simulator"


def code_blocks(language: str) -> list[str]:
    """The README's fenced blocks in ``language``, list items' indented ones too."""
    return [re.sub(r"^ {2,}", "", body, flags=re.M) for body in
            re.findall(rf"^ *```{language}\n(.*?)^ *```", README, flags=re.M | re.S)]


def command_lines(block: str) -> list[str]:
    return [line.strip() for line in block.splitlines() if line.strip() and not line.strip().startswith("#")]


def bash_commands() -> list[str]:
    return [line for block in code_blocks("bash") for line in command_lines(block)]


def run_lines(shell: Shell, lines: list[str]) -> dict[str, str]:
    """Each line as a user runs it: ``export`` sets, a server serves until it answers, the rest runs to its end;
    the output of each."""
    outputs = {}
    for line in lines:
        if line.startswith("export "):
            shell.export(line)
        elif SERVERS.search(line):
            outputs[line] = shell.serve(line)
        else:
            done = shell.run(line)
            outputs[line] = done.stdout + done.stderr
    return outputs


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    return fresh_clone(tmp_path_factory.mktemp("clone"))


@pytest.fixture(scope="module")
def demo_output(clone) -> str:
    """The README's first command, the part a test can run: the demo, in the clone."""
    first = bash_commands()[0]
    parts = [part.strip() for part in first.split("&&")]
    assert parts[:2] == list(SET_UP[:2]), first
    return run_lines(Shell(clone, user_shell_env()), parts[2:])[parts[2]]


def test_the_set_up_and_test_commands_are_what_ci_runs_and_inline_commands_name_the_venv():
    ci = (ROOT / ".ci" / "run").read_text()
    set_up_block = command_lines(code_blocks("bash")[0])
    assert set_up_block[0].split("  #")[0] in ci and SET_UP[2] in ci
    assert all(any(line.startswith(p) for p in SET_UP[1:]) or ".venv/bin/" in line for line in set_up_block)
    # Commands quoted inline are pasted too: never a bare `dagster ...` that only an activated venv would find.
    inline = [span for span in re.findall(r"`([^`\n]+)`", README) if len(span.split()) >= 4]
    bare = [span for span in inline if re.match(r"(dagster|dds-tasks|python|pip|pytest) ", span)]
    assert bare == []


@pytest.mark.slow
def test_the_demo_and_the_commands_it_prints_run_as_printed(clone, demo_output):
    assert "asset checks: 6 of 6 passed." in demo_output
    next_lines = demo_output.split("\nNext:\n", 1)[1].splitlines()
    commands = [line.strip() for line in next_lines if line.startswith("  ")]
    assert len(commands) == 3 and any(SERVERS.search(c) for c in commands)
    outputs = run_lines(Shell(clone, user_shell_env()), commands)
    sql, python = (outputs[c] for c in commands if not SERVERS.search(c))
    assert "Completed" in sql and "Failed" in sql
    assert "MongodbSnapshotBackup" in python or "created_date" in python
    ui = next(out for command, out in outputs.items() if SERVERS.search(command))
    assert "asset checks: 6 of 6 passed." in ui and "Dagster UI: http://127.0.0.1:" in ui
    assert processes_left_in(clone) == [] and untracked(clone) == []


@pytest.mark.slow
def test_the_readme_demo_ui_command_serves_the_demo(clone, demo_output):
    lines = command_lines(code_blocks("bash")[0])
    outputs = run_lines(Shell(clone, user_shell_env()), [line for line in lines if SERVERS.search(line)])
    assert len(outputs) == 1 and "Dagster UI: http://127.0.0.1:" in next(iter(outputs.values()))
    # The UI is served by dg dev, the current command: its log holds no warning that a command is superseded.
    served = (clone / "demo" / "dagster_dev.log").read_text()
    assert "Serving dagster-webserver" in served and "SupersessionWarning" not in served
    assert processes_left_in(clone) == [] and untracked(clone) == []


def test_the_readme_sql_runs_on_the_demos_warehouse(clone, demo_output):
    statements = [s.strip() for block in code_blocks("sql") for s in block.split(";") if s.strip()]
    assert len(statements) >= 3
    db = sqlite3.connect(clone / "demo" / "data" / "warehouse.db")
    try:
        answers = {statement: db.execute(statement).fetchall() for statement in statements}
        total = db.execute("SELECT COUNT(*) FROM dds_jobs").fetchone()[0]
    finally:
        db.close()
    assert all(answers.values()), [statement for statement, rows in answers.items() if not rows]
    # The demo's rows carry its region, every one of them.
    [per_region] = [rows for statement, rows in answers.items() if "GROUP BY region" in statement]
    assert per_region == [("ap-southeast-1", total)]


def test_the_readme_python_runs_on_the_demos_parquet_files(clone, demo_output):
    [snippet] = code_blocks("python")
    # What the snippet read, printed after it: every stored job, by pandas and by pyarrow alike.
    (clone / "snippet.py").write_text(snippet + '\nprint("read:", len(jobs), table.num_rows)\n')
    try:
        done = Shell(clone, user_shell_env()).run(".venv/bin/python snippet.py", timeout=120)
    finally:
        (clone / "snippet.py").unlink()
    db = sqlite3.connect(clone / "demo" / "data" / "warehouse.db")
    total = db.execute("SELECT COUNT(*) FROM dds_jobs").fetchone()[0]
    names = db.execute("SELECT COUNT(DISTINCT name) FROM dds_jobs").fetchone()[0]
    db.close()
    assert f"read: {total} {total}" in done.stdout
    # DuckDB's table of average durations: one row per task name.
    assert "avg(duration_s" in done.stdout and f"{names} rows" in done.stdout


def test_the_simulators_defaults_serve_the_jobs_the_demo_stored(clone, demo_output):
    from pipeline.cli.main import _parser

    db = sqlite3.connect(clone / "demo" / "data" / "warehouse.db")
    day = db.execute("SELECT MAX(created_date) FROM dds_jobs").fetchone()[0]
    stored = {row[0] for row in db.execute("SELECT id FROM dds_jobs WHERE created_date = ?", (day,))}
    db.close()
    with DdsSimulator(config_from_args(_parser().parse_args(["simulate"])), port=0) as sim:
        served = set(expected_jobs(sim, date.fromisoformat(day), date.fromisoformat(day)))
    assert stored and served == stored


@pytest.mark.slow
def test_running_it_with_dagster_as_printed_with_the_placeholders_filled(clone):
    """The production commands, with the `<...>` filled in and DDS_ENDPOINT pointing them at a simulator (the one
    variable added: a real deployment reaches the region's endpoint)."""
    lines = [line for block in code_blocks("bash")[1:] for line in command_lines(block)]
    gateway = SimulatorAuthenticator(keys={AK: SK})
    with DdsSimulator(SimulatorConfig(seed=9, jobs_per_day=30, authenticator=gateway), port=0) as sim:
        values = {"<project id>": sim.project_id, "<access key>": AK, "<secret key>": SK}
        assert {p for line in lines for p in PLACEHOLDER.findall(line)} == values.keys()
        filled = [PLACEHOLDER.sub(lambda m: values[m[0]], line) for line in lines]
        # Other tests on this machine may hold port 3000: dg dev takes its port from this variable too (the shell
        # picks a free one for each server it starts).
        shell = Shell(clone, {**user_shell_env(), "DDS_ENDPOINT": sim.url, "DAGSTER_DG_DEV_PORT": ""})
        outputs = run_lines(shell, filled)
        assert len(sim.requests) > 0
    assert any("Serving dagster-webserver" in out for out in outputs.values())
    materialized = next(out for line, out in outputs.items() if "dg launch" in line)
    assert "run summary:" in materialized and "RUN_SUCCESS" in materialized
    # The range the README gives is the last 7 days, whenever it is read: each of them fetched and stored.
    assert "over 7 day(s)" in materialized
    # The commands the README prints are the current ones: none that Dagster says is superseded.
    assert not any("SupersessionWarning" in out for out in outputs.values())
    assert processes_left_in(clone) == []
    # The CLI wrote into data/; dg dev without DAGSTER_HOME keeps a .tmp_dagster_home_* folder while it runs
    # (and leaves it behind when it is killed): both are ignored.
    assert (clone / "data" / "warehouse.db").is_file() and untracked(clone) == []
    ignored = subprocess.run(["git", "-C", str(clone), "check-ignore", ".tmp_dagster_home_x1y2/history/runs.db"],
                             capture_output=True, text=True)
    assert ignored.returncode == 0, ignored



@pytest.mark.slow
def test_the_commands_the_simulator_prints_sync_from_it_as_printed(clone):
    """`dds-tasks simulate`, run in the clone, and the lines it prints (its `export`s and the current `dg launch`)
    pasted there: a sync of the simulator's last days, with no warning that the command is superseded."""
    env = user_shell_env()
    simulator = subprocess.Popen([".venv/bin/dds-tasks", "simulate", "--port", "0", "--jobs-per-day", "30"],
                                 cwd=clone, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                 start_new_session=True)
    try:
        printed = []
        for line in simulator.stdout:
            if line.startswith("Press Ctrl-C"):
                break
            printed.append(line.rstrip("\n"))
        pasted = [line.strip().removeprefix("then: ").split("   #")[0] for line in printed if line.startswith("  ")]
        # The venv's dg, as this interpreter's venv is named from the clone (a link to it here: its real path).
        lines = [line for line in pasted if line.startswith("export ") or "/bin/dg launch " in line]
        assert len(lines) >= 2 and "/bin/dg launch " in lines[-1], printed
        outputs = run_lines(Shell(clone, env), lines)
    finally:
        os.killpg(simulator.pid, signal.SIGTERM)
        simulator.wait(timeout=30)
    [launched] = [out for line, out in outputs.items() if "dg launch" in line]
    assert "RUN_SUCCESS" in launched and "run summary:" in launched and "SupersessionWarning" not in launched
    assert processes_left_in(clone) == []
