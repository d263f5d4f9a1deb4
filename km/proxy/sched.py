"""Scheduling hints that keep the session's messages ahead of km's own work on a busy CPU (Linux).

- The forwarding process asks for the shortest EEVDF slice (`sched_setattr` with
  `sched_runtime`, Linux 6.12 and later, no privilege needed). Its virtual deadline then comes
  sooner, so a message that wakes it on a busy CPU preempts the running task instead of waiting
  out that task's slice. Its share of the CPU does not change (same nice, same weight), and it
  runs a few tens of µs per message, far below the slice, so the slice never cuts it short.
- The capture process runs as SCHED_BATCH: the same weight (it keeps up as before), but its
  wake-ups never preempt the forwarding process or the server; it runs when they sleep.

Both are best effort: elsewhere (other systems, older kernels, a policy set by the user with
`chrt`) nothing changes.
"""

from __future__ import annotations

import os
import sys

FORWARDING_SLICE_NS = 100_000  # 0.1 ms: the shortest slice Linux accepts
_SCHED_SETATTR = {"x86_64": 314, "aarch64": 274, "arm64": 274}  # syscall numbers


def short_slice() -> None:
    """Give the calling process the shortest slice; never raises. Call it after forking
    children that should keep the default (the capture process, the server)."""
    if not sys.platform.startswith("linux"):
        return
    number = _SCHED_SETATTR.get(os.uname().machine)
    try:
        if number is None or os.sched_getscheduler(0) != os.SCHED_OTHER:
            return
        import ctypes  # already loaded by km.proxy.spawn on Linux

        class SchedAttr(ctypes.Structure):
            _fields_ = (
                ("size", ctypes.c_uint32),
                ("sched_policy", ctypes.c_uint32),
                ("sched_flags", ctypes.c_uint64),
                ("sched_nice", ctypes.c_int32),
                ("sched_priority", ctypes.c_uint32),
                ("sched_runtime", ctypes.c_uint64),
                ("sched_deadline", ctypes.c_uint64),
                ("sched_period", ctypes.c_uint64),
            )

        nice = os.getpriority(os.PRIO_PROCESS, 0)  # the call sets nice too: keep the user's
        attr = SchedAttr(ctypes.sizeof(SchedAttr), os.SCHED_OTHER, 0, nice, 0, FORWARDING_SLICE_NS)
        ctypes.CDLL(None, use_errno=True).syscall(number, 0, ctypes.byref(attr), 0)
    except (OSError, AttributeError, ImportError):
        pass


def batch() -> None:
    """Make the calling process SCHED_BATCH (its threads started later too); never raises."""
    try:
        if os.sched_getscheduler(0) == os.SCHED_OTHER:
            os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    except (OSError, AttributeError):
        pass
