"""Configuration values that every layer checks alike, below the configuration itself (``settings``, ``targets``):
the one error of a bad setting, the region endpoints, http(s) URLs, the bound of concurrency and the alert URLs.
Reads nothing."""

import ipaddress
import logging
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

# The provider's throttling answers per second per user; more than this many requests in flight only buys 429s.
MAX_CONCURRENCY_LIMIT = 32
DDS_ENDPOINT_EXAMPLE = "https://dds.ap-southeast-1.myhuaweicloud.com"
# The one region outside the myhuaweicloud.com domain (docs/dds-api.md).
REGION_ENDPOINT_OVERRIDES = {"eu-west-101": "https://dds.eu-west-101.myhuaweicloud.eu"}
# The opt-in to plain http:// endpoints off loopback (a TLS-terminating proxy on the same network, say): without it
# a token, a signature or the IAM password would cross the network in clear text unasked.
INSECURE_HTTP_VARIABLE = "DDS_ALLOW_INSECURE_HTTP"


class ConfigError(ValueError):
    """A setting is missing or malformed; the message is one line that names it."""


def endpoint_for_region(region: str) -> str:
    """The DDS API base URL of a region."""
    return REGION_ENDPOINT_OVERRIDES.get(region, f"https://dds.{region}.myhuaweicloud.com")


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (as ``urlsplit(...).hostname`` gives it) is this machine: ``localhost``, 127.0.0.0/8, ``::1``."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def checked_http_url(value: object, what: str, example: str, error: type[Exception] = ValueError,
                     malformed: str | None = None, *, insecure_http: bool = False) -> str:
    """``value`` as an http(s) URL with a host and no user info, query or fragment, without its trailing ``/``; else
    ``error`` naming ``what`` (``malformed``: the message for a value that is no such URL). ``http://`` only to a
    loopback host (the simulator) unless ``insecure_http`` (DDS_ALLOW_INSECURE_HTTP). A value embedding
    credentials is never echoed: it holds a password."""
    if not isinstance(value, str) or not value.strip():
        raise error(malformed or f"{what} must be a non-empty http(s) URL such as {example}")
    text = value.strip()
    try:
        parts = urlsplit(text)
        # .port raises ValueError for a port that is not a number in 0..65535.
        host, _ = parts.hostname, parts.port
        has_user_info = parts.username is not None or parts.password is not None
    except ValueError:
        raise error(malformed or f"{what} is not a parsable URL such as {example}") from None
    if has_user_info:
        raise error(f"{what} must not embed credentials (user:password@)")
    if (parts.scheme not in ("http", "https") or not host or parts.query or parts.fragment
            or any(char.isspace() for char in text)):
        raise error(malformed or f"{what} must be an http(s) URL such as {example}, got {value!r}")
    if parts.scheme == "http" and not insecure_http and not is_loopback_host(host):
        raise error(f"{what} is plain http:// to {host}, which would send the credentials in clear text: use "
                    f"https://, or set {INSECURE_HTTP_VARIABLE}=1 to allow it")
    return text.rstrip("/")


def check_http_url(value: str, setting: str, *, insecure_http: bool = False) -> str:
    """An http(s) URL of a DDS endpoint, or a ConfigError naming ``setting`` (and the value, but for credentials);
    ``http://`` only to loopback unless ``insecure_http``."""
    return checked_http_url(value, setting, DDS_ENDPOINT_EXAMPLE, ConfigError,
                            malformed=f"{setting}={value!r} is not an http(s) URL such as {DDS_ENDPOINT_EXAMPLE}",
                            insecure_http=insecure_http)


def check_flag(raw: str, setting: str) -> bool:
    """A yes/no setting: ``1``/``true``/``yes``/``on`` or ``0``/``false``/``no``/``off``/empty; else a ConfigError
    naming ``setting``."""
    text = raw.strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("", "0", "false", "no", "off"):
        return False
    raise ConfigError(f"{setting}={raw!r} is not 1 (yes) or 0 (no)")


def check_concurrency(value: object, label: str) -> int:
    """A number of requests in flight, 1..MAX_CONCURRENCY_LIMIT, or a ConfigError naming ``label``."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CONCURRENCY_LIMIT:
        raise ConfigError(f"{label} must be a whole number in 1..{MAX_CONCURRENCY_LIMIT}, got {value!r}")
    return value


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


# The apprise URLs of alerts (docs/alerts.md): tokens and passwords inside, so a URL is shown by scheme and host.
ALERT_URLS_VARIABLE = "DDS_ALERT_URLS"


@contextmanager
def quiet_apprise() -> Iterator[list[logging.LogRecord]]:
    """apprise's log records of the block, collected instead of printed: apprise logs a URL it cannot parse, whole,
    with its secrets (and the last-resort handler would print it to a run's captured stderr)."""
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger, handler = logging.getLogger("apprise"), Collect(logging.WARNING)
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def split_alert_urls(raw: str | None) -> list[str]:
    """The URLs of a DDS_ALERT_URLS value: separated by commas or whitespace; none when unset or empty."""
    return [url for url in re.split(r"[,\s]+", raw or "") if url]


def masked_destination(url: str) -> str:
    """A destination fit to be shown: its scheme and host only (``json://hooks.example.com``), never a token."""
    scheme, _, rest = url.partition("://")
    host = re.split(r"[/?#]", rest, maxsplit=1)[0].rpartition("@")[2]
    return f"{scheme.lower()}://{host}" if scheme and host else "<unparseable URL>"


def check_alert_urls(raw: str | None, setting: str = ALERT_URLS_VARIABLE) -> list[str]:
    """The URLs of ``raw``, each one apprise can parse; else a ConfigError naming the first bad one by its position
    (1-based), never by its text."""
    urls = split_alert_urls(raw)
    if not urls:
        return urls
    import apprise  # only when alerts are configured: it loads its many plugins

    with quiet_apprise():
        for position, url in enumerate(urls, start=1):
            if apprise.Apprise.instantiate(url) is None:
                raise ConfigError(f"{setting}: URL {position} of {len(urls)} is not a URL apprise can parse "
                                  "(see https://github.com/caronc/apprise/wiki for each service's form)")
    return urls
