"""Storage of DDS jobs: API records normalized into rows, a SQL warehouse, and Parquet snapshots by day."""

import pyarrow as pa

# pyarrow's default allocator (mimalloc in its wheels) keeps what a run freed: reading a month back for the
# snapshot and its check left 90 MB more resident than jemalloc, which returns it (bench/bench_sync.py's peak
# memory). Set here, before any Arrow buffer of ours exists; a build without jemalloc keeps its default.
try:
    pa.set_memory_pool(pa.jemalloc_memory_pool())
except NotImplementedError:
    pass

from pipeline.storage.normalize import NormalizedJobs, normalize_jobs
from pipeline.storage.parquet import ParquetStore
from pipeline.storage.schema import ARROW_SCHEMA, COLUMN_NAMES, DDS_JOBS, PANDAS_DTYPES, TABLE_NAME
from pipeline.storage.upsert import UpsertCounts
from pipeline.storage.warehouse import Warehouse

__all__ = [
    "ARROW_SCHEMA",
    "COLUMN_NAMES",
    "DDS_JOBS",
    "PANDAS_DTYPES",
    "TABLE_NAME",
    "NormalizedJobs",
    "ParquetStore",
    "UpsertCounts",
    "Warehouse",
    "normalize_jobs",
]
