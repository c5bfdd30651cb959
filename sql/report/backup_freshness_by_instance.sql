-- Is every DB instance backed up? Every instance with a job created first_day..last_day (inclusive), with its
-- last successful backup of the period (a task name in backup_names, Completed; its ended_at, else created_at):
-- freshness 0 = no successful backup in the period, 1 = none since day_ago (24 hours before the report's time),
-- 2 = one since. At most top rows, the instances without a backup first, then the oldest last backup first.
-- instances, without_backup, stale: how many instances, of freshness 0 and of freshness 1, listed or not.
WITH by_instance AS (
    SELECT
        project_id,
        COALESCE(instance_id, '(none)') AS instance_id,
        MAX(instance_name) AS instance_name,
        MAX(CASE WHEN name IN :backup_names AND status = 'Completed'
                 THEN COALESCE(ended_at, created_at) END) AS last_backup_at,
        SUM(CASE WHEN name IN :backup_names THEN 1 ELSE 0 END) AS backups,
        SUM(CASE WHEN name IN :backup_names AND status = 'Failed' THEN 1 ELSE 0 END) AS failed
    FROM dds_jobs
    WHERE created_date BETWEEN :first_day AND :last_day
      AND (:all_projects = 1 OR project_id = :project_id)
    GROUP BY project_id, COALESCE(instance_id, '(none)')
),
rated AS (
    SELECT
        by_instance.*,
        CASE WHEN last_backup_at IS NULL THEN 0 WHEN last_backup_at < :day_ago THEN 1 ELSE 2 END AS freshness
    FROM by_instance
)
SELECT
    project_id,
    instance_id,
    instance_name,
    last_backup_at,
    backups,
    failed,
    freshness,
    COUNT(*) OVER () AS instances,
    SUM(CASE WHEN freshness = 0 THEN 1 ELSE 0 END) OVER () AS without_backup,
    SUM(CASE WHEN freshness = 1 THEN 1 ELSE 0 END) OVER () AS stale
FROM rated
ORDER BY freshness, last_backup_at, project_id, instance_id
LIMIT :top
