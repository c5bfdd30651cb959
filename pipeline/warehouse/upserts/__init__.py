"""One upsert path per database family, each taking its semantics from ``pipeline.records.precedence``: SQLite
(``sqlite``), PostgreSQL (``postgres``: binary COPY), and any other SQLAlchemy database (``generic``)."""
