"""What the tests and the benchmarks share: an installed package (pyproject puts `tests/` among
the places it is found), so neither edits `sys.path`.

- `kube`: the cluster under test (`Cluster`, `connect`) and waiting on its objects;
- `processes`: free ports, waiting on a condition, a real `redis-server`;
- `gateway_process`: videojob-gateway run as its own process, and a client for it;
- `postgres`: a real PostgreSQL server (the archive's tests and benchmark);
- `operator_process`: the operator run as its own process, its stage pods running
  `scripted_worker.py` (a script the pods run, steered by directives in the prompt);
- `videojobs`: creating, reading and waiting on VideoJobs;
- `finished`: a finished VideoJob and its pods as the API server returns them (the archive's);
- `chart`: rendering the Helm chart with the pinned helm;
- `faults`: batches and figures of the fault suite;
- `worker`: running the worker's CLI and reading what it wrote.
"""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
