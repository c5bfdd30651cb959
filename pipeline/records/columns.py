"""The column list of the ``dds_jobs`` table and its SQL table: the warehouse's vocabulary, without pandas or Arrow.

A row of ``dds_jobs`` is the latest known state of one DDS task-center job, keyed by (project_id, id). Its Arrow
schema and pandas dtypes are built from the same ``COLUMNS`` in pipeline/records/schema.py. Kept apart from them so
that what loads with the definitions (the settings, the sync ledger, warehouse URLs) imports no pandas or Arrow.
"""

import enum
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, oracle

# A job in one of the API's final states is final: a later answer saying otherwise is stale (see precedence.py).
TERMINAL_STATUSES = ("Completed", "Failed")
TABLE_NAME = "dds_jobs"
KEY_COLUMNS = ("project_id", "id")
INDEXED_COLUMNS = ("created_date", "status", "instance_id")
PARTITION_COLUMN = "created_date"


class Kind(enum.Enum):
    """What a column holds; each kind maps to one SQL, one Arrow and one pandas type below."""

    TEXT = "text"
    FLOAT = "float"
    TIMESTAMP = "timestamp"
    DATE = "date"


@dataclass(frozen=True)
class Column:
    """One column of ``dds_jobs``; ``doc`` says what its value means (also stored as the SQL column comment)."""

    name: str
    kind: Kind
    nullable: bool
    doc: str


COLUMNS: tuple[Column, ...] = (
    Column("project_id", Kind.TEXT, False, "project the job was read from (key)"),
    Column("id", Kind.TEXT, False, "task id (key)"),
    Column("name", Kind.TEXT, True, "task name as sent, e.g. RestartInstance"),
    Column("instance_id", Kind.TEXT, True, "DB instance id as sent"),
    Column("instance_name", Kind.TEXT, True, "DB instance name as sent"),
    Column("status", Kind.TEXT, True, "Running, Completed, Failed, or any new value as sent"),
    Column("progress_pct", Kind.FLOAT, True, "'60%' gives 60.0; empty gives NULL"),
    Column("fail_reason", Kind.TEXT, True, "failure message; empty gives NULL"),
    Column("created_at", Kind.TIMESTAMP, False, "creation instant, UTC"),
    Column("ended_at", Kind.TIMESTAMP, True, "end instant, UTC; NULL while running"),
    Column("duration_seconds", Kind.FLOAT, True, "ended_at - created_at"),
    Column("created_date", Kind.DATE, False, "UTC day of created_at: the partition key"),
    Column("first_seen_at", Kind.TIMESTAMP, False, "first sync that saw the job, UTC"),
    Column("last_seen_at", Kind.TIMESTAMP, False, "latest sync that saw the job, UTC"),
    Column("region", Kind.TEXT, True, "region the job was read from, when known"),
    Column("raw_record", Kind.TEXT, True, "the JSON record as sent, kept only when anomalous or with unknown fields"),
)

COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
NOT_NULL_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS if not c.nullable)

# The types' variants for other databases leave the SQLite and PostgreSQL DDL as it was. MySQL and MariaDB need
# them most: their TEXT holds only 64 KB and cannot be a key or indexed without a length, their default collation
# ignores case (two task ids differing in case would be one key), and DATETIME drops the microseconds.
# The dialect names of MySQL and MariaDB, which share one SQL flavour here.
MYSQL_FAMILY = ("mysql", "mariadb")
_MYSQL_TEXT = {"charset": "utf8mb4", "collation": "utf8mb4_bin"}
# Key and indexed text: unbounded where the database indexes it (SQLite, PostgreSQL), 255 characters elsewhere
# (the API's ids and statuses are far shorter; two such utf8mb4 columns fit InnoDB's 3072-byte key limit).
KEY_TEXT_LENGTH = 255
_KEY_TEXT = (
    sa.Unicode(KEY_TEXT_LENGTH)
    .with_variant(sa.Text(), "sqlite", "postgresql")
    .with_variant(mysql.VARCHAR(KEY_TEXT_LENGTH, **_MYSQL_TEXT), *MYSQL_FAMILY)
)
_SQL_TYPES: dict[Kind, sa.types.TypeEngine] = {
    Kind.TEXT: sa.UnicodeText().with_variant(sa.Text(), "sqlite", "postgresql")
    .with_variant(mysql.LONGTEXT(**_MYSQL_TEXT), *MYSQL_FAMILY),
    # Oracle counts a FLOAT's precision in bits, and refuses to guess: its IEEE double instead.
    Kind.FLOAT: sa.Float(precision=53).with_variant(oracle.BINARY_DOUBLE(), "oracle"),
    # timestamptz on PostgreSQL; SQLite, MySQL and MariaDB have no zone-aware type, so the warehouse stores UTC.
    Kind.TIMESTAMP: sa.DateTime(timezone=True)
    .with_variant(mysql.DATETIME(fsp=6), *MYSQL_FAMILY)
    .with_variant(oracle.TIMESTAMP(timezone=True), "oracle"),  # Oracle's DateTime is DATE: whole seconds
    Kind.DATE: sa.Date(),
}


def sql_type(kind: Kind, keyed: bool = False) -> sa.types.TypeEngine:
    """The warehouse's SQL type of a ``kind`` of value on every database; ``keyed`` text (part of a key or an
    index) gets the bounded variant."""
    return _KEY_TEXT if kind is Kind.TEXT and keyed else _SQL_TYPES[kind]


def _sql_type(column: Column) -> sa.types.TypeEngine:
    return sql_type(column.kind, keyed=column.name in KEY_COLUMNS or column.name in INDEXED_COLUMNS)


METADATA = sa.MetaData()
DDS_JOBS = sa.Table(
    TABLE_NAME,
    METADATA,
    *(
        sa.Column(c.name, _sql_type(c), nullable=c.nullable, primary_key=c.name in KEY_COLUMNS, comment=c.doc)
        for c in COLUMNS
    ),
    *(sa.Index(f"ix_{TABLE_NAME}_{name}", name) for name in INDEXED_COLUMNS),
    comment="One row per DDS task-center job (project_id, id): its latest known state.",
    # A re-sync updates every row it sees (last_seen_at moves). PostgreSQL keeps an update on its page, without
    # touching the indexes (a HOT update), only where the page has room for the new version: half of each page
    # left free gives every row of a page that room. At 70% a 30,000-row re-sync ran at 70,000 rows/s and the
    # table grew to 17 MB over two re-syncs; at 50% it runs at 108,000 rows/s and stays at 13 MB, as each re-sync
    # reuses the room the one before it left.
    postgresql_with={"fillfactor": 50},
)
