"""The pipeline's configuration: the ``Deployment``, read once from the environment variables of
docs/configuration.md (when the definitions load, or when a ``dds-tasks`` command starts), and the checks of each
value. This module is the one reader of those variables: the resources get their values as fields bound at wiring
(EnvVar for the secrets), the commands from the Deployment.

The deployment's targets are always a list: those of DDS_TARGETS_FILE (partitions ``YYYY-MM-DD|target``), or the
one project of DDS_PROJECT_ID as a list of one target named by its project id (partitions plain ``YYYY-MM-DD``;
``Deployment.multi_target`` tells which). Every problem is reported as one ``ConfigError`` line naming the
variable, before any request or write.
The DDS credentials are not read here, only which of their variables are set: a run resolves them (EnvVar), and
:mod:`pipeline.api.credentials` keeps them out of reprs. The alert URLs and the S3 variables, which the commands
use, are kept, and the Deployment's repr shows neither.
"""

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

import sqlalchemy as sa

from pipeline.api.credentials import ENV_VARIABLES as CREDENTIAL_FIELDS
from pipeline.api.retry import DEFAULT_RETRY_BUDGET_SECONDS
from pipeline.snapshots.s3 import S3_VARIABLES, S3Options, check_parquet_root, is_s3_uri
from pipeline.targets import TARGETS_FILE_VARIABLE, Target, keyed_by_target, load_targets, project_target
from pipeline.values import (
    ALERT_URLS_VARIABLE,
    INSECURE_HTTP_VARIABLE,
    ConfigError,
    check_alert_urls,
    check_concurrency,
    check_flag,
    check_http_url,
    check_max_rate,
    endpoint_for_region,
    masked_destination,
)
from pipeline.warehouse.engine import parse_warehouse_url, sqlite_file

# A fixed date, never "today minus N": a default that moved with the clock would shift the partitions of an
# existing deployment and orphan its history. The API's one-month retention made this the first day
# anyone could still fetch when the project started; deployments that start later set DDS_START_DATE.
DEFAULT_START_DATE = date(2026, 10, 1)
# A page costs the client about 1.3 ms of CPU: at the API's usual latencies (20 ms and more) 12 pages in flight keep
# a run waiting on the network, not on Python (bench/bench_sync.py: a 30-day fetch within 1.4x of its floor), and
# a throttled answer (429) only delays its own page.
DEFAULT_MAX_CONCURRENCY = 12
# Retrying one request for more than an hour would hold a run (and the Dagster pool) for hours of an outage that the
# next scheduled run's catch-up handles better.
MAX_RETRY_BUDGET_SECONDS = 3600
# Minutes between the intraday ticks (DDS_INTRADAY_MINUTES): a quarter of an hour tells of a failed backup within
# minutes for a few requests a tick; 0 turns the ticks off, and a day (1440) is the longest interval that is still
# "intraday".
DEFAULT_INTRADAY_MINUTES = 15
MAX_INTRADAY_MINUTES = 1440
# The alert settings (docs/alerts.md). DDS_ALERT_URLS (ALERT_URLS_VARIABLE) holds tokens and passwords: checked and
# kept for the commands (``dds-tasks alerts test``), shown by the destinations' masked names only; the wiring binds
# the resource's field as EnvVar, so Dagster never records the URLs.
DEFAULT_ALERT_WINDOW_HOURS = 24
# A year: the warehouse keeps the jobs for good, but a window longer than that is a flood, not an alert.
MAX_ALERT_WINDOW_HOURS = 366 * 24
# A region's own endpoint names it: https://dds.{region}.myhuaweicloud.com (or .eu).
_REGION_ENDPOINT = re.compile(r"https://dds\.(?P<region>[a-z0-9-]+)\.myhuaweicloud\.(?:com|eu)")


def resolve_endpoint(endpoint: str | None, region: str | None, *, insecure_http: bool = False) -> str | None:
    """DDS_ENDPOINT when given (checked; ``http://`` off loopback only with ``insecure_http``), else the region's
    default, else None."""
    if endpoint and endpoint.strip():
        return check_http_url(endpoint, "DDS_ENDPOINT", insecure_http=insecure_http)
    return endpoint_for_region(region) if region else None


def region_of_endpoint(endpoint: str | None) -> str | None:
    """The region a region's own endpoint names (``https://dds.ap-southeast-1.myhuaweicloud.com``), else None."""
    match = _REGION_ENDPOINT.fullmatch((endpoint or "").strip().rstrip("/").lower())
    return match["region"] if match else None


def require_source(project_id: str | None, endpoint: str | None, region: str | None, *,
                   insecure_http: bool = False) -> str:
    """The endpoint a real sync calls, or a ConfigError naming what is missing (project id first)."""
    if not project_id:
        raise ConfigError("DDS_PROJECT_ID is not set: the project id of the tenant in the region is required")
    resolved = resolve_endpoint(endpoint, region, insecure_http=insecure_http)
    if not resolved:
        raise ConfigError("neither DDS_REGION nor DDS_ENDPOINT is set: the DDS API endpoint is unknown")
    return resolved


def parse_day(value: str, setting: str) -> date:
    """A ``YYYY-MM-DD`` day, or a ConfigError naming ``setting``."""
    try:
        return datetime.strptime(value.strip(), "%Y-%m-%d").date()
    except ValueError:
        raise ConfigError(f"{setting}={value!r} is not a date in the form YYYY-MM-DD") from None


def check_warehouse_url(value: str, setting: str = "DDS_WAREHOUSE_URL") -> str:
    """A SQLAlchemy URL whose driver is installed, or a ConfigError naming ``setting`` (no connection made)."""
    try:
        url = sa.engine.make_url(value)
    except Exception:  # noqa: BLE001 - the value may hold a password: never echo an unparseable one
        raise ConfigError(f"{setting} is not a SQLAlchemy URL such as sqlite:///data/warehouse.db") from None
    try:
        # Refuses, in one line, a database without a SQLAlchemy dialect and a driver that is not installed.
        parse_warehouse_url(url)
    except ValueError as exc:
        raise ConfigError(f"{setting}={url.render_as_string(hide_password=True)!r}: {exc}") from None
    return value


def check_writable_folder(path: Path, setting: str) -> None:
    """ConfigError naming ``setting`` unless files can be created in ``path`` (made when missing); writes nothing."""
    existing = path.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{setting}: {str(path)!r} cannot be a folder, {str(existing)!r} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{setting}: {str(path)!r} is not writable by this user ({str(existing)!r} is not)")


def _check_local_folders(warehouse_url: str, warehouse_setting: str, parquet_root: str, parquet_setting: str) -> None:
    """The folders the SQLite warehouse and local Parquet snapshots will be written to must be writable."""
    database = sqlite_file(parse_warehouse_url(warehouse_url))
    if database is not None:
        check_writable_folder(database.parent, warehouse_setting)
    if "://" not in parquet_root:
        check_writable_folder(Path(parquet_root), parquet_setting)


def masked_url(url: str) -> str:
    """A database URL fit for logs and metadata: its password replaced by ``***``."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - unparseable: show nothing that could be a secret
        return "<unparseable URL>"


def _whole_number(env: Mapping[str, str], name: str, default: int) -> int:
    """The whole number ``name`` is set to, ``default`` when unset; ConfigError naming it otherwise."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None


def _int_setting(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    value = _whole_number(env, name, default)
    if not low <= value <= high:
        raise ConfigError(f"{name}={value} is outside {low}..{high}")
    return value


def s3_options(variables: Mapping[str, str]) -> S3Options:
    """The object storage's options from the S3 variables (docs/deployment.md) in ``variables``: a deployment's, or
    those bound to a resource at wiring; a bad one is a ConfigError naming it."""
    try:
        return S3Options.from_variables(variables)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def alert_task_patterns(raw: str | None) -> tuple[str, ...]:
    """The task-name patterns of DDS_ALERT_TASKS (``*`` any run of characters); empty: every task alerts."""
    patterns = tuple(pattern.strip() for pattern in (raw or "").split(",") if pattern.strip())
    # A pattern of stars alone matches every name: the filter is then no filter.
    return () if any(set(pattern) == {"*"} for pattern in patterns) else patterns


@dataclass(frozen=True)
class Deployment:
    """Where the pipeline reads from (its targets) and writes to; built by :meth:`from_env`."""

    data_dir: Path
    warehouse_url: str
    parquet_root: str
    start_date: date
    max_concurrency: int
    project_id: str | None
    region: str | None
    endpoint: str | None
    # DDS_MAX_RATE: requests a second to one region never passed (the client's pace adapts below it); None: none.
    max_rate: float | None = None
    # The projects read, never empty: those of DDS_TARGETS_FILE (pipeline/targets.py), or the one project of
    # DDS_PROJECT_ID as a list of one (named by its project id; see ``multi_target``).
    targets: tuple[Target, ...] = ()
    # How long one failing request to the DDS API is retried (DDS_RETRY_BUDGET_SECONDS).
    retry_budget_seconds: int = int(DEFAULT_RETRY_BUDGET_SECONDS)
    # The CA bundle of the API's TLS (DDS_CA_BUNDLE); None: the system's.
    ca_bundle: str | None = None
    # The credential variables (names only, never values) that are set, prefixed ones too: bound as EnvVar.
    credential_variables: frozenset[str] = frozenset()
    # DDS_ALLOW_INSECURE_HTTP: plain http:// endpoints (DDS API, targets, IAM) allowed off loopback too.
    allow_insecure_http: bool = False
    # Minutes between the intraday ticks that sync today (DDS_INTRADAY_MINUTES); 0: no intraday ticks.
    intraday_minutes: int = DEFAULT_INTRADAY_MINUTES
    # Whether warehouse_url is DDS_WAREHOUSE_URL as set (then Dagster can record the variable's name, not its value).
    warehouse_url_from_env: bool = False
    # DDS_ALERT_URLS' URLs, each apprise can parse (secrets inside: see alert_destinations); empty: alerts are off.
    alert_urls: tuple[str, ...] = ()
    # DDS_ALERT_TASKS: the task-name patterns whose failures alert; empty: every task.
    alert_tasks: tuple[str, ...] = ()
    alert_window_hours: int = DEFAULT_ALERT_WINDOW_HOURS
    # The variables that set the warehouse URL and the Parquet root (DDS_DATA_DIR for the defaults under it): what
    # an error met at run time in either place names.
    warehouse_setting: str = "DDS_WAREHOUSE_URL"
    parquet_setting: str = "DDS_PARQUET_ROOT"
    # The non-secret variables of PLAIN_VARIABLES that are set, as given: the wiring binds a resource field to
    # its variable (EnvVar) where the field's value is the variable's, so the UI shows where it comes from.
    given: tuple[tuple[str, str], ...] = ()
    # The S3 variables (DDS_S3_*, AWS_*) that are set, with their values (AWS_SECRET_ACCESS_KEY among them: never
    # shown), for an s3:// Parquet root or report destination (``s3_options``).
    s3_settings: tuple[tuple[str, str], ...] = ()

    @property
    def alert_destinations(self) -> tuple[str, ...]:
        """DDS_ALERT_URLS' destinations as shown (scheme and host only); empty: alerts are off."""
        return tuple(map(masked_destination, self.alert_urls))

    @property
    def s3_variables(self) -> frozenset[str]:
        """With an s3:// Parquet root: the S3 variables that are set, names only (the wiring binds them as EnvVar)."""
        return frozenset(name for name, _ in self.s3_settings) if is_s3_uri(self.parquet_root) else frozenset()

    def s3_options(self) -> S3Options:
        """The object storage's options from the S3 variables read; ConfigError naming a bad one."""
        return s3_options(dict(self.s3_settings))

    @property
    def multi_target(self) -> bool:
        """Partitions are days x targets (``YYYY-MM-DD|target``, DDS_TARGETS_FILE), not plain days (one project)."""
        return keyed_by_target(self.targets)

    def bound(self, variable: str, value: object) -> object:
        """``value`` as a resource field takes it: ``EnvVar(variable)`` when the variable is set to exactly it
        (so the UI shows where it comes from), else the value itself (a default, or derived from others)."""
        from dagster import EnvVar

        given = dict(self.given).get(variable)
        if given is None or given != str(value):
            return value
        return EnvVar.int(variable) if isinstance(value, int) else EnvVar(variable)

    def projects_shown(self) -> dict[str, str] | None:
        """Name shown -> project id of the projects read: the targets, or the one project; None: neither is set
        (every project the sync ledger holds days of)."""
        return {target.name: target.project_id for target in self.targets if target.project_id} or None

    def __repr__(self) -> str:
        # A PostgreSQL warehouse URL may hold a password, the alert URLs tokens, the S3 variables a secret key.
        shown = {**vars(self), "warehouse_url": masked_url(self.warehouse_url), "alert_urls": self.alert_destinations,
                 "s3_settings": tuple(name for name, _ in self.s3_settings)}
        return f"Deployment({', '.join(f'{name}={value!r}' for name, value in shown.items())})"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Deployment":
        env = os.environ if env is None else env
        data_dir = Path(env.get("DDS_DATA_DIR", "").strip() or "./data")
        warehouse_raw = env.get("DDS_WAREHOUSE_URL", "").strip()
        warehouse_url = check_warehouse_url(warehouse_raw or f"sqlite:///{data_dir / 'warehouse.db'}")
        parquet_raw = env.get("DDS_PARQUET_ROOT", "").strip()
        parquet_root = parquet_raw or str(data_dir / "parquet")
        s3_settings = tuple((name, env[name]) for name in S3_VARIABLES if env.get(name, "").strip())
        try:
            check_parquet_root(parquet_root, dict(s3_settings))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        warehouse_setting = "DDS_WAREHOUSE_URL" if warehouse_raw else "DDS_DATA_DIR"
        parquet_setting = "DDS_PARQUET_ROOT" if parquet_raw else "DDS_DATA_DIR"
        _check_local_folders(warehouse_url, warehouse_setting, parquet_root, parquet_setting)
        start_raw = env.get("DDS_START_DATE", "").strip()
        start_date = parse_day(start_raw, "DDS_START_DATE") if start_raw else DEFAULT_START_DATE
        if start_date > datetime.now(timezone.utc).date():
            raise ConfigError(f"DDS_START_DATE={start_date.isoformat()} is in the future; no day could be synced")
        region = env.get("DDS_REGION", "").strip() or None
        insecure_http = check_flag(env.get(INSECURE_HTTP_VARIABLE, ""), INSECURE_HTTP_VARIABLE)
        endpoint = resolve_endpoint(env.get("DDS_ENDPOINT", ""), region, insecure_http=insecure_http)
        # Every stored row carries its region: known from DDS_REGION, or from an endpoint that names it.
        region = region or region_of_endpoint(endpoint)
        project_id = env.get("DDS_PROJECT_ID", "").strip() or None
        max_rate_raw = env.get("DDS_MAX_RATE", "").strip()
        max_rate = check_max_rate(max_rate_raw, "DDS_MAX_RATE") if max_rate_raw else None
        targets = _targets(env, project_id, region, endpoint, insecure_http)
        return cls(
            data_dir=data_dir,
            warehouse_url=warehouse_url,
            parquet_root=parquet_root,
            start_date=start_date,
            max_concurrency=check_concurrency(
                _whole_number(env, "DDS_MAX_CONCURRENCY", DEFAULT_MAX_CONCURRENCY), "DDS_MAX_CONCURRENCY"
            ),
            project_id=project_id,
            region=region,
            endpoint=endpoint,
            max_rate=max_rate,
            targets=targets,
            retry_budget_seconds=_int_setting(
                env, "DDS_RETRY_BUDGET_SECONDS", int(DEFAULT_RETRY_BUDGET_SECONDS), 1, MAX_RETRY_BUDGET_SECONDS
            ),
            ca_bundle=env.get("DDS_CA_BUNDLE", "").strip() or None,
            allow_insecure_http=insecure_http,
            intraday_minutes=_int_setting(
                env, "DDS_INTRADAY_MINUTES", DEFAULT_INTRADAY_MINUTES, 0, MAX_INTRADAY_MINUTES
            ),
            credential_variables=_set_credential_variables(env, targets),
            warehouse_url_from_env=bool(warehouse_raw) and warehouse_raw == warehouse_url,
            alert_urls=tuple(check_alert_urls(env.get(ALERT_URLS_VARIABLE))),
            alert_tasks=alert_task_patterns(env.get("DDS_ALERT_TASKS")),
            alert_window_hours=_int_setting(
                env, "DDS_ALERT_WINDOW_HOURS", DEFAULT_ALERT_WINDOW_HOURS, 1, MAX_ALERT_WINDOW_HOURS
            ),
            warehouse_setting=warehouse_setting,
            parquet_setting=parquet_setting,
            # Bound by name only when the process's environment is the one read: a run resolves EnvVar from it.
            given=tuple((name, env[name]) for name in PLAIN_VARIABLES if env.get(name, "").strip())
            if env is os.environ else (),
            s3_settings=s3_settings,
        )


CREDENTIAL_VARIABLES = tuple(CREDENTIAL_FIELDS.values())
# The variables that hold no secret and set a resource field as they are given (Deployment.given).
PLAIN_VARIABLES = ("DDS_PROJECT_ID", "DDS_REGION", "DDS_ENDPOINT", "DDS_CA_BUNDLE", "DDS_MAX_CONCURRENCY",
                   "DDS_PARQUET_ROOT", "DDS_ALERT_WINDOW_HOURS", "DDS_INTRADAY_MINUTES")


def _set_credential_variables(env: Mapping[str, str], targets: tuple[Target, ...]) -> frozenset[str]:
    """The credential variables that are set (names only): unprefixed, and under each target's prefix. The wiring
    binds those, as EnvVar, so a run reads their values when it starts and Dagster records only the names."""
    prefixes = {"", *(target.credentials_prefix for target in targets)}
    return frozenset(prefix + name for prefix in prefixes for name in CREDENTIAL_VARIABLES
                     if env.get(prefix + name, "").strip())


def deployment_at_load() -> Deployment:
    """``Deployment.from_env()`` for module-level code, which Dagster runs when it loads the definitions.

    A bad setting still fails the load (Dagster's UI shows it as the code location's error), but a command that
    dies of it (``dagster asset materialize``, ``dagster job list``...) prints its one line, not the traceback of
    the import that met it.
    """
    try:
        return Deployment.from_env()
    except ConfigError:
        _print_config_errors_in_one_line()
        raise


def _print_config_errors_in_one_line() -> None:
    earlier = sys.excepthook
    if getattr(earlier, "one_line_config_errors", False):
        return

    def hook(kind: type[BaseException], error: BaseException, traceback: object) -> None:
        if isinstance(error, ConfigError):
            print(f"configuration error: {error}", file=sys.stderr)
        else:
            earlier(kind, error, traceback)

    hook.one_line_config_errors = True  # type: ignore[attr-defined]
    sys.excepthook = hook


def _targets(env: Mapping[str, str], project_id: str | None, region: str | None, endpoint: str | None,
             insecure_http: bool) -> tuple[Target, ...]:
    """The targets of DDS_TARGETS_FILE, else the one project of DDS_PROJECT_ID (set or not) as a list of one."""
    path = env.get(TARGETS_FILE_VARIABLE, "").strip()
    if not path:
        return (project_target(project_id, region, endpoint),)
    if project_id:
        # Both would leave it unclear which projects a run reads.
        raise ConfigError(f"DDS_PROJECT_ID and {TARGETS_FILE_VARIABLE} are both set: list every project in the "
                          "targets file and unset DDS_PROJECT_ID")
    return load_targets(path, insecure_http=insecure_http)
