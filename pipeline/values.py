"""Configuration values that every layer checks alike, below the configuration itself (``settings``, ``targets``):
the one error of a bad setting, the region endpoints, http(s) URLs and the bound of concurrency. Reads nothing."""

import math
from urllib.parse import urlsplit

# The provider's throttling answers per second per user; more than this many requests in flight only buys 429s.
MAX_CONCURRENCY_LIMIT = 32
# The one region outside the myhuaweicloud.com domain (NOTES.md).
REGION_ENDPOINT_OVERRIDES = {"eu-west-101": "https://dds.eu-west-101.myhuaweicloud.eu"}


class ConfigError(ValueError):
    """A setting is missing or malformed; the message is one line that names it."""


def endpoint_for_region(region: str) -> str:
    """The DDS API base URL of a region."""
    return REGION_ENDPOINT_OVERRIDES.get(region, f"https://dds.{region}.myhuaweicloud.com")


def check_http_url(value: str, setting: str) -> str:
    """An http(s) URL with a host, without a trailing slash, or a ConfigError naming ``setting``."""
    text = value.strip()
    try:
        parts = urlsplit(text)
        # .port raises ValueError for a port that is not a number in 0..65535.
        usable = parts.scheme in ("http", "https") and bool(parts.hostname) and (parts.port or 0) >= 0
    except ValueError:
        usable = False
    if not usable or any(char.isspace() for char in text):
        raise ConfigError(f"{setting}={value!r} is not an http(s) URL such as https://dds.ap-southeast-1.myhuaweicloud.com")
    return value.strip().rstrip("/")


def check_max_rate(value: object, setting: str) -> float:
    """A ceiling of requests a second: a finite number above 0 (text such as ``"2.5"`` too), or a ConfigError
    naming ``setting``."""
    number = value
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number) or number <= 0:
        raise ConfigError(f"{setting}={value!r} is not a number of requests a second above 0, such as 10 or 2.5")
    return float(number)
