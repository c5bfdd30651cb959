"""The report's HTML page in a real browser: headless Chromium (Debian's ``chromium``, driven by Playwright) renders
it, every chart drawn, without a single network request; what a reader sees first is whether every instance is
backed up. Screenshots are kept under tests/artifacts/."""

from tests.support.browser import CHROMIUM, artifacts_dir, browser_or_skip
from tests.support.report_helpers import backup_jobs, report_html


def rendered(html_path, shot_name: str, script: dict[str, str]):
    """Open ``html_path`` in headless Chromium: the URLs it requested and the result of each script (a function of
    the document), after a full-page screenshot saved as ``shot_name``."""
    sync_playwright = browser_or_skip()
    requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            tab = browser.new_page(viewport={"width": 1100, "height": 900})
            tab.on("request", lambda request: requests.append(request.url))
            tab.goto(html_path.as_uri(), wait_until="load")
            results = {name: tab.evaluate(f"() => ({code})") for name, code in script.items()}
            shot = artifacts_dir() / shot_name
            tab.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    return requests, results, shot


def test_headless_chromium_renders_the_report_without_a_network_request(sqlite_url, tmp_path):
    html_path = tmp_path / "report.html"
    html_path.write_text(report_html(sqlite_url, tmp_path / "out"), encoding="utf-8")
    requests, seen, shot = rendered(html_path, "report.png", {
        "widths": "[...document.querySelectorAll('img.chart')].map(i => i.complete && i.naturalWidth)",
        "headings": "[...document.querySelectorAll('h2')].map(h => h.textContent)",
    })
    assert [url for url in requests if not url.startswith("data:")] == [html_path.as_uri()]
    assert len(seen["widths"]) == 7 and all(width and width > 300 for width in seen["widths"]), seen["widths"]
    assert seen["headings"][:4] == ["Is every instance backed up? Time since the last successful backup",
                                    "Failure rate per day", "Jobs per day by status", "Failure rate by task name"]
    assert shot.stat().st_size > 20_000


def test_the_instances_without_a_recent_backup_come_first_marked_and_today_is_in_progress(sqlite_url, tmp_path):
    html_path = tmp_path / "backups.html"
    html_path.write_text(report_html(sqlite_url, tmp_path / "out", jobs=backup_jobs(), today_in_progress=True),
                         encoding="utf-8")
    rows = "#backup-freshness-table tbody tr"
    _, seen, _ = rendered(html_path, "report-backups.png", {
        "rows": f"[...document.querySelectorAll('{rows}')].map(r => [...r.cells].map(c => c.innerText))",
        "backgrounds": f"[...document.querySelectorAll('{rows}')].map(r => getComputedStyle(r.cells[1])"
                       ".backgroundColor)",
        "top": "document.querySelector('#backup-freshness').getBoundingClientRect().top",
        "coverage_top": "document.querySelector('#coverage').getBoundingClientRect().top",
        "summary": "document.querySelector('#backup-summary').innerText",
        "in_progress": "document.querySelector('#in-progress').innerText",
    })
    assert seen["rows"] == [
        ["\u2717 none in the period", "never-ok", "inst-a", "none", "-", "1", "1"],
        ["\u2717 none in the period", "no-backup-job", "inst-b", "none", "-", "0", "0"],
        ["! none within 24 h", "two-days", "inst-c", "2026-11-28 21:00", "2.1 days", "1", "0"],
        ["\u2713 within 24 h", "fresh", "inst-d", "2026-11-30 22:50", "1.0 h", "1", "0"],
    ]
    # The marked rows are tinted (red, then amber); the backed-up one is not.
    assert seen["backgrounds"][0] == seen["backgrounds"][1] == "rgb(251, 227, 225)"
    assert seen["backgrounds"][2] == "rgb(253, 240, 213)" and seen["backgrounds"][3] == "rgba(0, 0, 0, 0)"
    assert seen["top"] < 900 < seen["coverage_top"]  # on the first screen; the coverage far below
    assert seen["summary"].startswith("1 of 4 within 24 h; 2 without a backup in the period, 1 not within 24 h.")
    assert seen["in_progress"].startswith("2026-11-30 (today, UTC) is in progress")
