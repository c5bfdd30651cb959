-- Jobs per UTC day of creation and status, first_day..last_day (inclusive): one row per (day, status).
-- all_projects = 1 counts every project; otherwise only project_id's jobs.
SELECT
    created_date AS day,
    COALESCE(status, '(none)') AS status,
    COUNT(*) AS jobs
FROM dds_jobs
WHERE created_date BETWEEN :first_day AND :last_day
  AND (:all_projects = 1 OR project_id = :project_id)
GROUP BY created_date, COALESCE(status, '(none)')
ORDER BY created_date, status
