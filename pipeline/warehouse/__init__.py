"""The SQL warehouse, the system of record: table ``dds_jobs`` (``store.Warehouse``), its engine and views, the sync
ledger, and the upsert paths of each database side by side under ``upserts``."""
