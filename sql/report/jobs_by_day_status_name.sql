-- Jobs per UTC day of creation, status and task name, first_day..last_day (inclusive): one row per (day, status,
-- name) holding jobs, at most days x statuses x task names rows (the API knows about 40 task names and 3
-- statuses). Jobs per day by status and failures by task name are both sums of these rows: one pass over the
-- period's jobs serves both. all_projects = 1 counts every project; otherwise only project_id's jobs.
SELECT
    created_date AS day,
    COALESCE(status, '(none)') AS status,
    COALESCE(name, '(none)') AS name,
    COUNT(*) AS jobs
FROM dds_jobs
WHERE created_date BETWEEN :first_day AND :last_day
  AND (:all_projects = 1 OR project_id = :project_id)
GROUP BY created_date, COALESCE(status, '(none)'), COALESCE(name, '(none)')
