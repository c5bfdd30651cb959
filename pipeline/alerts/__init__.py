"""Alerts: what the warehouse says someone should know now (failed jobs, days about to be lost, failing targets),
sent through apprise to DDS_ALERT_URLS exactly once per destination (docs/alerts.md).

``rules`` says what alerts, ``ledger`` keeps the table ``dds_alerts`` (what was sent and what is pending),
``messages`` writes the texts, ``delivery`` talks to apprise, ``dispatch`` ties them into one pass, ``cli`` is
``dds-tasks alerts``. The package reads the warehouse and the settings' values only: the Dagster wiring is
pipeline/defs/alerts/assets.py.
"""
