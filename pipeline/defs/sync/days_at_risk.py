"""The asset check ``no_days_at_risk``: the sync coverage of the whole history, not only of the run's days.

Every day of every project from DDS_START_DATE to today gets its state from the sync ledger
(pipeline/history.py); today is in progress, never missing. The check fails, at ERROR severity, naming the days that are not synced although the DDS API
starts forgetting them within AT_RISK_DAYS (or has begun to); days already gone are shown, not failed on: nothing
can bring them back, and a check that stayed red for good would hide the next loss. Its metadata shows the
coverage in the UI: days per state, and which days are not synced, as a table.
"""

from collections.abc import Mapping, Sequence
from datetime import date, datetime, timezone

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetKey,
    MetadataValue,
    asset_check,
)

from pipeline.history import (
    AT_RISK,
    AT_RISK_DAYS,
    STATES,
    SYNCED,
    DayCoverage,
    counts,
    day_coverage,
    day_ranges,
    ledger_projects,
)
from pipeline.defs.resources import WarehouseResource

NO_DAYS_AT_RISK = "no_days_at_risk"
# A day about to be lost is an error, not a warning; it does not block the steps after the sync (the alerts report
# it), so the severity is the result's and the check is not blocking.
FAILURE_SEVERITY = AssetCheckSeverity.ERROR
# Ranges of days shown per project and state: enough to act on, short enough to read in the UI.
RANGES_SHOWN = 12


def build_coverage_check(first_day: date, projects: Mapping[str, str] | None) -> AssetChecksDefinition:
    """``no_days_at_risk`` over the days from ``first_day`` (DDS_START_DATE) of ``projects`` (name shown -> project
    id: the targets, or the one project); None: every project the ledger holds days of."""

    @asset_check(
        asset=AssetKey("dds_jobs"),
        name=NO_DAYS_AT_RISK,
        description=f"Every day since DDS_START_DATE is synced before the DDS API forgets it: fails, at ERROR "
        f"severity, naming the days not synced within {AT_RISK_DAYS} days of leaving the API's month. Not blocking: "
        "the run's Parquet snapshots, alerts (which report those days) and report still materialize. Metadata: the "
        "coverage of the whole history (synced, failed, missing, at risk, gone).",
        # What the UI shows of the check before it has failed: the severity of its failures (the result's).
        blocking=False,
        metadata={"severity": FAILURE_SEVERITY.value},
    )
    def no_days_at_risk(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> AssetCheckResult:
        store = warehouse.get()
        today = datetime.now(timezone.utc).date()
        named = projects if projects is not None else {project: project for project in ledger_projects(store)}
        coverage = {name: day_coverage(store, project_id, first_day, today) for name, project_id in named.items()}
        result = coverage_result(coverage, first_day, today)
        if not result.passed:
            context.log.error(result.description)
        return result

    return no_days_at_risk


def coverage_result(
    coverage: Mapping[str, Sequence[DayCoverage]], first_day: date, today: date
) -> AssetCheckResult:
    """The check's verdict and metadata for the days of each project (by the name shown)."""
    at_risk = {name: day_ranges(d.day for d in days if d.state == AT_RISK) for name, days in coverage.items()}
    at_risk = {name: ranges for name, ranges in at_risk.items() if ranges}
    totals = counts(day for days in coverage.values() for day in days)
    if at_risk:
        description = (f"{totals[AT_RISK]} day(s) not synced although the DDS API starts forgetting them within "
                       f"{AT_RISK_DAYS} days (or has begun to): "
                       + "; ".join(f"{name} {', '.join(r)}" for name, r in at_risk.items()))
    else:
        description = f"no day is at risk: every day is synced, or the DDS API keeps it over {AT_RISK_DAYS} more days"
    return AssetCheckResult(
        check_name=NO_DAYS_AT_RISK,
        passed=not at_risk,
        severity=FAILURE_SEVERITY,
        description=description,
        metadata={
            "first_day": first_day.isoformat(),
            "last_day": today.isoformat(),
            **{f"days_{state}": count for state, count in totals.items()},
            "at_risk_days_by_project": MetadataValue.json(at_risk),
            "coverage": MetadataValue.md(coverage_markdown(coverage)),
        },
    )


def coverage_markdown(coverage: Mapping[str, Sequence[DayCoverage]]) -> str:
    """Days per state and project, then the days not synced as ranges, with the latest error among them."""
    header = ["project", *(state.replace("_", " ") for state in STATES)]
    lines = [_row(header), _row(["---"] * len(header))]
    lines += [_row([name, *map(str, counts(days).values())]) for name, days in coverage.items()]
    not_synced = [_row(["project", "state", "days", "last error"]), _row(["---"] * 4)]
    for name, days in coverage.items():
        for state in STATES[1:]:
            of_state = [day for day in days if day.state == state]
            if not of_state:
                continue
            ranges = day_ranges(day.day for day in of_state)
            shown = ", ".join(ranges[-RANGES_SHOWN:])
            if len(ranges) > RANGES_SHOWN:
                shown = f"({len(ranges) - RANGES_SHOWN} earlier ranges) " + shown
            errors = [day.last_error for day in of_state if day.last_error]
            not_synced.append(_row([name, state, shown, errors[-1] if errors else ""]))
    if len(not_synced) == 2:
        return "\n".join(lines) + f"\n\nEvery day is {SYNCED}."
    return "\n".join(lines) + "\n\nDays not synced:\n\n" + "\n".join(not_synced)


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"
