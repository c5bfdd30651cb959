-- What the sync ledger (dds_sync_ledger) knows of each UTC day first_day..last_day (inclusive), over the
-- projects listed in projects: one row per day with a ledger row. synced_projects: projects with a sync that
-- fetched the whole day without error (last_complete_at set); failing_projects: projects without one whose last
-- attempt failed (last_error set).
SELECT
    created_date AS day,
    COUNT(last_complete_at) AS synced_projects,
    COUNT(CASE WHEN last_complete_at IS NULL AND last_error IS NOT NULL THEN 1 END) AS failing_projects
FROM dds_sync_ledger
WHERE created_date BETWEEN :first_day AND :last_day
  AND project_id IN :projects
GROUP BY created_date
ORDER BY created_date
