"""``dds-tasks demo --ui`` in a real browser: headless Chromium (Debian's ``chromium``) driven by Playwright through
the demo's Dagster UI as a user clicks it: the asset graph with the demo's partitions and checks, a backfill of two
of its days (their rows deleted first) launched from the UI and storing them again, the per-day plots; then Ctrl-C
leaves nothing running.
Screenshots are kept under tests/artifacts/ (the path is printed)."""

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from pipeline.cli.demo_ui import usable_port
from tests.support.browser import CHROMIUM, browser_or_skip
from tests.support.dagster_helpers import env_without_secrets
from tests.support.paths import ARTIFACTS, BIN
from tests.support.processes import spawn, stop
from tests.support.shell_helpers import processes_left_in

DEMO_DAYS = 3
UI_TIMEOUT_MS = 60_000


class DemoUi:
    """``dds-tasks demo --ui`` started as from a shell that ignores SIGINT (a background job), in its own session."""

    def __init__(self, cwd: Path):
        self.cwd = cwd
        self.lines: list[str] = []
        self.process = spawn(
            [str(BIN / "dds-tasks"), "demo", "--days", str(DEMO_DAYS), "--jobs-per-day", "60",
             "--ui", "--port", str(usable_port(0))],
            cwd=cwd, env=env_without_secrets(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
        threading.Thread(target=lambda: self.lines.extend(self.process.stdout), daemon=True).start()

    def url(self, timeout: float = 240) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [m[1] for m in map(re.compile(r"Dagster UI: (http://\S+)").search, list(self.lines)) if m]
            if found:
                return found[0]
            assert self.process.poll() is None, "".join(self.lines)[-3000:]
            time.sleep(0.5)
        raise AssertionError("dds-tasks demo --ui did not print its UI's address:\n" + "".join(self.lines)[-3000:])

    def interrupt(self, timeout: float = 90) -> int:
        """Ctrl-C, as the terminal sends it: SIGINT to the demo's process group."""
        os.killpg(self.process.pid, signal.SIGINT)
        return self.process.wait(timeout=timeout)


def demo_days() -> list[date]:
    last = datetime.now(timezone.utc).date() - timedelta(days=1)
    return [last - timedelta(days=n) for n in range(DEMO_DAYS - 1, -1, -1)]


def stored_days(cwd: Path) -> set[str]:
    db = sqlite3.connect(cwd / "demo" / "data" / "warehouse.db")
    try:
        return {row[0] for row in db.execute("SELECT DISTINCT created_date FROM dds_jobs WHERE region = 'ap-southeast-1'")}
    finally:
        db.close()


def forget_days(cwd: Path, days: list[date]) -> None:
    """Delete the warehouse's rows of ``days``, as a lost load would leave them: the backfill must bring them back."""
    db = sqlite3.connect(cwd / "demo" / "data" / "warehouse.db")
    try:
        with db:
            db.executemany("DELETE FROM dds_jobs WHERE created_date = ?", [(day.isoformat(),) for day in days])
    finally:
        db.close()


@pytest.mark.slow
def test_the_demo_ui_shows_the_demo_and_backfills_two_of_its_days_by_clicking(tmp_path, request):
    sync_playwright = browser_or_skip()
    shots = ARTIFACTS / request.node.name
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    print(f"\nscreenshots: {shots}")
    ui = DemoUi(tmp_path)
    try:
        url = ui.url()
        # The demo's partitions start at its first day: the two days backfilled are two of its own, emptied first.
        backfilled = demo_days()[:2]
        forget_days(tmp_path, backfilled)
        assert stored_days(tmp_path) == {d.isoformat() for d in demo_days()[2:]}
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(UI_TIMEOUT_MS)
            _dismiss_welcome_whenever_shown(page)
            try:
                _asset_graph_shows_the_demo(page, url, shots)
                _backfill_by_clicking(page, url, backfilled, shots)
                _partitions_checks_and_plots(page, url, shots)
            except Exception:
                page.screenshot(path=str(shots / "failure.png"), full_page=True)
                raise
            finally:
                browser.close()
        assert stored_days(tmp_path) == {d.isoformat() for d in demo_days()}
        # Ctrl-C stops the UI (dg dev, its webserver, daemon, code servers) and the simulator.
        assert ui.interrupt() == 0, "".join(ui.lines)[-3000:]
    finally:
        stop(ui.process)
    assert "Stopping Dagster's UI and the simulator" in "".join(ui.lines)
    assert processes_left_in(tmp_path) == []


def _dismiss_welcome_whenever_shown(page) -> None:
    """A fresh Dagster home greets the first visit with a newsletter dialog, which the UI opens when it gets to it
    (once after the asset graph had shown): it is skipped whenever it covers the page, before each action."""
    page.add_locator_handler(page.get_by_text("Join the Dagster community"),
                             lambda _: page.get_by_role("button", name="Skip").click())


def _asset_graph_shows_the_demo(page, url: str, shots: Path) -> None:
    page.goto(f"{url}/asset-groups/dds", wait_until="networkidle")
    for asset in ("dds_jobs", "dds_jobs_parquet"):
        page.get_by_text(asset, exact=True).last.wait_for()
    # The demo's run materialized its days and ran every check: 4 on the table, 1 on the snapshots, all passed.
    page.get_by_text("4 / 4 Passed").wait_for()
    # parquet_matches_warehouse on dds_jobs_parquet, and alerts_delivered on dds_jobs_alerts (alerts off: passed).
    page.get_by_text("1 / 1 Passed").nth(1).wait_for()
    page.get_by_text(re.compile(r"\d+% filled")).first.wait_for()
    page.screenshot(path=str(shots / "1-asset-graph.png"))


def _backfill_by_clicking(page, url: str, days: list[date], shots: Path) -> None:
    page.get_by_role("button", name="Materialize all").click()
    selection = page.get_by_placeholder("No matching partitions")
    selection.click()
    selection.fill(f"[{days[0].isoformat()}...{days[-1].isoformat()}]")
    selection.press("Enter")
    page.get_by_text(f"{len(days)} partitions", exact=True).wait_for()
    page.screenshot(path=str(shots / "2-backfill-dialog.png"))
    page.get_by_role("button", name="Launch backfill").click()
    created = page.get_by_text(re.compile(r"Created backfill \w+"))
    backfill_id = created.inner_text().split()[-1]
    page.get_by_text("View", exact=True).click()
    page.wait_for_url(f"**/{backfill_id}**")
    # The backfill's page; the daemon runs it (one run for the partitioned assets: their single-run backfill
    # policy; then one for the unpartitioned dds_jobs_report and dds_jobs_alerts, downstream of them).
    page.get_by_text("Partition selection").wait_for()
    page.get_by_text("100% completed").nth(2).wait_for(timeout=240_000)
    # "Succeeded" four times: the table's column, the report's and the alerts' rows and the backfill's status. (A
    # locator, not a predicate in JavaScript: the UI's content security policy forbids evaluating strings.)
    succeeded = page.get_by_text("Succeeded", exact=True)
    deadline = time.monotonic() + 120
    while succeeded.count() != 4:
        assert time.monotonic() < deadline, f"the backfill did not succeed: {page.inner_text('body')[:1500]}"
        time.sleep(0.5)
    page.screenshot(path=str(shots / "3-backfill-succeeded.png"))


def _partitions_checks_and_plots(page, url: str, shots: Path) -> None:
    page.goto(f"{url}/assets/dds_jobs?view=partitions", wait_until="networkidle")
    # The demo's days, the two backfilled among them; today, in progress, is the one partition left missing.
    page.get_by_text(f"Materialized ({DEMO_DAYS})").wait_for()
    page.screenshot(path=str(shots / "4-partitions.png"))
    page.goto(f"{url}/assets/dds_jobs?view=checks", wait_until="networkidle")
    for check in ("stored_count_matches_api", "no_duplicate_keys", "ended_not_before_created", "no_days_at_risk"):
        page.get_by_text(check, exact=True).first.wait_for()
    # Each check's latest evaluation (the backfill's run) passed.
    assert page.get_by_text("Succeeded", exact=True).count() == 4
    assert page.get_by_text("Passed", exact=True).count() >= 1
    page.screenshot(path=str(shots / "5-checks.png"), full_page=True)
    page.goto(f"{url}/assets/dds_jobs", wait_until="networkidle")
    page.get_by_role("button", name="Plots").click()
    page.get_by_text("stored_jobs", exact=True).wait_for()
    # Per-day figures plot over the partitions; the run's own figures are never among them.
    for run_wide in ("inserted", "fetch_requests", "sync_seconds"):
        assert page.get_by_text(run_wide, exact=True).count() == 0, run_wide
    page.screenshot(path=str(shots / "6-plots.png"), full_page=True)
