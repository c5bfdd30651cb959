-- How long completed jobs took, per task name, first_day..last_day (inclusive): the median (p50) and the slow
-- tail (p90) in seconds by the nearest-rank method (the smallest duration d such that at least p% of the name's
-- durations are <= d), computed where the data is (SQLite has no percentile function) from the durations
-- counted per distinct value, so only those counts are ordered. At most top rows, slowest p90 first;
-- names: how many names had a completed job with a duration, listed or not.
WITH counted AS (
    SELECT
        COALESCE(name, '(none)') AS name,
        duration_seconds,
        COUNT(*) AS jobs
    FROM dds_jobs
    WHERE status = 'Completed'
      AND duration_seconds IS NOT NULL
      AND created_date BETWEEN :first_day AND :last_day
      AND (:all_projects = 1 OR project_id = :project_id)
    GROUP BY COALESCE(name, '(none)'), duration_seconds
),
cumulative AS (
    SELECT
        name,
        duration_seconds,
        SUM(jobs) OVER (PARTITION BY name ORDER BY duration_seconds ROWS UNBOUNDED PRECEDING) AS up_to,
        SUM(jobs) OVER (PARTITION BY name) AS completed_jobs
    FROM counted
),
percentiles AS (
    SELECT
        name,
        completed_jobs,
        MIN(CASE WHEN up_to * 100 >= completed_jobs * 50 THEN duration_seconds END) AS p50_seconds,
        MIN(CASE WHEN up_to * 100 >= completed_jobs * 90 THEN duration_seconds END) AS p90_seconds
    FROM cumulative
    GROUP BY name, completed_jobs
)
SELECT name, completed_jobs, p50_seconds, p90_seconds, COUNT(*) OVER () AS names
FROM percentiles
ORDER BY p90_seconds DESC, name
LIMIT :top
