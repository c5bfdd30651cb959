"""The browser of the browser tests: Debian's Chromium, headless, driven by PyPI playwright."""

import os
from pathlib import Path

import pytest

from tests.support.paths import ARTIFACTS

CHROMIUM = "/usr/bin/chromium"


def browser_or_skip():
    """Playwright's sync API, or a skip saying what is missing (a failure under CI, which installs both)."""
    missing = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = "PyPI playwright is not installed (the dev extra has it)"
    if not missing and not os.access(CHROMIUM, os.X_OK):
        missing = f"{CHROMIUM} is missing (Debian's chromium package: apt-get install -y chromium)"
    if missing:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"the browser tests need it under CI: {missing}", pytrace=False)
        pytest.skip(missing)
    return sync_playwright


def artifacts_dir() -> Path:
    """Where the browser tests keep their screenshots: tests/artifacts/, made if missing."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
