"""The shared event types: what a captured frame becomes once it is classified.

Imported by the capture thread and the spool, never by the forwarding path (dataclasses costs
~18 ms to import on a small machine; the proxy's start-up budget cannot afford it).
"""

from __future__ import annotations

from dataclasses import dataclass

# Directions of travel. "km" marks events km records about itself (drops, evictions).
C2S = "c2s"  # client -> server (km's stdin -> child's stdin)
S2C = "s2c"  # server -> client (child's stdout -> km's stdout)
KM = "km"

# Kinds of event.
REQUEST = "request"
NOTIFICATION = "notification"
RESPONSE = "response"
ERROR = "error"
BATCH = "batch"
INVALID = "invalid"
DROPPED = "dropped"  # km could not keep up; payload is JSON {"frames": n, "bytes": b, ...}

KINDS = (REQUEST, NOTIFICATION, RESPONSE, ERROR, BATCH, INVALID, DROPPED)

# Delivery states in the spool, ready for the uplink.
PENDING = 0
IN_FLIGHT = 1
SENT = 2
QUARANTINED = 3
STATE_NAMES = {PENDING: "pending", IN_FLIGHT: "in_flight", SENT: "sent", QUARANTINED: "quarantined"}


@dataclass(slots=True)  # not frozen: a frozen __init__ costs ~3 us per event at 40k events/s
class Event:
    """One captured frame (or one km-internal record), as stored in the spool.

    `payload` holds the frame's bytes exactly as they crossed the wire, without the line
    terminator, truncated to the payload cap when `truncated` is set (`size` is always the full
    length). `rpc_id` is the JSON text of the JSON-RPC id (`1` and `"1"` stay distinct).
    For responses and errors, `method` is the matched request's method, `link_id` the request's
    event id and `latency_us` the time between the two frames. Cancellations and progress
    notifications carry `link_id` of the request they refer to.
    """

    id: str
    session_id: str
    server: str
    direction: str
    ts_ns: int
    mono_ns: int
    kind: str
    method: str | None
    rpc_id: str | None
    size: int
    payload: bytes
    truncated: bool = False
    link_id: str | None = None
    latency_us: int | None = None
    # Insight fields (km.insight.session): what a request acts on (copied to its reply), the
    # reply's status (ok, error, tool-error), content tokens, the risk of a tools/call (0-100).
    tool: str | None = None
    status: str | None = None
    tokens: int | None = None
    risk: int | None = None
    # What the session's analysis learnt from this event (km.capture.notes rows, redacted),
    # stored in the same transaction as the event. None for nearly every event.
    notes: list[object] | None = None


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """One km run: one proxied MCP server process."""

    session_id: str
    server: str
    command: tuple[str, ...]
    pid: int
    host: str
    started_ns: int
    km_version: str
