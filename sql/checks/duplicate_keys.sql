-- Keys stored more than once among the jobs created on the checked days (the primary key forbids it;
-- a table created by hand or by another tool may not have one).
SELECT project_id, id, COUNT(*) AS copies
FROM dds_jobs
WHERE created_date BETWEEN :first_day AND :last_day
GROUP BY project_id, id
HAVING COUNT(*) > 1
