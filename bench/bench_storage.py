"""Throughput of the storage layer: normalize, warehouse upserts (SQLite, PostgreSQL) and Parquet writes.

    python bench/bench_storage.py [--rows 100000] [--normalize-rows 500000] [--postgres URL] [--repeat 3]

Prints one line per step with rows per second (the best of ``--repeat`` runs, each on fresh storage where the step
says "fresh"). PostgreSQL runs in a schema of its own on the given server, dropped afterwards.
"""

import argparse
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.records.normalize import normalize_jobs  # noqa: E402
from pipeline.snapshots.store import ParquetStore  # noqa: E402
from tests.support.records import synthetic_records  # noqa: E402
from pipeline.warehouse.store import Warehouse  # noqa: E402

FIRST_DAY = date(2026, 10, 1)
SEEN = datetime(2026, 11, 1, tzinfo=timezone.utc)
TARGETS = {"normalize": 500_000, "upsert": 100_000}


@dataclass
class Figure:
    step: str
    rows: int
    seconds: float
    target: int | None = None

    def line(self) -> str:
        rate = self.rows / self.seconds if self.seconds else float("inf")
        target = f"{self.target:>10,}" if self.target else f"{'':>10}"
        verdict = "" if not self.target else ("met" if rate >= self.target else "below")
        return f"{self.step:<34}{self.rows:>9,}{self.seconds:>9.3f}{rate:>12,.0f}{target}  {verdict}"


def best_of(
    repeat: int,
    prepare: Callable[[], object],
    run: Callable[[object], object],
    clean_up: Callable[[object], object] = lambda _: None,
) -> float:
    """The shortest of ``repeat`` timed runs of ``run(prepare())`` (preparation and clean-up not timed)."""
    times = []
    for _ in range(repeat):
        state = prepare()
        started = time.perf_counter()
        run(state)
        times.append(time.perf_counter() - started)
        clean_up(state)
    return min(times)


def bench_warehouse(label: str, make_url: Callable[[], str], frame, resync, repeat: int,
                    target: int | None = TARGETS["upsert"]) -> list[Figure]:
    """Fresh load and re-sync of ``frame`` into new warehouses from ``make_url``, against ``target`` rows/s."""

    def fresh_warehouse() -> Warehouse:
        warehouse = Warehouse(make_url())
        warehouse.ensure_schema()
        return warehouse

    def loaded_warehouse() -> Warehouse:
        warehouse = fresh_warehouse()
        warehouse.upsert(frame)
        return warehouse

    fresh = best_of(repeat, fresh_warehouse, lambda w: w.upsert(frame), Warehouse.dispose)
    again = best_of(repeat, loaded_warehouse, lambda w: w.upsert(resync), Warehouse.dispose)
    return [Figure(f"{label} upsert, fresh", len(frame), fresh, target),
            Figure(f"{label} upsert, re-sync", len(frame), again, target)]


def scratch_urls(
    admin: sa.Engine, create: str, drop: str, url_for: Callable[[str], str]
) -> tuple[Callable[[], str], Callable[[], None]]:
    """URLs of fresh scratch spaces on ``admin``'s server (``create`` and ``drop``: SQL with ``{name}``; ``url_for``:
    the URL of a space by name), and a clean-up dropping them all and disposing of ``admin``."""
    created: list[str] = []

    def make_url() -> str:
        name = f"dds_bench_{uuid.uuid4().hex[:8]}"
        with admin.connect() as connection:
            connection.exec_driver_sql(create.format(name=name))
        created.append(name)
        return url_for(name)

    def drop_all() -> None:
        with admin.connect() as connection:
            for name in created:
                connection.exec_driver_sql(drop.format(name=name))
        admin.dispose()

    return make_url, drop_all


def postgres_schema_urls(server_url: str) -> tuple[Callable[[], str], Callable[[], None]]:
    """URLs of fresh schemas on the server (search_path set through libpq options), and a clean-up."""

    def url_for(schema: str) -> str:
        url = sa.make_url(server_url).update_query_dict({"options": f"-csearch_path={schema}"})
        return url.render_as_string(hide_password=False)

    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    return scratch_urls(admin, "CREATE SCHEMA {name}", "DROP SCHEMA IF EXISTS {name} CASCADE", url_for)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows per upsert and Parquet write")
    parser.add_argument("--normalize-rows", type=int, default=500_000, help="records per normalize run")
    parser.add_argument("--postgres", metavar="URL", help="a PostgreSQL server: postgresql+psycopg://user@host/db")
    parser.add_argument("--repeat", type=int, default=3, help="runs per step; the best is reported")
    args = parser.parse_args(argv)

    print(f"generating {max(args.rows, args.normalize_rows):,} synthetic API records ...", flush=True)
    records = synthetic_records(max(args.rows, args.normalize_rows), FIRST_DAY, days=30, seed=1)
    to_normalize = records[: args.normalize_rows]
    seconds = best_of(args.repeat, lambda: None, lambda _: normalize_jobs(to_normalize, "bench", SEEN))
    figures = [Figure("normalize", len(to_normalize), seconds, TARGETS["normalize"])]
    frame = normalize_jobs(records[: args.rows], "bench", SEEN).frame
    resync = normalize_jobs(records[: args.rows], "bench", SEEN + timedelta(days=1)).frame

    with tempfile.TemporaryDirectory(prefix="dds-bench-") as scratch:
        scratch_path = Path(scratch)
        sqlite_url = lambda: f"sqlite:///{scratch_path / uuid.uuid4().hex / 'warehouse.db'}"  # noqa: E731
        figures += bench_warehouse("SQLite", sqlite_url, frame, resync, args.repeat)
        if args.postgres:
            make_url, drop_all = postgres_schema_urls(args.postgres)
            try:
                figures += bench_warehouse("PostgreSQL", make_url, frame, resync, args.repeat)
            finally:
                drop_all()

        def fresh_store() -> ParquetStore:
            return ParquetStore(scratch_path / uuid.uuid4().hex)

        def written_store() -> ParquetStore:
            store = fresh_store()
            store.write_days(frame)
            return store

        fresh = best_of(args.repeat, fresh_store, lambda store: store.write_days(frame))
        merge = best_of(args.repeat, written_store, lambda store: store.write_days(resync))
        figures += [Figure("Parquet write_days, fresh", len(frame), fresh),
                    Figure("Parquet write_days, merge", len(frame), merge)]

    print(f"\n{'step':<34}{'rows':>9}{'seconds':>9}{'rows/s':>12}{'target':>10}")
    for figure in figures:
        print(figure.line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
