-- Sync coverage: one row per (project_id, created_date) the sync ledger (dds_sync_ledger) knows, with its state today:
--   synced   a sync fetched the whole day without error (last_complete_at is set)
--   gone     not synced, and the API holds none of it any more (the day ended more than 30 days ago)
--   at_risk  not synced, and the API starts forgetting the day within 7 days (age 23 to 30 days), or has begun to
--   failed   not synced, and its last attempt failed (last_error says why)
--   missing  not synced, attempted without error (e.g. a day the API held only in part)
--   in_progress  today (age_days 0): no sync completes it before it has ended; the intraday ticks store its jobs so far
-- Days no sync ever attempted have no ledger row and are not listed here; pipeline/coverage.py adds them (missing,
-- at_risk or gone, by the same rule as its day_state) for the schedule's catch-up and the no_days_at_risk check.
-- age_days is today minus created_date (1: yesterday). Today is the UTC day whatever the session's time zone:
-- pipeline/warehouse/views.py writes CURRENT_DATE as each database's UTC date.
-- Portable SQL (SQLite, PostgreSQL, MariaDB): the three share no date difference, so each date becomes a day number
-- computed from its text YYYY-MM-DD with integer arithmetic, (a - a % b) / b being a whole division on all three:
-- 365 days a year plus the leap days (every 4th year but not the 100th unless the 400th), with the year begun in
-- March so that February's length only counts at its end, and (306 * month + 5) / 10 days before the month.
SELECT
    project_id,
    created_date,
    region,
    CASE
        WHEN age_days <= 0 THEN 'in_progress'
        WHEN last_complete_at IS NOT NULL THEN 'synced'
        WHEN age_days > 30 THEN 'gone'
        WHEN age_days >= 23 THEN 'at_risk'
        WHEN last_error IS NOT NULL THEN 'failed'
        ELSE 'missing'
    END AS state,
    age_days,
    last_attempt_at,
    last_complete_at,
    jobs,
    last_error,
    run_id
FROM (
    SELECT
        from_march.*,
        CAST(
            365 * today_y + (today_y - today_y % 4) / 4 - (today_y - today_y % 100) / 100
            + (today_y - today_y % 400) / 400 + (306 * today_m + 5 - (306 * today_m + 5) % 10) / 10 + today_d
            - (365 * y + (y - y % 4) / 4 - (y - y % 100) / 100
               + (y - y % 400) / 400 + (306 * m + 5 - (306 * m + 5) % 10) / 10 + d)
            AS INTEGER
        ) AS age_days
    FROM (
        SELECT
            parts.*,
            CASE WHEN month_part <= 2 THEN year_part - 1 ELSE year_part END AS y,
            CASE WHEN month_part <= 2 THEN month_part + 9 ELSE month_part - 3 END AS m,
            day_part AS d,
            CASE WHEN today_month <= 2 THEN today_year - 1 ELSE today_year END AS today_y,
            CASE WHEN today_month <= 2 THEN today_month + 9 ELSE today_month - 3 END AS today_m,
            today_day AS today_d
        FROM (
            SELECT
                dds_sync_ledger.*,
                CAST(SUBSTR(CAST(created_date AS CHAR(10)), 1, 4) AS INTEGER) AS year_part,
                CAST(SUBSTR(CAST(created_date AS CHAR(10)), 6, 2) AS INTEGER) AS month_part,
                CAST(SUBSTR(CAST(created_date AS CHAR(10)), 9, 2) AS INTEGER) AS day_part,
                CAST(SUBSTR(CAST(CURRENT_DATE AS CHAR(10)), 1, 4) AS INTEGER) AS today_year,
                CAST(SUBSTR(CAST(CURRENT_DATE AS CHAR(10)), 6, 2) AS INTEGER) AS today_month,
                CAST(SUBSTR(CAST(CURRENT_DATE AS CHAR(10)), 9, 2) AS INTEGER) AS today_day
            FROM dds_sync_ledger
        ) AS parts
    ) AS from_march
) AS aged
