"""The labels the operator puts on what it creates (stage Jobs, their pods, Secrets): whose it
is and which stage it runs. The operator sets them; the archive, the plugin and the tests find
pods by them."""

from __future__ import annotations

LABEL_NAME = "videojob.dev/name"  # the VideoJob's name (shortened past 63 characters: jobs.py)
LABEL_STAGE = "videojob.dev/stage"  # the stage a Job or pod runs
LABEL_UID = "videojob.dev/uid"  # the VideoJob's uid
LABEL_POOL = "videojob.dev/pool"  # the admission pool of a stage Job
