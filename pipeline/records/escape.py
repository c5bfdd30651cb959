"""The one text escape of the warehouse: NUL characters (U+0000) written as the four characters ``\\x00``.

PostgreSQL text cannot hold a NUL, and its loaders strip or refuse it: two job ids differing only by a NUL would
become one key there and stay two on SQLite. So every text the API sends is escaped once, in the normalized frame,
the same way for every database. The escape is reversible (``unescape_text``), so distinct texts stay distinct:

- each NUL becomes ``\\x00``;
- each backslash followed by ``x`` (the start of an escape) becomes ``\\x5c``, so a text that held ``\\x00`` as
  sent is stored ``\\x5cx00``, never mistaken for an escaped NUL.

Every other text, backslashes included, is stored as sent.
"""

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

NUL = "\x00"
ESCAPED_NUL = "\\x00"
ESCAPED_BACKSLASH = "\\x5c"
# What starts an escape; its own occurrences in a text as sent are escaped too.
_INTRODUCER = "\\x"
_ESCAPE = re.compile(r"\\x(00|5c)")
_UNESCAPED = {"00": NUL, "5c": "\\"}


def escape_text(text: str) -> str:
    """``text`` with NUL characters escaped as ``\\x00`` (module doc); a text holding neither a NUL nor ``\\x`` is
    returned as it is."""
    # The introducer first: the escapes of NULs written after it are not escaped again.
    return text.replace(_INTRODUCER, ESCAPED_BACKSLASH + "x").replace(NUL, ESCAPED_NUL)


def unescape_text(text: str) -> str:
    """The text as sent, from its stored (escaped) form: escape_text undone."""
    return _ESCAPE.sub(lambda match: _UNESCAPED[match.group(1)], text)


def escaped_values(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An object array of strings and None with every string escaped, and where a value changed."""
    # Almost no text needs it: one search of all the values joined (by a character neither a NUL, a backslash nor
    # an x, so no match spans two values) tells so in a tenth of the time of a search per value.
    joined = "\x01".join(filter(None, values))
    if NUL not in joined and _INTRODUCER not in joined:
        return values, np.zeros(len(values), dtype=bool)
    text = pa.array(values, type=pa.string())
    changed = pc.fill_null(pc.or_(pc.match_substring(text, NUL), pc.match_substring(text, _INTRODUCER)), False)
    changed = changed.to_numpy(zero_copy_only=False)
    values = values.copy()
    values[changed] = [escape_text(value) for value in values[changed]]
    return values, changed
