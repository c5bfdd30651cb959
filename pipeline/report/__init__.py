"""The analyst report: one self-contained HTML page of the warehouse's jobs over a period of UTC days.

``period`` (the days), ``synced_days`` (the default period: the days synced), ``figures`` (computed by the SQL of
``sql/report/``), ``coverage`` (from the sync ledger), ``charts`` (matplotlib SVG), ``html`` (the page),
``build`` (figures to a file, local or on object storage) and ``cli`` (``dds-tasks report``). The Dagster asset
``dds_jobs_report`` lives in ``pipeline/defs/report/assets.py``.
"""
