"""Delivery through apprise: one destination (an apprise URL) at a time, with bounded timeouts, so that a dead
destination costs a pass seconds, never the run. The URL holds tokens and passwords: a destination is shown by its
scheme and host only, and apprise's own words about a failure are shown with every other part of the URL blanked.
"""

import hashlib
import re
from dataclasses import dataclass, field

from pipeline.values import ConfigError, check_alert_urls, masked_destination, quiet_apprise

# apprise's defaults are 4 s to connect and 4 s to read (15 s to connect for e-mail): bounded per message, and a
# pass stops sending to a destination at its first failure (dispatch.py), so a dead one costs one timeout a pass.
CONNECT_TIMEOUT_SECONDS = 3.0
READ_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class Destination:
    """One apprise URL. ``name`` (scheme://host) is what is shown; ``ledger_name`` adds a fingerprint of the whole
    URL, so two destinations on one host keep apart in dds_alerts."""

    url: str = field(repr=False)

    @property
    def name(self) -> str:
        return masked_destination(self.url)

    @property
    def ledger_name(self) -> str:
        return f"{self.name} #{hashlib.sha256(self.url.encode()).hexdigest()[:12]}"

    def __repr__(self) -> str:
        return f"Destination({self.name!r})"


@dataclass(frozen=True)
class Delivery:
    """The outcome of one message: delivered, or why not (one line, no secret)."""

    delivered: bool
    reason: str = ""


def destinations(raw: str | None) -> list[Destination]:
    """The destinations of a DDS_ALERT_URLS value (ConfigError naming a bad URL's position); none: alerts off."""
    return [Destination(url) for url in check_alert_urls(raw)]


def deliver(destination: Destination, title: str, body: str,
            connect_timeout: float = CONNECT_TIMEOUT_SECONDS, read_timeout: float = READ_TIMEOUT_SECONDS) -> Delivery:
    """Send one message; never raises for the destination's sake."""
    import apprise

    with quiet_apprise() as records:
        plugin = apprise.Apprise.instantiate(destination.url)
        if plugin is None:
            raise ConfigError(f"alert destination {destination.name} is not a URL apprise can parse")
        plugin.socket_connect_timeout, plugin.socket_read_timeout = connect_timeout, read_timeout
        try:
            delivered = bool(plugin.notify(body=body, title=title))
        except Exception as exc:  # noqa: BLE001 - a plugin's own failure is a failed delivery, not a failed run
            return Delivery(False, redact(f"{type(exc).__name__}: {exc}", destination.url))
    if delivered:
        return Delivery(True)
    said = [record.getMessage() for record in records if record.levelname in ("WARNING", "ERROR", "CRITICAL")]
    return Delivery(False, redact(said[-1] if said else "apprise reported a failure without a reason",
                                  destination.url))


def redact(text: str, url: str) -> str:
    """``text`` on one line, with the URL and each part of it but its scheme and host replaced by ``***``."""
    scheme, _, rest = url.partition("://")
    host = masked_destination(url).partition("://")[2]
    secrets = {url, rest} | {part for part in re.split(r"[/?&=#:@,;]+", rest) if len(part) >= 3}
    secrets -= {host, scheme, *host.split(":")}
    # The host stays readable even where a secret part is a piece of it (an e-mail address's domain).
    shield = "\0host\0"
    text = text.replace(host, shield)
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return " ".join(text.replace(shield, host).split())[:300]
