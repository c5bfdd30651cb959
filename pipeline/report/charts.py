"""The report's charts, drawn by matplotlib as SVG documents (text as glyph outlines, so no font is needed).

matplotlib: well kept, drawn offline in-process without a browser or JavaScript, and its SVG is one
self-contained document per chart. Each function returns the SVG text, or None when there is nothing to draw;
each chart's title names what it shows, its axes their units, and its subtitle the period.
"""

import functools
import io
import re
from collections.abc import Callable, Sequence
from datetime import date
from typing import TypeVar

import pandas as pd
from matplotlib import rc_context, rcParams
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.textpath import text_to_path
from matplotlib.ticker import MaxNLocator

from pipeline.api.windows import days_between
from pipeline.report.coverage import REPORT_STATES, Coverage, state_label
from pipeline.report.figures import AGE_BANDS, ListedRows
from pipeline.report.period import ReportPeriod

STATUS_COLOURS = {"Completed": "#3a8a4f", "Failed": "#c7382f", "Running": "#2f6db3"}
OTHER_COLOURS = ("#8c6bb1", "#d08c2e", "#6f7b85", "#4fa3a5", "#b3688f")
STATE_COLOURS = {"synced": "#3a8a4f", "failed": "#c7382f", "missing": "#b9bfc6", "at_risk": "#e39b23",
                 "gone": "#4a4a4a", "in_progress": "#8fb8e3"}
# Statuses drawn on their own; any beyond are summed as "other" (the API may send new ones).
MAX_STATUSES = 6
WIDTH_INCHES = 9.0
# Layout, in inches: space around the texts, a line of axis text, a legend entry's marker.
_MARGIN, _LINE, _LEGEND_HANDLE = 0.12, 0.22, 0.55
_STYLE = {
    "svg.fonttype": "path",
    # Stable element ids, so the same figures give the same file.
    "svg.hashsalt": "dds-jobs-report",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
F = TypeVar("F", bound=Callable[..., str | None])
_DOCTYPE = re.compile(r"<\?xml[^>]*\?>\s*|<!DOCTYPE[^>]*>\s*|<metadata>.*?</metadata>\s*", re.S)


def _styled(draw: F) -> F:
    """``draw`` with the report's matplotlib style in force (without touching the process-wide settings)."""

    @functools.wraps(draw)
    def styled(*args, **kwargs):
        with rc_context(_STYLE):
            return draw(*args, **kwargs)

    return styled  # type: ignore[return-value]


@_styled
def jobs_per_day_svg(jobs_by_day: pd.DataFrame, period: ReportPeriod) -> str | None:
    """Stacked bars: jobs created each UTC day of the period, by status."""
    if jobs_by_day.empty:
        return None
    table = jobs_by_day.pivot_table(index="day", columns="status", values="jobs", aggfunc="sum", fill_value=0)
    table = table.reindex(days_between(period.first_day, period.last_day), fill_value=0)
    table = table[ordered_statuses(table.sum())]
    if len(table.columns) > MAX_STATUSES:
        kept = list(table.columns[: MAX_STATUSES - 1])
        table = table[kept].assign(other=table.drop(columns=kept).sum(axis=1))
    figure, axes = _figure(3.4, "Jobs per day by status", _created(period))
    positions = range(len(table))
    bottom = pd.Series(0, index=table.index)
    others = iter(OTHER_COLOURS * 2)
    for status in table.columns:
        axes.bar(positions, table[status], bottom=bottom, width=0.8, label=status,
                 color=STATUS_COLOURS.get(status) or next(others))
        bottom += table[status]
    axes.set_ylabel("jobs created per UTC day")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    _day_ticks(axes, list(table.index))
    axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return _svg(figure)


def ordered_statuses(totals: pd.Series) -> list[str]:
    """Completed, Failed, Running first (when present), then the other statuses, most jobs first."""
    known = [status for status in STATUS_COLOURS if status in totals.index]
    rest = totals.drop(known).sort_values(ascending=False, kind="stable")
    return known + list(rest.index)


@_styled
def failure_rate_svg(failures: ListedRows, period: ReportPeriod) -> str | None:
    """Horizontal bars: % of each task name's jobs that failed, highest first, labelled with the counts."""
    if failures.rows.empty:
        return None
    rows = failures.rows.iloc[::-1]
    rates = 100.0 * rows["failed"] / rows["jobs"]
    figure, axes = _figure(0.8 + 0.32 * len(rows), f"Failure rate by task name (the {len(rows)} highest)",
                           _created(period))
    axes.barh(range(len(rows)), rates, color=STATUS_COLOURS["Failed"])
    axes.set_yticks(range(len(rows)), list(rows["name"]))
    for position, (rate, failed, jobs) in enumerate(zip(rates, rows["failed"], rows["jobs"])):
        axes.annotate(f" {failed:,} of {jobs:,}", (rate, position), va="center", fontsize=8)
    axes.set_xlabel("failed jobs, % of the task name's jobs")
    axes.set_xlim(0, min(100.0, rates.max() * 1.3) or 1.0)
    return _svg(figure)


@_styled
def failure_trend_svg(failures_by_day: pd.DataFrame, period: ReportPeriod) -> str | None:
    """Lines: % of the jobs created each UTC day that failed, of all jobs and of the backups; no point on a day
    without such jobs."""
    if failures_by_day.empty:
        return None
    table = failures_by_day.set_index("day").reindex(days_between(period.first_day, period.last_day))
    figure, axes = _figure(2.8, "Failure rate per day: failed, % of the jobs created that day", _created(period))
    positions = range(len(table))
    highest = 0.0
    for label, failed, jobs, colour in (("all jobs", "failed", "jobs", STATUS_COLOURS["Failed"]),
                                        ("backups", "failed_backups", "backups", "#2f6db3")):
        rates = 100.0 * table[failed] / table[jobs].where(table[jobs] > 0)
        if rates.notna().any():
            axes.plot(positions, rates, marker="o", markersize=3, linewidth=1.5, color=colour, label=label)
            highest = max(highest, float(rates.max()))
    axes.set_ylabel("failed %")
    axes.set_ylim(0, min(100.0, highest * 1.15) or 1.0)
    # Whole percents: tick labels of a known width, so _fit leaves room for them and the axis label.
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    _day_ticks(axes, list(table.index))
    axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return _svg(figure)


@_styled
def durations_svg(durations: ListedRows, period: ReportPeriod) -> str | None:
    """Paired horizontal bars: median (p50) and p90 duration of completed jobs per task name, in minutes."""
    if durations.rows.empty:
        return None
    rows = durations.rows.iloc[::-1].reset_index(drop=True)
    figure, axes = _figure(0.8 + 0.4 * len(rows), f"Duration of completed jobs, p50 and p90 (slowest {len(rows)} "
                           "task names by p90)", _created(period))
    positions = pd.RangeIndex(len(rows))
    axes.barh(positions + 0.2, rows["p90_seconds"] / 60, height=0.4, label="p90", color="#2f6db3")
    axes.barh(positions - 0.2, rows["p50_seconds"] / 60, height=0.4, label="p50 (median)", color="#9ec1e6")
    axes.set_yticks(positions, [f"{name} ({count:,})" for name, count in zip(rows["name"], rows["completed_jobs"])])
    axes.set_xlabel("minutes from creation to end (completed jobs counted in brackets)")
    axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return _svg(figure)


@_styled
def backups_svg(by_instance: ListedRows, period: ReportPeriod) -> str | None:
    """Stacked horizontal bars: backups per DB instance, completed, failed and other (Running...)."""
    if by_instance.rows.empty:
        return None
    rows = by_instance.rows.iloc[::-1]
    labels = instance_labels(rows)
    other = rows["backups"] - rows["completed"] - rows["failed"]
    figure, axes = _figure(0.8 + 0.3 * len(rows), f"Backups per DB instance ({len(rows)} of {by_instance.total} "
                           "instances, most failures first)", _created(period))
    positions = range(len(rows))
    axes.barh(positions, rows["completed"], color=STATUS_COLOURS["Completed"], label="Completed")
    axes.barh(positions, rows["failed"], left=rows["completed"], color=STATUS_COLOURS["Failed"], label="Failed")
    axes.barh(positions, other, left=rows["completed"] + rows["failed"], color="#b9bfc6", label="other (Running...)")
    axes.set_yticks(list(positions), labels)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("backup jobs created in the period")
    axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return _svg(figure)


def instance_labels(rows: pd.DataFrame) -> list[str]:
    """Each row's instance name; a name shared by several instances gets the start of its instance id too."""
    names = rows["instance_name"].fillna("")
    shared = names.duplicated(keep=False) | (names == "")
    return [f"{name} ({instance[:8]})" if clash else name
            for name, instance, clash in zip(names, rows["instance_id"], shared)]


@_styled
def running_age_svg(by_age: dict[str, int], period: ReportPeriod) -> str | None:
    """Bars: jobs still Running, by how long ago they were created."""
    if not any(by_age.values()):
        return None
    figure, axes = _figure(2.6, "Jobs still Running, by age", f"created up to {period.last_day}, Running at their "
                           "latest sync", width=6.0)
    labels = [label for _, label, _ in AGE_BANDS]
    axes.bar(labels, [by_age[label] for label in labels], color=STATUS_COLOURS["Running"])
    axes.set_xlabel("age: time since creation, at the report's time")
    axes.set_ylabel("Running jobs")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    return _svg(figure)


@_styled
def coverage_svg(coverage: Coverage, period: ReportPeriod) -> str | None:
    """One cell per counted day of the period, coloured by its sync state."""
    if not coverage.states:
        return None
    days = sorted(coverage.states)
    present = len(set(coverage.states.values()))
    figure, axes = _figure(1.1 + 0.2 * present, "Coverage: sync state of each UTC day", f"{len(days)} days counted, "
                           f"{days[0]} to {days[-1]}, of the period {period}")
    for state in REPORT_STATES:
        positions = [i for i, day in enumerate(days) if coverage.states[day] == state]
        if positions:
            axes.bar(positions, [1] * len(positions), width=0.92, color=STATE_COLOURS[state], label=state_label(state))
    axes.set_yticks([])
    axes.spines["left"].set_visible(False)
    _day_ticks(axes, days)
    axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return _svg(figure)


def _figure(height: float, title: str, subtitle: str, width: float = WIDTH_INCHES):
    # No layout engine: it draws every chart twice to place it; _svg sets the margins from the labels instead.
    figure = Figure(figsize=(width, max(height, 1.4)))
    axes = figure.add_subplot()
    figure.suptitle(title, x=0.01, ha="left", fontsize=11, fontweight="bold")
    axes.set_title(subtitle, loc="left", fontsize=8, color="#555555")
    return figure, axes


def _created(period: ReportPeriod) -> str:
    return f"jobs created {period}"


def _fit(figure: Figure) -> None:
    """Margins around the figure's one axes that hold its titles, tick labels, axis labels and outside legend."""
    axes = figure.axes[0]
    width, height = figure.get_size_inches()
    size = rcParams["font.size"]
    y_ticks = [label.get_text() for label in axes.get_yticklabels()]  # computed without drawing
    left = _MARGIN + _text_inches(y_ticks, size) + (_LINE if axes.get_ylabel() else 0.0)
    legend = axes.get_legend()
    right = _MARGIN + (_text_inches([t.get_text() for t in legend.get_texts()], size) + _LEGEND_HANDLE
                       if legend is not None and legend.get_bbox_to_anchor() != axes.bbox else 0.1)
    top = 2.2 * _LINE + _MARGIN
    bottom = _MARGIN + (_LINE if axes.get_xticklabels() else 0.0) + (_LINE if axes.get_xlabel() else 0.0)
    figure.subplots_adjust(left=left / width, right=1 - right / width, top=1 - top / height, bottom=bottom / height)


def _text_inches(texts: Sequence[str], size: float) -> float:
    """The width of the widest of ``texts`` in the chart's font, in inches (measured without drawing)."""
    font = FontProperties(size=size)
    return max((text_to_path.get_text_width_height_descent(t, font, ismath=False)[0] for t in texts),
               default=0.0) / 72


def _svg(figure: Figure) -> str:
    _fit(figure)
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    # The DOCTYPE names a DTD by URL and the metadata a vocabulary: a report must reference nothing outside it.
    return _DOCTYPE.sub("", buffer.getvalue())


def _day_ticks(axes, days: Sequence[date]) -> None:
    """A readable number of day labels under a row of daily bars."""
    step = max(1, -(-len(days) // 16))
    positions = list(range(0, len(days), step))
    axes.set_xticks(positions, [days[i].strftime("%m-%d") for i in positions], rotation=0)
    axes.set_xlim(-0.6, len(days) - 0.4)
    axes.set_xlabel("UTC day of creation (month-day)")
