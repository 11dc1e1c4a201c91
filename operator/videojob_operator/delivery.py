"""Webhook notifications sent: what a VideoJob's status holds as pending goes to its receivers,
off the reconcile path; each attempt's outcome goes back to the planner.

The planner queues notifications in `status.notifications[i].pending` with the transitions they
tell (notifications.py). This loop looks at a VideoJob whenever the store or the controller says
its status changed, sends what is due, and hands each attempt's outcome
(views.DeliveryOutcome) to the next reconcile (`unrecorded`, then `requeue`), whose plan records
it: a delivered notification leaves the list, a failed one gets its next attempt time. A
reconcile never waits on a receiver, and what is pending survives any restart because the
status holds it. An outcome is kept here until the status shows it recorded; an operator that
dies in between sends that notification again, under the same webhook-id.

One attempt:
1. the destination's signing key (signing_secrets.py); without one nothing is sent
   (SecretUnavailable, retried with the backoff: the tenant may fix the grant);
2. the URL's host resolved and every address checked (videojob_common.addresses, with the
   namespace's notify.allow_networks): one not allowed, nothing is sent and the notification
   is given up at once (AddressRefused);
3. one POST to the checked address (no second lookup), signed (webhooks.py), within
   notify.timeout_seconds; redirects are not followed. A 2xx answer is delivered; anything else
   is retried.

One attempt at a time per destination, the oldest due notification first, at most one
Progress notification per `progress_interval_seconds`. The requests run on threads of their own
(the HTTP client blocks), never on the API client's.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import http.client
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

from pydantic import ValidationError

from videojob_common.addresses import (
    AddressRefused,
    Network,
    Resolver,
    checked_address,
    pinned,
    system_resolver,
)

from . import metrics, webhooks
from .api import NotificationStatus, NotifyEvent, PendingNotification
from .config import LiveConfig
from .logs import ctx
from .notifications import REFUSED, next_due, targets
from .signing_secrets import SecretUnavailable, SigningSecrets
from .status import parse_ts
from .store import Change, Key, Store
from .views import DeliveryOutcome

log = logging.getLogger("videojob.delivery")
ANSWER_READ_MAX = 4096  # bytes of a receiver's answer read (and dropped)
Slot = tuple[Key, int]  # a VideoJob's spec.notify[i]


@dataclass(frozen=True)
class Answer:
    """How one POST went."""

    delivered: bool
    error: str = ""
    state: str = "Retrying"


def post(url: str, body: bytes, headers: dict[str, str], allow: tuple[Network, ...],
         timeout: float, resolve: Resolver = system_resolver) -> Answer:
    """One signed POST to `url`, only to an allowed address, no redirect followed. Blocking."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        address = checked_address(host, port, allow, resolve)
    except AddressRefused:
        return Answer(False, "its host is not at an address the operator may send to (public "
                             "addresses only, unless the operator configuration's "
                             "notify.allow_networks allows it); nothing was sent", REFUSED)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn = pinned(parts.scheme, address, host, port, timeout)
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        response.read(ANSWER_READ_MAX)
    except TimeoutError:
        return Answer(False, f"no answer within {timeout:g} s")
    except (OSError, http.client.HTTPException) as e:
        return Answer(False, f"the connection failed ({type(e).__name__})")
    finally:
        conn.close()
    if 200 <= response.status < 300:
        return Answer(True)
    hint = " (redirects are not followed)" if 300 <= response.status < 400 else ""
    return Answer(False, f"HTTP {response.status}{hint}")


Poster = Callable[[str, bytes, dict[str, str], tuple[Network, ...], float, Resolver], Answer]


class Deliveries:
    def __init__(self, store: Store, config: LiveConfig, secrets: SigningSecrets,
                 requeue: Callable[[Key], None], *, clock: Callable[[], dt.datetime],
                 send: Poster = post, resolve: Resolver = system_resolver,
                 threads: int = 8) -> None:
        self.store = store
        self.config = config
        self.secrets = secrets
        self.requeue = requeue
        self.clock = clock
        self.send = send
        self.resolve = resolve
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="webhooks")
        # Outcomes the status has not recorded yet, by VideoJob and webhook-id.
        self.outcomes: dict[Key, dict[str, DeliveryOutcome]] = {}
        self.sending: set[Slot] = set()
        self.progress_after: dict[Slot, dt.datetime] = {}  # no Progress notification before
        self.timers: dict[Key, tuple[dt.datetime, asyncio.TimerHandle]] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    # -- what the controller and the store tell ---------------------------------------------

    def changed(self, change: Change) -> None:
        """The store's news (a subscriber): a VideoJob's new copy may hold something due."""
        if change.kind != "videojob":
            return
        if change.deleted:
            self.forget(change.key)
        else:
            self.look(change.key)

    def unrecorded(self, key: Key) -> tuple[DeliveryOutcome, ...]:
        """The outcomes the next plan records (views.Observation.deliveries)."""
        return tuple(self.outcomes.get(key, {}).values())

    def forget(self, key: Key) -> None:
        self.outcomes.pop(key, None)
        held = self.timers.pop(key, None)
        if held is not None:
            held[1].cancel()
        for slot in [s for s in self.progress_after if s[0] == key]:
            del self.progress_after[slot]

    async def stop(self) -> None:
        for _, handle in self.timers.values():
            handle.cancel()
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=2)
        self.executor.shutdown(wait=False, cancel_futures=True)

    # -- what is due ------------------------------------------------------------------------

    def look(self, key: Key) -> None:
        """Starts an attempt for each destination with a notification due, and a timer for the
        next one that is not due yet."""
        vj = self.store.videojobs.get(key)
        raw = ((vj or {}).get("status") or {}).get("notifications")
        if vj is None or not raw:
            return
        try:
            held = [NotificationStatus.model_validate(n) for n in raw]
        except ValidationError:
            return
        self._prune(key, held)
        now, wake = self.clock(), None
        for n in held:
            slot = (key, n.index)
            if slot in self.sending:
                continue
            entry, at = next_due(n, now, set(self.outcomes.get(key, {})),
                                 self.progress_after.get(slot))
            if entry is not None:
                self.sending.add(slot)
                task = asyncio.get_running_loop().create_task(self._attempt(key, n.index, entry))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
            elif at is not None and (wake is None or at < wake):
                wake = at
        if wake is not None:
            self._wake(key, wake, now)

    def _prune(self, key: Key, held: list[NotificationStatus]) -> None:
        """Drops the outcomes the status shows recorded (or whose notification has gone)."""
        mine = self.outcomes.get(key)
        if not mine:
            return
        attempts = {p.id: p.attempts for n in held for p in n.pending or []}
        for msg_id, o in list(mine.items()):
            if attempts.get(msg_id, o.attempt) >= o.attempt:
                del mine[msg_id]
        if not mine:
            del self.outcomes[key]

    def _wake(self, key: Key, at: dt.datetime, now: dt.datetime) -> None:
        held = self.timers.get(key)
        if held is not None:
            if held[0] <= at:
                return
            held[1].cancel()

        def fire() -> None:
            self.timers.pop(key, None)
            self.look(key)

        delay = max((at - now).total_seconds(), 0.0)
        self.timers[key] = (at, asyncio.get_running_loop().call_later(delay, fire))

    # -- one attempt ------------------------------------------------------------------------

    async def _attempt(self, key: Key, index: int, entry: PendingNotification) -> None:
        slot = (key, index)
        try:
            outcome = await self._try(key, index, entry)
        except asyncio.CancelledError:
            raise
        except Exception:  # in the background: nobody else would see it
            log.exception("webhook notification %s failed", entry.id, extra=ctx(*key))
            outcome = DeliveryOutcome(index, entry.id, entry.attempts + 1, self.clock(), False,
                                      f"spec.notify[{index}]: the operator failed to send it")
        finally:
            self.sending.discard(slot)
        if outcome is None or key not in self.store.videojobs:
            return
        self.outcomes.setdefault(key, {})[entry.id] = outcome
        self._count(entry, outcome)
        if entry.type == NotifyEvent.PROGRESS:
            interval = self.config.current.notify.progress_interval_seconds
            self.progress_after[slot] = outcome.at + dt.timedelta(seconds=interval)
        self.requeue(key)  # the plan records it
        self.look(key)  # the next one of this destination, if any is due

    async def _try(self, key: Key, index: int,
                   entry: PendingNotification) -> DeliveryOutcome | None:
        vj = self.store.videojobs.get(key)
        wanted = targets(vj) if vj is not None else []
        if vj is None or index >= len(wanted):
            return None
        policy = self.config.current.notify
        target, attempt = wanted[index], entry.attempts + 1
        if attempt == 1:
            queued = parse_ts(entry.time)
            if queued is not None:
                metrics.NOTIFICATION_DELAY.observe(
                    max((self.clock() - queued).total_seconds(), 0.0))
        namespace = key[0]
        try:
            key_bytes = await self.secrets.key(namespace, target.secret_ref,
                                               f"spec.notify[{index}].secretRef",
                                               policy.secret_ttl_seconds)
        except SecretUnavailable as e:
            return DeliveryOutcome(index, entry.id, attempt, self.clock(), False, str(e),
                                   "SecretUnavailable")
        body = webhooks.body(vj, entry)
        headers = webhooks.headers(key_bytes, entry.id, int(time.time()), body)
        loop = asyncio.get_running_loop()
        answer = await loop.run_in_executor(
            self.executor, self.send, target.url, body, headers,
            policy.networks_for(namespace), policy.timeout_seconds, self.resolve)
        if not answer.delivered:
            log.info("webhook notification %s (%s) to spec.notify[%d], attempt %d: %s",
                     entry.id, entry.type, index, attempt, answer.error, extra=ctx(*key))
        error = f"spec.notify[{index}].url: {answer.error}" if answer.error else ""
        return DeliveryOutcome(index, entry.id, attempt, self.clock(), answer.delivered, error,
                               answer.state)

    def _count(self, entry: PendingNotification, o: DeliveryOutcome) -> None:
        if o.delivered:
            outcome = "delivered"
        elif o.state == REFUSED or o.attempt >= self.config.current.notify.max_attempts:
            outcome = "gave_up"
        else:
            outcome = "retried"
        metrics.NOTIFICATIONS.labels(entry.type, outcome).inc()
