"""VideoJob documents as the API's pydantic models, remembered by their content.

Every reconcile reads its VideoJob's spec and status as models (planner.py), and validating
them was the largest part of a plan's CPU on the event loop. Most reconciles see a spec, and
often a status, that an earlier one already validated: a pod event moves nothing in either. The
models are frozen, so the same one can be handed out again.

- The key is a 16-byte BLAKE2b digest of the document's canonical JSON (orjson, sorted keys): a
  few microseconds, and no copy of the document kept beside its model. (A heap profile with
  thousands of VideoJobs found the keys, the JSON itself, at 40 % of this memory.) Two
  documents with one digest would take 2^64 tries to find, so one tenant cannot craft a spec
  that is handed another's model.
- The value is a pure function of the document. One that fails validation is not remembered
  (it raises again).
- At most `SIZE` entries, the least recently used dropped first, and none for a document over
  `MAX_KEY` bytes (a spec with hundreds of long image URIs). What is worth remembering is what
  the running VideoJobs see again and again (their pods' events); thousands of queued ones are
  each looked at rarely, and would only push the running ones out.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import TypeVar

import orjson
from pydantic import BaseModel

from videojob_common.pipeline import Obj

SIZE = 1024
MAX_KEY = 8192  # bytes of canonical JSON

M = TypeVar("M", bound=BaseModel)

_seen: OrderedDict[tuple[type[BaseModel], bytes], BaseModel] = OrderedDict()


def parsed(model: type[M], doc: Obj) -> M:
    """`model.model_validate(doc)`, or the same model given for an equal document before."""
    text = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
    key = (model, hashlib.blake2b(text, digest_size=16).digest())
    found = _seen.get(key)
    if found is not None:
        _seen.move_to_end(key)
        assert isinstance(found, model)
        return found
    value = model.model_validate(doc)
    if len(text) > MAX_KEY:
        return value
    _seen[key] = value
    if len(_seen) > SIZE:
        _seen.popitem(last=False)
    return value
