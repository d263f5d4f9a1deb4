"""The lowest CPU priority for one background thread, so the MCP session's bytes come first.

Used by the threads whose work can wait a few milliseconds: the background uplink and the
spool's WAL checkpointer. Linux only, where a thread has a nice value of its own; elsewhere
`setpriority` would reach the whole process (capture included), so the thread keeps the
process's priority there.
"""

from __future__ import annotations

import os
import sys
import threading

LOWEST_NICE = 19


def lower_this_thread() -> None:
    """Give the calling thread (and the threads it starts) nice 19; never raises."""
    if sys.platform != "linux":
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOWEST_NICE)
    except OSError:
        pass
