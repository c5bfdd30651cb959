-- Failed jobs with their reasons: one row per failed job, in its latest known state.
SELECT
    project_id,
    created_date AS day,
    created_at,
    ended_at,
    name,
    instance_id,
    instance_name,
    fail_reason,
    duration_seconds,
    id
FROM dds_jobs
WHERE status = 'Failed'
