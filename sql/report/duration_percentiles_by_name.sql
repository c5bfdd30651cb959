-- How long completed jobs took, per task name, first_day..last_day (inclusive): the median (p50) and the slow
-- tail (p90) in seconds, by the nearest-rank method (the value at position ceil(p * n) of the n durations in
-- order), computed where the data is: SQLite has no percentile function. At most top rows, slowest p90 first;
-- names: how many names had a completed job with a duration, listed or not.
WITH ordered AS (
    SELECT
        COALESCE(name, '(none)') AS name,
        duration_seconds,
        ROW_NUMBER() OVER (PARTITION BY COALESCE(name, '(none)') ORDER BY duration_seconds) AS position,
        COUNT(*) OVER (PARTITION BY COALESCE(name, '(none)')) AS completed_jobs
    FROM dds_jobs
    WHERE status = 'Completed'
      AND duration_seconds IS NOT NULL
      AND created_date BETWEEN :first_day AND :last_day
      AND (:all_projects = 1 OR project_id = :project_id)
),
percentiles AS (
    -- ceil(n * p / 100) in integer arithmetic: (n * p + 99) / 100.
    SELECT
        name,
        completed_jobs,
        MAX(CASE WHEN position = (completed_jobs * 50 + 99) / 100 THEN duration_seconds END) AS p50_seconds,
        MAX(CASE WHEN position = (completed_jobs * 90 + 99) / 100 THEN duration_seconds END) AS p90_seconds
    FROM ordered
    WHERE position IN ((completed_jobs * 50 + 99) / 100, (completed_jobs * 90 + 99) / 100)
    GROUP BY name, completed_jobs
)
SELECT name, completed_jobs, p50_seconds, p90_seconds, COUNT(*) OVER () AS names
FROM percentiles
ORDER BY p90_seconds DESC, name
LIMIT :top
