"""Peak RSS of km (forwarding) + its capture fork on an established session, with and without
the background uplink draining a 200,000-event backlog into a local `km serve`
(benchmarks.uplink_busy), variants interleaved (issue 15 item 3).

usage: .venv/bin/python -m benchmarks.rss_busy ROUNDS NAME=SRC [NAME=SRC ...]
  SRC: a km source tree put first on PYTHONPATH, or "-" for this tree. A NAME starting with
  `nouplink` runs without an API configured. Example: `... rss_busy 3 nouplink=- busy=-`.
Every round's spool is new but lives in one directory, so the redaction scanner compiled by an
untimed first session is loaded by the others, as on a machine where km has run before. The
session: `km /bin/cat`, ~2,000 1 KB lines/s, measured for 8 s after the uplink's first
delivered batch.
"""

import os
import subprocess
import sys
import tempfile
import time

from benchmarks.uplink_busy import BusyUplink, sent

WT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BUSY_S = 8.0  # measure this long after the first delivered batch


def status(pid: int, field: str) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def forks(pid: int) -> list[int]:
    me = _read(f"/proc/{pid}/cmdline")
    kids = _read(f"/proc/{pid}/task/{pid}/children").split()
    return [int(k) for k in kids if _read(f"/proc/{int(k)}/cmdline") == me]


def breakdown(pid: int) -> None:
    print(_read(f"/proc/{pid}/smaps_rollup").decode())
    maps: dict[str, int] = {}
    name = ""
    for line in _read(f"/proc/{pid}/smaps").decode().splitlines():
        parts = line.split()
        if "-" in parts[0] and len(parts[0]) > 8 and not parts[0].endswith(":"):
            name = parts[5] if len(parts) > 5 else "[anon]"
        elif parts[0] == "Rss:":
            maps[name] = maps.get(name, 0) + int(parts[1])
    for k, v in sorted(maps.items(), key=lambda x: -x[1])[:25]:
        print(f"   {v / 1024:6.1f} MB  {k}")
    print("threads:", os.listdir(f"/proc/{pid}/task").__len__())


def one(busy: BusyUplink, workdir: str, name: str, src: str, n: int) -> dict[str, float]:
    spool = os.path.join(workdir, f"{name}-{n}.db")
    busy.spool(spool)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KM_")}
    env.update(KM_CONFIG=os.path.join(workdir, "none.toml"), KM_SPOOL=spool)
    if not name.startswith("nouplink"):
        env.update(busy.env())
    if src != "-":
        env["PYTHONPATH"] = src
    p = subprocess.Popen(
        [f"{WT}/.venv/bin/km", "/bin/cat"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    assert p.stdin and p.stdout
    line = b'{"jsonrpc":"2.0","method":"notifications/x","params":{"p":"' + b"x" * 900 + b'"}}\n'
    try:
        p.stdin.write(line)
        p.stdin.flush()
        p.stdout.readline()
        deadline = time.monotonic() + 60
        while sent(spool) == 0 and not name.startswith("nouplink"):
            assert time.monotonic() < deadline, "the uplink sent nothing in 60 s"
            time.sleep(0.05)
        cap = forks(p.pid)
        t0, n0 = time.monotonic(), sent(spool)
        rss_max = 0.0
        while time.monotonic() - t0 < BUSY_S:
            for _ in range(20):  # ~2,000 lines/s of session traffic meanwhile
                p.stdin.write(line)
                p.stdin.flush()
                p.stdout.readline()
            rss_max = max(rss_max, status(p.pid, "VmRSS") + sum(status(c, "VmRSS") for c in cap))
            time.sleep(0.01)
        rate = (sent(spool) - n0) / (time.monotonic() - t0)
        if os.environ.get("BREAKDOWN"):
            breakdown(cap[0])
        fwd = status(p.pid, "VmHWM")
        capture = sum(status(c, "VmHWM") for c in cap)
        return {"fwd": fwd, "cap": capture, "sum": fwd + capture, "rss_max": rss_max,
                "ev_s": rate}  # fmt: skip
    finally:
        p.stdin.close()
        p.wait(60)


def main() -> None:
    rounds = int(sys.argv[1])
    variants = [a.split("=", 1) for a in sys.argv[2:]]
    workdir = tempfile.mkdtemp(prefix="lean-uplink-rss-")
    busy = BusyUplink(workdir)
    results: dict[str, list[dict[str, float]]] = {name: [] for name, _ in variants}
    try:
        # One untimed session first: it compiles the redaction scanner the others load.
        one(busy, workdir, "nouplink-warmup", "-", -1)
        for n in range(rounds):
            for name, src in variants:
                r = one(busy, workdir, name, src, n)
                results[name].append(r)
                print(f"round {n} {name:14s} " + "  ".join(f"{k} {v:7.1f}" for k, v in r.items()),
                      flush=True)  # fmt: skip
    finally:
        busy.close()
    print("median over rounds (MB peak = VmHWM; ev_s = events/s delivered while measured):")
    for name, rs in results.items():
        med = {k: sorted(r[k] for r in rs)[len(rs) // 2] for k in rs[0]}
        print(f"  {name:14s} " + "  ".join(f"{k} {v:7.1f}" for k, v in med.items()))


if __name__ == "__main__":
    main()
