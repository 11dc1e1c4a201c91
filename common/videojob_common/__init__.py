"""The words every part of VideoJob shares: the stages, the phases, the object alias
(`pipeline`); the spec's field names as the CRD declares them (`spec_fields`); a URL as it may be
logged (`redact`); which network addresses a tenant's URL may lead to (`addresses`: the worker's
http(s) inputs, the operator's webhook notifications).

The operator, the worker image, the kubectl plugin, the bench and the tests all import these
from here, so a stage or a phase is defined once. The package has no dependencies and imports
nothing of the project's: both images install it.
"""
