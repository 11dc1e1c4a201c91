"""The VideoJobTrigger's vocabulary, one definition for the CRD (videojob_operator.api) and the
gateway that receives its webhooks (videojob_gateway.triggers): the signature schemes, the spec
fields a payload may set and what each takes, the rate limit's defaults, and the label and
annotation every VideoJob a trigger makes carries.

Why an allow-list of spec fields: the payload comes from outside the cluster. What a trigger may
map is what changes the video, never where the operator reads or writes (storage URIs), which
backend or GPUs it uses, its queue priority or its retries: those stay the template's. URIs
(`images`, `audio`, `output.uri`) may be mapped only under the trigger's `uriPrefixes`.
"""

from __future__ import annotations

from typing import Literal, get_args

KIND = "VideoJobTrigger"
PLURAL = "videojobtriggers"

Signature = Literal["github", "standard-webhooks"]
SIGNATURES: tuple[str, ...] = get_args(Signature)

# What a mapped value becomes: text, a whole number, one URI, or a list of URIs.
Target = Literal["string", "integer", "uri", "uris"]
MAPPABLE: dict[str, Target] = {
    "prompt": "string",
    "durationSeconds": "integer",
    "fps": "integer",
    "resolution": "string",
    "scenes": "integer",
    "seed": "integer",
    "transition": "string",
    "images": "uris",
    "audio": "uri",
    "output.uri": "uri",
}
URI_TARGETS = frozenset(t for t, kind in MAPPABLE.items() if kind in ("uri", "uris"))

DEFAULT_PER_MINUTE = 30
DEFAULT_BURST = 10

# On every VideoJob a trigger creates: which trigger (a label, so `kubectl get vj -l` finds
# them), and the delivery it came from (an annotation: ids are not label values).
TRIGGER_LABEL = "videojob.dev/trigger"
DELIVERY_ANNOTATION = "videojob.dev/delivery"
