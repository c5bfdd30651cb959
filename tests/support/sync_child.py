"""One sync run in a process of its own, for the tests that SIGKILL a run or race two runs.

    python -m tests.support.sync_child FIRST LAST [--stop-at POINT:N --marker FILE]

The run is the production one: the docs/configuration.md variables, the Definitions of ``pipeline.definitions``, both
assets and their checks over the days FIRST..LAST as one run, on an ephemeral Dagster instance. The exit status
is 0 when the run succeeded, 1 when it failed.

With ``--stop-at`` the process creates FILE once it reaches the point, then blocks there until it is killed:

- ``sqlite-upsert:N``: inside the warehouse's write transaction, as the N-th row of the upsert starts
  (sqlite3's trace callback, set on every connection SQLAlchemy opens);
- ``parquet-rename:N``: just before the N-th temporary Parquet file is renamed into place (the
  interpreter's ``os.rename`` audit event).

Nothing in ``pipeline/`` knows of these points: they hook into sqlite3 and the interpreter only.
"""

import argparse
import os
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import sqlalchemy as sa

UPSERT_PREFIX = "INSERT INTO dds_jobs "
TEMPORARY_PARQUET_PREFIX = ".part-0."


def block_until_killed(marker: Path) -> None:
    marker.write_text(str(os.getpid()))
    while True:
        time.sleep(60)


def on_nth(count: int, action: Callable[[], None]) -> Callable[[], None]:
    """A callable that runs ``action`` on its ``count``-th call."""
    calls = 0

    def call() -> None:
        nonlocal calls
        calls += 1
        if calls == count:
            action()

    return call


def stop_in_sqlite_upsert(reached: Callable[[], None]) -> None:
    def trace(statement: str) -> None:
        if statement.startswith(UPSERT_PREFIX):
            reached()

    def on_connect(dbapi_connection, _record) -> None:
        if hasattr(dbapi_connection, "set_trace_callback"):
            dbapi_connection.set_trace_callback(trace)

    sa.event.listen(sa.engine.Engine, "connect", on_connect)


def stop_before_parquet_rename(reached: Callable[[], None]) -> None:
    def audit(event: str, args: tuple) -> None:
        if event == "os.rename" and Path(os.fsdecode(args[0])).name.startswith(TEMPORARY_PARQUET_PREFIX):
            reached()

    sys.addaudithook(audit)


STOP_POINTS = {"sqlite-upsert": stop_in_sqlite_upsert, "parquet-rename": stop_before_parquet_rename}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.sync_child", description=__doc__.splitlines()[0])
    parser.add_argument("first", type=date.fromisoformat)
    parser.add_argument("last", type=date.fromisoformat)
    parser.add_argument("--stop-at", help=f"POINT:N, POINT one of {', '.join(STOP_POINTS)}")
    parser.add_argument("--marker", type=Path, help="file created when the stop point is reached")
    args = parser.parse_args(argv)
    if args.stop_at:
        point, _, count = args.stop_at.partition(":")
        if point not in STOP_POINTS or not count.isdigit() or args.marker is None:
            parser.error(f"--stop-at {args.stop_at!r}: want POINT:N with --marker, POINT one of {list(STOP_POINTS)}")
        STOP_POINTS[point](on_nth(int(count), lambda: block_until_killed(args.marker)))

    from dagster import DagsterInstance

    from pipeline.defs.partitions import range_tags
    from pipeline.definitions import build_definitions
    from pipeline.config import Deployment

    job = build_definitions(Deployment.from_env()).resolve_implicit_global_asset_job_def()
    tags = range_tags(args.first, args.last)
    with DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(instance=instance, tags=tags, raise_on_error=False)
    print("run succeeded" if result.success else "run failed", flush=True)
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
