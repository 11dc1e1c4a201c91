"""The VideoJob operator: runs video-generation pipelines as Kubernetes Jobs.

Modules, by what they own (docs/architecture.md has the same map):
- the API: `api` (the models, source of the CRDs), `crd` (CRD generation);
- configuration: `config` (loaded once; `LiveConfig`), `config_watch` (pools at run time);
- the pure reconcile: `planner` (the steps, in order), `stages` (one stage's next step),
  `cancellation` (a deleted VideoJob), `status` (reasons, conditions), `progress` (the
  figures), `views` (what a reconcile observes), `actions` (what a plan asks for), `jobs` (the
  stage Job manifests), `storage_policy` (where a VideoJob may write and read), `refusals`
  (what the API server's refusals do);
- reading the cluster: `store` (the caches, listings, resync), `child_watches` (Job and pod
  watches), `progress_feed` (worker progress from Redis), `handlers` (kopf's events);
- acting: `controller` (observe, plan, apply), `workqueue`, `events`, `kube` (API calls);
- admission: `admission_policy` (pure decisions), `scaling` (KEDA's formulas), `pools`,
  `admission_loop` (runs it), `redis_queue` (the Redis mirror);
- `metrics`, `handoff_metrics`, `logs`, `heap` (the C heap's settings).
"""

__version__ = "0.1.0"
