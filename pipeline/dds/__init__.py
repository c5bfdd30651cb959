"""The DDS task center as a Dagster source: partitions, resources, assets, checks and the schedule."""
