-- Backups (task names in backup_names) per DB instance, first_day..last_day (inclusive): at most top rows,
-- the instances with the most failed backups first. instances and all_backups: how many instances had a backup,
-- and their backups, listed or not.
SELECT
    project_id,
    COALESCE(instance_id, '(none)') AS instance_id,
    MAX(instance_name) AS instance_name,
    COUNT(*) AS backups,
    COUNT(CASE WHEN status = 'Completed' THEN 1 END) AS completed,
    COUNT(CASE WHEN status = 'Failed' THEN 1 END) AS failed,
    COUNT(*) OVER () AS instances,
    SUM(COUNT(*)) OVER () AS all_backups
FROM dds_jobs
WHERE name IN :backup_names
  AND created_date BETWEEN :first_day AND :last_day
  AND (:all_projects = 1 OR project_id = :project_id)
GROUP BY project_id, COALESCE(instance_id, '(none)')
ORDER BY failed DESC, backups DESC, project_id, instance_id
LIMIT :top
