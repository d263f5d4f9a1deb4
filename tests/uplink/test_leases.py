"""Leases in a real spool: claims by seq within bounds, no overlap between owners, expiry,
outcomes written only under our own lease, shared uplink state, migration 2."""

from __future__ import annotations

import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from km.events import IN_FLIGHT, PENDING, QUARANTINED, SENT
from km.spool.errors import SpoolMissing
from km.spool.schema import MIGRATIONS, SCHEMA_VERSION, migrate
from km.uplink.leases import LeaseStore
from km.uplink.secret import Scrubber
from tests.uplink.helpers import fill_spool, make_events, payload_for, spool_rows

KEY = "km_live_" + "S" * 32
S = 1_000_000_000


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    path = tmp_path / "spool.db"
    fill_spool(path, make_events(50))
    return path


@pytest.fixture
def store(spool: Path) -> Iterator[LeaseStore]:
    s = LeaseStore.open(str(spool), owner="me", lease_s=60.0, scrub=Scrubber(KEY))
    try:
        yield s
    finally:
        s.close()


def lease_columns(path: Path) -> dict[int, tuple[int, str | None, int | None, int]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT seq, state, lease_owner, lease_until_ns, attempts FROM events")
        return {seq: (state, owner, until, attempts) for seq, state, owner, until, attempts in rows}
    finally:
        conn.close()


def test_missing_spool_is_not_created(tmp_path: Path) -> None:
    with pytest.raises(SpoolMissing):
        LeaseStore.open(str(tmp_path / "nothing.db"))
    assert not (tmp_path / "nothing.db").exists()


def test_claims_oldest_first_with_row_contents(spool: Path, store: LeaseStore) -> None:
    now = time.time_ns()
    rows = store.claim(10, 1 << 20, now_ns=now)
    assert [r.seq for r in rows] == list(range(1, 11))
    assert [r.payload for r in rows] == [payload_for(i) for i in range(10)]
    assert rows[0].host and rows[0].km_version  # from the session
    assert rows[0].truncated is True and rows[1].latency_us == 1
    leases = lease_columns(spool)
    assert all(leases[r.seq][:3] == (IN_FLIGHT, "me", now + 60 * S) for r in rows)
    assert [r.seq for r in store.claim(10, 1 << 20, now_ns=now)] == list(range(11, 21))


def test_claim_respects_the_byte_budget(tmp_path: Path) -> None:
    path = tmp_path / "big.db"
    fill_spool(path, make_events(10, payload=lambda n: b"x" * 10_000))
    store = LeaseStore.open(str(path), owner="me")
    try:
        assert [r.seq for r in store.claim(100, 30_000)] == [1, 2]  # ~13.6 kB each, estimated
        assert [r.seq for r in store.claim(100, 1000)] == [3]  # always at least one
        assert len(store.claim(100, 1 << 20)) == 7
    finally:
        store.close()


def test_two_owners_never_overlap(spool: Path) -> None:
    a = LeaseStore.open(str(spool), owner="a")
    b = LeaseStore.open(str(spool), owner="b")
    try:
        got_a, got_b = [], []
        while True:
            ra, rb = a.claim(7, 1 << 20), b.claim(7, 1 << 20)
            if not ra and not rb:
                break
            got_a += [r.seq for r in ra]
            got_b += [r.seq for r in rb]
        assert not set(got_a) & set(got_b)
        assert sorted(got_a + got_b) == list(range(1, 51))
        # a cannot settle b's rows
        assert a.mark_sent(got_b) == 0
        assert a.release(got_b, "x") == 0
        assert a.quarantine([(s, "x") for s in got_b]) == 0
        assert b.mark_sent(got_b) == len(got_b)
    finally:
        a.close()
        b.close()


def test_owners_claiming_at_once_lease_each_row_once_and_return_all_they_leased(
    tmp_path: Path,
) -> None:
    # A claim chooses its rows from a read snapshot and leases them afterwards, under the
    # write lock: rows another owner took in between must be neither leased twice nor left
    # leased to an owner that was not handed them.
    path = tmp_path / "spool.db"
    fill_spool(path, make_events(600))
    got: dict[str, list[int]] = {name: [] for name in ("a", "b", "c")}
    errors: list[BaseException] = []
    start = threading.Barrier(len(got))

    def claim_all(name: str) -> None:
        try:
            store = LeaseStore.open(str(path), owner=name)  # a connection per thread
            try:
                start.wait(10)
                for _ in range(1000):  # bounded: 600 rows, one at least a round while any left
                    rows = store.claim(5, 1 << 20)
                    got[name] += [r.seq for r in rows]
                    if not rows and not store.backlog().deliverable:
                        return
            finally:
                store.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=claim_all, args=(name,)) for name in got]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    claimed = [seq for seqs in got.values() for seq in seqs]
    assert sorted(claimed) == list(range(1, 601))  # each once, none left
    db = sqlite3.connect(path)
    try:
        leased = dict(
            db.execute("SELECT seq, lease_owner FROM events WHERE state = ?", (IN_FLIGHT,))
        )
    finally:
        db.close()
    assert leased == {seq: name for name, seqs in got.items() for seq in seqs}


def test_expired_lease_is_taken_over_and_the_late_owner_changes_nothing(spool: Path) -> None:
    dead = LeaseStore.open(str(spool), owner="dead", lease_s=1.0)
    alive = LeaseStore.open(str(spool), owner="alive", lease_s=60.0)
    try:
        now = time.time_ns()
        taken = [r.seq for r in dead.claim(5, 1 << 20, now_ns=now)]
        assert alive.backlog(now).leased == 5
        # Still leased: the next claim skips them.
        assert [r.seq for r in alive.claim(3, 1 << 20, now_ns=now + S // 2)] == [6, 7, 8]
        later = now + 2 * S
        backlog = alive.backlog(later)
        assert (backlog.pending, backlog.expired, backlog.leased) == (42, 5, 3)
        assert backlog.deliverable == 47
        retaken = alive.claim(5, 1 << 20, now_ns=later)
        assert [r.seq for r in retaken] == taken  # oldest first: the expired ones
        assert dead.mark_sent(taken) == 0  # too late: the rows are alive's now
        assert alive.mark_sent(taken) == 5
    finally:
        dead.close()
        alive.close()


def test_expired_lease_nobody_took_can_still_be_settled(spool: Path, store: LeaseStore) -> None:
    rows = store.claim(3, 1 << 20, now_ns=time.time_ns() - 120 * S)
    assert store.mark_sent([r.seq for r in rows]) == 3


def test_outcomes(spool: Path, store: LeaseStore) -> None:
    rows = store.claim(6, 1 << 20)
    seqs = [r.seq for r in rows]
    settled = store.settle(
        sent=seqs[:2],
        quarantined=[(seqs[2], f"id: bad (key {KEY})")],
        released=seqs[3:5],
        error=f"HTTP 503 for {KEY}",
    )
    assert (settled.sent, settled.quarantined, settled.released) == (2, 1, 2)
    assert store.release([seqs[5]], None, attempted=False) == 1
    by_seq = {i + 1: r for i, r in enumerate(spool_rows(spool))}
    assert [by_seq[s][1] for s in seqs] == [SENT, SENT, QUARANTINED, PENDING, PENDING, PENDING]
    assert by_seq[seqs[2]][2] == "id: bad (key km_live_SSSS…)"
    assert by_seq[seqs[3]][2] == "HTTP 503 for km_live_SSSS…"
    assert [by_seq[s][4] for s in seqs] == [0, 0, 1, 1, 1, 0]
    assert all(KEY not in (r[2] or "") for r in by_seq.values())
    leases = lease_columns(spool)
    assert all(leases[s][1:3] == (None, None) for s in seqs)
    # released rows come back first
    assert [r.seq for r in store.claim(3, 1 << 20)] == [seqs[3], seqs[4], seqs[5]]
    assert [r.attempts for r in store.claim(1, 1 << 20)] == [0]


def test_release_all_gives_back_only_ours(spool: Path, store: LeaseStore) -> None:
    other = LeaseStore.open(str(spool), owner="other")
    try:
        store.claim(4, 1 << 20)
        other.claim(4, 1 << 20)
        assert store.release_all() == 4
        backlog = store.backlog()
        assert (backlog.pending, backlog.leased) == (46, 4)
    finally:
        other.close()


def test_shared_state_is_scrubbed(store: LeaseStore) -> None:
    store.put_state("last_error", f"echoed {KEY}", at_ns=5)
    assert store.get_state("last_error") == ("echoed km_live_SSSS…", None, 5)
    store.put_state("breaker", "open", 123, at_ns=6)
    store.put_state("breaker", "closed", None, at_ns=7)
    assert store.get_state("breaker") == ("closed", None, 7)
    store.delete_state("breaker")
    assert store.get_state("breaker") is None


def test_idle_claim_takes_no_write_lock(spool: Path, store: LeaseStore) -> None:
    store.mark_sent([r.seq for r in store.claim(100, 1 << 20)])
    blocker = sqlite3.connect(str(spool), isolation_level=None, timeout=0.1)
    try:
        blocker.execute("BEGIN IMMEDIATE")  # another km holds the write lock
        assert store.claim(10, 1 << 20) == []  # answers at once, nothing to do
        blocker.execute("ROLLBACK")
    finally:
        blocker.close()


def test_opening_migrates_a_version_1_spool(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(str(path), isolation_level=None)
    try:
        migrate(conn, str(path), MIGRATIONS[:1])
    finally:
        conn.close()
    store = LeaseStore.open(str(path))
    try:
        store.put_state("last_error", "x")
    finally:
        store.close()
    conn = sqlite3.connect(str(path))
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 2
    finally:
        conn.close()


def test_renew_extends_only_our_live_leases(spool: Path) -> None:
    mine = LeaseStore.open(str(spool), owner="mine", lease_s=10.0)
    other = LeaseStore.open(str(spool), owner="other", lease_s=10.0)
    try:
        now = time.time_ns()
        ours = [r.seq for r in mine.claim(3, 1 << 20, now_ns=now)]
        theirs = [r.seq for r in other.claim(2, 1 << 20, now_ns=now)]
        assert mine.renew(ours + theirs, now_ns=now + 5 * S) == 3
        leases = lease_columns(spool)
        assert {leases[s][2] for s in ours} == {now + 15 * S}
        assert {leases[s][2] for s in theirs} == {now + 10 * S}
        mine.mark_sent(ours)
        assert mine.renew(ours) == 0  # settled rows are no lease of anyone's
    finally:
        mine.close()
        other.close()


OWNERS = ("a", "b", "c")
Op = tuple[str, str, int, int]  # (kind, owner, n, clock step)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(("claim", "sent", "release", "quarantine")),
            st.sampled_from(OWNERS),
            st.integers(1, 6),
            st.integers(0, 3),
        ),
        max_size=40,
    )
)
def test_leases_against_a_model(ops: list[Op]) -> None:
    """Random claims and outcomes by three owners, the clock jumping past leases now and then,
    checked against a plain model: claims return the lowest deliverable seqs, never a row under
    another owner's live lease; outcomes change a row only while its lease is the writer's."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spool.db"
        fill_spool(path, make_events(20))
        stores = {o: LeaseStore.open(str(path), owner=o, lease_s=2.0) for o in OWNERS}
        # seq -> (state, owner, lease_until)
        model: dict[int, tuple[int, str | None, int]] = {
            s: (PENDING, None, 0) for s in range(1, 21)
        }
        held: dict[str, list[int]] = {o: [] for o in OWNERS}
        now = 10**18
        try:
            for kind, owner, n, step in ops:
                now += step * S  # a step of 2 s or more lets every lease expire
                store = stores[owner]
                if kind == "claim":
                    got = [r.seq for r in store.claim(n, 1 << 20, now_ns=now)]
                    free = sorted(
                        s for s, (state, _, until) in model.items()
                        if state == PENDING or (state == IN_FLIGHT and until <= now)
                    )  # fmt: skip
                    assert got == free[:n]
                    for s in got:
                        model[s] = (IN_FLIGHT, owner, now + 2 * S)
                    # An owner may re-claim its own expired lease: hold each seq once.
                    held[owner] += [s for s in got if s not in held[owner]]
                    continue
                seqs, held[owner] = held[owner][:n], held[owner][n:]
                ours = [s for s in seqs if model[s][0] == IN_FLIGHT and model[s][1] == owner]
                if kind == "sent":
                    assert store.mark_sent(seqs) == len(ours)
                    new_state = SENT
                elif kind == "release":
                    assert store.release(seqs, "x") == len(ours)
                    new_state = PENDING
                else:
                    assert store.quarantine([(s, "r") for s in seqs]) == len(ours)
                    new_state = QUARANTINED
                for s in ours:
                    model[s] = (new_state, None, 0)
            rows = {seq: state for seq, (state, *_rest) in lease_columns(path).items()}
            assert rows == {s: state for s, (state, _, _) in model.items()}
        finally:
            for store in stores.values():
                store.close()
