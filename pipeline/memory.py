"""Process-wide memory settings, applied by the entry points (``pipeline.definitions``, ``dds-tasks``), never at
the import of a library module."""

import pyarrow as pa


def use_returning_allocator() -> None:
    """Arrow on jemalloc, which returns what a run freed to the system.

    pyarrow's default allocator (mimalloc in its wheels) keeps it: reading a month back for the snapshot and its check
    left 90 MB more resident than jemalloc (bench/bench_sync.py's peak memory). To be called before any Arrow buffer
    of ours exists; a build without jemalloc keeps its default.
    """
    try:
        pa.set_memory_pool(pa.jemalloc_memory_pool())
    except NotImplementedError:
        pass
