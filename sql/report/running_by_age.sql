-- The jobs Running at their latest sync, created on or before last_day, by age at now: one row of counts.
-- Each bound is the creation instant of that age (a job created after hour_ago is less than an hour old).
SELECT
    COUNT(CASE WHEN created_at > :hour_ago THEN 1 END) AS under_1_hour,
    COUNT(CASE WHEN created_at <= :hour_ago AND created_at > :six_hours_ago THEN 1 END) AS hours_1_to_6,
    COUNT(CASE WHEN created_at <= :six_hours_ago AND created_at > :day_ago THEN 1 END) AS hours_6_to_24,
    COUNT(CASE WHEN created_at <= :day_ago AND created_at > :week_ago THEN 1 END) AS days_1_to_7,
    COUNT(CASE WHEN created_at <= :week_ago THEN 1 END) AS over_7_days
FROM dds_jobs
WHERE status = 'Running'
  AND created_date <= :last_day
  AND (:all_projects = 1 OR project_id = :project_id)
