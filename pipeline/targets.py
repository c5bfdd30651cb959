"""Several DDS projects in one deployment: the targets file named by ``DDS_TARGETS_FILE``.

A *target* is one (region, project id, credentials) the task center is read from; its name is the ``target``
part of the partition keys (``2026-11-01|sg-prod``). The file holds no secret: a target names the prefix of the
environment variables holding its credentials (``SG_PROD_`` reads ``SG_PROD_HUAWEICLOUD_SDK_AK`` and so on), or
uses the unprefixed variables of docs/configuration.md. Example::

    regions:
      ap-southeast-1: {max_concurrency: 8, max_rate: 10}   # in flight per run; requests a second, never passed
    targets:
      - name: sg-prod
        region: ap-southeast-1
        project_id: 0a1b2c3d4e5f
        credentials: SG_PROD_                  # optional; endpoint: ... overrides the region's URL
"""

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from pipeline.api.credentials import ENV_VARIABLES, method_of
from pipeline.values import (
    ConfigError,
    check_concurrency,
    check_http_url,
    check_max_rate,
    endpoint_for_region,
)

TARGETS_FILE_VARIABLE = "DDS_TARGETS_FILE"
# Target names become Dagster partition keys: no '|' or ',' (Dagster's separators), short enough for the UI.
_TARGET_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
_REGION = re.compile(r"[a-z0-9][a-z0-9-]{1,39}")
_PREFIX = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
_TARGET_FIELDS = {"name", "region", "project_id", "endpoint", "credentials", "max_concurrency"}
_REGION_FIELDS = {"max_concurrency", "max_rate"}


@dataclass(frozen=True)
class Target:
    """One project in one region, read with the credentials found under ``credentials_prefix``."""

    name: str
    region: str
    project_id: str
    endpoint: str
    max_concurrency: int | None = None
    credentials_prefix: str = ""
    # Requests a second to the target's region never passed (its region's max_rate; None: DDS_MAX_RATE's).
    max_rate: float | None = None
    # False for the one project of DDS_PROJECT_ID (pipeline/config.py, ``project_target``): its partitions are
    # plain days, and its project id and endpoint come from DDS_PROJECT_ID, DDS_ENDPOINT and DDS_REGION.
    in_targets_file: bool = True

    @property
    def endpoint_setting(self) -> str:
        """Where the endpoint was set, as an error about it names it."""
        if self.in_targets_file:
            return f"the endpoint of target {self.name} in {TARGETS_FILE_VARIABLE}"
        return "DDS_ENDPOINT"

    def credential_method(self, set_variables: Collection[str]) -> str:
        """The authentication method of this target's credentials (``aksk``, ``iam``, ``token``), told from the names
        of the credential variables that are set (its prefixed ones); CredentialsError if none or a partial set."""
        prefix = self.credentials_prefix
        return method_of({name for name, var in ENV_VARIABLES.items() if prefix + var in set_variables})


# The name of the one project of DDS_PROJECT_ID when that is unset (a load of the definitions on a fresh checkout):
# set, the project id names it. It is never part of a partition key, only of run tags and messages.
UNSET_PROJECT_TARGET = "default"


def project_target(project_id: str | None, region: str | None = None, endpoint: str | None = None) -> Target:
    """The one project of DDS_PROJECT_ID as a target: named by its project id, read with the unprefixed credentials.
    Unset values stay empty: a run refuses them (DDS_PROJECT_ID is not set: ...), loading the definitions does not."""
    return Target(name=project_id or UNSET_PROJECT_TARGET, region=region or "", project_id=project_id or "",
                  endpoint=endpoint or "", in_targets_file=False)


def keyed_by_target(targets: Sequence[Target]) -> bool:
    """Whether partitions are days x targets (``YYYY-MM-DD|target``, the targets of DDS_TARGETS_FILE) rather than
    plain days (``YYYY-MM-DD``, the one project of DDS_PROJECT_ID)."""
    return any(target.in_targets_file for target in targets)


def load_targets(path: str | Path, *, insecure_http: bool = False) -> tuple[Target, ...]:
    """The targets of a targets file; ConfigError (one line naming the file, target and field) when malformed.
    ``insecure_http`` (DDS_ALLOW_INSECURE_HTTP): an ``http://`` endpoint may name a host off loopback."""
    where = f"{TARGETS_FILE_VARIABLE}={str(path)!r}"
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{where}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: cannot be read ({type(exc).__name__})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{where}: not valid YAML{line}") from None
    if not isinstance(document, dict) or not isinstance(document.get("targets"), list) or not document["targets"]:
        raise ConfigError(f"{where}: expected a mapping with a non-empty list 'targets'")
    unknown = set(document) - {"targets", "regions"}
    if unknown:
        raise ConfigError(f"{where}: unknown top-level key(s) {', '.join(sorted(map(str, unknown)))}")
    concurrency, rates = _region_limits(document.get("regions") or {}, where)
    targets = tuple(_target(entry, index, concurrency, rates, where, insecure_http)
                    for index, entry in enumerate(document["targets"]))
    seen: set[str] = set()
    for target in targets:
        if target.name in seen:
            raise ConfigError(f"{where}: target name {target.name!r} appears twice")
        seen.add(target.name)
    keys = [(t.project_id, t.endpoint) for t in targets]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"{where}: two targets read the same project at the same endpoint")
    return targets


def _region_limits(regions: object, where: str) -> tuple[dict[str, int], dict[str, float]]:
    """Each region's max_concurrency and max_rate, where given."""
    if not isinstance(regions, dict):
        raise ConfigError(f"{where}: 'regions' must map region names to settings")
    concurrency, rates = {}, {}
    for region, options in regions.items():
        if not isinstance(options, dict) or set(options) - _REGION_FIELDS:
            raise ConfigError(f"{where}: region {region!r} accepts only {', '.join(sorted(_REGION_FIELDS))}")
        if "max_concurrency" in options:
            concurrency[str(region)] = check_concurrency(options["max_concurrency"], f"{where}: region {region!r}: max_concurrency")
        if "max_rate" in options:
            rates[str(region)] = check_max_rate(options["max_rate"], f"{where}: region {region!r}: max_rate")
    return concurrency, rates


def _target(entry: object, index: int, concurrency: dict[str, int], rates: dict[str, float], where: str,
            insecure_http: bool) -> Target:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: targets[{index}] must be a mapping with name, region and project_id")
    label = f"{where}: target {entry.get('name', f'#{index + 1}')!r}"
    unknown = set(entry) - _TARGET_FIELDS
    if unknown:
        raise ConfigError(f"{label}: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
    text = {key: str(value).strip() for key, value in entry.items() if value is not None and key != "max_concurrency"}
    for required in ("name", "region", "project_id"):
        if not text.get(required):
            raise ConfigError(f"{label}: {required} is missing")
    if not _TARGET_NAME.fullmatch(text["name"]):
        raise ConfigError(f"{label}: name must be 1-40 lowercase letters, digits, '-' or '_', starting with a "
                          "letter or digit (it becomes a partition key)")
    if not _REGION.fullmatch(text["region"]):
        raise ConfigError(f"{label}: region {text['region']!r} is not a region name such as ap-southeast-1")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", text["project_id"]):
        raise ConfigError(f"{label}: project_id must be letters, digits, '-' or '_'")
    prefix = text.get("credentials", "")
    if prefix and not _PREFIX.fullmatch(prefix):
        raise ConfigError(f"{label}: credentials must be an environment variable prefix such as SG_PROD_")
    endpoint = text.get("endpoint")
    try:
        endpoint = (check_http_url(endpoint, "endpoint", insecure_http=insecure_http) if endpoint
                    else endpoint_for_region(text["region"]))
    except ConfigError as exc:
        raise ConfigError(f"{label}: {exc}") from None
    limit = entry.get("max_concurrency")
    return Target(
        name=text["name"],
        region=text["region"],
        project_id=text["project_id"],
        endpoint=endpoint,
        max_concurrency=check_concurrency(limit, f"{label}: max_concurrency") if limit is not None else concurrency.get(text["region"]),
        credentials_prefix=prefix,
        max_rate=rates.get(text["region"]),
    )


def describe_targets(targets: tuple[Target, ...], default_concurrency: int, credential_variables: Collection[str],
                     default_max_rate: float | None = None) -> list[dict]:
    """One row per target for people to read: where it reads from, its limits (``max_rate`` "-": none) and with
    which credentials (their method, or what is missing; never a secret), told from the names of the credential
    variables that are set (``Deployment.credential_variables``)."""
    rows = []
    for target in targets:
        try:
            credentials = target.credential_method(credential_variables)
        except ConfigError as exc:
            credentials = f"unusable: {exc}"
        rows.append({
            "target": target.name,
            "region": target.region,
            "project_id": target.project_id,
            "endpoint": target.endpoint,
            "max_concurrency": target.max_concurrency or default_concurrency,
            "max_rate": f"{rate:g}/s" if (rate := target.max_rate or default_max_rate) else "-",
            "credentials": f"{target.credentials_prefix}* ({credentials})" if target.credentials_prefix
            else f"unprefixed ({credentials})",
        })
    return rows
