"""Baseline: the stdio pass-through people write by hand with asyncio streams. Captures nothing.

    python benchmarks/relays/asyncio_relay.py <server command...>

Spawns the server with pipes, copies our stdin to its stdin and its stdout to our stdout in
64 KiB reads, closes its stdin at our EOF and exits with its exit code. The server's stderr is
inherited. Like most hand-written relays, it needs its stdin and stdout to be pipes or sockets
(asyncio's pipe transports refuse regular files). It exists so the end-to-end benchmark can
tell what km's capture costs on top of the cheapest relay one can write in Python.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys

CHUNK = 65536  # bytes per read, in both directions


async def _stdio_streams() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=CHUNK)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, sys.stdout
    )
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    return reader, writer


async def _copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter, close_at_eof: bool) -> None:
    try:
        while chunk := await src.read(CHUNK):
            dst.write(chunk)
            await dst.drain()
        if close_at_eof:
            dst.close()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the other side went away; the server's exit decides the outcome


async def relay(argv: list[str]) -> int:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdin is not None and proc.stdout is not None
    stdin, stdout = await _stdio_streams()
    upstream = asyncio.create_task(_copy(stdin, proc.stdin, close_at_eof=True))
    await _copy(proc.stdout, stdout, close_at_eof=False)
    code = await proc.wait()
    upstream.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await upstream
    return code


def main() -> int:
    if len(sys.argv) < 2:
        print("usage: asyncio_relay.py <server command...>", file=sys.stderr)
        return 2
    return asyncio.run(relay(sys.argv[1:]))


if __name__ == "__main__":
    sys.exit(main())
