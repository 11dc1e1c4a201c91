"""JSON log lines carrying namespace, name and stage, for the operator process."""

from __future__ import annotations

import json
import logging
import sys
import time

CONTEXT = ("namespace", "name", "stage")


def ctx(namespace: str, name: str, stage: str | None = None) -> dict[str, str]:
    """`extra=` for a log call about one VideoJob (LogRecord reserves the plain `name`)."""
    out = {"vj_namespace": namespace, "vj_name": name}
    if stage:
        out["vj_stage"] = stage
    return out


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in CONTEXT:
            value = getattr(record, f"vj_{key}", None)
            if value is not None:
                doc[key] = value
        ref = getattr(record, "k8s_ref", None)  # kopf's per-object loggers
        if isinstance(ref, dict):
            doc.setdefault("namespace", ref.get("namespace"))
            doc.setdefault("name", ref.get("name"))
        if record.exc_info:
            doc["error"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def setup(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Per-request lines from the API clients drown everything else.
    # kopf.objects logs every handled event at INFO ("Handler ... succeeded"): thousands a
    # minute with many VideoJobs, and all of them routing only.
    for noisy in ("urllib3", "kubernetes", "aiohttp.access", "asyncio", "kopf.objects"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
