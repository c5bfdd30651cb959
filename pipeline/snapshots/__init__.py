"""The Parquet snapshots, rebuilt from the warehouse: the store (``store``), its day files (``files``), their
comparison with the warehouse (``compare``), healing in a run (``heal``), the full verification (``verify``), and
S3-compatible object storage (``s3``)."""
