"""The error of a Parquet snapshot that cannot be written: light, so the Dagster wiring names it without Arrow."""


class SnapshotWriteError(OSError):
    """A day's snapshot could not be written (a folder that cannot be made, a read-only or full disk, storage that
    refuses the write): one line naming the day, the path and the system's reason. The days are as they were."""
