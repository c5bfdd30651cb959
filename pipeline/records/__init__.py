"""The job vocabulary, at the ground of every layer: the columns of a job row and their types (``schema``), the one
latest-state rule (``precedence``), and how an API record becomes a row (``normalize``)."""
