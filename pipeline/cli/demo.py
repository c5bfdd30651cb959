"""``dds-tasks demo``: the whole pipeline, through Dagster, against the bundled simulator, in a folder of its own.

The simulator stands in for the DDS API on a free loopback port; everything else is the production code path:
the same ``Definitions``, resources, assets, checks and storage. The demo never reads or writes the configured
storage: it runs on a configuration of its own (the docs/configuration.md variables given to the run's process as values,
the user's own ``DDS_*`` and credential variables set aside, and named), and keeps its warehouse, Parquet
snapshots and Dagster home in its folder (``./demo`` by default), so ``dds-tasks demo --ui`` and Dagster's UI show
what it did.
"""

import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from pipeline.api.auth import mask_key
from pipeline.cli.shellcommands import shell_path, venv_command
from pipeline.simulator import DdsSimulator, SimulatorConfig, dataset
from pipeline.simulator.auth import SimulatorAuthenticator
from pipeline.api.windows import retained_since
from pipeline.warehouse.store import Warehouse

if TYPE_CHECKING:
    from dagster import AssetCheckEvaluation, ExecuteInProcessResult

DEFAULT_FOLDER = "demo"
# A region is part of every stored row; the demo's jobs come from a simulated one.
DEMO_REGION = "ap-southeast-1"
# Variables of the user's configuration that the demo sets aside for its run: storage, source, credentials
# (prefixed ones too: they only count with DDS_TARGETS_FILE, which is set aside as well).
_USER_PREFIXES = ("DDS_", "HUAWEICLOUD_")
_DAGSTER_YAML = """\
# The demo's own Dagster instance (dds-tasks demo): its runs, materializations and asset checks, kept for
# `dds-tasks demo --ui`. Delete the demo's folder to start afresh.
telemetry:
  enabled: false
"""


@dataclass(frozen=True)
class DemoPlace:
    """The demo's folder: its data (warehouse and Parquet), its Dagster home, and the dataset they came from."""

    folder: Path

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    @property
    def warehouse_file(self) -> Path:
        return self.data_dir / "warehouse.db"

    @property
    def parquet_root(self) -> Path:
        return self.data_dir / "parquet"

    @property
    def dagster_home(self) -> Path:
        return self.folder / "dagster_home"

    @property
    def dataset_file(self) -> Path:
        return self.folder / "dataset.json"

    def prepare(self, wanted: Mapping[str, object]) -> bool:
        """Creates the folder and its Dagster home; a folder filled from another dataset (other ``--jobs-per-day``)
        is emptied first, since its stored days would disagree with what the simulator now serves. True when
        it was emptied."""
        emptied = False
        if self.dataset_file.exists() and json.loads(self.dataset_file.read_text()) != dict(wanted):
            shutil.rmtree(self.data_dir, ignore_errors=True)
            shutil.rmtree(self.dagster_home, ignore_errors=True)
            emptied = True
        self.dagster_home.mkdir(parents=True, exist_ok=True)
        yaml = self.dagster_home / "dagster.yaml"
        if not yaml.exists():
            yaml.write_text(_DAGSTER_YAML)
        self.dataset_file.write_text(json.dumps(dict(wanted), indent=2) + "\n")
        return emptied


def demo_key_pair() -> tuple[str, str]:
    """A fresh (access key, secret key) for one demo run: only that run's simulator accepts it."""
    return "DEMO" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30)


def demo_settings_values(place: DemoPlace, sim: DdsSimulator, key_pair: tuple[str, str], start: date) -> dict[str, str]:
    """The demo's whole configuration, as the environment variables the pipeline (and ``dg dev``) read."""
    return {
        "DDS_DATA_DIR": str(place.data_dir.absolute()),
        "DDS_ENDPOINT": sim.url,
        "DDS_PROJECT_ID": sim.project_id,
        "DDS_REGION": DEMO_REGION,
        "DDS_START_DATE": start.isoformat(),
        "HUAWEICLOUD_SDK_AK": key_pair[0],
        "HUAWEICLOUD_SDK_SK": key_pair[1],
        "DAGSTER_HOME": str(place.dagster_home.absolute()),
    }


def environment_for_demo(values: Mapping[str, str], env: Mapping[str, str]) -> dict[str, str]:
    """``env`` without the user's pipeline configuration, plus ``values``."""
    return {**{k: v for k, v in env.items() if not k.startswith(_USER_PREFIXES)}, **values}


def _frame(title: str, frame: pd.DataFrame) -> str:
    body = frame.to_string(index=False) if not frame.empty else "(none)"
    return f"\n{title}\n" + "\n".join(f"  {line}" for line in body.splitlines())


def summary(warehouse: Warehouse, first: str, last: str) -> str:
    """Jobs per status, the task names that fail most and the slowest tasks among the days synced."""
    params = {"first_day": datetime.fromisoformat(first).date(), "last_day": datetime.fromisoformat(last).date()}
    where = "WHERE created_date BETWEEN :first_day AND :last_day"
    per_status = warehouse.query(f"SELECT status, COUNT(*) AS jobs FROM dds_jobs {where} GROUP BY status ORDER BY jobs DESC", **params)
    failing = warehouse.query(
        f"SELECT name, COUNT(*) AS failed FROM dds_jobs {where} AND status = 'Failed' "
        "GROUP BY name ORDER BY failed DESC, name LIMIT 5", **params)
    slowest = warehouse.query(
        f"SELECT name, instance_name, status, ROUND(CAST(duration_seconds / 60.0 AS DECIMAL(20, 6)), 1) AS minutes FROM dds_jobs {where} "
        "AND duration_seconds IS NOT NULL ORDER BY duration_seconds DESC, id LIMIT 5", **params)
    return (_frame("Jobs per status:", per_status) + _frame("Task names that fail most:", failing)
            + _frame("Slowest tasks:", slowest))


def next_steps(place: DemoPlace, with_ui: bool) -> list[str]:
    """Commands to try next, each runnable as printed from the working directory with the venv not activated."""
    lines = [] if with_ui else [
        f"  {venv_command('dds-tasks')} demo --ui   # these days in Dagster's UI: partitions, checks, plots, "
        "backfills (Ctrl-C stops it)"]
    query = "SELECT day, status, jobs FROM dds_jobs_daily_status ORDER BY day DESC, status LIMIT 20"
    if shutil.which("sqlite3"):
        lines.append(f"  sqlite3 {shell_path(place.warehouse_file)} '{query}'")
    else:
        lines.append(f"  {venv_command('python')} -c \"import sqlite3; print(*sqlite3.connect("
                     f"'{shell_path(place.warehouse_file)}').execute('{query}'), sep='\\n')\"")
    lines.append(f"  {venv_command('python')} -c \"import pandas as pd; "
                 f"print(pd.read_parquet('{shell_path(place.parquet_root / 'dds_jobs')}').head())\"")
    return lines


def check_report(evaluations: list["AssetCheckEvaluation"]) -> tuple[str, bool]:
    """A line per failing asset check, naming it, its severity and what did not match; and whether one of them
    has ERROR severity (the demo then exits non-zero)."""
    failed = [e for e in evaluations if not e.passed]
    lines = [f"asset checks: {len(evaluations) - len(failed)} of {len(evaluations)} passed" + (":" if failed else ".")]
    for evaluation in failed:
        lines.append(f"  FAILED {evaluation.check_name} ({evaluation.severity.value}): {_mismatch(evaluation.metadata)}")
    return "\n".join(lines), any(e.severity.value == "ERROR" for e in failed)


def _mismatch(metadata: Mapping[str, object]) -> str:
    """The figures of a failed check, then the first few of the rows or days it lists."""
    values = {name: getattr(value, "value", value) for name, value in metadata.items()}
    figures = [f"{name}={value}" for name, value in values.items() if isinstance(value, (int, float, str))]
    listed = [value for value in values.values() if isinstance(value, (list, dict)) and value]
    shown = []
    for items in listed:
        entries = list(items.items()) if isinstance(items, dict) else list(enumerate(items))
        shown.extend(f"{key}: {value}" if isinstance(items, dict) else str(value) for key, value in entries[:3])
    return "; ".join([", ".join(figures), *shown])


def _last_days(days: int, now: datetime, start: date) -> tuple[date, date]:
    last_day = now.date() - timedelta(days=1)
    return max(last_day - timedelta(days=days - 1), start), last_day


def _failure_line(result: "ExecuteInProcessResult") -> str:
    """The first step failure's own words (a Failure's description, else its error's first line)."""
    for event in result.all_events:
        if event.is_step_failure:
            data = event.step_failure_data
            if data.user_failure_data and data.user_failure_data.description:
                return data.user_failure_data.description
            return data.error.message.strip().splitlines()[-1] if data.error else event.message or ""
    return "see the log above"


@dataclass(frozen=True)
class DemoRun:
    """What the demo's run did, as its process reports it: success, the first failure's line, the checks."""

    success: bool
    failure: str
    evaluations: list["AssetCheckEvaluation"]


def sync_in_this_process(first: str, last: str, report: str) -> int:
    """The demo's run, in the process ``_sync`` starts: materializes both assets for first..last as one run,
    recorded in the demo's Dagster home; what it did goes to the file ``report``. The configuration is this
    process's environment, which ``_sync`` gave it."""
    from dagster import DagsterInstance, serialize_value

    from pipeline.defs.partitions import range_tags
    from pipeline.definitions import defs

    job = defs().resolve_implicit_global_asset_job_def()
    with DagsterInstance.get() as instance:
        result = job.execute_in_process(
            instance=instance,
            tags=range_tags(date.fromisoformat(first), date.fromisoformat(last)),
            run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
            raise_on_error=False,
        )
    Path(report).write_text(json.dumps({
        "success": result.success, "failure": "" if result.success else _failure_line(result),
        "evaluations": [serialize_value(evaluation) for evaluation in result.get_asset_check_evaluations()]}))
    return 0 if result.success else 1


def _sync(place: DemoPlace, values: Mapping[str, str], first_day: date, last_day: date) -> DemoRun:
    """The demo's run, in a process of its own whose environment is ``values`` and none of the user's own
    ``DDS_*`` and credential variables: the demo passes its configuration as values, and this process's
    environment is never changed. Secrets (the demo's key pair) reach the run through EnvVar, as in production,
    so Dagster records only the variables' names."""
    from dagster import deserialize_value

    report = place.folder / ".demo-run.json"
    report.unlink(missing_ok=True)
    code = ("import sys; from pipeline.cli.demo import sync_in_this_process as run; "
            "sys.exit(run(*sys.argv[1:]))")
    subprocess.run([sys.executable, "-c", code, first_day.isoformat(), last_day.isoformat(), str(report)],
                   env=environment_for_demo(values, os.environ), check=False)
    if not report.exists():
        return DemoRun(False, "the demo's run stopped before it ended (see the log above)", [])
    done = json.loads(report.read_text())
    report.unlink()
    return DemoRun(done["success"], done["failure"], [deserialize_value(e) for e in done["evaluations"]])


def set_aside(env: Mapping[str, str]) -> list[str]:
    """The names of the user's own settings (``DDS_*``, credentials) in ``env`` that the demo does not use."""
    return sorted(name for name in env if name.startswith(_USER_PREFIXES))


def run_demo(days: int = 7, jobs_per_day: int = dataset.JOBS_PER_DAY, key_pair: tuple[str, str] | None = None,
             folder: str | os.PathLike[str] = DEFAULT_FOLDER, ui_port: int | None = None) -> int:
    """Syncs the last ``days`` days from a fresh simulator into ``folder``; ``key_pair`` is (AK, SK), generated
    when None. With ``ui_port``, then serves Dagster's UI on the demo until interrupted (pipeline.cli.demo_ui).
    Exit code 1 when the run fails or an ERROR-severity asset check does."""
    place = DemoPlace(Path(folder))
    now = datetime.now(timezone.utc).replace(microsecond=0)
    first_day, last_day = _last_days(days, now, retained_since(now).date() + timedelta(days=1))
    # The demo's partitions start at the first day it syncs: the UI shows them all filled, none it never meant to.
    start = first_day
    first, last = first_day.isoformat(), last_day.isoformat()
    wanted = {"seed": dataset.SEED, "jobs_per_day": jobs_per_day, "project_id": dataset.PROJECT_ID,
              "region": DEMO_REGION}
    if place.prepare(wanted):
        print(f"The demo's folder {shell_path(place.folder)} held the jobs of another --jobs-per-day: emptied it")
    access_key, secret_key = key_pair or demo_key_pair()
    # AK/SK signing is the method a schedule should use; the simulator's gateway verifies every signature.
    gateway = SimulatorAuthenticator(keys={access_key: secret_key})
    config = SimulatorConfig(seed=dataset.SEED, project_ids=(dataset.PROJECT_ID,), jobs_per_day=jobs_per_day,
                             history_days=dataset.HISTORY_DAYS, now=now, authenticator=gateway)
    print(f"Starting the DDS API simulator (seed {dataset.SEED}, ~{jobs_per_day} jobs a day: the jobs "
          "`dds-tasks simulate` serves too) on 127.0.0.1 ...")
    with DdsSimulator(config, port=0) as sim:
        values = demo_settings_values(place, sim, (access_key, secret_key), start)
        print(f"Signing every request with the demo's access key {mask_key(access_key)} (AK/SK, the method for "
              "schedules: docs/authentication.md)")
        print(f"Syncing {first} ... {last} ({(last_day - first_day).days + 1} days) through Dagster into "
              f"{shell_path(place.folder)}/ ...", flush=True)
        aside = set_aside(os.environ)
        if aside:
            print(f"Your own settings, set aside for the demo (its run does not see them): {', '.join(aside)}")
        result = _sync(place, values, first_day, last_day)
        if not result.success:
            print(f"\nThe demo run failed: {result.failure}", file=sys.stderr)
            return 1
        checks, error_check_failed = check_report(result.evaluations)
        warehouse = Warehouse(f"sqlite:///{place.warehouse_file}")
        try:
            report = summary(warehouse, first, last)
            total = int(warehouse.query("SELECT COUNT(*) AS n FROM dds_jobs")["n"].iloc[0])
        finally:
            warehouse.dispose()
        print(f"\nLoaded the jobs of {first} ... {last} with {len(sim.requests)} API requests; {checks}")
        print(report)
        print(f"\nWarehouse:    {shell_path(place.warehouse_file)} (SQLite, table dds_jobs, {total:,} rows in all)")
        print(f"Parquet:      {shell_path(place.parquet_root / 'dds_jobs')}/created_date=YYYY-MM-DD/")
        print(f"Dagster home: {shell_path(place.dagster_home)} (the demo's runs, materializations and checks)")
        print("\nNext:")
        print("\n".join(next_steps(place, with_ui=ui_port is not None)), flush=True)
        code = 1 if error_check_failed else 0
        if ui_port is None:
            return code
        from pipeline.cli.demo_ui import serve_ui

        return serve_ui(place.folder, environment_for_demo(values, os.environ), ui_port) or code
