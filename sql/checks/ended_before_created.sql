-- Jobs that claim to have ended before they were created.
SELECT project_id, id, name, created_at, ended_at
FROM dds_jobs
WHERE created_date BETWEEN :first_day AND :last_day
  AND ended_at IS NOT NULL
  AND ended_at < created_at
