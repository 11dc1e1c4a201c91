"""A worker whose behaviour the test chooses, for the operator's e2e tests.

The operator runs it as the stage pods' command (`python3 -c <this file>`, so it needs nothing
but a Python 3 image). It follows the worker contract (docs/contract.md): exit codes, termination
message, progress in Redis, SIGTERM. What it does in each stage is read from directives in the
VideoJob's prompt, whitespace-separated:

    sleep:<stage>:<seconds>      run that long (stopping at once on SIGTERM, exit 143)
    fail:<stage>:permanent       exit 42 with "permanent: scripted failure in <stage>"
    fail:<stage>:transient       exit 1
    flaky:<stage>:<n>            exit 1 for the first n attempts of each index, then succeed

Each run appends "<uid> <stage> <index> <event>" to $VIDEOJOB_TEST_LEDGER when set, so tests
can count how often a stage ran, and "<uid> <stage> <done> <total> <unix time>" for each progress
event to $VIDEOJOB_TEST_PROGRESS_LOG when set (bench/progress.py).
"""

import hashlib
import hmac
import json
import os
import signal
import socket
import sys
import time

stage = os.environ["VIDEOJOB_STAGE"]
spec = json.loads(os.environ["VIDEOJOB_SPEC"])
uid = os.environ["VIDEOJOB_UID"]
index = os.environ.get("JOB_COMPLETION_INDEX")
failures = int(os.environ.get("VIDEOJOB_FAILURE_COUNT") or 0)
ledger = os.environ.get("VIDEOJOB_TEST_LEDGER")
progress_log = os.environ.get("VIDEOJOB_TEST_PROGRESS_LOG")
directives = [d.split(":") for d in (spec.get("prompt") or "").split() if d.count(":") == 2]


def record(event):
    if ledger:
        with open(ledger, "a") as f:
            f.write(f"{uid} {stage} {index} {event}\n")


def report(percent, done, total):
    if progress_log:  # when each progress event left the worker, for the freshness benchmark
        with open(progress_log, "a") as f:
            f.write(f"{uid} {stage} {done} {total} {time.time():.6f}\n")
    url = os.environ.get("VIDEOJOB_REDIS_URL")
    if not url:
        return
    try:
        key = f"videojob:progress:{uid}:{stage}" + (f":{index}" if stage == "segments" else "")
        doc = json.dumps({
            "namespace": os.environ["VIDEOJOB_NAMESPACE"], "name": os.environ["VIDEOJOB_NAME"],
            "uid": uid, "stage": stage, "index": int(index) if stage == "segments" else None,
            "attempt": failures + 1, "percent": percent, "message": f"frame {done}/{total}",
            "done": done, "total": total, "ts": time.time()})
        token = os.environ.get("VIDEOJOB_PROGRESS_TOKEN")
        if token:  # signed as the real worker signs (videojob_common.progress_auth)
            sig = hmac.new(token.encode(), doc.encode(), hashlib.sha256).hexdigest()
            doc = json.dumps({"report": doc, "sig": sig}, separators=(",", ":"))
        # Plain RESP over a socket: the test image need not have a Redis client installed.
        host_port = url.split("://", 1)[1].split("/", 1)[0]
        host, port = host_port.rsplit(":", 1)

        def command(*args):
            parts = [f"*{len(args)}\r\n".encode()]
            for a in args:
                b = str(a).encode()
                parts.append(b"$%d\r\n%s\r\n" % (len(b), b))
            return b"".join(parts)

        with socket.create_connection((host, int(port)), timeout=0.5) as s:
            s.sendall(command("SET", key, doc, "EX", 86400)
                      + command("PUBLISH", "videojob:progress", doc))
            s.recv(64)
    except OSError:
        pass


def stop(signum, frame):
    record("sigterm")
    sys.exit(143)


signal.signal(signal.SIGTERM, stop)
record("start")
for kind, where, arg in directives:
    if where != stage:
        continue
    if kind == "fail" and arg == "permanent":
        with open("/dev/termination-log", "w") as f:
            f.write(f"permanent: scripted failure in {stage}")
        record("permanent")
        sys.exit(42)
    if kind == "fail" and arg == "transient":
        record("transient")
        sys.exit(1)
    if kind == "flaky" and failures < int(arg):
        record("flaky")
        sys.exit(1)
    if kind == "sleep":
        total = max(int(float(arg) * 10), 1)
        for i in range(total):
            report(100.0 * i / total, i, total)
            time.sleep(0.1)
report(100.0, 1, 1)
if stage == "publish":
    with open("/dev/termination-log", "w") as f:
        json.dump({"uri": os.environ["VIDEOJOB_OUTPUT_URI"], "bytes": 1234}, f)
record("done")
