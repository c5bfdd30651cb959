"""The report's HTML page in a real browser: headless Chromium (Debian's ``chromium``, driven by Playwright) renders
it, every chart drawn, without a single network request. A screenshot is kept under tests/artifacts/."""

from tests.support.browser import CHROMIUM, artifacts_dir, browser_or_skip
from tests.support.report_helpers import report_html


def test_headless_chromium_renders_the_report_without_a_network_request(sqlite_url, tmp_path):
    sync_playwright = browser_or_skip()
    html_path = tmp_path / "report.html"
    html_path.write_text(report_html(sqlite_url, tmp_path / "out"), encoding="utf-8")
    requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            tab = browser.new_page(viewport={"width": 1100, "height": 900})
            tab.on("request", lambda request: requests.append(request.url))
            tab.goto(html_path.as_uri(), wait_until="load")
            widths = tab.eval_on_selector_all("img.chart", "images => images.map(i => i.complete && i.naturalWidth)")
            headings = tab.eval_on_selector_all("h2", "hs => hs.map(h => h.textContent)")
            shot = artifacts_dir() / "report.png"
            tab.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert [url for url in requests if not url.startswith("data:")] == [html_path.as_uri()]
    assert len(widths) == 6 and all(width and width > 300 for width in widths), widths
    assert headings[:2] == ["Jobs per day by status", "Failure rate by task name"]
    assert shot.stat().st_size > 20_000
