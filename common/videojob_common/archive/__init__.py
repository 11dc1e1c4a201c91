"""The archive: finished VideoJobs kept in PostgreSQL after their objects are gone, and the
history queries over them (docs/history.md).

- `rows`: the row of one VideoJob, from the object and its pods (GPU-seconds included); pure;
- `label_selector`: Kubernetes label selectors, parsed; pure;
- `queries`: the SQL of every read and write, with parameters, and the list's cursor; pure;
- `retention`: which policy keeps what in each namespace; pure;
- `filters`: a history request's filters as users type them (`--since 7d`), checked; pure;
- `documents`: rows as the JSON the gateway serves and `history -o json` prints; pure;
- `migrate`: the schema's versions (`schema/*.sql`) and the runner that applies them;
- `store`: `Archive`, the adapter over a psycopg pool that runs the queries.

Only `migrate` and `store` import psycopg: the rest of videojob_common (and the worker image,
which installs it without psycopg) never imports them.
"""
