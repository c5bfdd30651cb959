-- The jobs Running at their latest sync, created on or before last_day: at most top rows, oldest first;
-- running_jobs counts them all.
SELECT
    project_id,
    id,
    name,
    instance_name,
    progress_pct,
    created_at,
    last_seen_at,
    COUNT(*) OVER () AS running_jobs
FROM dds_jobs
WHERE status = 'Running'
  AND created_date <= :last_day
  AND (:all_projects = 1 OR project_id = :project_id)
ORDER BY created_at, project_id, id
LIMIT :top
