"""One report, from the warehouse to its file: the work behind ``dds-tasks report`` and the ``dds_jobs_report`` asset.

A report is written whole or not at all: to a local folder through a temporary file renamed into place, to
object storage (``s3://bucket/prefix/...``) as one PutObject. A report of the same name is replaced.
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.report.period import ReportPeriod, ReportScope
from pipeline.config import ConfigError, Deployment
from pipeline.snapshots.s3 import S3Location, S3Options, is_s3_uri

if TYPE_CHECKING:
    from pipeline.report.figures import ReportFigures
    from pipeline.warehouse.store import Warehouse

REPORTS_FOLDER = "reports"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class WrittenReport:
    """A report written to ``location`` (a local path or an ``s3://`` URI), with the figures it shows."""

    location: str
    figures: ReportFigures
    size_bytes: int


def report_scope(settings: Deployment, project_id: str | None = None, target_name: str | None = None) -> ReportScope:
    """Every project's jobs, or one project's (``project_id``, or the project of the target ``target_name``)."""
    if target_name is not None:
        targets = {target.name: target for target in settings.targets if target.in_targets_file}
        if target_name not in targets:
            known = ", ".join(targets) if targets else "none: DDS_TARGETS_FILE is not set"
            raise ConfigError(f"--target {target_name!r} is not a target of DDS_TARGETS_FILE (targets: {known})")
        project_id = targets[target_name].project_id
        return ReportScope(project_id, f"target {target_name} (project {project_id})", (project_id,),
                           settings.start_date)
    if project_id is not None:
        return ReportScope(project_id, f"project {project_id}", (project_id,), settings.start_date)
    configured = tuple(dict.fromkeys(t.project_id for t in settings.targets if t.project_id))
    return ReportScope(None, "all projects", configured, settings.start_date)


def reports_location(data_dir: Path, parquet_root: str) -> str:
    """Where reports go by default: next to the Parquet snapshots on object storage, else ``{data_dir}/reports``."""
    if is_s3_uri(parquet_root):
        return f"{S3Location.parse(parquet_root).uri}/{REPORTS_FOLDER}"
    return str(data_dir / REPORTS_FOLDER)


def report_file_name(last_day: date, filter_label: str | None = None) -> str:
    """``dds-jobs-report-<last day>.html``, with the project or target filter in the name when there is one."""
    suffix = f"-{_UNSAFE.sub('_', filter_label)}" if filter_label else ""
    return f"dds-jobs-report-{last_day.isoformat()}{suffix}.html"


def write_report(
    warehouse: Warehouse,
    period: ReportPeriod,
    scope: ReportScope,
    destination: str,
    now: datetime,
    s3: S3Options | None = None,
) -> WrittenReport:
    """Compute the figures, render the page and write it to ``destination`` (a file path or ``s3://`` URI,
    reached with ``s3``, the options of the deployment or the resource; None: the AWS SDK's defaults)."""
    # Imported when a report is written: the figures and charts load pandas and matplotlib (0.5 s), which the
    # definitions, loaded by every run, need not.
    from pipeline.report.figures import collect_figures
    from pipeline.report.html import render_html

    figures = collect_figures(warehouse, period, scope, now)
    page = render_html(figures, warehouse.engine.url.render_as_string(hide_password=True))
    data = page.encode("utf-8")
    if is_s3_uri(destination):
        _put_object(destination, data, s3)
    else:
        _replace_file(Path(destination), data)
    return WrittenReport(destination, figures, len(data))


def _replace_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # A hidden name of its own in the same folder (one rename away), created with the umask's permissions.
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(temporary, "xb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _put_object(uri: str, data: bytes, s3: S3Options | None) -> None:
    location = S3Location.parse(uri, setting="the report's destination")
    filesystem = (s3 or S3Options()).filesystem()
    # A small object opened with delayed open goes up as one PutObject: readers see the old report or the new one.
    with filesystem.open_output_stream(location.path) as stream:
        stream.write(data)
