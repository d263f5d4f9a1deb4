"""The uplink: spooled events to the Kilometers API, each delivered once, none lost.

`Uplink` is a thin asyncio shell around the sans-IO cores (batches, outcome, backoff, breaker)
and the spool leases. It claims the oldest deliverable rows, posts them in batches bounded by
count and bytes, and settles each batch from the server's answer: sent, quarantined with the
server's reason, or back to pending for a later retry. It never gives up on an event because
time passed; it only waits (backoff, `Retry-After`, an open circuit, a paused key).

Two ways to run it:
- `run_until_drained(progress)`: `km sync`, in the foreground, until nothing deliverable is
  left; it raises a typed error when the key is rejected or the API keeps failing.
- `run_forever(stop)`: in the background of each km capture process, started by
  `start_background_uplink`, on a daemon thread with its own event loop.

SQLite work (claims, outcomes, encoding and gzip of batches) runs on one worker thread per
uplink, so the event loop only waits on HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from km.errors import KmError, SpoolError
from km.settings import Settings
from km.spool.errors import SpoolMissing
from km.uplink.background import UplinkHandle, reread_config, start_background_uplink
from km.uplink.backoff import Backoff, BackoffPolicy
from km.uplink.batches import Batch, gzip_body, plan_batches
from km.uplink.breaker import OPEN, CircuitBreaker
from km.uplink.errors import ApiUnavailable, KeyRejected, NotConfigured
from km.uplink.leases import DEFAULT_LEASE_S, Backlog, LeaseStore, StateItem
from km.uplink.outcome import Delivered, Pause, QuarantineAll, Retry, Split, decide, network_error
from km.uplink.secret import Scrubber, Secret, display_url

T = TypeVar("T")

MIB = 1024 * 1024

# uplink_state keys (see km.spool.schema, migration 2).
STATE_BREAKER = "breaker"
STATE_PAUSED = "paused"
STATE_LAST_SUCCESS = "last_success"
STATE_LAST_ERROR = "last_error"

UNACKNOWLEDGED = "the API did not acknowledge this event; it will be sent again"


@dataclass(frozen=True, slots=True)
class UplinkConfig:
    max_events: int = 250  # events per request (500: +2.6 MB peak RSS while draining, +8% rate)
    max_bytes: int = 1 * MIB  # request body before gzip (the API takes up to 8 MiB)
    lease_s: float = DEFAULT_LEASE_S  # a dead uplink's events are taken over after this
    request_timeout_s: float = 30.0  # one request, whole; must stay under lease_s
    gzip_min_bytes: int = 1024  # smaller bodies go uncompressed
    idle_s: float = 2.0  # nothing to send: look at the spool again after this long
    start_delay_s: float = 2.0  # background: let the MCP session start before the first claim
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    breaker_failures: int = 5  # consecutive failed requests that open the circuit
    breaker_open_s: float = 30.0  # an open circuit lets one probe through after this long
    breaker_max_open_s: float = 300.0  # failed probes double the wait up to this
    pause_check_s: float = 5.0  # key rejected: look for a new key in the config this often
    pause_retry_s: float = 600.0  # key rejected: try the same key again this often
    sync_max_failures: int = 6  # km sync: consecutive failed requests before giving up
    sync_max_wait_s: float = 60.0  # km sync: a longer wait (Retry-After, breaker) gives up
    sync_max_rate_limited: int = 120  # km sync: 429 answers in a row before giving up

    def __post_init__(self) -> None:
        if self.max_events < 1 or self.max_bytes < 1024:
            raise ValueError("max_events must be >= 1 and max_bytes >= 1024")
        if self.request_timeout_s >= self.lease_s:
            raise ValueError(
                f"request_timeout_s ({self.request_timeout_s}) must be below lease_s "
                f"({self.lease_s}): a lease must outlive the request carrying its events"
            )


@dataclass(frozen=True, slots=True)
class Prepared:
    """A batch and its request body as sent (gzipped when `gzipped`)."""

    batch: Batch
    wire: bytes
    gzipped: bool
    leased_at: float  # the uplink's clock when its rows were leased (or the lease renewed)


@dataclass(frozen=True, slots=True)
class Credentials:
    url: str | None
    key: str | None

    @property
    def complete(self) -> bool:
        return bool(self.url) and bool(self.key)

    def __repr__(self) -> str:
        key = None if self.key is None else Secret(self.key)
        return f"Credentials(url={self.url!r}, key={key!r})"


@dataclass(frozen=True, slots=True)
class Progress:
    """Reported after every settled batch."""

    sent: int  # rows this uplink marked sent
    quarantined: int
    total: int  # deliverable when the drain started (grows if more arrive)
    duplicates: int  # sent rows the server already had


@dataclass(frozen=True, slots=True)
class DrainResult:
    sent: int
    accepted: int
    duplicates: int
    quarantined: int
    requests: int
    remaining: Backlog  # what is left: `deliverable` is 0 after a complete drain


def credentials_of(settings: Settings) -> Credentials:
    return Credentials(settings.api_url, settings.api_key)


class _Stopped(Exception):
    """Internal: the stop event was set while waiting."""


class _Paused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Uplink:
    """Delivery from the spool at `spool_path` to the API that `settings` names."""

    def __init__(
        self,
        settings: Settings,
        spool_path: str,
        config: UplinkConfig | None = None,
        *,
        reload: Callable[[], Credentials] | None = None,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.spool_path = spool_path
        self.config = config or UplinkConfig()
        self._creds = credentials_of(settings)
        self._tls = (settings.ca_bundle, settings.allow_insecure_http)  # CA bundle, plain http
        self._reload = reload or (lambda: credentials_of(reread_config(settings)))
        self._clock = clock
        self._backoff = Backoff(self.config.backoff, rand)
        self._breaker = CircuitBreaker(
            self.config.breaker_failures,
            self.config.breaker_open_s,
            max(self.config.breaker_open_s, self.config.breaker_max_open_s),
            clock,
        )
        self._scrub = Scrubber(self._creds.key)  # every key this uplink has held
        self._store: LeaseStore | None = None
        self._client: Any = None  # km.uplink.client.ApiClient, imported on first use
        self._executor: ThreadPoolExecutor | None = None
        self._written_breaker: str | None = None
        self._paused: _Paused | None = None
        self._paused_at = 0.0
        self._rate_limited = 0  # 429 answers in a row
        self._last_error: str | None = None
        # counters
        self.sent = self.accepted = self.duplicates = self.quarantined = self.requests = 0
        self._total = 0
        self._progress: Callable[[Progress], None] | None = None
        self._prefetch: asyncio.Future[list[Prepared]] | None = None
        self._draining = False  # background: deliver what is there, then stop
        self._nudge: asyncio.Event | None = None  # wakes the background loop's sleeps

    @property
    def configured(self) -> bool:
        return self._creds.complete

    @property
    def last_error(self) -> str | None:
        """The last delivery problem (scrubbed of the key), None before any."""
        return self._last_error

    @property
    def paused_reason(self) -> str | None:
        return None if self._paused is None else self._paused.reason

    @property
    def breaker_state(self) -> str:
        return self._breaker.state

    # -- the two ways to run -----------------------------------------------------------------

    async def run_until_drained(
        self, progress_callback: Callable[[Progress], None] | None = None
    ) -> DrainResult:
        """Deliver until nothing deliverable is left. Raises `NotConfigured`, `KeyRejected`,
        `ApiUnavailable` (after `sync_max_failures` failures in a row, or a wait longer than
        `sync_max_wait_s`) or a `SpoolError`; whatever is not delivered stays in the spool."""
        if not self._creds.url:
            raise NotConfigured("URL")
        if not self._creds.key:
            raise NotConfigured("key")
        self._api()  # a refused transport or an unreadable CA bundle: say so before any claim
        self._progress = progress_callback
        try:
            store = await self._db(self._open_store)
            self._total = (await self._db(store.backlog)).deliverable
            self._report()
            while True:
                await self._gate(None, sync=True)
                claim = await self._next_claim()
                if not claim:
                    break
                try:
                    await self._deliver(claim, None)
                except _Paused as paused:
                    raise KeyRejected(self._shown_url(), paused.status, paused.reason) from None
                if (
                    self._backoff.failures >= self.config.sync_max_failures
                    or self._rate_limited >= self.config.sync_max_rate_limited
                ):
                    raise ApiUnavailable(self._shown_url(), self._last_error or "failing")
            remaining = await self._db(store.backlog)
            return DrainResult(
                self.sent,
                self.accepted,
                self.duplicates,
                self.quarantined,
                self.requests,
                remaining,
            )
        finally:
            await self._shutdown()

    async def run_forever(self, stop_event: asyncio.Event) -> None:
        """Deliver in the background until `stop_event` is set. Does nothing at all (but wait
        for the stop) when no API is configured. Never raises (except on cancellation)."""
        if not self.configured:
            await stop_event.wait()
            return
        self._nudge = asyncio.Event()
        work = asyncio.ensure_future(self._forever(stop_event))
        stopper = asyncio.ensure_future(stop_event.wait())
        try:
            await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (work, stopper):
                task.cancel()
            for task in (work, stopper):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await self._shutdown()

    def request_drain(self) -> None:
        """Background: deliver what is deliverable now without waiting for anything (backoff,
        an open circuit, a new key), then end `run_forever`. Call on the loop's thread."""
        self._draining = True
        if self._nudge is not None:
            self._nudge.set()

    # -- the background loop -----------------------------------------------------------------

    async def _forever(self, stop: asyncio.Event) -> None:
        await self._sleep(self.config.start_delay_s, stop)
        while not stop.is_set():
            try:
                if self._paused is not None:
                    if self._draining:
                        return
                    await self._while_paused(stop)
                    continue
                if self._store is None:
                    await self._db(self._open_store)
                await self._gate(stop, sync=False)
                claim = await self._next_claim()
                if not claim:
                    if self._draining:
                        return
                    await self._sleep(self.config.idle_s, stop)
                    continue
                try:
                    await self._deliver(claim, stop)
                except _Paused as paused:
                    self._paused = paused
                    self._paused_at = self._clock()
            except _Stopped:
                return
            except SpoolMissing:
                if self._draining:
                    return
                await self._sleep(self.config.idle_s, stop)
            except (SpoolError, KmError, OSError) as exc:
                await self._note_error(str(exc))
                if self._draining:
                    return
                await self._sleep(self._fail_delay(), stop)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never die: note it, back off, go on
                await self._note_error(f"unexpected uplink error: {exc!r}")
                if self._draining:
                    return
                await self._sleep(self._fail_delay(), stop)

    async def _while_paused(self, stop: asyncio.Event) -> None:
        """Wait for a new key (`km login` rewrites the config file), or retry the old one now
        and then; the events wait in the spool meanwhile."""
        assert self._paused is not None
        await self._sleep(self.config.pause_check_s, stop)
        now = self._clock()
        try:
            creds = await self._db(self._reload)
        except Exception as exc:  # a broken config file: keep the old key, say why
            await self._note_error(f"cannot read the config file: {exc}")
            creds = self._creds
        if creds.complete and creds != self._creds:
            await self._switch(creds)
            self._paused = None
        elif now - self._paused_at >= self.config.pause_retry_s:
            self._paused = None  # one more try with the same key; a 401 pauses again
            self._paused_at = now

    async def _switch(self, creds: Credentials) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
        self._creds = creds
        self._scrub.add(creds.key or "")
        self._backoff.success()
        self._breaker.success()

    # -- claims, one ahead -------------------------------------------------------------------

    async def _next_claim(self) -> list[Prepared]:
        """The next claim's batches, ready to send. While they are sent, the claim after them
        is taken and encoded on the database thread (`_prefetch`)."""
        ahead, self._prefetch = self._prefetch, None
        claim = await ahead if ahead is not None else []
        if not claim:  # taken ahead, it may predate rows released since: look again now
            claim = await self._db(self._claim)
        if claim:
            self._prefetch = asyncio.ensure_future(self._db(self._claim))
        return claim

    async def _drop_prefetch(self) -> None:
        """Give back the rows of a claim taken ahead (delivery must wait)."""
        ahead, self._prefetch = self._prefetch, None
        if ahead is None:
            return
        try:
            claim = await ahead
        except Exception:
            return  # nothing was claimed, or the leases will expire by themselves
        await self._release(deque(p.batch for p in claim), None, attempted_first=False)

    # -- one claim's worth of batches --------------------------------------------------------

    async def _deliver(self, claim: list[Prepared], stop: asyncio.Event | None) -> None:
        """Send one claim's batches and settle every row: sent, quarantined, or released.
        On a retryable failure the rest (and the claim taken ahead) goes back to pending and
        this returns; on a rejected key the same, and `_Paused` is raised."""
        queue: deque[Prepared] = deque(claim)
        try:
            while queue:
                await self._gate(stop, sync=stop is None)
                prepared = queue[0] = await self._renewed(queue[0])
                batch = prepared.batch
                verdict = await self._send(prepared)
                if isinstance(verdict, Delivered):
                    queue.popleft()
                    await self._settle_delivered(batch, verdict)
                elif isinstance(verdict, Split):
                    self._breaker.success()  # the server is well; the batch is not
                    queue.popleft()
                    first, second = await self._db(self._prepare_halves, batch)
                    queue.appendleft(second)
                    queue.appendleft(first)
                elif isinstance(verdict, QuarantineAll):
                    queue.popleft()
                    await self._settle_quarantine_all(batch, verdict.reason)
                elif isinstance(verdict, Retry):
                    self._on_retry(verdict)
                    await self._release(
                        deque(p.batch for p in queue), verdict.reason, attempted_first=True
                    )
                    queue.clear()
                    await self._drop_prefetch()
                else:
                    assert isinstance(verdict, Pause)
                    self._breaker.neutral()
                    reason = self._pause_reason(verdict)
                    await self._release(
                        deque(p.batch for p in queue),
                        reason,
                        attempted_first=True,
                        pause=(verdict.status, reason),
                    )
                    queue.clear()
                    await self._drop_prefetch()
                    raise _Paused(verdict.status, reason)
        except BaseException:
            if queue:  # stopped or cancelled mid-claim: give the rows back untouched
                with contextlib.suppress(Exception):
                    await self._release(deque(p.batch for p in queue), None, attempted_first=False)
            with contextlib.suppress(Exception):
                await self._drop_prefetch()
            raise

    async def _renewed(self, prepared: Prepared) -> Prepared:
        """`prepared`, its lease renewed first when a third of it has gone (a slow API, a
        claim that waited behind another): a lease must outlive the request."""
        now = self._clock()
        if now - prepared.leased_at < self.config.lease_s / 3 or self._store is None:
            return prepared
        store = self._store
        await self._db(store.renew, [r.seq for r in prepared.batch.rows])
        return replace(prepared, leased_at=now)

    async def _send(self, prepared: Prepared) -> Delivered | Split | QuarantineAll | Retry | Pause:
        from km.uplink.client import TransportError

        client = self._api()
        self._breaker.allow()  # in HALF_OPEN, this request is the probe
        self.requests += 1
        try:
            reply = await client.post_events(prepared.wire, gzipped=prepared.gzipped)
        except TransportError as exc:
            return network_error(exc.description)
        return decide(reply.status, reply.headers, reply.body, prepared.batch.ids, time.time())

    async def _settle_delivered(self, batch: Batch, verdict: Delivered) -> None:
        seq_of = {row.id: row.seq for row in batch.rows}
        now_ns = time.time_ns()
        states: list[StateItem] = [
            (STATE_LAST_SUCCESS, self._shown_url(), len(verdict.sent), now_ns)
        ]
        if verdict.unacknowledged:
            # A server that forgets events is failing; back off, but do not trip the breaker.
            self._backoff.failure(self._clock())
            self._last_error = f"{len(verdict.unacknowledged)} events not acknowledged"
            states.append((STATE_LAST_ERROR, self._last_error, None, now_ns))
        else:
            self._backoff.success()
        self._rate_limited = 0
        self._breaker.success()
        states += self._breaker_state_items(now_ns)
        settled = await self._db(
            self._store_settle,
            [seq_of[i] for i in verdict.sent],
            [(seq_of[i], reason) for i, reason in verdict.rejected],
            [seq_of[i] for i in verdict.unacknowledged],
            UNACKNOWLEDGED if verdict.unacknowledged else None,
            states,
            [STATE_PAUSED],
        )
        self.sent += settled[0]
        self.quarantined += settled[1]
        self.accepted += verdict.accepted
        self.duplicates += verdict.duplicates
        self._report()

    async def _settle_quarantine_all(self, batch: Batch, reason: str) -> None:
        self._breaker.success()  # the server answered sensibly
        now_ns = time.time_ns()
        settled = await self._db(
            self._store_settle,
            [],
            [(row.seq, reason) for row in batch.rows],
            [],
            None,
            self._breaker_state_items(now_ns),
            [],
        )
        self.quarantined += settled[1]
        self._report()

    def _store_settle(
        self,
        sent: list[int],
        quarantined: list[tuple[int, str]],
        released: list[int],
        error: str | None,
        states: list[StateItem],
        drop_states: list[str],
    ) -> tuple[int, int, int]:
        assert self._store is not None
        result = self._store.settle(
            sent=sent,
            quarantined=quarantined,
            released=released,
            error=error,
            states=states,
            drop_states=drop_states,
        )
        return (result.sent, result.quarantined, result.released)

    async def _release(
        self,
        queue: deque[Batch],
        reason: str | None,
        *,
        attempted_first: bool,
        pause: tuple[int, str] | None = None,
    ) -> None:
        """Give the rows of every batch in `queue` back (the first one was attempted when
        `attempted_first`), recording `reason` as the last error."""
        store = self._store
        if store is None or not queue:
            return
        batches = list(queue)
        now_ns = time.time_ns()
        states: list[StateItem] = []
        if reason is not None:
            states.append((STATE_LAST_ERROR, reason, None, now_ns))
        if pause is not None:
            states.append((STATE_PAUSED, pause[1], pause[0], now_ns))
        states += self._breaker_state_items(now_ns)

        def work() -> None:
            first, rest = batches[0], batches[1:]
            store.settle(
                released=[r.seq for r in first.rows],
                error=reason if attempted_first else None,
                attempted=attempted_first,
                states=states,
            )
            others = [r.seq for b in rest for r in b.rows]
            if others:
                store.settle(released=others, attempted=False)

        await self._db(work)

    # -- waiting -----------------------------------------------------------------------------

    async def _gate(self, stop: asyncio.Event | None, *, sync: bool) -> None:
        """Wait until the backoff and the circuit breaker let a request go."""
        while True:
            now = self._clock()
            wait = max(self._backoff.wait_s(now), self._breaker.wait_s())
            if wait <= 0:
                return
            if wait == float("inf"):
                wait = self.config.idle_s  # a probe is out (not with one request at a time)
            if self._draining:
                raise _Stopped  # a last drain does not wait
            if sync and wait > self.config.sync_max_wait_s:
                raise ApiUnavailable(
                    self._shown_url(),
                    f"{self._last_error or 'failing'} (next try in {wait:.0f} s)",
                )
            if stop is None:
                await asyncio.sleep(wait)
            elif not await self._sleep(wait, stop):
                raise _Stopped

    async def _sleep(self, seconds: float, stop: asyncio.Event) -> bool:
        """Sleep, less when stopped (`run_forever` cancels us) or nudged (a last drain); True
        when still running."""
        if stop.is_set():
            return False
        nudge = self._nudge
        if nudge is None or self._draining:
            return not self._draining
        try:
            await asyncio.wait_for(nudge.wait(), max(0.0, seconds))
        except TimeoutError:
            pass
        return not stop.is_set()

    def _fail_delay(self) -> float:
        self._backoff.failure(self._clock())
        return self._backoff.wait_s(self._clock())

    # -- bookkeeping -------------------------------------------------------------------------

    def _on_retry(self, verdict: Retry) -> None:
        now = self._clock()
        if verdict.failure:
            self._breaker.failure(verdict.retry_after_s or 0.0)
            self._backoff.failure(now, verdict.retry_after_s)
        else:
            self._rate_limited += 1
            self._breaker.neutral()
            self._backoff.defer(now, verdict.retry_after_s or 0.0)
        self._last_error = self._scrub(verdict.reason)

    def _pause_reason(self, verdict: Pause) -> str:
        what = "revoked" if verdict.status == 403 else "not accepted"
        return self._scrub(
            f"API key {what} by {self._shown_url()} ({verdict.reason}): run `km login`"
        )

    async def _note_error(self, message: str) -> None:
        self._last_error = text = self._scrub(message)
        store = self._store
        if store is None:
            return
        with contextlib.suppress(Exception):
            await self._db(store.put_state, STATE_LAST_ERROR, text)

    def _breaker_state_items(self, now_ns: int) -> list[StateItem]:
        state = self._breaker.state
        if state == self._written_breaker:
            return []
        self._written_breaker = state
        until = self._breaker.open_until
        until_ns = None
        if state == OPEN and until is not None:
            until_ns = now_ns + int(max(0.0, until - self._clock()) * 1e9)
        return [(STATE_BREAKER, state, until_ns, now_ns)]

    def _report(self) -> None:
        if self._progress is None:
            return
        done = self.sent + self.quarantined
        self._total = max(self._total, done)
        self._progress(Progress(self.sent, self.quarantined, self._total, self.duplicates))

    def _shown_url(self) -> str:
        return display_url(self._creds.url or "")

    # -- resources ---------------------------------------------------------------------------

    def _api(self) -> Any:
        if self._client is None:
            from km.uplink.client import ApiClient

            assert self._creds.url and self._creds.key
            self._client = ApiClient(
                self._creds.url,
                Secret(self._creds.key),
                timeout_s=self.config.request_timeout_s,
                ca_bundle=self._tls[0],
                allow_insecure_http=self._tls[1],
            )
        return self._client

    def _open_store(self) -> LeaseStore:
        if self._store is None:
            self._store = LeaseStore.open(
                self.spool_path, lease_s=self.config.lease_s, scrub=self._scrub
            )
        return self._store

    def _claim(self) -> list[Prepared]:
        """Database thread: lease the next rows and encode their request bodies."""
        store = self._store
        assert store is not None
        rows = store.claim(self.config.max_events, self.config.max_bytes)
        batches = plan_batches(rows, self.config.max_events, self.config.max_bytes)
        return [self._prepare(batch) for batch in batches]

    def _prepare(self, batch: Batch) -> Prepared:
        body = batch.body
        now = self._clock()
        if len(body) >= self.config.gzip_min_bytes:
            return Prepared(batch, gzip_body(body), True, now)
        return Prepared(batch, body, False, now)

    def _prepare_halves(self, batch: Batch) -> tuple[Prepared, Prepared]:
        first, second = batch.split()  # the halves keep the whole's lease time
        return self._prepare(first), self._prepare(second)

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` on this uplink's one database thread."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="km-uplink-db")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    async def _shutdown(self) -> None:
        """Give back any rows still leased, close the HTTP session and the spool."""
        with contextlib.suppress(BaseException):
            await self._drop_prefetch()
        store, self._store = self._store, None
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()
        executor, self._executor = self._executor, None
        if executor is None:
            return

        def close_store() -> None:
            if store is None:
                return
            try:
                store.release_all()
            except Exception:
                pass  # the leases expire by themselves
            finally:
                store.close()

        try:
            loop = asyncio.get_running_loop()
            await asyncio.shield(loop.run_in_executor(executor, close_store))
        except (asyncio.CancelledError, Exception):
            pass
        finally:
            executor.shutdown(wait=False)


def run_in_thread(handle: UplinkHandle, uplink: Uplink) -> None:
    """The background thread's event loop, until `handle.stop()`. asyncio's own loop, not
    uvloop: tens of requests a second at most need no faster loop, and uvloop would add its
    memory to every delivering capture process (the forwarding path never runs on this loop)."""

    async def main() -> None:
        stop = asyncio.Event()
        if not handle._attach(asyncio.get_running_loop(), stop.set, uplink.request_drain):
            return
        await uplink.run_forever(stop)

    with asyncio.Runner() as runner:
        runner.run(main())


__all__ = [
    "Credentials",
    "DrainResult",
    "Progress",
    "Uplink",
    "UplinkConfig",
    "UplinkHandle",
    "start_background_uplink",
]
