"""The smallest Dagster project: one asset, nothing else. Its load time is Dagster's own, the floor that issue 23
compares the loading of ``pipeline.definitions`` with (bench/bench_overhead.py)."""

from dagster import Definitions, asset


@asset
def one_asset() -> None:
    return None


defs = Definitions(assets=[one_asset])
