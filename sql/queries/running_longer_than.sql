-- Which jobs still ran at their last sync although they were created before created_before (a UTC datetime)?
-- Stuck tasks are worth a ticket. Oldest first.
SELECT
    project_id,
    id,
    name,
    instance_id,
    instance_name,
    progress_pct,
    created_at,
    last_seen_at
FROM dds_jobs
WHERE status = 'Running'
  AND created_at < :created_before
ORDER BY created_at, id
