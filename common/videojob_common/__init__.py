"""The words every part of VideoJob shares: the stages, the phases, the object alias
(`pipeline`); the labels on the operator's Jobs and pods (`labels`); the spec's field names as
the CRD declares them (`spec_fields`); a URL as it may be logged (`redact`); when a storage URI
is ambiguous (`storage_uris`: the operator's storage policy and the gateway's files); which network
addresses a tenant's URL may lead to (`addresses`: the worker's http(s) inputs, the operator's
webhook notifications); and the archive of finished VideoJobs (`archive`), which the operator
will write and the kubectl plugin read.

The operator, the worker image, the kubectl plugin, the bench and the tests all import these
from here, so a stage or a phase is defined once. The package has no dependencies and imports
nothing of the project's: both images install it. (`archive.store` and `archive.migrate` import
psycopg, which the operator and plugin extras install; nothing else imports them.)
"""
