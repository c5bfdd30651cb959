-- How long each kind of task takes: one row per (project_id, task name) over all stored days.
-- finished_jobs counts the jobs with an end time; the durations are over those jobs only.
SELECT
    project_id,
    name,
    COUNT(*) AS jobs,
    COUNT(CASE WHEN status = 'Failed' THEN 1 END) AS failed_jobs,
    COUNT(duration_seconds) AS finished_jobs,
    AVG(duration_seconds) AS avg_duration_seconds,
    MIN(duration_seconds) AS min_duration_seconds,
    MAX(duration_seconds) AS max_duration_seconds
FROM dds_jobs
GROUP BY project_id, name
