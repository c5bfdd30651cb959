-- Data quality: the jobs whose API record was kept as sent (raw_record) because a field could not be read as
-- documented or the API sent fields unknown to the pipeline, between first_day and last_day.
SELECT
    project_id,
    id,
    created_date,
    status,
    raw_record
FROM dds_jobs
WHERE raw_record IS NOT NULL
  AND created_date BETWEEN :first_day AND :last_day
ORDER BY created_date, project_id, id
