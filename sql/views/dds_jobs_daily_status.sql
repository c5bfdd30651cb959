-- Jobs per project, UTC day of creation and status: one row per (project_id, day, status).
-- Portable SQL (SQLite and PostgreSQL): the pipeline recreates this view on every schema check.
SELECT
    project_id,
    created_date AS day,
    status,
    COUNT(*) AS jobs
FROM dds_jobs
GROUP BY project_id, created_date, status
