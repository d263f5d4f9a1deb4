"""A small fixed latency histogram, and percentiles estimated from it (sans-IO).

Each hourly rollup row keeps one count per bucket, plus the smallest and largest latency seen,
so rows merge by adding counts (on ingest, and across replicas) without keeping every sample.
Bucket `i` holds latencies `v` with `BOUNDS_US[i-1] < v <= BOUNDS_US[i]` (bucket 0: `v <= 1`);
the last bucket holds everything above the last bound. Bounds follow the 1-2-5 series from 1 us
to 100 s, so an estimate is within its bucket (at worst a factor 2.5), and usually far closer:
it interpolates linearly inside the bucket, whose range is first narrowed to the observed min
and max.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

BOUNDS_US: tuple[int, ...] = (*(m * 10**e for e in range(8) for m in (1, 2, 5)), 100_000_000)
BUCKETS = len(BOUNDS_US) + 1  # + the overflow bucket


def bucket_of(latency_us: int) -> int:
    """The bucket index of a latency (negative latencies count as 0)."""
    return bisect.bisect_left(BOUNDS_US, max(latency_us, 0))


def empty() -> list[int]:
    return [0] * BUCKETS


def merge(into: list[int], other: Sequence[int]) -> None:
    """Add `other`'s counts to `into` (a shorter `other`, from an older schema, adds zeros)."""
    for i, n in enumerate(other[:BUCKETS]):
        into[i] += n


def percentile(hist: Sequence[int], q: float, min_us: int, max_us: int) -> int | None:
    """Estimate the q-quantile (0 < q <= 1) by nearest rank: the rank-th smallest latency,
    rank = ceil(q * n), placed by linear interpolation inside its bucket's range narrowed to
    [min_us, max_us]. `None` when the histogram is empty."""
    total = sum(hist)
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for i, n in enumerate(hist):
        if n and seen + n >= rank:
            # The bucket's range, narrowed to what was observed (min and max are in the first
            # and last non-empty buckets, so this only ever narrows those two).
            lower = max(BOUNDS_US[i - 1] if i > 0 else 0, min_us)
            upper = min(BOUNDS_US[i] if i < len(BOUNDS_US) else max_us, max_us)
            upper = max(upper, lower)
            return round(lower + (upper - lower) * (rank - seen) / n)
        seen += n
    return max_us  # unreachable when counts are consistent; a safe answer regardless
