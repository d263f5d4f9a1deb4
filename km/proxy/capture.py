"""Start and finish one km session's capture: the spool writer and the background uplink.
Shared by the capture process (fork-based relay) and the portable relay. Imported off the
forwarding path only: everything heavy (dataclasses, orjson, sqlite3, platformdirs, socket)
loads here."""

from __future__ import annotations

import os
import socket
import time

from km import __version__
from km.capture.ids import new_session_id
from km.errors import KmError
from km.events import SessionInfo
from km.proxy.capture_queue import CaptureQueue
from km.redact.needles import cache_compiled_scanners_in
from km.server_name import derive_server_name
from km.settings import Settings
from km.spool.writer import SpoolWriter
from km.uplink.background import UplinkHandle, start_background_uplink

TYPE_CHECKING = False
if TYPE_CHECKING:
    from km.export.live import OtlpHandle

UPLINK_STOP_S = 5.0  # at session end, longest wait for the uplink thread to stop
UPLINK_LAST_DRAIN_S = 3.0  # of which the session's last events may spend sending (never backoff)


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


class CaptureSession:
    """The spool writer and the background uplink of one km session."""

    def __init__(self, settings: Settings, argv: list[str], km_pid: int) -> None:
        try:
            settings.load_config_file()
        except KmError as exc:  # a broken config file must not cost the session its capture
            os.write(2, f"km: {exc}; going on with environment and defaults\n".encode())
        self.settings = settings
        spool_path = settings.resolve_spool_path()
        # The redactor's compiled scanner is kept beside the spool: later sessions load it.
        cache_compiled_scanners_in(os.path.dirname(os.path.abspath(spool_path)))
        self.queue = CaptureQueue(settings.queue_max_bytes, settings.queue_max_frames)
        self.writer = start_writer(settings, argv, km_pid, self.queue)
        self.uplink: UplinkHandle = start_background_uplink(settings, spool_path)
        self.otlp: OtlpHandle | None = None
        if settings.otlp_endpoint:  # live OTLP traces (KM_OTLP_ENDPOINT): imported only then
            from km.export.live import start_otlp_uplink

            self.otlp = start_otlp_uplink(settings.otlp_endpoint, spool_path)

    def finish(self, exit_code: int | None) -> None:
        """Record the server's exit, flush the spool, give the uplink its last drain."""
        self.writer.finish(exit_code, self.settings.flush_s)
        self.uplink.stop(UPLINK_STOP_S, drain_s=UPLINK_LAST_DRAIN_S)
        if self.otlp is not None:
            self.otlp.stop(UPLINK_STOP_S)
