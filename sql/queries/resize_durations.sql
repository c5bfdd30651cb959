-- How long do our resizes take? Completed resize and enlarge tasks created between first_day and last_day
-- (UTC days, inclusive), in minutes, slowest kind first.
SELECT
    name,
    COUNT(*) AS resizes,
    ROUND(CAST(AVG(duration_seconds) / 60.0 AS DECIMAL(20, 6)), 1) AS avg_minutes,
    ROUND(CAST(MIN(duration_seconds) / 60.0 AS DECIMAL(20, 6)), 1) AS min_minutes,
    ROUND(CAST(MAX(duration_seconds) / 60.0 AS DECIMAL(20, 6)), 1) AS max_minutes
FROM dds_jobs
WHERE status = 'Completed'
  AND duration_seconds IS NOT NULL
  AND name IN ('ResizeMongoDBInstance', 'ResizeDfvMongoDBInstance', 'EnlargeMongoDBVolume',
               'EnlargeMongoDBGroup', 'ReplicaSetEnlargeNode')
  AND created_date BETWEEN :first_day AND :last_day
GROUP BY name
ORDER BY AVG(duration_seconds) DESC, name
