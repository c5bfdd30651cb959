"""The asset checks pass on synced data and fail on planted duplicates, in real Dagster runs."""

import shutil
from datetime import timedelta

import sqlalchemy as sa

from tests.support.dagster_helpers import check_evaluations, pipeline_under_test, run_checks_only, yesterday


def test_checks_pass_on_synced_data_and_fail_on_a_doubled_parquet_day(tmp_path, monkeypatch):
    day = yesterday()
    with pipeline_under_test(tmp_path, monkeypatch) as p:
        assert p.sync(day, day).success
        evaluations = check_evaluations(p, day)
        assert {e.passed for e in evaluations.values()} == {True}
        # The table's primary key answers for the duplicate check without a scan.
        assert "primary key" in evaluations["no_duplicate_keys"].metadata["enforced_by"].value
        folder = next((tmp_path / "data" / "parquet" / "dds_jobs").glob(f"created_date={day.isoformat()}"))
        original = next(folder.glob("*.parquet"))
        shutil.copy(original, folder / "planted-copy.parquet")
        checks = run_checks_only(p, day)
        assert checks["parquet_matches_warehouse"] is False
        assert checks["no_duplicate_keys"] is True


def test_the_duplicate_key_check_fails_on_a_table_without_its_primary_key(tmp_path, monkeypatch):
    day = yesterday() - timedelta(days=1)
    with pipeline_under_test(tmp_path, monkeypatch) as p:
        assert p.sync(day, day).success
        engine = sa.create_engine(p.settings.warehouse_url)
        with engine.begin() as conn:
            # A copy made by hand keeps the rows but not the key: exactly where duplicates creep in.
            conn.execute(sa.text("CREATE TEMP TABLE saved AS SELECT * FROM dds_jobs"))
            conn.execute(sa.text("DROP TABLE dds_jobs"))
            conn.execute(sa.text("CREATE TABLE dds_jobs AS SELECT * FROM saved"))
            conn.execute(sa.text("INSERT INTO dds_jobs SELECT * FROM saved LIMIT 2"))
        engine.dispose()
        evaluations = check_evaluations(p, day)
        assert evaluations["no_duplicate_keys"].passed is False
        assert evaluations["no_duplicate_keys"].metadata["duplicated_keys"].value == 2
        assert "enforced_by" not in evaluations["no_duplicate_keys"].metadata
        assert evaluations["parquet_matches_warehouse"].passed is False
