"""Request/response correlation over classified frames, in memory and bounded.

A request is remembered under (its direction, its id). A response or error travelling the other
way with the same id is linked to it (its event id, its method, the latency between the two
frames' monotonic timestamps) and the request is forgotten. A `notifications/cancelled` travels
the same way as the request it cancels and is linked to it without forgetting it (the response,
if one still comes, links as usual). A request carrying a progress token registers
(its direction, the token); a `notifications/progress` travelling the other way with that token
is linked to the request until the request's response arrives.

Batches are correlated element by element: each request in a batch is remembered under the batch
event's id, and each response in a batch is matched. The batch event's own `Link` is that of its
first element that matched (its request's event id and the latency), without a method, since a
batch has no single method; it is empty when no element matched.

At most `max_pending` requests are remembered: past that the oldest is dropped and counted in
`evicted`. A request reusing a pending id in the same direction replaces the older one.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from km.capture.classify import CANCELLED, PROGRESS, Envelope
from km.events import BATCH, C2S, ERROR, NOTIFICATION, REQUEST, RESPONSE, S2C

DEFAULT_MAX_PENDING = 10_000  # unanswered requests remembered; a peer that never answers
# cannot grow km's memory past this

_OPPOSITE = {C2S: S2C, S2C: C2S}

# (event id, method, mono_ns, progress key or None)
_Pending = tuple[str, str | None, int, tuple[str, str] | None]


@dataclass(slots=True)  # not frozen: made for every reply, and a frozen __init__ costs ~1.5 us
class Link:
    """What a frame refers to: the request's event id and method, and for replies the latency.
    Treated as immutable (`NO_LINK` is shared), though not frozen."""

    link_id: str | None = None
    method: str | None = None
    latency_us: int | None = None


NO_LINK = Link()


class Correlator:
    """Links replies, cancellations and progress to their requests; see the module docstring."""

    __slots__ = ("_max_pending", "_pending", "_progress", "evicted")

    def __init__(self, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, got {max_pending}")
        self._max_pending = max_pending
        # Oldest first. An OrderedDict, not a dict: evicting a dict's first key with
        # next(iter(d)) rescans the deleted slots at its front, O(max_pending) per eviction.
        self._pending: OrderedDict[tuple[str, str], _Pending] = OrderedDict()
        self._progress: dict[tuple[str, str], tuple[str, str | None]] = {}
        self.evicted = 0

    def __len__(self) -> int:
        """Requests waiting for a reply."""
        return len(self._pending)

    def observe(self, direction: str, env: Envelope, event_id: str, mono_ns: int) -> Link:
        """Record one classified frame and return what it links to."""
        kind = env.kind
        if kind == REQUEST:
            self._remember(direction, env, event_id, mono_ns)
            return NO_LINK
        if kind in (RESPONSE, ERROR):
            return self._reply(direction, env.rpc_id, mono_ns)
        if kind == NOTIFICATION:
            return self._notification(direction, env)
        if kind == BATCH:
            return self._batch(direction, env, event_id, mono_ns)
        return NO_LINK

    def _remember(self, direction: str, env: Envelope, event_id: str, mono_ns: int) -> None:
        rpc_id = env.rpc_id
        if rpc_id is None or direction not in _OPPOSITE:
            return
        key = (direction, rpc_id)
        pending = self._pending
        old = pending.pop(key, None)
        if old is not None:
            self._forget_progress(old)
        progress_key = None
        token = env.progress_token
        if token is not None:
            progress_key = (direction, token)
            self._progress[progress_key] = (event_id, env.method)
        pending[key] = (event_id, env.method, mono_ns, progress_key)
        if len(pending) > self._max_pending:
            self._forget_progress(pending.popitem(last=False)[1])
            self.evicted += 1

    def _forget_progress(self, entry: _Pending) -> None:
        progress_key = entry[3]
        if progress_key is not None:
            registered = self._progress.get(progress_key)
            # Only if still ours: a later request may have registered the same token.
            if registered is not None and registered[0] == entry[0]:
                del self._progress[progress_key]

    def _reply(self, direction: str, rpc_id: str | None, mono_ns: int) -> Link:
        other = _OPPOSITE.get(direction)
        if other is None or rpc_id is None:
            return NO_LINK
        entry = self._pending.pop((other, rpc_id), None)
        if entry is None:
            return NO_LINK
        if entry[3] is not None:
            self._forget_progress(entry)
        latency_ns = mono_ns - entry[2]
        return Link(entry[0], entry[1], latency_ns // 1000 if latency_ns > 0 else 0)

    def _notification(self, direction: str, env: Envelope) -> Link:
        method = env.method
        if method == PROGRESS:
            token = env.progress_token
            other = _OPPOSITE.get(direction)
            if token is None or other is None:
                return NO_LINK
            registered = self._progress.get((other, token))
            return NO_LINK if registered is None else Link(registered[0], registered[1])
        if method == CANCELLED:
            request_id = env.cancel_request_id
            if request_id is None:
                return NO_LINK
            entry = self._pending.get((direction, request_id))
            return NO_LINK if entry is None else Link(entry[0], entry[1])
        return NO_LINK

    def _batch(self, direction: str, env: Envelope, event_id: str, mono_ns: int) -> Link:
        first = NO_LINK
        for element in env.elements:
            link = self.observe(direction, element, event_id, mono_ns)
            if first is NO_LINK and link.link_id is not None:
                first = Link(link.link_id, None, link.latency_us)
        return first
