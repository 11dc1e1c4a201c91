"""videojob-gateway: the HTTP API of the VideoJob operator, for apps that speak HTTP, not kubectl.

Every request becomes or reads a VideoJob, and Kubernetes RBAC decides who may do what: the
gateway has no permissions of its own that a caller could borrow (docs/http-api.md).

- `config`: the settings, read once in `__main__`;
- `kube`: the API server, as the gateway, as a caller (their own token) or as an API key's
  ServiceAccount (impersonated);
- `cache`: VideoJobs, pools, namespaces and API keys, listed then watched, so reads cost the API
  server nothing;
- `auth` (callers, TokenReview and SubjectAccessReview, their caches), `keys` (API keys);
- pure: `views` (a VideoJob as the API shows it), `pages` (keyset pagination, continue tokens),
  `queues` (counts per pool), `stream` (Server-Sent Events), `bodies` (reading a request),
  `problems` (RFC 9457 documents);
- `app`: the routes, thin adapters over the above; `files` and `history` (the archive of
  finished VideoJobs, in PostgreSQL), theirs; `metrics`: Prometheus.
"""

__version__ = "0.1.0"
