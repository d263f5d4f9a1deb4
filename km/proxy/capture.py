"""Start the spool writer for one km session. Imported on the capture-start thread only:
everything heavy (dataclasses, orjson, sqlite3, platformdirs, socket) loads here, off the
forwarding path."""

from __future__ import annotations

import socket
import time

from km import __version__
from km.capture.ids import new_session_id
from km.events import SessionInfo
from km.proxy.capture_queue import CaptureQueue
from km.server_name import derive_server_name
from km.settings import Settings
from km.spool.writer import SpoolWriter


def start_writer(
    settings: Settings, argv: list[str], km_pid: int, queue: CaptureQueue
) -> SpoolWriter:
    """Open the session in the spool and start writing; `km_pid` is the forwarding process."""
    session = SessionInfo(
        session_id=new_session_id(),
        server=settings.server_name or derive_server_name(argv),
        command=tuple(argv),
        pid=km_pid,
        host=socket.gethostname(),
        started_ns=time.time_ns(),
        km_version=__version__,
    )
    writer = SpoolWriter(settings, session, queue)
    writer.start()
    return writer
