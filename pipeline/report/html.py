"""The report as one self-contained HTML page: inline CSS, each chart an SVG ``data:`` image, each chart's
figures in a table beside it. Nothing is fetched when it opens: no script, no web font, no outside image."""

import base64
from datetime import timedelta
from html import escape

import pandas as pd

from pipeline.report import charts
from pipeline.report.coverage import AT_RISK_DAYS, IN_PROGRESS, REPORT_STATES, RETENTION_DAYS, state_label
from pipeline.report.figures import (
    BACKUP_DUE,
    BACKUP_OVERDUE,
    BACKUP_TASK_NAMES,
    NO_BACKUP,
    ListedRows,
    ReportFigures,
)

# Days listed by name under the coverage chart; more are counted.
LISTED_DAYS = 31
_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: #1f2328; margin: 0 auto; max-width: 980px; padding: 16px 24px 48px; }
h1 { font-size: 22px; margin: 8px 0 2px; } h2 { font-size: 17px; margin: 28px 0 6px; border-top: 1px solid #d0d7de;
       padding-top: 16px; }
.meta, .note { color: #57606a; } .empty { font-style: italic; color: #57606a; }
img.chart { display: block; max-width: 100%; height: auto; margin: 8px 0; }
table { border-collapse: collapse; margin: 6px 0; font-size: 13px; }
th, td { border-bottom: 1px solid #d8dee4; padding: 3px 10px 3px 0; text-align: left; vertical-align: top; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
details { margin: 4px 0 8px; } summary { cursor: pointer; color: #0969da; }
tr.no-backup td { background: #fbe3e1; } tr.overdue td { background: #fdf0d5; }
tr.no-backup td.mark { color: #a4231b; font-weight: 600; } tr.overdue td.mark { color: #8a5a00; font-weight: 600; }
td.mark { white-space: nowrap; }
"""


# A section's content: its chart (SVG) and the rest of it, or the one sentence saying why there is nothing to show.
Content = tuple[str | None, str] | str


def render_html(figures: ReportFigures, warehouse_label: str) -> str:
    """The whole page for ``figures``; ``warehouse_label`` names the warehouse read (never with a password)."""
    period = figures.period
    title = f"DDS jobs report, {period.first_day} to {period.last_day}"
    sections = [_headline(figures, warehouse_label)]
    sections += [_section(anchor, heading, content(figures)) for anchor, heading, content in _SECTIONS]
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(sections)
        + '\n<p class="note">Every figure is computed by the warehouse over the stored jobs (table dds_jobs, the '
        "latest known state of each job), by the SQL of sql/report/. Days are UTC days of created_at.</p>\n"
        "</body>\n</html>\n"
    )


def _headline(figures: ReportFigures, warehouse_label: str) -> str:
    generated = figures.generated_at.strftime("%Y-%m-%d %H:%M UTC")
    rows = list(figures.headline().items())
    empty = "" if figures.jobs else '<p class="empty" id="no-jobs">No jobs were created in this period.</p>'
    return (
        f"<h1>DDS task-center jobs</h1>\n<p class=\"meta\">Period {escape(str(figures.period))}, "
        f"{escape(figures.scope.label)}. Generated {generated} from {escape(warehouse_label)}.</p>\n"
        f"{empty}{_table('headline', ('figure', 'value'), rows)}"
    )


def _section(anchor: str, heading: str, content: Content) -> str:
    if isinstance(content, str):
        shown = f'<p class="empty">{escape(content)}</p>\n'
    else:
        svg, body = content
        shown = (_image(svg, heading) + "\n" if svg else "") + body
    return f'<section id="{anchor}">\n<h2>{escape(heading)}</h2>\n{shown}</section>'


# How each freshness of sql/report/backup_freshness_by_instance.sql is marked: its row's class and its words.
_HOURS_DUE = int(BACKUP_DUE.total_seconds() // 3600)
_FRESHNESS_MARKS = {NO_BACKUP: ("no-backup", "\u2717 none in the period"),
                    BACKUP_OVERDUE: ("overdue", f"! none within {_HOURS_DUE} h")}
_BACKED_UP_MARK = ("backed-up", f"\u2713 within {_HOURS_DUE} h")


def _backup_freshness(figures: ReportFigures) -> Content:
    freshness = figures.backup_freshness
    listed = freshness.listed
    if listed.rows.empty:
        return "No instance had a job in this period, so none is known to the report."
    several = listed.rows["project_id"].nunique() > 1
    marks = [_FRESHNESS_MARKS.get(row.freshness, _BACKED_UP_MARK) for row in listed.rows.itertuples()]
    rows = [(mark,) + ((row.project_id,) if several else ()) + (
        row.instance_name or "", row.instance_id, _when(row.last_backup_at) or "none",
        "-" if pd.isna(row.since) else _age(row.since), _count(row.backups), _count(row.failed))
        for (_, mark), row in zip(marks, listed.rows.itertuples())]
    columns = (("backed up",) + (("project",) if several else ()) + (
        "instance", "instance id", "last successful backup (UTC)", "since", "backups", "failed"))
    names = " or ".join(BACKUP_TASK_NAMES)
    ended = ", the end of the period" if freshness.as_of < figures.generated_at else ""
    body = (f'<p id="backup-summary">{escape(freshness.summary())}. A successful backup is a job {escape(names)} '
            f"that Completed; its time is when it ended. Ages at {freshness.as_of:%Y-%m-%d %H:%M} UTC{ended}; "
            "every instance with a job in the period is listed, the ones without a recent backup first.</p>\n"
            + _table("backup-freshness-table", columns, rows, numeric_from=len(columns) - 2,
                     row_classes=[css for css, _ in marks], first_class="mark")
            + _more(listed, "instances, each backed up more recently"))
    return None, body


def _failure_trend(figures: ReportFigures) -> Content:
    by_day = figures.failures_by_day
    if by_day.empty:
        return "No jobs were created in this period."
    rows = [(day.isoformat(), _count(jobs), _count(failed), _rate(failed, jobs), _count(backups),
             _count(failed_backups), _rate(failed_backups, backups))
            for day, jobs, failed, backups, failed_backups in by_day[
                ["day", "jobs", "failed", "backups", "failed_backups"]].itertuples(index=False)]
    columns = ("UTC day", "jobs", "failed", "failed %", "backups", "failed backups", "backups failed %")
    body = _details(_table("failure-trend-table", columns, rows, numeric_from=1))
    return charts.failure_trend_svg(by_day, figures.period), body


def _jobs_per_day(figures: ReportFigures) -> Content:
    jobs = figures.jobs_by_day
    if jobs.empty:
        return "No jobs were created in this period."
    table = jobs.pivot_table(index="day", columns="status", values="jobs", aggfunc="sum", fill_value=0)
    statuses = charts.ordered_statuses(table.sum())
    rows = [(day.isoformat(), *(_count(table.at[day, s]) for s in statuses), _count(table.loc[day].sum()))
            for day in table.index]
    body = _details(_table("jobs-per-day-table", ("UTC day", *statuses, "all"), rows, numeric_from=1))
    return charts.jobs_per_day_svg(jobs, figures.period), body


def _failures(figures: ReportFigures) -> Content:
    failures = figures.failures_by_name
    if failures.rows.empty:
        return "No job failed in this period." if figures.jobs else "No jobs, so no failures, in this period."
    half = figures.period.half_day
    rows = [(row.name, _count(row.jobs), _count(row.failed), _rate(row.failed, row.jobs))
            for row in failures.rows.itertuples()]
    columns = ("task name", "jobs", "failed", "failed %")
    # The rate in each half of the period, only where every name listed has jobs in both: a value or no column.
    halves = failures.rows["jobs_first_half"]
    if ((halves > 0) & (failures.rows["jobs"] > halves)).all():
        rows = [shown + (_rate(row.failed_first_half, row.jobs_first_half),
                         _rate(row.failed - row.failed_first_half, row.jobs - row.jobs_first_half))
                for shown, row in zip(rows, failures.rows.itertuples())]
        columns += (f"failed % before {half}", f"failed % from {half}")
    body = _table("failure-rate-table", columns, rows, numeric_from=1) + _more(failures, "task names with failures")
    return charts.failure_rate_svg(failures, figures.period), body


def _durations(figures: ReportFigures) -> Content:
    durations = figures.durations_by_name
    if durations.rows.empty:
        return "No completed job with a duration in this period."
    rows = [(row.name, _count(row.completed_jobs), _minutes(row.p50_seconds), _minutes(row.p90_seconds))
            for row in durations.rows.itertuples()]
    columns = ("task name", "completed jobs", "p50 minutes", "p90 minutes")
    body = _table("durations-table", columns, rows, numeric_from=1) + _more(durations, "task names with completed jobs")
    return charts.durations_svg(durations, figures.period), body


def _backups(figures: ReportFigures) -> Content:
    by_instance, failed = figures.backups_by_instance, figures.failed_backups
    if by_instance.rows.empty:
        return "No backup was created in this period."
    several = by_instance.rows["project_id"].nunique() > 1
    rows = [((row.project_id,) if several else ()) + (row.instance_name or "", row.instance_id, _count(row.backups),
                                                        _count(row.completed), _count(row.failed))
            for row in by_instance.rows.itertuples()]
    columns = (("project",) if several else ()) + ("instance", "instance id", "backups", "completed", "failed")
    body = _details(_table("backups-table", columns, rows, numeric_from=len(columns) - 3)
                    + _more(by_instance, "instances with backups"))
    if failed.rows.empty:
        body += '<p class="empty" id="no-failed-backups">No backup failed in this period.</p>\n'
    else:
        listed = [(row.instance_name or row.instance_id or "", _when(row.created_at), row.name, row.fail_reason or "")
                  for row in failed.rows.itertuples()]
        body += (f"<h3>Failed backups, newest first ({failed.total:,})</h3>\n"
                 + _table("failed-backups-table", ("instance", "created (UTC)", "task", "fail_reason"), listed)
                 + _more(failed, "failed backups"))
    return charts.backups_svg(by_instance, figures.period), body


def _running(figures: ReportFigures) -> Content:
    running = figures.running
    if running.rows.empty:
        return "No job was Running at its latest sync."
    rows = [(row.name or "", row.instance_name or "", _when(row.created_at), _age(row.age),
             "" if pd.isna(row.progress_pct) else f"{row.progress_pct:g}%", _when(row.last_seen_at))
            for row in running.rows.itertuples()]
    ages = [(label, _count(count)) for label, count in figures.running_by_age.items()]
    body = (f"<p>{running.total:,} jobs created up to {figures.period.last_day} were Running at their latest sync; "
            f"the oldest first, ages at {figures.generated_at:%Y-%m-%d %H:%M} UTC:</p>\n"
            + _table("running-table", ("task", "instance", "created (UTC)", "age", "progress", "last seen (UTC)"),
                     rows)
            + _more(running, "Running jobs")
            + _details(_table("running-age-table", ("age", "Running jobs"), ages, numeric_from=1)))
    return charts.running_age_svg(figures.running_by_age, figures.period), body


def _coverage(figures: ReportFigures) -> Content:
    coverage = figures.coverage
    if not coverage.states:
        return (f"No day of this period is counted: it lies before DDS_START_DATE ({figures.scope.start_date}) "
                "or is not over yet.")
    counts = coverage.counts()
    missing = coverage.not_synced()
    listed = [(day.isoformat(), state_label(state)) for day, state in missing[:LISTED_DAYS]]
    body = (f"<p>Over the project(s) {escape(', '.join(coverage.projects))}: a day is synced when each has a "
            f"complete sync of it. A day that is not is gone when older than {RETENTION_DAYS + 1} days (the DDS API "
            f"holds none of it any more), at risk from {RETENTION_DAYS - AT_RISK_DAYS} days old (the API starts "
            f"forgetting it within {AT_RISK_DAYS} days), failed when its last attempt failed, missing otherwise. "
            "Today is in progress: it is complete only after it has ended.</p>\n"
            + _table("coverage-table", ("state", "days"),
                     [(state_label(s), _count(counts[s])) for s in REPORT_STATES], numeric_from=1))
    in_progress = [day for day, state in coverage.states.items() if state == IN_PROGRESS]
    if in_progress:
        body += (f'<p id="in-progress">{in_progress[0].isoformat()} (today, UTC) is in progress: its jobs so far '
                 "are stored, the day is synced whole by the first sync after it ends.</p>\n")
    if missing:
        left_out = len(missing) - LISTED_DAYS
        more = f'<p class="note">and {left_out:,} more days</p>\n' if left_out > 0 else ""
        body += "<h3>Days not synced</h3>\n" + _table("not-synced-table", ("UTC day", "state"), listed) + more
    else:
        body += '<p id="all-synced">Every counted day is synced.</p>\n'
    return charts.coverage_svg(coverage, figures.period), body


_SECTIONS = (
    ("backup-freshness", "Is every instance backed up? Time since the last successful backup", _backup_freshness),
    ("failure-trend", "Failure rate per day", _failure_trend),
    ("jobs-per-day", "Jobs per day by status", _jobs_per_day),
    ("failure-rate", "Failure rate by task name", _failures),
    ("durations", "Duration by task name: median (p50) and slow tail (p90)", _durations),
    ("backups", "Backups per DB instance", _backups),
    ("running", "Jobs still Running", _running),
    ("coverage", "Coverage of the period", _coverage),
)


def _image(svg: str, alt: str) -> str:
    data = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    return f'<img class="chart" alt="{escape(alt)}" src="data:image/svg+xml;base64,{data}">'


def _table(anchor: str, columns: tuple[str, ...], rows: list[tuple], numeric_from: int | None = None,
           row_classes: list[str] | None = None, first_class: str | None = None) -> str:
    """A table; the columns from ``numeric_from`` on are numbers, aligned right; ``row_classes`` are the rows'
    CSS classes, ``first_class`` the class of each row's first cell."""
    def cell(tag: str, index: int, value: object) -> str:
        numeric = numeric_from is not None and index >= numeric_from
        css = "n" if numeric else first_class if index == 0 and tag == "td" else None
        attributes = f' class="{css}"' if css else ""
        return f"<{tag}{attributes}>{escape(str(value))}</{tag}>"

    head = "".join(cell("th", i, c) for i, c in enumerate(columns))
    classes = row_classes or [""] * len(rows)
    body = "".join((f'<tr class="{css}">' if css else "<tr>") + "".join(cell("td", i, v) for i, v in enumerate(row))
                   + "</tr>\n" for css, row in zip(classes, rows))
    return f'<table id="{anchor}">\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>\n'


def _details(content: str) -> str:
    return f"<details><summary>Figures</summary>\n{content}</details>\n"


def _more(listed: ListedRows, what: str) -> str:
    if not listed.left_out:
        return ""
    return f'<p class="note more">and {listed.left_out:,} more {escape(what)} ({listed.total:,} in all)</p>\n'


def _count(value: object) -> str:
    return f"{int(value):,}"


def _rate(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:,.1f}"


def _when(instant: pd.Timestamp) -> str:
    return "" if pd.isna(instant) else instant.strftime("%Y-%m-%d %H:%M")


def _age(age: timedelta) -> str:
    hours = age.total_seconds() / 3600
    return f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.1f} h"
