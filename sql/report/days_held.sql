-- The first and last UTC day, earliest..latest (inclusive), that the sync ledger holds a row of (source 'ledger',
-- over the projects listed in projects, or every project when any_project = 1) and that stored jobs were created
-- on (source 'jobs', of project_id unless all_projects = 1): what a report's default period spans. NULLs when
-- there is none.
SELECT 'ledger' AS source, MIN(created_date) AS first_day, MAX(created_date) AS last_day
FROM dds_sync_ledger
WHERE created_date BETWEEN :earliest AND :latest
  AND (:any_project = 1 OR project_id IN :projects)
UNION ALL
SELECT 'jobs' AS source, MIN(created_date) AS first_day, MAX(created_date) AS last_day
FROM dds_jobs
WHERE created_date BETWEEN :earliest AND :latest
  AND (:all_projects = 1 OR project_id = :project_id)
