"""Process-wide memory settings, applied by the entry points (``pipeline.definitions``, ``dds-tasks``), never at
the import of a library module."""

import os
import sys


def use_returning_allocator() -> None:
    """Arrow on jemalloc, which returns what a run freed to the system.

    pyarrow's default allocator (mimalloc in its wheels) keeps it: reading a month back for the snapshot and its check
    left 90 MB more resident than jemalloc (bench/bench_sync.py's peak memory). To be called before any Arrow buffer
    of ours exists; a build without jemalloc keeps its default.
    """
    if "pyarrow" not in sys.modules:
        # Arrow reads this when it first allocates: loading the definitions need not import pyarrow (0.1 s).
        # An allocator the user chose stays theirs.
        os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")
        return
    import pyarrow as pa

    try:
        pa.set_memory_pool(pa.jemalloc_memory_pool())
    except NotImplementedError:
        pass
