"""An uplink in a process of its own, for the multi-process tests.

Run as `python -c "from tests.uplink.child import main; main()"`. It reads one JSON line on
stdin (the API URL and key, the spool, the uplink's limits: the key never goes in argv), prints
`ready`, waits for `go` on stdin (so several children start draining together), runs
`Uplink.run_until_drained` and prints one JSON line with what it did.
"""

from __future__ import annotations

import asyncio
import sys

import orjson

from km.settings import Settings
from km.uplink.backoff import BackoffPolicy
from km.uplink.run import Uplink, UplinkConfig

TUNABLE = ("breaker_failures", "breaker_open_s", "breaker_max_open_s", "sync_max_wait_s")


def main() -> None:
    job = orjson.loads(sys.stdin.readline())
    settings = Settings()
    settings.set("config_path", job["config_path"], "test")
    settings.set("api_url", job["url"], "test")
    settings.set("api_key", job["key"], "test")
    config = UplinkConfig(
        max_events=job.get("max_events", 100),
        max_bytes=job.get("max_bytes", 256 * 1024),
        lease_s=job.get("lease_s", 30.0),
        request_timeout_s=job.get("request_timeout_s", 10.0),
        idle_s=0.05,
        backoff=BackoffPolicy(base_s=0.02, cap_s=0.2),
        sync_max_failures=200,
        # Fault tests (an API killed or a database restarted) want a quick breaker.
        **{k: job[k] for k in TUNABLE if k in job},
    )
    uplink = Uplink(settings, job["spool"], config)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    if sys.stdin.readline().strip() != "go":
        return
    result = asyncio.run(uplink.run_until_drained())
    sys.stdout.write(
        orjson.dumps(
            {
                "sent": result.sent,
                "accepted": result.accepted,
                "duplicates": result.duplicates,
                "requests": result.requests,
            }
        ).decode()
        + "\n"
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
