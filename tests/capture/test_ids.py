"""UUIDv7: layout, ordering within one millisecond, counter overflow, clocks that step back."""

from __future__ import annotations

import copy
import threading
import time
import uuid

from km.capture.ids import Uuid7Generator, new_session_id, uuid7

MS = 1_000_000  # ns


def fields(text: str) -> tuple[int, int, int]:
    """(unix ms, rand_a, rand_b) of a UUIDv7, checking version and variant."""
    u = uuid.UUID(text)
    assert str(u) == text  # canonical lower-case 8-4-4-4-12
    assert u.version == 7
    assert u.variant == uuid.RFC_4122
    n = u.int
    return n >> 80, (n >> 64) & 0xFFF, n & ((1 << 62) - 1)


def test_layout_and_timestamp() -> None:
    before = time.time_ns() // 1_000_000
    text = uuid7()
    after = time.time_ns() // 1_000_000
    ms, _, _ = fields(text)
    assert before <= ms <= after + 1  # +1: the counter may have borrowed a millisecond
    assert len(text) == 36


def test_session_id_is_a_uuid7() -> None:
    fields(new_session_id())
    assert new_session_id() != new_session_id()


def test_many_ids_strictly_increase_and_are_unique() -> None:
    ids = [uuid7() for _ in range(20_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert [uuid.UUID(i).int for i in ids] == sorted(uuid.UUID(i).int for i in ids)


def test_same_millisecond_uses_the_counter() -> None:
    gen = Uuid7Generator(clock_ns=lambda: 1_700_000_000_000 * MS + 999_999)
    ids = [gen() for _ in range(100)]
    parsed = [fields(i) for i in ids]
    assert {ms for ms, _, _ in parsed} == {1_700_000_000_000}
    counters = [a for _, a, _ in parsed]
    assert counters == list(range(counters[0], counters[0] + 100))
    assert counters[0] < 2048  # seeded below half, leaving room to count
    assert ids == sorted(ids)


def test_counter_overflow_borrows_the_next_millisecond() -> None:
    gen = Uuid7Generator(clock_ns=lambda: 5000 * MS, random_bytes=lambda n: b"\xff" * n)
    ids = [gen() for _ in range(2050)]
    parsed = [fields(i) for i in ids]
    assert parsed[0][:2] == (5000, 2047)
    assert parsed[2048][:2] == (5000, 4095)  # 2049 ids fit in the millisecond
    assert parsed[2049][:2] == (5001, 2047)  # borrowed, counter reseeded
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_clock_stepping_back_stays_monotonic() -> None:
    times = iter([10_000, 10_005, 9_000, 9_000, 10_005, 10_006])
    gen = Uuid7Generator(clock_ns=lambda: next(times) * MS)
    ids = [gen() for _ in range(6)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 6
    assert [fields(i)[0] for i in ids] == [10_000, 10_005, 10_005, 10_005, 10_005, 10_006]


def test_rand_b_comes_from_the_random_source() -> None:
    gen = Uuid7Generator(clock_ns=lambda: MS, random_bytes=lambda n: bytes(range(n)))
    _, _, rand_b = fields(gen())
    assert rand_b == int.from_bytes(bytes(range(8)), "big") & ((1 << 62) - 1)


def test_threads_get_unique_increasing_ids() -> None:
    gen = Uuid7Generator()
    results: list[list[str]] = [[] for _ in range(4)]

    def work(out: list[str]) -> None:
        for _ in range(5000):
            out.append(gen())

    threads = [threading.Thread(target=work, args=(out,)) for out in results]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    everything = [i for out in results for i in out]
    assert len(set(everything)) == 20_000
    for out in results:
        assert out == sorted(out)


def test_pool_serves_fresh_bytes_and_a_fork_discards_them() -> None:
    gen = Uuid7Generator(clock_ns=lambda: MS)
    first = {fields(gen())[2] for _ in range(1000)}  # crosses several 4 KiB pool refills
    assert len(first) == 1000
    parent_pool = copy.copy(gen._random_bytes)  # what a forked child would inherit
    gen._after_fork_in_child()
    child = [gen._random_bytes(10) for _ in range(5)]
    parent = [parent_pool(10) for _ in range(5)]
    assert child != parent
    assert gen._lock.acquire(blocking=False)  # a fresh lock, even if the old one was held
    gen._lock.release()


def test_default_generator_is_shared() -> None:
    a, b = uuid7(), new_session_id()
    assert a < b


def test_many_makes_what_as_many_calls_make() -> None:
    def gen() -> Uuid7Generator:
        return Uuid7Generator(clock_ns=lambda: 7000 * MS, random_bytes=lambda n: b"\xa7" * n)

    one_by_one = gen()
    expected = [one_by_one() for _ in range(5000)]  # crosses two counter overflows
    batched = gen()
    got = batched.many(1) + batched.many(2999) + batched.many(0) + batched.many(2000)
    assert got == expected
    assert batched() == one_by_one()  # and the state goes on alike


def test_many_with_the_real_clock_and_random_bytes() -> None:
    many = uuid7.many  # type: ignore[attr-defined]
    ids = [*many(3000), uuid7(), *many(10)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    for text in ids[:50]:
        fields(text)
