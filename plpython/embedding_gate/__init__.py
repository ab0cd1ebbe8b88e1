"""The embedding gate's Python, run inside PostgreSQL by PL/Python (and testable without it).

The migrations install these modules' sources into the database, in the body of
`embedding_gate._python_package()`, which loads them in the server's own Python
(/usr/bin/python3 with python3-numpy on Debian) as one package, keyed by the sources' hash.
The SQL functions are a few lines that call into it, passing `plpy` (and `TD`).

- checks: the checks themselves, pure numpy (no database)
- codec: pgvector's stored bytes as numpy arrays
- queries: every SQL statement the package runs, and the session's prepared plans
- settings: mode, thresholds and blank references, as the database holds them
- triggers: the insert and update triggers of chunks, and the three modes
- attached: the same checks on tables attached with embedding_gate.attach()
- scans: verify, recheck and measures over the stored rows
- preview: what proposed thresholds would do

Nothing here builds SQL from data: every statement is a constant of `queries`, prepared
with typed parameters, except attached.py's, which name an attached table's columns
(quoted) and still pass every value as a parameter.
"""
