"""The words every part of VideoJob shares: the stages, the phases, the object alias.

The operator, the worker image, the kubectl plugin, the bench and the tests all import these
from here, so a stage or a phase is defined once. The package has no dependencies and imports
nothing of the project's: both images install it.
"""
