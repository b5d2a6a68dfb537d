// Interop scenarios for the official Engine.IO clients (engine.io-client v6,
// or v3.5.6 with --v3) against an Engine.IO ECHO server such as
// eio-server.mjs or conformance-server's /engine.io/.
//
// Usage: node eio-client.mjs URL SCENARIO [options]
//
//   URL                   http://HOST:PORT of the server
//   SCENARIO              echo | heartbeat | client-close
//   --path P              Engine.IO path (default /engine.io/)
//   --transports LIST     comma-separated, e.g. polling or websocket or
//                         polling,websocket (default polling,websocket)
//   --v3                  use engine.io-client 3.5.6 (Engine.IO protocol v3)
//   --expect-upgrade      wait for the upgrade to websocket before the
//                         scenario proper, and fail if it does not happen
//   --expect-transport T  fail unless the transport in use at the end is T
//   --duration MS         heartbeat: how long to stay connected (default 2000)
//   --no-echo             heartbeat: the server does not echo (e.g. a
//                         Socket.IO path), so skip the final echo and ignore
//                         the messages it sends
//
// Scenarios:
//   echo          text (ASCII, UTF-8, empty) and binary (256 bytes, 64 KiB
//                 random) messages come back byte-exact, text as text and
//                 binary as binary
//   heartbeat     the connection stays open for --duration with the
//                 heartbeat running (at least 3 pings/pongs), then echoes
//   client-close  right after a heartbeat, the client closes; the server
//                 must forget the session well before a heartbeat timeout
//                 could: a polling POST for the sid gets 400 with code 1
//                 ("Session ID unknown") within 450 ms
//
// Prints one JSON object per line on stdout ({"event": ...}), the last one
// {"event":"result","ok":true|false,...}; exits 0 on success, 1 on failure,
// 2 on bad usage. The whole run is bounded by a 15 s timeout.
import { randomBytes } from 'node:crypto';
import { Socket as SocketV4 } from 'engine.io-client';
import eioV3 from 'engine.io-client-v3';

const TIMEOUT_MS = 15000;
const CLOSE_DETECT_MS = 450;

function usage(msg) {
  if (msg) process.stderr.write(`eio-client: ${msg}\n`);
  process.stderr.write('usage: node eio-client.mjs URL echo|heartbeat|client-close [options]\n');
  process.exit(2);
}

const opts = {
  path: '/engine.io/',
  transports: ['polling', 'websocket'],
  v3: false,
  expectUpgrade: false,
  expectTransport: null,
  duration: 2000,
  echo: true,
};
const positional = [];
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  const value = () => {
    if (i + 1 >= argv.length) usage(`${a} needs a value`);
    return argv[++i];
  };
  if (a === '--path') opts.path = value();
  else if (a === '--transports') opts.transports = value().split(',').filter(Boolean);
  else if (a === '--v3') opts.v3 = true;
  else if (a === '--expect-upgrade') opts.expectUpgrade = true;
  else if (a === '--expect-transport') opts.expectTransport = value();
  else if (a === '--duration') opts.duration = Number(value());
  else if (a === '--no-echo') opts.echo = false;
  else if (a === '-h' || a === '--help') usage();
  else if (a.startsWith('-')) usage(`unknown option ${a}`);
  else positional.push(a);
}
if (positional.length !== 2) usage('need URL and SCENARIO');
const [url, scenario] = positional;
if (!['echo', 'heartbeat', 'client-close'].includes(scenario)) usage(`unknown scenario ${scenario}`);
if (!Number.isFinite(opts.duration) || opts.duration < 0) usage('--duration must be a number of ms');

function emit(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

function finish(ok, detail) {
  emit({ event: 'result', ok, ...(detail ? { detail } : {}) });
  process.exit(ok ? 0 : 1);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function toBuffer(data) {
  if (Buffer.isBuffer(data)) return data;
  if (data instanceof ArrayBuffer) return Buffer.from(data);
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return null;
}

// ---------------------------------------------------------------------------
// A connection: the client socket plus a queue of events a scenario awaits.

class Conn {
  constructor() {
    this.events = [];
    this.waiter = null;
    this.heartbeats = 0;
    this.lastHeartbeat = 0;
    this.closed = null;
    const common = { path: opts.path, transports: opts.transports };
    if (opts.v3) {
      this.socket = eioV3(url, common);
    } else {
      this.socket = new SocketV4(url, common);
    }
    const s = this.socket;
    s.on('open', () => this.push({ type: 'open' }));
    s.on('message', (data) => this.push({ type: 'message', data }));
    s.on('upgrade', (t) => this.push({ type: 'upgrade', transport: t.name }));
    s.on('error', (err) => this.push({ type: 'error', message: String(err && err.message ? err.message : err) }));
    s.on('close', (reason, description) => {
      this.closed = { reason: String(reason), description: description ? String(description.message || description) : undefined };
      this.push({ type: 'close', ...this.closed });
    });
    // v4: the server pings and the client answers at once ('ping');
    // v3: the client pings and the server answers ('pong').
    s.on(opts.v3 ? 'pong' : 'ping', () => {
      this.heartbeats++;
      this.lastHeartbeat = Date.now();
      this.push({ type: 'heartbeat' });
    });
  }

  push(ev) {
    this.events.push(ev);
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w();
    }
  }

  async next() {
    while (this.events.length === 0) {
      await new Promise((resolve) => {
        this.waiter = resolve;
      });
    }
    return this.events.shift();
  }

  // Waits for an event of `type`, skipping heartbeats and (when
  // `skipMessages`) messages; fails on close or error.
  async waitFor(type, { skipMessages = false } = {}) {
    for (;;) {
      const ev = await this.next();
      if (ev.type === type) return ev;
      if (ev.type === 'heartbeat' || ev.type === 'upgrade') continue;
      if (ev.type === 'message' && skipMessages) continue;
      throw new Error(`waiting for ${type}, got ${describe(ev)}`);
    }
  }

  transport() {
    return this.socket.transport ? this.socket.transport.name : null;
  }

  sid() {
    return this.socket.id;
  }
}

function describe(ev) {
  switch (ev.type) {
    case 'message': {
      const buf = toBuffer(ev.data);
      return buf ? `binary message of ${buf.length} bytes` : `text message ${JSON.stringify(String(ev.data).slice(0, 60))}`;
    }
    case 'close':
      return `close (${ev.reason}${ev.description ? `: ${ev.description}` : ''})`;
    case 'error':
      return `error: ${ev.message}`;
    default:
      return ev.type;
  }
}

async function connect() {
  const conn = new Conn();
  await conn.waitFor('open');
  emit({ event: 'open', sid: conn.sid(), transport: conn.transport(), protocol: opts.v3 ? 3 : 4 });
  if (opts.expectUpgrade) {
    // The upgrade event may already be queued, possibly behind heartbeats.
    for (;;) {
      const ev = await conn.next();
      if (ev.type === 'upgrade') break;
      if (ev.type === 'heartbeat' || (ev.type === 'message' && !opts.echo)) continue;
      throw new Error(`waiting for the upgrade, got ${describe(ev)}`);
    }
    if (conn.transport() !== 'websocket') throw new Error(`upgraded to ${conn.transport()}`);
    emit({ event: 'upgrade', transport: conn.transport() });
  }
  return conn;
}

async function echoOne(conn, data) {
  conn.socket.send(data);
  const ev = await conn.waitFor('message');
  const wantBuf = toBuffer(data);
  if (wantBuf) {
    const got = toBuffer(ev.data);
    if (!got) throw new Error(`sent ${wantBuf.length} binary bytes, got text ${JSON.stringify(String(ev.data).slice(0, 60))}`);
    if (!got.equals(wantBuf)) {
      let at = 0;
      while (at < got.length && at < wantBuf.length && got[at] === wantBuf[at]) at++;
      throw new Error(`binary echo differs: sent ${wantBuf.length} bytes, got ${got.length}, first difference at ${at}`);
    }
    emit({ event: 'echo', kind: 'binary', bytes: wantBuf.length, ok: true });
  } else {
    // engine.io-parser decodes an empty message packet (a bare `4`) to
    // `undefined`, on every transport: that is the client's reading of the
    // empty string.
    if (data === '' && ev.data === undefined) ev.data = '';
    if (typeof ev.data !== 'string') throw new Error(`sent text, got ${describe(ev)}`);
    if (ev.data !== data) throw new Error(`text echo differs: sent ${JSON.stringify(data.slice(0, 60))}, got ${JSON.stringify(ev.data.slice(0, 60))}`);
    emit({ event: 'echo', kind: 'text', chars: data.length, ok: true });
  }
}

function checkTransport(conn) {
  const t = conn.transport();
  if (opts.expectTransport && t !== opts.expectTransport) {
    throw new Error(`transport at the end is ${t}, expected ${opts.expectTransport}`);
  }
  return t;
}

// A polling POST of a noop for `sid`: 200 while the server has the session
// on polling, 400 code 1 once it forgot it.
async function probeSession(sid) {
  const eio = opts.v3 ? 3 : 4;
  const base = url.replace(/\/$/, '');
  const path = opts.path.endsWith('/') ? opts.path : `${opts.path}/`;
  const target = `${base}${path}?EIO=${eio}&transport=polling&sid=${encodeURIComponent(sid)}`;
  const body = opts.v3 ? '1:6' : '6';
  const res = await fetch(target, {
    method: 'POST',
    body,
    headers: { 'Content-Type': 'text/plain;charset=UTF-8' },
  });
  const text = await res.text();
  let code = null;
  try {
    code = JSON.parse(text).code;
  } catch {
    // not an error body
  }
  return { status: res.status, code };
}

// ---------------------------------------------------------------------------

const scenarios = {
  async echo() {
    const conn = await connect();
    const mixed = 'h\u00e9llo w\u00f6rld \u2713 \u65e5\u672c \ud83d\ude00';
    await echoOne(conn, 'hello');
    await echoOne(conn, mixed);
    await echoOne(conn, '');
    await echoOne(conn, Buffer.from(Array.from({ length: 256 }, (_, i) => i)));
    await echoOne(conn, randomBytes(64 * 1024));
    const transport = checkTransport(conn);
    conn.socket.close();
    return { transport };
  },

  async heartbeat() {
    const conn = await connect();
    const start = Date.now();
    const before = conn.heartbeats;
    while (Date.now() - start < opts.duration) {
      const left = opts.duration - (Date.now() - start);
      await Promise.race([sleep(left), conn.next().then((ev) => conn.events.unshift(ev))]);
      while (conn.events.length) {
        const ev = conn.events.shift();
        if (ev.type === 'heartbeat' || ev.type === 'upgrade') continue;
        if (ev.type === 'message' && !opts.echo) continue;
        throw new Error(`during the heartbeat: ${describe(ev)}`);
      }
    }
    const beats = conn.heartbeats - before;
    emit({ event: 'heartbeat', heartbeats: beats, ms: Date.now() - start });
    if (beats < 3) throw new Error(`only ${beats} heartbeats in ${opts.duration} ms`);
    if (opts.echo) await echoOne(conn, 'still alive');
    const transport = checkTransport(conn);
    conn.socket.close();
    return { transport, heartbeats: beats };
  },

  async 'client-close'() {
    const conn = await connect();
    // Close right after a heartbeat, so that the server cannot time the
    // session out for at least pingInterval + pingTimeout (500 ms).
    await conn.waitFor('heartbeat', { skipMessages: !opts.echo });
    const sid = conn.sid();
    const transport = checkTransport(conn);
    conn.socket.close();
    const closedAt = Date.now();
    emit({ event: 'closed', sid, transport });
    let last = null;
    while (Date.now() - closedAt < CLOSE_DETECT_MS) {
      last = await probeSession(sid);
      if (last.status === 400 && last.code === 1) {
        emit({ event: 'server-forgot-session', ms: Date.now() - closedAt });
        return { transport };
      }
      await sleep(20);
    }
    throw new Error(`${CLOSE_DETECT_MS} ms after the close, a POST for the sid still got ${JSON.stringify(last)}`);
  },
};

const timer = setTimeout(() => finish(false, `timed out after ${TIMEOUT_MS} ms`), TIMEOUT_MS);
try {
  const detail = await scenarios[scenario]();
  clearTimeout(timer);
  emit({ event: 'result', ok: true, scenario, protocol: opts.v3 ? 3 : 4, ...detail });
  process.exit(0);
} catch (err) {
  clearTimeout(timer);
  finish(false, err.message);
}
