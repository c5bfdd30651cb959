-- The task names with the most failed jobs, first_day..last_day (inclusive): at most top rows, most failures
-- first. The period is split at half_day (first half: created_date < half_day) to show whether a rate rises.
-- names_with_failures: how many names had a failed job, listed or not.
SELECT
    COALESCE(name, '(none)') AS name,
    COUNT(*) AS jobs,
    SUM(CASE WHEN status = 'Failed' THEN 1 ELSE 0 END) AS failed,
    SUM(CASE WHEN created_date < :half_day THEN 1 ELSE 0 END) AS jobs_first_half,
    SUM(CASE WHEN created_date < :half_day AND status = 'Failed' THEN 1 ELSE 0 END) AS failed_first_half,
    COUNT(*) OVER () AS names_with_failures
FROM dds_jobs
WHERE created_date BETWEEN :first_day AND :last_day
  AND (:all_projects = 1 OR project_id = :project_id)
GROUP BY COALESCE(name, '(none)')
HAVING SUM(CASE WHEN status = 'Failed' THEN 1 ELSE 0 END) > 0
ORDER BY failed DESC, jobs, name
LIMIT :top
