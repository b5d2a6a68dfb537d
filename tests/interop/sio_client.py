"""Interop scenarios for python-socketio's clients (PyPI `python-socketio`):
the sync `socketio.Client` and the asyncio `socketio.AsyncClient`, against a
Socket.IO server with the namespaces and handlers of section 2 of
shared/conformance-contract.md (sio-server.mjs, or conformance-server's
/socket.io/).

Usage: python sio_client.py URL SCENARIO --mode sync|async
                            --transport websocket|polling

Scenarios:
  echo     message -> message-back; acks of echo and message-with-ack
           (`call` for one value, `emit` with a callback for several)
  binary   bytes (every byte value, 64 KiB random, nested in objects and
           lists, several per event) come back byte-exact
  auth     the `auth` event carries the auth sent; /admin refuses a client
           without the token (connect_error "not authorized") and accepts
           {"token": "secret"} (`info` on /admin)
  rooms    three clients: join, room-size, a broadcast reaches the other
           members of the room only

The scenarios are written once, as coroutines; in sync mode each client call
runs in a worker thread. Prints one JSON object per line on stdout, the last
one {"event": "result", "ok": true|false, ...}; exits 0 on success, 1 on
failure, 2 on bad usage. The run is bounded by a 20 s timeout.
"""

import argparse
import asyncio
import json
import os
import sys
import threading
import time

import socketio

TIMEOUT_S = 20
ACK_S = 3
QUIET_S = 0.3


def out(obj):
    print(json.dumps(obj), flush=True)


class Failure(Exception):
    pass


def plain(value):
    """Bytes as {"binary": hex}, so values compare and print alike."""
    if isinstance(value, (bytes, bytearray)):
        return {"binary": bytes(value).hex()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def short(value):
    text = json.dumps(plain(value))
    return text if len(text) <= 200 else f"{text[:200]}... ({len(text)} chars)"


def expect_same(got, want, what):
    if plain(got) != plain(want):
        raise Failure(f"{what}: expected {short(want)}, got {short(got)}")


class Conn:
    """One client (sync or async) and what it received, per event."""

    def __init__(self, mode, transport, url):
        self.mode = mode
        self.transport = transport
        self.url = url
        self.lock = threading.Lock()
        self.received = {}
        self.connect_errors = []
        if mode == "sync":
            self.sio = socketio.Client(reconnection=False)
        else:
            self.sio = socketio.AsyncClient(reconnection=False)

    def listen(self, event, namespace="/"):
        """Records every `event` on `namespace`."""
        key = (namespace, event)
        self.received.setdefault(key, [])

        def handler(*args):
            with self.lock:
                self.received[key].append(list(args))

        if self.mode == "async":

            async def async_handler(*args):
                handler(*args)

            self.sio.on(event, async_handler, namespace=namespace)
        else:
            self.sio.on(event, handler, namespace=namespace)

    def got(self, event, namespace="/"):
        with self.lock:
            return list(self.received.get((namespace, event), []))

    async def wait_for(self, event, count=1, namespace="/"):
        deadline = time.monotonic() + ACK_S
        while len(self.got(event, namespace)) < count:
            if time.monotonic() > deadline:
                raise Failure(f"only {len(self.got(event, namespace))} {event} events")
            await asyncio.sleep(0.01)
        return self.got(event, namespace)

    async def run(self, method, *args, **kwargs):
        if self.mode == "sync":
            return await asyncio.to_thread(getattr(self.sio, method), *args, **kwargs)
        return await getattr(self.sio, method)(*args, **kwargs)

    async def connect(self, namespaces=("/",), auth=None):
        for nsp in namespaces:
            self.listen("auth", nsp)
            self.listen("message-back", nsp)

            def on_error(data, nsp=nsp):
                with self.lock:
                    self.connect_errors.append((nsp, data))

            if self.mode == "async":

                async def async_on_error(data, nsp=nsp):
                    on_error(data, nsp)

                self.sio.on("connect_error", async_on_error, namespace=nsp)
            else:
                self.sio.on("connect_error", on_error, namespace=nsp)
        await self.run(
            "connect",
            self.url,
            auth=auth,
            transports=[self.transport],
            namespaces=list(namespaces),
            wait_timeout=5,
        )
        transport = self.sio.transport()
        if transport != self.transport:
            raise Failure(f"connected over {transport}, not {self.transport}")

    async def call(self, event, *args, namespace="/"):
        """An ack round trip with `call`: the single value acked."""
        data = args[0] if len(args) == 1 else tuple(args)
        return await self.run("call", event, data, namespace=namespace, timeout=ACK_S)

    async def ack(self, event, *args, namespace="/"):
        """An ack round trip with `emit(callback=...)`: every value acked."""
        done = threading.Event()
        answer = []

        def callback(*values):
            answer.extend(values)
            done.set()

        await self.run("emit", event, tuple(args), namespace=namespace, callback=callback)
        deadline = time.monotonic() + ACK_S
        while not done.is_set():
            if time.monotonic() > deadline:
                raise Failure(f"no ack for {event}")
            await asyncio.sleep(0.01)
        return answer

    async def emit(self, event, *args, namespace="/"):
        await self.run("emit", event, tuple(args), namespace=namespace)

    async def disconnect(self):
        try:
            await self.run("disconnect")
        except Exception:  # noqa: BLE001 - best effort at the end
            pass


async def connected(args, namespaces=("/",), auth=None):
    conn = Conn(args.mode, args.transport, args.url)
    await conn.connect(namespaces, auth)
    out({"event": "connected", "sid": conn.sio.get_sid(namespaces[0]), "transport": conn.sio.transport()})
    return conn


async def message_back(conn, *values):
    before = len(conn.got("message-back"))
    await conn.emit("message", *values)
    got = await conn.wait_for("message-back", before + 1)
    expect_same(got[before], list(values), "message-back")


async def echo(args, conns):
    conn = await connected(args)
    conns.append(conn)
    await message_back(conn, "x", 1, {"k": [True, None]})
    await message_back(conn, "h\u00e9llo \u2713 \U0001F600")
    expect_same(await conn.call("echo", "hello"), "hello", "call echo")
    expect_same(await conn.call("message-with-ack", {"a": [1, 2]}), {"a": [1, 2]}, "call message-with-ack")
    expect_same(await conn.ack("echo", "hello", 42, {"a": [1, None]}), ["hello", 42, {"a": [1, None]}], "echo ack")
    expect_same(await conn.ack("echo"), [], "echo with no arguments")
    return {"transport": conn.sio.transport()}


async def binary(args, conns):
    conn = await connected(args)
    conns.append(conn)
    every = bytes(range(256))
    big = os.urandom(64 * 1024)
    expect_same(await conn.call("echo", every), every, "echo of 256 bytes")
    expect_same(await conn.call("echo", big), big, "echo of 64 KiB")
    nested = {"name": "n", "data": every[:10], "list": [big[:100], "text", {"deep": b"\x00"}]}
    expect_same(await conn.ack("echo", nested, "after", every[200:]), [nested, "after", every[200:]], "nested binary")
    await message_back(conn, b"\x01\x02\x03", "mid", b"\x04\x05\x06")
    return {"transport": conn.sio.transport()}


async def auth(args, conns):
    token = {"token": "py", "nested": {"list": [1, "two", None]}}
    conn = await connected(args, auth=token)
    conns.append(conn)
    got = await conn.wait_for("auth")
    expect_same(got[0], [token], "the auth event")

    refused = Conn(args.mode, args.transport, args.url)
    conns.append(refused)
    try:
        await refused.connect(("/admin",))
        raise Failure("/admin accepted a client without the token")
    except socketio.exceptions.ConnectionError:
        pass
    errors = [data for nsp, data in refused.connect_errors if nsp == "/admin"]
    if not errors:
        raise Failure("no connect_error for /admin")
    message = errors[0].get("message") if isinstance(errors[0], dict) else errors[0]
    if message != "not authorized":
        raise Failure(f"/admin refusal: {short(errors[0])}")
    out({"event": "refused", "message": message})

    admin_auth = {"token": "secret"}
    admin = await connected(args, namespaces=("/admin",), auth=admin_auth)
    conns.append(admin)
    info = await admin.call("info", namespace="/admin")
    expect_same(info, {"id": admin.sio.get_sid("/admin"), "nsp": "/admin", "auth": admin_auth}, "info on /admin")
    expect_same(await admin.call("echo", "admin", namespace="/admin"), "admin", "echo on /admin")
    return {"transport": conn.sio.transport()}


async def rooms(args, conns):
    a, b, c = [await connected(args) for _ in range(3)]
    conns.extend([a, b, c])
    for conn in (a, b, c):
        conn.listen("broadcast")
    expect_same(await a.call("join", "py-room"), "py-room", "join")
    expect_same(await b.call("join", "py-room"), "py-room", "join")
    expect_same(await c.call("room-size", "py-room"), 2, "room-size")
    expect_same(await c.ack("broadcast", "py-room", "hello", {"n": 1}), [], "broadcast ack")
    for conn in (a, b):
        got = await conn.wait_for("broadcast")
        expect_same(got[0], ["py-room", "hello", {"n": 1}], "broadcast")
    expect_same(await a.ack("broadcast", "py-room", "from a", b"\x09\x08"), [], "broadcast ack")
    got = await b.wait_for("broadcast", 2)
    expect_same(got[1], ["py-room", "from a", b"\x09\x08"], "binary broadcast")
    await asyncio.sleep(QUIET_S)
    if len(a.got("broadcast")) != 1:
        raise Failure(f"the sender got its own broadcast: {short(a.got('broadcast'))}")
    if c.got("broadcast"):
        raise Failure(f"a non-member got a broadcast: {short(c.got('broadcast'))}")
    expect_same(await a.call("leave", "py-room"), "py-room", "leave")
    expect_same(await c.call("room-size", "py-room"), 1, "room-size after leave")
    return {"transport": a.sio.transport()}


SCENARIOS = {"echo": echo, "binary": binary, "auth": auth, "rooms": rooms}


async def main(args):
    conns = []
    try:
        detail = await asyncio.wait_for(SCENARIOS[args.scenario](args, conns), TIMEOUT_S)
        out({"event": "result", "ok": True, "scenario": args.scenario, "mode": args.mode, **detail})
        return 0
    except asyncio.TimeoutError:
        out({"event": "result", "ok": False, "detail": f"timed out after {TIMEOUT_S} s"})
        return 1
    except Exception as exc:  # noqa: BLE001 - every failure is reported
        out({"event": "result", "ok": False, "detail": f"{type(exc).__name__}: {exc}"})
        return 1
    finally:
        for conn in conns:
            await conn.disconnect()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--mode", choices=["sync", "async"], default="async")
    parser.add_argument("--transport", choices=["websocket", "polling"], default="websocket")
    code = asyncio.run(main(parser.parse_args()))
    sys.stdout.flush()
    os._exit(code)
