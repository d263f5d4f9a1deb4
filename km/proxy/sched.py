"""The capture process's scheduling class (Linux): SCHED_BATCH, the same weight as before (it
keeps up as before), but its wake-ups never preempt the forwarding process or the server; it
runs when they sleep. Best effort: elsewhere (other systems, a policy set by the user with
`chrt`) nothing changes.

The forwarding process keeps the default policy and slice. It used to ask for the shortest
EEVDF slice (0.1 ms, `sched_setattr`), which let a message that wakes it preempt sooner. With
km in its client's session (as AI clients start it, and as the benchmark now runs it), it
gained nothing measurable: `ping` to four real servers gave an added p50 of 112 us without it
against 116 with it (9 runs each), the drained runs could not tell the two apart, and one
client's timing put the short slice at ~+60 us through `cat` against ~+7 without it
(benchmarks/README.md, "The forwarding process's slice").
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
