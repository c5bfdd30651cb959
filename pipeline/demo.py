"""``dds-tasks demo``: the whole pipeline, through Dagster, against the bundled simulator, into the embedded defaults.

The simulator stands in for the DDS API on a free loopback port; everything else is the production code path:
the same ``Definitions``, resources, assets, checks and storage, fed by the same environment variables.
"""

import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pandas as pd
from dagster import DagsterInstance

from pipeline.api.auth import mask_key
from pipeline.api.credentials import ENV_VARIABLES
from pipeline.dds.partitions import range_tags
from pipeline.definitions import build_definitions
from pipeline.settings import Settings, masked_url
from pipeline.simulator import DdsSimulator, SimulatorConfig
from pipeline.simulator.auth import SimulatorAuthenticator
from pipeline.storage.warehouse import Warehouse

DEMO_SEED = 2026


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


def demo_key_pair() -> tuple[str, str]:
    """A fresh (access key, secret key) for one demo run: only that run's simulator accepts it."""
    return "DEMO" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30)


@contextmanager
def demo_environment(values: dict[str, str]) -> Iterator[None]:
    """``os.environ`` holding ``values`` and none of the user's own credential variables, restored on exit.

    The user's real credentials must not reach the simulator, and a partial set of them would fail the run.
    """
    saved = {name: os.environ.pop(name, None) for name in {*values, *ENV_VARIABLES.values()}}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_demo(days: int = 7, jobs_per_day: int = 200, key_pair: tuple[str, str] | None = None) -> int:
    """Syncs the last ``days`` days from a fresh simulator; ``key_pair`` is (AK, SK), generated when None."""
    settings = Settings.from_env()
    now = datetime.now(timezone.utc).replace(microsecond=0)
    last_day = now.date() - timedelta(days=1)
    first_day = max(last_day - timedelta(days=days - 1), settings.start_date)
    first, last = first_day.isoformat(), last_day.isoformat()
    access_key, secret_key = key_pair or demo_key_pair()
    # AK/SK signing is the method a schedule should use; the simulator's gateway verifies every signature.
    gateway = SimulatorAuthenticator(keys={access_key: secret_key})
    config = SimulatorConfig(seed=DEMO_SEED, jobs_per_day=jobs_per_day, history_days=days + 35, now=now,
                             authenticator=gateway)
    print(f"Starting the DDS API simulator (seed {DEMO_SEED}, ~{jobs_per_day} jobs a day) on 127.0.0.1 ...")
    with DdsSimulator(config, port=0) as sim, demo_environment({
        "DDS_ENDPOINT": sim.url, "DDS_PROJECT_ID": sim.project_id,
        "HUAWEICLOUD_SDK_AK": access_key, "HUAWEICLOUD_SDK_SK": secret_key,
    }):
        # The demo's deployment begins with the days it syncs: no earlier day is left for its coverage check to miss.
        settings = replace(settings, endpoint=sim.url, project_id=sim.project_id, start_date=first_day)
        print(f"Signing every request with the demo's access key {mask_key(access_key)} (AK/SK, the method for "
              "schedules: docs/authentication.md)")
        print(f"Syncing {first} ... {last} ({(last_day - first_day).days + 1} days) through Dagster ...", flush=True)
        job = build_definitions(settings).resolve_implicit_global_asset_job_def()
        with DagsterInstance.ephemeral() as instance:
            result = job.execute_in_process(
                instance=instance,
                tags=range_tags(first_day, last_day),
                run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
                raise_on_error=False,
            )
        requests_served = len(sim.requests)
    if not result.success:
        failure = next((e for e in result.all_events if e.is_failure), None)
        print(f"\nThe demo run failed: {failure.message if failure else 'see the log above'}", file=sys.stderr)
        return 1
    checks = result.get_asset_check_evaluations()
    warehouse = Warehouse(settings.warehouse_url)
    try:
        report = summary(warehouse, first, last)
        total = int(warehouse.query("SELECT COUNT(*) AS n FROM dds_jobs")["n"].iloc[0])
    finally:
        warehouse.dispose()
    passed = sum(1 for c in checks if c.passed)
    print(f"\nLoaded the jobs of {first} ... {last} with {requests_served} API requests; "
          f"asset checks: {passed} of {len(checks)} passed.")
    print(report)
    print(f"\nWarehouse: {masked_url(settings.warehouse_url)} (table dds_jobs, {total:,} rows in all)")
    print(f"Parquet:   {os.path.join(settings.parquet_root, 'dds_jobs')}/created_date=YYYY-MM-DD/")
    print("\nNext:")
    print("  dagster dev                      # the UI: assets, partitions, schedule dds_jobs_daily, backfills")
    db = settings.warehouse_url.removeprefix("sqlite:///")
    if settings.warehouse_url.startswith("sqlite:///"):
        print(f"  sqlite3 {db} 'SELECT * FROM dds_jobs_daily_status LIMIT 20'")
    print(f"  python -c \"import pandas as pd; print(pd.read_parquet('{settings.parquet_root}/dds_jobs').head())\"")
    return 0
