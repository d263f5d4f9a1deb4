"""`km tail`: follow the spool live, one line per exchange.

Every km process on the machine appends to the same spool, so following it is polling one
table by `seq`: a batch of up to `BATCH` rows (each with whether the filter selects it,
computed by the same SQL the other views use), fed to the `Pairer`, whose ready lines are
written at once. Idle, the poll backs off from `POLL_MIN_S` to `POLL_MAX_S` (one indexed query
per poll: no busy loop); a full batch is followed by the next without sleeping.

It says so, in a line of its own, whenever it shows less than everything:
- events evicted from the spool (past its size cap) before km tail read them;
- a backlog larger than `MAX_BEHIND` events (the output cannot keep up): it jumps to the
  newest events and says how many it skipped.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

import orjson

from km.insight.filter import Filter
from km.spool.tokens import TokenFiller
from km.terminal import safe
from km.views import fmt, render
from km.views.exchange import Line, Pairer
from km.views.spool_read import NoSpool, SpoolReader

BATCH = 5000  # rows per poll
POLL_MIN_S = 0.02  # the first sleep once there is nothing new
POLL_MAX_S = 0.25  # idle polls slow down to this (one small indexed query each)
HOLD_S = 0.5  # a request waits this long for its reply before it is shown pending
MAX_BEHIND = 200_000  # a backlog past this is skipped (and the skip announced)
REOPEN_EVERY_S = 2.0  # while idle, check this often that the spool file was not replaced


@dataclass(slots=True)
class TailOptions:
    flt: Filter | None
    last: int = 10  # selected events shown from before the start (-n)
    from_start: bool = False  # --since: from the first event on (the filter bounds it)
    as_json: bool = False
    hold_s: float = HOLD_S
    exit_when_idle: bool = False  # stop at the first idle poll (tests, scripts)


class Output:
    """Where lines go: JSON lines, plain text, or a terminal (columns fitted to `width`,
    coloured unless `color` is off)."""

    def __init__(
        self,
        stream: IO[str],
        as_json: bool,
        terminal: bool,
        width: int | None = None,
        color: bool = True,
    ) -> None:
        self.stream = stream
        self.as_json = as_json
        self.terminal = terminal and not as_json
        self.color = color
        self.widths: list[int] = []
        if self.terminal:
            columns = width or shutil.get_terminal_size((100, 24)).columns
            self.widths = fmt.fit(render.TAIL_COLUMNS, columns)
            header = render.header(self.widths)
            self.stream.write((render.paint(header, "bold") if color else header) + "\n")

    def lines(self, lines: list[Line]) -> None:
        if not lines:
            return
        if self.as_json:
            self.stream.write(
                "".join(orjson.dumps(render.as_json(x)).decode() + "\n" for x in lines)
            )
        elif self.terminal:
            widths, color = self.widths, self.color
            self.stream.write("".join(render.styled(x, widths, color) + "\n" for x in lines))
        else:
            self.stream.write("".join(render.plain(x) + "\n" for x in lines))
        self.stream.flush()

    def notice(self, message: str) -> None:
        """A line about km tail itself (a skip, a wait), shown in the stream's own form."""
        if not self.as_json:
            message = safe(message, markup=False)  # it may name a path
        if self.as_json:
            self.stream.write(orjson.dumps({"type": "notice", "message": message}).decode() + "\n")
        else:
            text = f"km tail: {safe(message, markup=False)}"
            painted = render.paint(text, "bold yellow") if self.terminal and self.color else text
            self.stream.write(painted + "\n")
        self.stream.flush()


def follow(
    open_reader: Callable[[], SpoolReader],
    options: TailOptions,
    out: Output,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    reader = _wait_for_spool(open_reader, out, options, sleep)
    if reader is None:
        return 0
    box = [reader]  # the reader in use (the spool may be replaced under it)
    try:
        return _follow(box, open_reader, options, out, clock, sleep)
    finally:
        box[0].close()


def _wait_for_spool(
    open_reader: Callable[[], SpoolReader],
    out: Output,
    options: TailOptions,
    sleep: Callable[[float], None],
) -> SpoolReader | None:
    told = False
    while True:
        try:
            return open_reader()
        except NoSpool as exc:
            if options.exit_when_idle:
                raise
            if not told:
                out.notice(f"waiting for the spool at {exc.path} (no km has captured yet)")
                told = True
            sleep(POLL_MAX_S * 4)


def _follow(
    box: list[SpoolReader],
    open_reader: Callable[[], SpoolReader],
    options: TailOptions,
    out: Output,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> int:
    reader = box[0]
    flt = options.flt
    if options.from_start:
        last = 0
    elif options.last > 0:
        last = reader.seq_before(flt, options.last)
    else:
        last = reader.last_seq()
    identity = _identity(reader.path)
    filler = TokenFiller(reader.path)  # counts what the capture processes left uncounted
    try:
        return _poll(box, open_reader, options, out, clock, sleep, filler, last, identity)
    finally:
        filler.close()


def _poll(
    box: list[SpoolReader],
    open_reader: Callable[[], SpoolReader],
    options: TailOptions,
    out: Output,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    filler: TokenFiller,
    last: int,
    identity: tuple[int, int] | None,
) -> int:
    reader = box[0]
    flt = options.flt
    pairer = Pairer(options.hold_s)
    idle_sleep = POLL_MIN_S
    checked_at = clock()
    while True:
        filler.fill()
        rows = reader.batch(flt, last, BATCH)
        now = clock()
        if rows:
            first = rows[0][0].seq or 0
            if first > last + 1 and last > 0:
                out.notice(
                    f"{first - last - 1} events were evicted from the spool before km tail"
                    " read them"
                )
            for row, selected in rows:
                pairer.feed(row, selected, now)
            last = rows[-1][0].seq or last
            if len(rows) == BATCH:
                newest = reader.last_seq()
                if newest - last > MAX_BEHIND:
                    out.lines(pairer.flush())
                    out.notice(
                        f"skipped {newest - last - BATCH} events to keep up (showing the newest)"
                    )
                    last = newest - BATCH
        out.lines(pairer.ready(now))
        if len(rows) == BATCH:
            continue
        if rows:
            idle_sleep = POLL_MIN_S
        else:
            if options.exit_when_idle:
                out.lines(pairer.flush())
                return 0
            idle_sleep = min(POLL_MAX_S, idle_sleep * 2)
            if now - checked_at >= REOPEN_EVERY_S:
                checked_at = now
                current = _identity(reader.path)
                if current is not None and current != identity:
                    out.notice(f"the spool at {reader.path} was replaced; following the new one")
                    reader.close()
                    reader = box[0] = open_reader()
                    identity, last = current, 0
                    filler.close()
                    filler.path = reader.path
        sleep(min(idle_sleep, options.hold_s))


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def default_output(as_json: bool) -> Output:
    return Output(sys.stdout, as_json, is_terminal(sys.stdout))
