"""Storage of DDS jobs: API records normalized into rows, a SQL warehouse, and Parquet snapshots by day."""

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
