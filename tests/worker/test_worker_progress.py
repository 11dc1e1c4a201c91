"""Progress in Redis: what the operator's subscriber sees; a missing Redis costs nothing."""

from __future__ import annotations

import itertools
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from videojob_common.pipeline import PER_SCENE, Stage
from videojob_common.progress_auth import namespace_token, opened
from videojob_testkit.processes import RedisServer, free_port, wait_until
from videojob_worker.cancellation import Cancellation
from videojob_worker.environment import Identity, StageEnvironment
from videojob_worker.progress import CHANNEL, ProgressReporter, ProgressUpdate
from videojob_worker.runner import execute
from videojob_worker.spec import parse_spec
from videojob_worker.storage import file_uri

SPEC = parse_spec({"prompt": "A quiet harbour at dawn", "scenes": 1, "durationSeconds": 3,
                   "fps": 24, "resolution": "640x360"})
MASTER = b"the operator's master key"
TOKEN = namespace_token(MASTER, "ns", "the namespace's uid")
FIELDS = {"namespace", "name", "uid", "stage", "index", "attempt", "percent", "message", "done",
          "total", "ts"}


def environment(tmp_path: Path, stage: Stage, uid: str,
                redis_url: str | None) -> StageEnvironment:
    return StageEnvironment(
        identity=Identity("ns", "job", uid), stage=stage, spec=SPEC,
        artifact_root=file_uri(tmp_path / "artifacts"), output_uri=None, redis_url=redis_url,
        attempt=2, pod_name=None, index=0 if stage in PER_SCENE else None,
        termination_log=tmp_path / "termination-log", progress_token=TOKEN)


@pytest.fixture
def planned(tmp_path: Path) -> Path:
    """Plan and keyframes done, so segments can run (again and again)."""
    for stage in (Stage.PLAN, Stage.KEYFRAMES):
        assert execute(environment(tmp_path, stage, "p", None), Cancellation()) == 0
    return tmp_path


def run_segments(tmp_path: Path, redis_url: str | None) -> float:
    started = time.monotonic()
    code = execute(environment(tmp_path, Stage.SEGMENTS, "p", redis_url), Cancellation())
    assert code == 0, (tmp_path / "termination-log").read_text()
    return time.monotonic() - started


def test_subscriber_sees_the_stage_progress(planned: Path, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    subscription = client.pubsub()
    subscription.subscribe(CHANNEL)
    assert subscription.get_message(timeout=5)["type"] == "subscribe"
    received: list[dict[str, Any]] = []

    def listen() -> None:
        while not received or received[-1]["percent"] < 100:
            message = subscription.get_message(timeout=10)
            if message is None:
                return
            update = opened(message["data"], lambda _: [TOKEN])  # signed with its token
            assert update is not None, message["data"]
            if update["uid"] == "p":
                received.append(update)

    listener = threading.Thread(target=listen)
    listener.start()
    run_segments(planned, redis_url)
    listener.join(15)
    subscription.close()

    assert received, "no progress published"
    assert all(set(u) == FIELDS for u in received)
    assert all((u["namespace"], u["name"], u["stage"], u["index"], u["attempt"]) ==
               ("ns", "job", "segments", 0, 2) for u in received)
    first, last = received[0], received[-1]
    assert (first["done"], first["total"], first["percent"]) == (0, 72, 0)
    assert (last["done"], last["total"], last["percent"]) == (72, 72, 100)
    assert last["message"].startswith("frame 72/72")
    assert [u["percent"] for u in received] == sorted(u["percent"] for u in received)
    assert all(u["message"].startswith(f"frame {u['done']}/72") for u in received)
    # The latest value stays readable for an operator that restarts, for a day.
    key = "videojob:progress:p:segments:0"
    assert opened(client.get(key) or b"{}", lambda _: [TOKEN]) == last
    assert 0 < client.ttl(key) <= 24 * 3600


def test_updates_are_throttled_to_four_a_second() -> None:
    sent: list[ProgressUpdate] = []

    class Sink:
        def send(self, update: ProgressUpdate) -> None:
            sent.append(update)

        def close(self) -> None:
            pass

    now = [0.0]
    reporter = ProgressReporter(Identity("ns", "job", "u"), Stage.SEGMENTS, 3, 1, [Sink()],
                                clock=lambda: now[0])
    for frame in range(1, 241):  # 240 frames over 10 s
        now[0] = frame / 24
        reporter.update(frame, 240, f"frame {frame}/240")
    reporter.finish(240)
    assert 38 <= len(sent) <= 43  # ~4 a second, plus the first and the last
    assert sent[0].done == 1 and sent[-1].percent == 100
    assert all(b.ts >= a.ts for a, b in itertools.pairwise(sent))


@pytest.mark.parametrize("where", ["refused", "hung", "stopped"])
def test_redis_down_slows_nothing(planned: Path, where: str,
                                  tmp_path_factory: pytest.TempPathFactory) -> None:
    hung = socket.socket()
    if where == "refused":
        url = f"redis://127.0.0.1:{free_port()}/0"
    elif where == "hung":
        # Accepts connections (the kernel does) but never answers: every command times out.
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)
        url = f"redis://127.0.0.1:{hung.getsockname()[1]}/0"
    else:
        server = RedisServer(port=free_port(), dir=tmp_path_factory.mktemp("redis-stopped"))
        server.start()
        url = server.url
        run_segments(planned, url)
        wait_until(lambda: redis.Redis(port=server.port).exists("videojob:progress:p:segments:0"),
                   5, "progress in the redis about to be stopped")
        server.stop()
    with hung:
        # Pairs of runs back to back, without and with the dead Redis: other work on the
        # machine slows both runs of a pair alike. One good pair is enough; a stage that waits
        # on a hung Redis for each update (0.25 s an update) fails every pair by seconds.
        pairs = []
        for _ in range(3):
            without, down = run_segments(planned, None), run_segments(planned, url)
            pairs.append((without, down))
            if down < 1.25 * without + 0.4:
                break
        else:
            pytest.fail(f"with Redis {where}: (without, with) = {pairs}")
