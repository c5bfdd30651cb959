"""DDS task sync: Huawei Cloud DDS task-center jobs into a SQL warehouse and Parquet snapshots."""
