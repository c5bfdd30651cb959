-- Which instances failed a backup between first_day and last_day (UTC days, inclusive)? Worst first.
-- Example: warehouse.query(sql, first_day=date(2026, 7, 1), last_day=date(2026, 9, 30))  (a quarter)
SELECT
    project_id,
    instance_id,
    MAX(instance_name) AS instance_name,
    COUNT(*) AS failed_backups,
    MIN(created_at) AS first_failure,
    MAX(created_at) AS last_failure
FROM dds_jobs
WHERE status = 'Failed'
  AND name IN ('MongodbSnapshotBackup', 'MongodbSnapshotEBackup')
  AND created_date BETWEEN :first_day AND :last_day
GROUP BY project_id, instance_id
ORDER BY failed_backups DESC, project_id, instance_id
