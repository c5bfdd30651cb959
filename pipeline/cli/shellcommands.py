"""Commands printed for the user to paste: they must run as printed, in a shell where the venv is not activated.

So they name the venv's own executables (``.venv/bin/dagster``), never a bare ``dagster`` or ``python`` that only
an activated venv (or no Debian at all: it has ``python3`` only) would find.
"""

import os
import shlex
import sys
from pathlib import Path


def shell_path(path: str | os.PathLike[str]) -> str:
    """``path`` as typed in a shell at the working directory: relative below it, absolute elsewhere, quoted."""
    absolute = Path(os.path.abspath(path))
    try:
        shown = str(absolute.relative_to(Path.cwd()))
    except ValueError:
        shown = str(absolute)
    return shlex.quote(shown)


def venv_command(name: str) -> str:
    """The path of the console script ``name`` (``dagster``, ``dds-tasks``, ``python``) installed beside this
    interpreter, as typed at the working directory: ``.venv/bin/dagster`` in a clone with its venv."""
    # sys.executable as started (the venv's own bin/python), not resolved: resolving would leave the venv.
    return shell_path(Path(sys.executable).parent / name)
