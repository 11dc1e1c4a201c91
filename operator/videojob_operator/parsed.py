"""VideoJob documents as the API's pydantic models, remembered by their content.

Every reconcile reads its VideoJob's spec and status as models (planner.py), and validating
them was the largest part of a plan's CPU on the event loop. Most reconciles see a spec, and
often a status, that an earlier one already validated: a pod event moves nothing in either. The
models are frozen, so the same one can be handed out again. The key is the document's
canonical JSON (orjson, sorted keys), a few microseconds; the value is a pure function of it.
A document that fails validation is not remembered (it raises again). At most `SIZE` entries,
the least recently used dropped first, and none for a document over `MAX_KEY` bytes (a spec with
hundreds of long image URIs): so many VideoJobs with huge specs cannot make this memory grow
beyond `SIZE` x `MAX_KEY` and the models.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TypeVar

import orjson
from pydantic import BaseModel

from videojob_common.pipeline import Obj

SIZE = 2048
MAX_KEY = 8192  # bytes of canonical JSON

M = TypeVar("M", bound=BaseModel)

_seen: OrderedDict[tuple[type[BaseModel], bytes], BaseModel] = OrderedDict()


def parsed(model: type[M], doc: Obj) -> M:
    """`model.model_validate(doc)`, or the same model given for an equal document before."""
    key = (model, orjson.dumps(doc, option=orjson.OPT_SORT_KEYS))
    found = _seen.get(key)
    if found is not None:
        _seen.move_to_end(key)
        assert isinstance(found, model)
        return found
    value = model.model_validate(doc)
    if len(key[1]) > MAX_KEY:
        return value
    _seen[key] = value
    if len(_seen) > SIZE:
        _seen.popitem(last=False)
    return value
