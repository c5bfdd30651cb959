-- The projects the sync ledger (dds_sync_ledger) holds days of: what a report covers when no project is
-- configured. At most top.
SELECT DISTINCT project_id
FROM dds_sync_ledger
ORDER BY project_id
LIMIT :top
