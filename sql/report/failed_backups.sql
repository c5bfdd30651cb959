-- The failed backups (task names in backup_names) of first_day..last_day (inclusive), newest first: at most
-- top rows; failed_backups counts them all.
SELECT
    project_id,
    instance_id,
    instance_name,
    name,
    created_at,
    fail_reason,
    COUNT(*) OVER () AS failed_backups
FROM dds_jobs
WHERE status = 'Failed'
  AND name IN :backup_names
  AND created_date BETWEEN :first_day AND :last_day
  AND (:all_projects = 1 OR project_id = :project_id)
ORDER BY created_at DESC, project_id, id
LIMIT :top
