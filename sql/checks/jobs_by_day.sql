-- Stored jobs per UTC day of created_at, for every day the warehouse holds (the days the Parquet verification
-- compares, with the days the Parquet snapshots hold).
SELECT created_date, COUNT(*) AS jobs
FROM dds_jobs
GROUP BY created_date
ORDER BY created_date
