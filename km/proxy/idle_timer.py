"""A periodic timer the forwarding loop polls like any fd (Linux `timerfd`), so that waiting
for an idle moment to hand records to the capture process costs nothing per message.

A `poll` timeout arms and cancels a kernel timer on every sleep: two per message, and on a
busy virtual machine each one reprograms the CPU's timer (a trapped write). This timer is armed
once when records start to wait and ticks every `period_ms` until disarmed; the loop flushes
at a tick when no message came since the one before. Elsewhere (`create` returns None) the
loop keeps its `poll` timeout.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # not `from typing import ...`: typing costs the start-up milliseconds
if TYPE_CHECKING:
    from typing import Any

CLOCK_MONOTONIC = 1
TFD_NONBLOCK = 0o4000
TFD_CLOEXEC = 0o2000000


class IdleTimer:
    """One timerfd: `arm` starts the ticks, `disarm` stops them, `consume` clears a tick."""

    __slots__ = ("_off", "_on", "_settime", "armed", "fd")

    def __init__(self, fd: int, settime: Any, on: Any, off: Any) -> None:
        self.fd = fd
        self._settime = settime  # libc's timerfd_settime
        self._on = on  # byref(itimerspec): every period, from one period on
        self._off = off  # byref(itimerspec) of zeros: disarmed
        self.armed = False

    @classmethod
    def create(cls, period_ms: int) -> IdleTimer | None:
        """A timer ticking every `period_ms` once armed; None where there is no timerfd."""
        if not sys.platform.startswith("linux"):
            return None
        try:
            import ctypes  # already loaded by km.proxy.spawn on Linux

            libc = ctypes.CDLL(None, use_errno=True)
            fd = libc.timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)
            if fd < 0:
                return None

            class Timespec(ctypes.Structure):
                _fields_ = (("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long))

            class Itimerspec(ctypes.Structure):
                _fields_ = (("it_interval", Timespec), ("it_value", Timespec))

            period = Timespec(period_ms // 1000, (period_ms % 1000) * 1_000_000)
            spec = Itimerspec(period, period)
            settime = libc.timerfd_settime
            settime.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
            return cls(fd, settime, ctypes.byref(spec), ctypes.byref(Itimerspec()))
        except (OSError, AttributeError, ImportError):
            return None

    def arm(self) -> bool:
        """Start the ticks; False (and nothing changed) when the kernel refused."""
        if not self.armed:
            self.armed = self._set(self._on)
        return self.armed

    def disarm(self) -> None:
        """Stop the ticks (kept ticking if the kernel refused: a tick only looks for a pause)."""
        if self.armed and self._set(self._off):
            self.armed = False
            self.consume()  # a tick that came meanwhile is not a reason to wake

    def consume(self) -> None:
        """Read the ticks counted so far (the fd stays readable until then)."""
        try:
            os.read(self.fd, 8)
        except (BlockingIOError, OSError):
            pass

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass

    def _set(self, spec: Any) -> bool:
        try:
            return bool(self._settime(self.fd, 0, spec, None) == 0)
        except (OSError, ValueError, TypeError):
            return False
