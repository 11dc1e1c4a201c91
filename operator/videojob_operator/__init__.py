"""The VideoJob operator: runs video-generation pipelines as Kubernetes Jobs.

Modules: `api` (the VideoJob API, source of the CRD), `crd` (CRD generation), `config`
(operator configuration, effective values), `jobs` (stage Job manifests), `planner` (the pure
reconcile logic), `controller` (caches, work queue, applying plans), `handlers` (kopf wiring),
`progress` (worker progress from Redis), `logs` (JSON logging).
"""

__version__ = "0.1.0"
