"""A folder made read-only for the length of a block, also for root (whom file modes do not stop)."""

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """Nothing can be created in ``folder`` during the block: its mode for a user, its immutable flag for root (the
    test is skipped where the file system has no such flag)."""
    if os.geteuid() != 0:
        mode = folder.stat().st_mode
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(mode)
        return
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("running as root on a file system without the immutable flag: no folder is read-only to root")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(folder)], check=True)
