"""Framed lines in, stored events out: classify, correlate, stamp. No I/O.

One `CapturePipeline` per proxied server, fed by the capture thread with the frames of both
directions in the order they were queued.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import orjson

from km.capture.classify import classify
from km.capture.correlate import DEFAULT_MAX_PENDING, Correlator
from km.capture.framing import Frame
from km.capture.ids import uuid7
from km.events import DROPPED, KM, REQUEST, Event

TYPE_CHECKING = False
if TYPE_CHECKING:
    from km.insight.session import SessionAnalyzer


_T = TypeVar("_T")
CALL = "tools/call"


class CapturePipeline:
    """Turns frames into `Event`s for one session. `new_id` makes event ids (for tests)."""

    __slots__ = (
        "_analyze",
        "_correlator",
        "_new_id",
        "_new_ids",
        "_redact",
        "_redact_report",
        "_redact_text",
        "analysis_errors",
        "analyzer",
        "last_analysis_error",
        "redact_clean",
        "server",
        "session_id",
    )

    def __init__(
        self,
        session_id: str,
        server: str,
        max_pending: int = DEFAULT_MAX_PENDING,
        new_id: Callable[[], str] = uuid7,
        redact: Callable[[bytes], bytes] | None = None,
        analyzer: SessionAnalyzer | None = None,
        redact_text: Callable[[str], str] | None = None,
        redact_report: Callable[[bytes], tuple[bytes, dict[str, int]]] | None = None,
        redact_clean: Callable[[Sequence[bytes]], list[bool]] | None = None,
    ) -> None:
        """`redact` rewrites a payload before it is stored (classification, correlation and
        the `analyzer` read the frame as it crossed the wire; only what is kept is redacted,
        `redact_text` for the analyzer's text: finding messages, excerpts, diffs;
        `redact_report`, `redact` that also says what it found, for `tools/call` requests:
        the secrets in a call's arguments count in its risk; `redact_clean`, for
        `process_many`, says at once for many payloads which ones `redact` would return as
        they are, so only the others are redacted one by one)."""
        self.session_id = session_id
        self.server = server
        self._correlator = Correlator(max_pending)
        self._new_id = new_id
        # A generator that makes many ids at once (`Uuid7Generator.many`), else one by one.
        self._new_ids: Callable[[int], list[str]] | None = getattr(new_id, "many", None)
        self._redact = redact
        self._redact_text = redact_text
        self._redact_report = redact_report
        self.redact_clean = redact_clean
        self.analyzer = analyzer
        self._analyze = analyzer.observe if analyzer is not None else None
        self.analysis_errors = 0
        self.last_analysis_error: str | None = None

    @property
    def evicted(self) -> int:
        """Pending requests forgotten unanswered because more than `max_pending` were waiting."""
        return self._correlator.evicted

    def process(self, direction: str, mono_ns: int, wall_ns: int, frame: Frame) -> Event:
        """The event for one frame. A response's `method` is its request's."""
        return self.process_many(((direction, mono_ns, wall_ns, frame),))[0]

    def process_many(self, frames: Sequence[tuple[str, int, int, Frame]]) -> list[Event]:
        """The events for many frames (direction, mono_ns, wall_ns, frame), in order: the
        redactor's pre-scan is done for all of them at once and their ids made at once; one
        loop with everything it uses at hand, since this runs for every message."""
        n = len(frames)
        new_ids = self._new_ids
        ids = new_ids(n) if new_ids is not None else [self._new_id() for _ in range(n)]
        redact, redact_report, clean_many = self._redact, self._redact_report, self.redact_clean
        if clean_many is None or redact is None or n == 1:
            clean = [False] * n
        else:
            clean = clean_many([item[3].data for item in frames])
        correlate = self._correlator.observe
        session_id, server = self.session_id, self.server
        analyzer, analyze = self.analyzer, self._analyze
        out: list[Event] = []
        append = out.append
        for (direction, mono_ns, wall_ns, frame), unchanged, event_id in zip(
            frames, clean, ids, strict=True
        ):
            data = frame.data
            truncated = frame.truncated
            env = classify(data, frame.size, truncated, frame.tail)
            kind = env.kind
            link = correlate(direction, env, event_id, mono_ns)
            method = env.method
            if method is None:
                method = link.method
            secrets = None
            if method == CALL and redact_report is not None and kind == REQUEST:
                stored, secrets = redact_report(data)
            elif unchanged or redact is None:
                stored = data
            else:
                stored = redact(data)
            event = Event(  # positionally, in field order
                event_id,
                session_id,
                server,
                direction,
                wall_ns,
                mono_ns,
                kind,
                method,
                env.rpc_id,
                frame.size,
                stored,
                truncated,
                link.link_id,
                link.latency_us,
            )
            append(event)
            if analyze is None or analyzer is None:
                continue
            # The frame as it crossed the wire, not the redacted payload.
            try:
                insight = analyze(
                    event_id, direction, kind, method, data, link.link_id, truncated, secrets
                )
                event.tool, event.status, event.tokens, event.risk = insight
                if analyzer.has_news or analyzer.problems_changed:
                    event.notes = self._notes(wall_ns)
            except Exception as exc:  # an analyzer bug costs the insight, never the event
                self.analysis_errors += 1
                self.last_analysis_error = repr(exc)
        return out

    def _notes(self, wall_ns: int) -> list[object]:
        from km.capture.notes import ProblemsRow, note_rows

        analyzer = self.analyzer
        assert analyzer is not None
        rows = note_rows(
            analyzer.take_news(),
            self.session_id,
            self.server,
            wall_ns,
            self._redact or _same,
            self._redact_text or _same,
            self._new_id,
        )
        if analyzer.problems_changed:
            rows.append(ProblemsRow(self.session_id, analyzer.take_problems()))
        return rows

    def dropped(self, mono_ns: int, wall_ns: int, frames: int, nbytes: int) -> Event:
        """A km-internal record: `frames` frames of `nbytes` bytes were not captured since the
        previous such record (the counts are deltas)."""
        payload = orjson.dumps({"frames": frames, "bytes": nbytes})
        return Event(
            id=self._new_id(),
            session_id=self.session_id,
            server=self.server,
            direction=KM,
            ts_ns=wall_ns,
            mono_ns=mono_ns,
            kind=DROPPED,
            method=None,
            rpc_id=None,
            size=len(payload),
            payload=payload,
        )


def _same(value: _T) -> _T:
    return value
