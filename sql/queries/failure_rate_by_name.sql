-- Which kinds of task fail most often between first_day and last_day (UTC days, inclusive)?
SELECT
    name,
    COUNT(*) AS jobs,
    COUNT(CASE WHEN status = 'Failed' THEN 1 END) AS failed,
    ROUND(100.0 * COUNT(CASE WHEN status = 'Failed' THEN 1 END) / COUNT(*), 1) AS failed_pct
FROM dds_jobs
WHERE created_date BETWEEN :first_day AND :last_day
GROUP BY name
ORDER BY failed_pct DESC, jobs DESC, name
