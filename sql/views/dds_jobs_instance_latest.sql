-- The most recent job of each DB instance: one row per (project_id, instance_id), the job created last
-- (ties broken by job id so the answer is stable).
SELECT
    project_id,
    instance_id,
    instance_name,
    id,
    name,
    status,
    progress_pct,
    created_at,
    ended_at,
    fail_reason
FROM (
    SELECT
        dds_jobs.*,
        ROW_NUMBER() OVER (PARTITION BY project_id, instance_id ORDER BY created_at DESC, id DESC) AS recency
    FROM dds_jobs
) AS ranked
WHERE recency = 1
