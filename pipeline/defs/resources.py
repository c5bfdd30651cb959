"""Dagster resources: the DDS task center API, the warehouse, the Parquet snapshots, the alerts and the reports.

None reads the environment: every value is a field, bound at wiring (``pipeline.definitions``) from the
deployment. Secrets are bound as ``EnvVar`` so Dagster shows the variable's name, never its value, and ``repr``
masks them too.
"""

import os
from dataclasses import fields, replace
from typing import TYPE_CHECKING

import requests
import sqlalchemy as sa
from dagster import Config, ConfigurableResource, EnvVar, InitResourceContext
from pydantic import PrivateAttr, create_model

from pipeline.alerts.delivery import CONNECT_TIMEOUT_SECONDS as ALERT_CONNECT_TIMEOUT_SECONDS
from pipeline.alerts.delivery import READ_TIMEOUT_SECONDS as ALERT_READ_TIMEOUT_SECONDS
from pipeline.alerts.delivery import Destination, deliver, destinations
from pipeline.api.auth import mask_key
from pipeline.api.client import DdsTaskCenterClient
from pipeline.api.credentials import SECRET_FIELDS, Credentials, build_auth
from pipeline.api.retry import DEFAULT_RETRY_BUDGET_SECONDS, RetryPolicy
from pipeline.config import (
    DEFAULT_MAX_CONCURRENCY,
    ConfigError,
    check_max_rate,
    masked_url,
    require_source,
    s3_options,
)
from pipeline.targets import Target, project_target
from pipeline.values import check_concurrency
from pipeline.warehouse.engine import (
    SQLITE,
    database_place,
    driver_reason,
    is_connection_error,
    parse_warehouse_url,
)

if TYPE_CHECKING:
    from pipeline.snapshots.s3 import S3Options
    from pipeline.snapshots.store import ParquetStore
    from pipeline.warehouse.store import Warehouse

CONNECT_TIMEOUT_SECONDS = 5.0


class _CredentialsFields(Config):
    """What CredentialsConfig adds to its fields: the credentials they hold, and a repr that masks them."""

    def to_credentials(self) -> Credentials:
        return Credentials(**{field.name: getattr(self, field.name) for field in fields(Credentials)})

    def __repr__(self) -> str:
        return f"{type(self).__name__}({_shown_fields(self)})"

    __str__ = __repr__


def _shown_fields(config: Config) -> str:
    """The fields of ``config`` that are set, secrets masked: before a run resolves them their values are EnvVar
    (shown by the variable's name), after it the secrets themselves."""
    return ", ".join(f"{name}={_shown(name, value)}" for name, value in config.__dict__.items()
                     if not name.startswith("_") and value is not None)


def _shown(name: str, value: object) -> str:
    if isinstance(value, EnvVar):
        return f"EnvVar({value.env_var_name!r})"
    if name in SECRET_FIELDS:
        return "***"
    return mask_key(value) if name == "access_key" else repr(value)


# The fields of Credentials (their one declaration) as Dagster config: the resource's own (the unprefixed
# variables) and each target's (under its prefix). The wiring binds each field that is set as EnvVar of its
# variable, so Dagster records and shows the variable's name (in the UI: an env var), never its value.
CredentialsConfig = create_model(
    "CredentialsConfig", __base__=_CredentialsFields, __module__=__name__,
    __doc__="One set of DDS credentials; a field unset: none of that kind.",
    **{field.name: (str | None, field.default) for field in fields(Credentials)},
)


class DdsTaskCenterResource(ConfigurableResource, CredentialsConfig):
    """The task center ("Querying Tasks and Details") of one DDS project in one region, or of the targets of
    DDS_TARGETS_FILE (with the credentials ``target_credentials`` holds for a target with a prefix). Every value is
    a field bound at wiring (pipeline/definitions.py): the resource never reads the environment. Its credential
    fields (``access_key``, ``auth_token``, ...: the unprefixed variables) are those of CredentialsConfig."""

    project_id: str = ""
    region: str = ""
    endpoint: str = ""
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    # DDS_MAX_RATE: requests a second to one region never passed; a target's region may set its own.
    max_rate: float | None = None
    ca_bundle: str | None = None
    # How long one request may take (a stalled answer fails then, and is retried) and how long a failing one is
    # retried (DDS_RETRY_BUDGET_SECONDS); retry_max_attempts, when set, also bounds the attempts.
    read_timeout_seconds: float = 60.0
    retry_budget_seconds: float = DEFAULT_RETRY_BUDGET_SECONDS
    retry_base_delay_seconds: float = RetryPolicy.base_delay
    retry_max_attempts: int | None = None
    # DDS_ALLOW_INSECURE_HTTP: plain http:// endpoints (API, IAM) allowed off loopback.
    allow_insecure_http: bool = False
    # Target name -> its prefixed credentials, for the targets with a credentials prefix.
    target_credentials: dict[str, CredentialsConfig] = {}

    def project_target(self) -> Target:
        """The one project of the resource's own fields (DDS_PROJECT_ID, DDS_REGION, DDS_ENDPOINT) as a target."""
        return project_target(self.project_id, self.region, self.endpoint)

    def source(self, target: Target) -> Target:
        """``target`` as a run reads it: a target of DDS_TARGETS_FILE as the file lists it; the one project of
        DDS_PROJECT_ID from the resource's own fields (bound at wiring as EnvVar, so the UI shows where each value
        comes from), under the target's name."""
        if target.in_targets_file:
            return target
        return replace(self.project_target(), name=target.name)

    def project_client(self) -> tuple[DdsTaskCenterClient, str]:
        """``client`` of ``project_target``: the resource's one project."""
        return self.client(self.project_target())

    def client(self, target: Target) -> tuple[DdsTaskCenterClient, str]:
        """A ready client of ``target`` (its project, region, endpoint, limits and credentials; the unprefixed
        credentials for the one project of DDS_PROJECT_ID) and the name of the authentication method chosen;
        raises ConfigError first. Clients of one region share its pace (pipeline.api.ratelimit)."""
        target = self.source(target)
        endpoint = require_source(target.project_id, target.endpoint, target.region,
                                  insecure_http=self.allow_insecure_http)
        # A target's own limit was checked with the targets file; the resource's field may come from the launchpad.
        concurrency = target.max_concurrency or check_concurrency(self.max_concurrency, "DDS_MAX_CONCURRENCY")
        default_rate = None if self.max_rate is None else check_max_rate(self.max_rate, "DDS_MAX_RATE")
        max_rate = target.max_rate or default_rate
        if self.ca_bundle and not os.path.isfile(self.ca_bundle):
            raise ConfigError(f"DDS_CA_BUNDLE={self.ca_bundle!r} is not a file of PEM certificates")
        verify = self.ca_bundle or True
        retry = self._retry_policy()
        # IAM logins go through a session of their own that trusts the same CA bundle as the API calls.
        iam_session = requests.Session()
        iam_session.verify = verify
        auth, method = build_auth(self.credentials_of(target), target.project_id, session=iam_session,
                                  variable_prefix=target.credentials_prefix, insecure_http=self.allow_insecure_http)
        client = DdsTaskCenterClient(
            endpoint, target.project_id, auth, max_concurrency=concurrency, verify=verify, retry=retry,
            timeout=(CONNECT_TIMEOUT_SECONDS, self.read_timeout_seconds), region=target.region or None,
            max_rate=max_rate, endpoint_setting=target.endpoint_setting, insecure_http=self.allow_insecure_http,
        )
        return client, method

    def credentials_of(self, target: Target) -> Credentials:
        """The credentials ``target`` is read with: its prefixed ones, else (the one project) the unprefixed."""
        if not target.credentials_prefix:
            return self.to_credentials()
        bound = self.target_credentials.get(target.name)
        credentials = bound.to_credentials() if bound else Credentials()
        try:
            credentials.method()
        except ConfigError as exc:
            # The messages name the unprefixed variables; the user set (or forgot) the prefixed ones.
            raise ConfigError(f"target {target.name} (variables {target.credentials_prefix}*): {exc}") from None
        return credentials

    def _retry_policy(self) -> RetryPolicy:
        if not self.read_timeout_seconds > 0:
            raise ConfigError(f"dds_api read_timeout_seconds={self.read_timeout_seconds} must be above 0")
        try:
            return RetryPolicy(
                max_attempts=self.retry_max_attempts,
                base_delay=self.retry_base_delay_seconds,
                total_budget=self.retry_budget_seconds,
            )
        except ValueError as exc:
            settings = (f"retry_max_attempts={self.retry_max_attempts}, retry_base_delay_seconds="
                        f"{self.retry_base_delay_seconds}, retry_budget_seconds={self.retry_budget_seconds}")
            raise ConfigError(f"dds_api resource ({settings}): {exc}") from None

    def __repr__(self) -> str:
        return f"DdsTaskCenterResource({_shown_fields(self)})"

    __str__ = __repr__


class WarehouseResource(ConfigurableResource):
    """The SQL warehouse holding table ``dds_jobs`` (any SQLAlchemy URL; SQLite by default)."""

    url: str
    # The variable that set the URL, named by the errors a user fixes there: DDS_DATA_DIR for the default SQLite file.
    setting: str = "DDS_WAREHOUSE_URL"
    _warehouse: "Warehouse | None" = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        # Opened (its folder and table created) at first use: a run that fails on its settings writes nothing.
        self._warehouse = None

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._warehouse is not None:
            self._warehouse.dispose()

    def get(self) -> "Warehouse":
        """The warehouse, its schema ready; a database out of reach is a ConfigError naming the variable to set."""
        if self._warehouse is None:
            # Imported by the runs that use it: the store loads pandas and Arrow, which loading the definitions need not.
            from pipeline.warehouse.store import Warehouse

            warehouse = Warehouse(self.url)
            try:
                warehouse.ensure_schema()
            except sa.exc.DBAPIError as error:
                warehouse.dispose()
                if not is_connection_error(error):
                    raise
                fix = ("make its folder writable, or set it elsewhere" if warehouse.dialect == SQLITE
                       else "start the database, or set it to one this process can reach")
                raise ConfigError(f"{self.setting}: cannot open the warehouse, {self._place()}: "
                                  f"{driver_reason(error)}; {fix}") from error
            self._warehouse = warehouse
        return self._warehouse

    def failure_line(self, error: BaseException) -> str | None:
        """One line for the database lost in the middle of a run (a server restarted, a connection cut); None for
        any other error."""
        if not is_connection_error(error):
            return None
        return (f"the warehouse failed during the run ({self._place()}, set by {self.setting}): "
                f"{driver_reason(error)}; what the run had not committed was rolled back, and its days stay due "
                "for the next run")

    def _place(self) -> str:
        return database_place(parse_warehouse_url(self.url))

    def __repr__(self) -> str:
        return f"WarehouseResource(warehouse={masked_url(self.url)!r})"

    __str__ = __repr__


class ParquetSnapshotResource(ConfigurableResource):
    """The root of the hive-partitioned Parquet snapshots (``{root}/dds_jobs/created_date=.../``)."""

    root: str
    # The variable that set the root, named by a failure to write there: DDS_DATA_DIR for the default folder.
    setting: str = "DDS_PARQUET_ROOT"
    # With an s3:// root: the S3 variables that are set (DDS_S3_*, AWS_*), by name, bound as EnvVar at wiring.
    s3_variables: dict[str, str] = {}

    def get(self) -> "ParquetStore":
        from pipeline.snapshots.store import ParquetStore

        from pipeline.snapshots.s3 import is_s3_uri

        s3 = s3_options(self.s3_variables) if is_s3_uri(self.root) else None
        return ParquetStore(self.root, s3=s3, setting=self.setting)


class AlertsResource(ConfigurableResource):
    """Where alerts go and which: ``urls`` is DDS_ALERT_URLS (bound as EnvVar: Dagster records the variable's name,
    never the URLs); empty: alerts are off."""

    urls: str = ""
    tasks: str = ""
    window_hours: int = 24
    intraday_minutes: int = 15
    connect_timeout_seconds: float = ALERT_CONNECT_TIMEOUT_SECONDS
    read_timeout_seconds: float = ALERT_READ_TIMEOUT_SECONDS

    def destinations(self) -> list[Destination]:
        return destinations(self.urls)

    def send(self, destination: Destination, title: str, body: str):
        return deliver(destination, title, body, self.connect_timeout_seconds, self.read_timeout_seconds)

    def __repr__(self) -> str:
        shown = ", ".join(destination.name for destination in destinations(self.urls)) if self.urls else "off"
        return f"AlertsResource(destinations={shown!r}, tasks={self.tasks!r}, window_hours={self.window_hours})"

    __str__ = __repr__


class ReportStoreResource(ConfigurableResource):
    """Where the reports are written: a local folder, or ``s3://bucket/prefix`` (credentials from DDS_S3_*/AWS_*)."""

    location: str
    # With an s3:// location: the S3 variables that are set, by name, bound as EnvVar at wiring.
    s3_variables: dict[str, str] = {}

    def s3(self) -> "S3Options":
        return s3_options(self.s3_variables)
