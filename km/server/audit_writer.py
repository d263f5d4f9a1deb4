"""Writes the refused sign-in roll-up (`km.server.audit.RefusalRollup`) to the store: a task
that the app holds from start-up to clean-up, writing each window once it ends, and whatever
is counted at clean-up. A store that fails keeps the records for the next try (bounded)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web

from km.server.audit import AuditRecord, RefusalRollup
from km.server.errors import StoreError

log = logging.getLogger("km.server")

FLUSH_CHECK_S = 1.0  # how often the writer looks for an ended window
MAX_PENDING = 10_000  # records kept while the store cannot take them; past this, oldest go


class AuditWriter:
    def __init__(self, window_ns: int) -> None:
        self.rollup = RefusalRollup(window_ns)
        self._pending: list[AuditRecord] = []

    async def write_due(self, app: web.Application, everything: bool = False) -> None:
        from km.server.state import STORE

        records = self.rollup.flush() if everything else self.rollup.due(time.time_ns())
        pending = [*self._pending, *records][-MAX_PENDING:]
        if not pending:
            return
        try:
            await app[STORE].record_audit(pending)
        except StoreError as exc:
            self._pending = pending
            log.warning("audit log: %d refused sign-in rows wait for the store (%s)",
                        len(pending), exc)  # fmt: skip
            return
        self._pending = []

    async def _loop(self, app: web.Application) -> None:
        while True:
            await asyncio.sleep(FLUSH_CHECK_S)
            await self.write_due(app)


async def audit_writer_ctx(app: web.Application) -> AsyncIterator[None]:
    """For `app.cleanup_ctx`: the writer task runs while the app does."""
    from km.server.state import AUDIT

    writer = app[AUDIT]
    task = asyncio.get_running_loop().create_task(writer._loop(app))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    with contextlib.suppress(StoreError):
        await writer.write_due(app, everything=True)
