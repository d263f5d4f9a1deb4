"""The capture process's scheduling class (Linux): SCHED_BATCH, the same weight as before (it
keeps up as before), but its wake-ups never preempt the forwarding process or the server; it
runs when they sleep. Best effort: elsewhere (other systems, a policy set by the user with
`chrt`) nothing changes.

The forwarding process keeps the default policy and slice. It used to ask for the shortest
EEVDF slice (0.1 ms, `sched_setattr`), which let a message that wakes it preempt sooner. With
km in its client's session (as AI clients start it, and as the benchmark now runs it), that
preemption falls mostly on its own peers, the client or the server about to sleep: the default
slice measured +18-20 us added p50 through `cat` against +60-72 with the short one, and a
lower p50 and p99 with real servers (benchmarks/README.md, "The forwarding process's slice").
"""

from __future__ import annotations

import os


def batch() -> None:
    """Make the calling process SCHED_BATCH (its threads started later too); never raises."""
    try:
        if os.sched_getscheduler(0) == os.SCHED_OTHER:
            os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    except (OSError, AttributeError):
        pass
