"""Percentiles from the fixed histogram, against values worked out by hand."""

from __future__ import annotations

from km.server import latency

# Ten latencies (us) and their buckets by BOUNDS_US (..., 100, 200, 500, 1000, 2000, 5000, ...):
#   (100, 200]: 120 150 180    (200, 500]: 300 400 450    (500, 1000]: 700 800 900
#   (2000, 5000]: 4000
SAMPLES = [120, 150, 180, 300, 400, 450, 700, 800, 900, 4000]


def hist_of(samples: list[int]) -> list[int]:
    hist = latency.empty()
    for s in samples:
        hist[latency.bucket_of(s)] += 1
    return hist


def test_bounds_and_buckets() -> None:
    assert latency.BOUNDS_US[:7] == (1, 2, 5, 10, 20, 50, 100)
    assert latency.BOUNDS_US[-1] == 100_000_000
    assert latency.BUCKETS == 26
    assert latency.bucket_of(0) == 0
    assert latency.bucket_of(1) == 0
    assert latency.bucket_of(2) == 1
    assert latency.bucket_of(100) == 6  # upper bounds are inclusive
    assert latency.bucket_of(101) == 7
    assert latency.bucket_of(10**9) == 25  # overflow


def test_hand_computed_percentiles() -> None:
    hist = hist_of(SAMPLES)
    # p50: rank ceil(0.5 * 10) = 5: 3 samples below, 2nd of 3 in (200, 500]:
    #      200 + (500 - 200) * 2/3 = 400 (the true 5th smallest is 400).
    assert latency.percentile(hist, 0.50, 120, 4000) == 400
    # p95: rank ceil(9.5) = 10: 9 below, 1st of 1 in (2000, 5000], narrowed to max 4000: 4000.
    assert latency.percentile(hist, 0.95, 120, 4000) == 4000
    # p10: rank 1: 1st of 3 in (100, 200] narrowed to min 120: 120 + 80 * 1/3 = 146.67 -> 147.
    assert latency.percentile(hist, 0.10, 120, 4000) == 147


def test_one_sample_is_exact() -> None:
    assert latency.percentile(hist_of([7]), 0.5, 7, 7) == 7
    assert latency.percentile(hist_of([7]), 0.95, 7, 7) == 7


def test_overflow_bucket_uses_the_maximum() -> None:
    hist = hist_of([150_000_000, 300_000_000])
    # rank 1 of 2 in (1e8, inf) narrowed to [min 1.5e8, max 3e8]: 1.5e8 + 1.5e8 * 1/2
    assert latency.percentile(hist, 0.5, 150_000_000, 300_000_000) == 225_000_000


def test_empty_is_none_and_merge_adds() -> None:
    assert latency.percentile(latency.empty(), 0.5, 0, 0) is None
    merged = latency.empty()
    latency.merge(merged, hist_of(SAMPLES[:5]))
    latency.merge(merged, hist_of(SAMPLES[5:]))
    latency.merge(merged, [0, 0])  # a shorter (older) histogram adds nothing
    assert merged == hist_of(SAMPLES)
