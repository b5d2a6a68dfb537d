"""Interop checks against a WebSocket ECHO server, driven by the Python
``websockets`` library (asyncio implementation).

Usage: python websockets_client.py URL

The server at URL must echo text as text and binary as binary, answer pings
and echo close frames. Each check runs on its own connection with a 5 s
timeout and prints ``ok <name>`` or ``FAIL <name>: <why>``; the exit code is 1
if any check failed (2 on bad usage).

websockets offers permessage-deflate by default, so every check runs with
compression when the server accepts it, and the ``deflate-negotiated`` check
requires the server to accept it (Sec-WebSocket-Extensions in the handshake
response) and to echo a 100 KB compressible text exactly.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable

from websockets.asyncio.client import ClientConnection, connect

CHECK_TIMEOUT = 5.0
MAX_SIZE = 64 * 1024 * 1024

logging.getLogger("websockets").setLevel(logging.CRITICAL)


class CheckError(Exception):
    pass


def preview(data: str | bytes) -> str:
    if isinstance(data, bytes):
        head = data[:16].hex()
        return f"<{head}...>" if len(data) > 16 else f"<{head}>"
    return repr(data[:40] + "..." if len(data) > 40 else data)


def kind(data: str | bytes) -> str:
    if isinstance(data, str):
        return f"text of {len(data.encode('utf-8'))} bytes"
    return f"binary of {len(data)} bytes"


class Runner:
    def __init__(self, url: str) -> None:
        self.url = url
        self.conns: list[ClientConnection] = []
        self.failed = 0
        self.passed = 0

    async def connect(self) -> ClientConnection:
        try:
            ws = await connect(
                self.url,
                proxy=None,
                open_timeout=CHECK_TIMEOUT,
                close_timeout=2,
                ping_interval=None,
                max_size=MAX_SIZE,
            )
        except Exception as e:  # noqa: BLE001 - reported as the check's failure
            raise CheckError(f"connect: {type(e).__name__}: {e}") from e
        self.conns.append(ws)
        return ws

    async def cleanup(self) -> None:
        conns, self.conns = self.conns, []
        for ws in conns:
            try:
                await asyncio.wait_for(ws.close(), 1.0)
            except Exception:  # noqa: BLE001
                pass
            if ws.transport is not None:
                ws.transport.abort()

    async def run(self, name: str, fn: Callable[[Runner], Awaitable[str | None]]) -> None:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT):
                note = await fn(self)
        except TimeoutError:
            self.fail(name, f"timed out after {CHECK_TIMEOUT:g} s")
        except CheckError as e:
            self.fail(name, str(e))
        except Exception as e:  # noqa: BLE001
            self.fail(name, f"{type(e).__name__}: {e}")
        else:
            self.passed += 1
            print(f"ok {name} ({note})" if note else f"ok {name}", flush=True)
        finally:
            await self.cleanup()

    def fail(self, name: str, why: str) -> None:
        self.failed += 1
        print(f"FAIL {name}: {why}", flush=True)


async def recv(ws: ClientConnection) -> str | bytes:
    try:
        return await ws.recv()
    except Exception as e:  # ConnectionClosed and friends
        raise CheckError(f"while waiting for the echo: {type(e).__name__}: {e}") from e


async def expect_echo(ws: ClientConnection, want: str | bytes) -> None:
    got = await recv(ws)
    if type(got) is not type(want):
        raise CheckError(f"sent {kind(want)}, got {kind(got)}")
    if got != want:
        if isinstance(want, bytes):
            at = next(
                (i for i, (a, b) in enumerate(zip(want, got)) if a != b),
                min(len(want), len(got)),
            )
            raise CheckError(
                f"binary mismatch: sent {len(want)} bytes, got {len(got)} bytes, "
                f"first difference at offset {at}"
            )
        raise CheckError(f"text mismatch: sent {kind(want)} {preview(want)}, got {kind(got)} {preview(got)}")


# --- checks ---------------------------------------------------------------------


async def text_hello(r: Runner) -> None:
    ws = await r.connect()
    await ws.send("hello")
    await expect_echo(ws, "hello")


async def text_utf8(r: Runner) -> None:
    ws = await r.connect()
    euro = "\u20ac"  # one 3-byte character
    assert len(euro.encode("utf-8")) == 3
    await ws.send(euro)
    await expect_echo(ws, euro)
    mixed = "h\u00e9llo w\u00f6rld \u2713 \u65e5\u672c \U0001d11e"  # 2-, 3- and 4-byte sequences
    await ws.send(mixed)
    await expect_echo(ws, mixed)


def binary(size: int) -> Callable[[Runner], Awaitable[None]]:
    async def check(r: Runner) -> None:
        ws = await r.connect()
        payload = os.urandom(size)
        await ws.send(payload)
        await expect_echo(ws, payload)

    return check


async def fragmented_text(r: Runner) -> None:
    ws = await r.connect()
    parts = ["frag", "mented ", "\u00fcber ", "message \u2603", "!"]

    async def fragments() -> AsyncIterator[str]:
        for p in parts:
            yield p
            await asyncio.sleep(0)

    await ws.send(fragments())
    await expect_echo(ws, "".join(parts))


async def burst(r: Runner) -> None:
    ws = await r.connect()
    sent: list[str | bytes] = []
    for i in range(100):
        # Alternate text and binary so the order and the type are both checked.
        if i % 2 == 0:
            m: str | bytes = f"burst message {i}"
        else:
            m = i.to_bytes(4, "big") + bytes([i]) * ((i % 7) * 100)
        sent.append(m)
        await ws.send(m)
    for i, want in enumerate(sent):
        got = await recv(ws)
        if type(got) is not type(want) or got != want:
            raise CheckError(f"message {i}: want {kind(want)} {preview(want)}, got {kind(got)} {preview(got)}")


async def ping_pong(r: Runner) -> None:
    ws = await r.connect()
    # The waiter resolves only when a pong carrying the same payload arrives.
    waiter = await ws.ping(b"switchboard-ping")
    try:
        await waiter
    except Exception as e:  # noqa: BLE001
        raise CheckError(f"no pong with the ping's payload: {type(e).__name__}: {e}") from e


async def close_4001(r: Runner) -> str:
    ws = await r.connect()
    await ws.close(code=4001, reason="bye")
    # After a client-initiated close, close_code is the code of the close frame
    # the server sent back (1006 if none arrived).
    if ws.close_code != 4001:
        raise CheckError(f"close_code {ws.close_code} (reason {ws.close_reason!r}), want 4001")
    return f"reason {ws.close_reason!r}"


async def deflate_negotiated(r: Runner) -> str:
    ws = await r.connect()
    assert ws.response is not None
    ext = ws.response.headers.get("Sec-WebSocket-Extensions")
    names = [e.split(";")[0].strip() for e in (ext or "").split(",")]
    if "permessage-deflate" not in names:
        raise CheckError(f"permessage-deflate not negotiated (Sec-WebSocket-Extensions={ext!r})")
    unit = "The quick brown fox jumps over the lazy dog. 0123456789 "
    text = (unit * (100 * 1024 // len(unit) + 1))[: 100 * 1024]
    await ws.send(text)
    await expect_echo(ws, text)
    return f"Sec-WebSocket-Extensions {ext!r}"


CHECKS: list[tuple[str, Callable[[Runner], Awaitable[str | None]]]] = [
    ("text-hello", text_hello),
    ("text-utf8", text_utf8),
    *[(f"binary-{n}", binary(n)) for n in (0, 125, 126, 65535, 65536, 1024 * 1024)],
    ("fragmented-text", fragmented_text),
    ("burst-100-in-order", burst),
    ("ping-pong", ping_pong),
    ("close-4001", close_4001),
    ("deflate-negotiated", deflate_negotiated),
]


async def main(url: str) -> int:
    r = Runner(url)
    for name, fn in CHECKS:
        await r.run(name, fn)
    print(f"{r.passed} passed, {r.failed} failed", flush=True)
    return 1 if r.failed else 0


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python websockets_client.py URL", file=sys.stderr)
        sys.exit(2)
    sys.exit(asyncio.run(main(args[0])))
