"""Throughput of the generic warehouse path (pipeline/warehouse/upserts/generic.py) on MariaDB or MySQL.

    python bench/bench_generic.py [--server mysql+pymysql://root@127.0.0.1:3306/test] [--rows 10000 100000]
                                  [--repeat 3]

For each size, the best of ``--repeat`` runs of: a fresh load (every job new: locked lookup, then INSERT) and a
re-sync of the same jobs a day later (every job stored: locked lookup, latest-state rule, then UPDATE), each in a
database of its own on the server, dropped afterwards. SQLite's fast path on the same rows is printed alongside.
"""

import argparse
import sys
import tempfile
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_storage import FIRST_DAY, SEEN, Figure, bench_warehouse, scratch_urls  # noqa: E402
from pipeline.records.normalize import normalize_jobs  # noqa: E402
from tests.support.records import synthetic_records  # noqa: E402

LOCAL_MARIADB = "mysql+pymysql://root@127.0.0.1:3306/test"


def scratch_databases(server_url: str) -> tuple[Callable[[], str], Callable[[], None]]:
    """URLs of fresh databases on the server, and a clean-up dropping them all."""
    admin = sa.create_engine(server_url)
    return scratch_urls(admin, "CREATE DATABASE `{name}` CHARACTER SET utf8mb4", "DROP DATABASE IF EXISTS `{name}`",
                        lambda name: admin.url.set(database=name).render_as_string(hide_password=False))


def bench_loads(label: str, make_url: Callable[[], str], rows: int, repeat: int) -> list[Figure]:
    records = synthetic_records(rows, FIRST_DAY, days=30, seed=1)
    frame = normalize_jobs(records, "bench", SEEN).frame
    resync = normalize_jobs(records, "bench", SEEN + timedelta(days=1)).frame
    # No target: the generic path is measured, not held to the fast paths' 100,000 rows/s.
    return bench_warehouse(label, make_url, frame, resync, repeat, target=None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", metavar="URL", default=LOCAL_MARIADB, help=f"default {LOCAL_MARIADB}")
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000], help="rows per load")
    parser.add_argument("--repeat", type=int, default=3, help="runs per step; the best is reported")
    args = parser.parse_args(argv)

    figures = []
    make_url, drop_all = scratch_databases(args.server)
    try:
        with tempfile.TemporaryDirectory(prefix="dds-bench-") as scratch:
            sqlite_url = lambda: f"sqlite:///{Path(scratch) / uuid.uuid4().hex / 'warehouse.db'}"  # noqa: E731
            for rows in args.rows:
                print(f"loading {rows:,} rows ...", flush=True)
                figures += bench_loads("generic, MariaDB", make_url, rows, args.repeat)
                figures += bench_loads("fast, SQLite", sqlite_url, rows, args.repeat)
    finally:
        drop_all()

    print(f"\n{'step':<34}{'rows':>9}{'seconds':>9}{'rows/s':>12}")
    for figure in figures:
        print(figure.line().rstrip())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
