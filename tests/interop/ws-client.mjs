// Interop checks against a WebSocket ECHO server, driven by the `ws` package.
//
// Usage: node ws-client.mjs URL [--deflate]
//
// The server at URL must echo text as text and binary as binary, answer pings
// and echo close frames. Each check runs on its own connection with a 5 s
// timeout and prints `ok <name>` or `FAIL <name>: <why>`; the exit code is 1
// if any check failed (2 on bad usage).
//
// Without --deflate the client offers no extension. With --deflate it offers
// permessage-deflate on every connection (so every check runs compressed), and
// an extra check requires the extension to be negotiated and a 100 KB
// compressible text to be echoed exactly.
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';

const CHECK_TIMEOUT_MS = 5000;

function usage(msg) {
  if (msg) process.stderr.write(`ws-client: ${msg}\n`);
  process.stderr.write('usage: node ws-client.mjs URL [--deflate]\n');
  process.exit(2);
}

let url;
let deflate = false;
for (const a of process.argv.slice(2)) {
  if (a === '--deflate') deflate = true;
  else if (a === '-h' || a === '--help') usage();
  else if (a.startsWith('-')) usage(`unknown option ${a}`);
  else if (url === undefined) url = a;
  else usage(`unexpected argument ${a}`);
}
if (url === undefined) usage('missing URL');

// ---------------------------------------------------------------------------
// A connection wrapper: an open WebSocket plus a queue of received events
// (messages, pongs, close) that a check awaits one at a time.

class Conn {
  constructor(ws) {
    this.ws = ws;
    this.events = [];
    this.waiter = null;
    this.upgradeHeaders = {};
    ws.on('message', (data, isBinary) => this.push({ type: 'message', data, isBinary }));
    ws.on('pong', (data) => this.push({ type: 'pong', data }));
    ws.on('close', (code, reason) => this.push({ type: 'close', code, reason: reason.toString('utf8') }));
    ws.on('error', (err) => this.push({ type: 'error', err }));
  }

  push(ev) {
    this.events.push(ev);
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w();
    }
  }

  // Next event of any kind (the check's overall timeout bounds the wait).
  async next() {
    while (this.events.length === 0) {
      await new Promise((resolve) => {
        this.waiter = resolve;
      });
    }
    return this.events.shift();
  }

  // Next event, which must be of the given type.
  async expect(type) {
    const ev = await this.next();
    if (ev.type === type) return ev;
    throw new Error(`expected ${type}, got ${describe(ev)}`);
  }

  async message() {
    return this.expect('message');
  }

  send(data, options = {}) {
    return new Promise((resolve, reject) => {
      this.ws.send(data, options, (err) => (err ? reject(err) : resolve()));
    });
  }
}

function describe(ev) {
  switch (ev.type) {
    case 'message':
      return `${ev.isBinary ? 'binary' : 'text'} message of ${ev.data.length} bytes`;
    case 'pong':
      return `pong of ${ev.data.length} bytes`;
    case 'close':
      return `close (code ${ev.code}, reason ${JSON.stringify(ev.reason)})`;
    case 'error':
      return `error: ${ev.err.message}`;
    default:
      return ev.type;
  }
}

const open = new Set();

function connect() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, {
      perMessageDeflate: deflate ? {} : false,
      maxPayload: 64 * 1024 * 1024,
      handshakeTimeout: CHECK_TIMEOUT_MS,
    });
    open.add(ws);
    ws.on('close', () => open.delete(ws));
    const conn = new Conn(ws);
    ws.once('upgrade', (res) => {
      conn.upgradeHeaders = res.headers;
    });
    const onError = (err) => reject(new Error(`connect: ${err.message}`));
    ws.once('error', onError);
    ws.once('open', () => {
      ws.off('error', onError);
      // Drop the 'error' the Conn recorded during the handshake, if any.
      conn.events = conn.events.filter((e) => e.type !== 'error');
      resolve(conn);
    });
  });
}

function preview(buf, binary = false) {
  if (binary) {
    const hex = buf.subarray(0, 16).toString('hex');
    return buf.length > 16 ? `<${hex}...>` : `<${hex}>`;
  }
  const s = buf.toString('utf8');
  return JSON.stringify(s.length > 40 ? `${s.slice(0, 40)}...` : s);
}

// The next message must be text equal to `want` (a string).
async function expectText(conn, want) {
  const ev = await conn.message();
  if (ev.isBinary) throw new Error(`expected text, got binary message of ${ev.data.length} bytes`);
  const wantBuf = Buffer.from(want, 'utf8');
  if (!ev.data.equals(wantBuf)) {
    throw new Error(
      `text mismatch: sent ${wantBuf.length} bytes ${preview(wantBuf)}, ` +
        `got ${ev.data.length} bytes ${preview(ev.data)}`,
    );
  }
}

// The next message must be binary equal to `want` (a Buffer).
async function expectBinary(conn, want) {
  const ev = await conn.message();
  if (!ev.isBinary) throw new Error(`expected binary, got text message of ${ev.data.length} bytes`);
  if (!ev.data.equals(want)) {
    let at = 0;
    while (at < want.length && at < ev.data.length && want[at] === ev.data[at]) at++;
    throw new Error(
      `binary mismatch: sent ${want.length} bytes, got ${ev.data.length} bytes, first difference at offset ${at}`,
    );
  }
}

// ---------------------------------------------------------------------------
// Checks

const checks = [];
function check(name, fn) {
  checks.push({ name, fn });
}

check('text-hello', async () => {
  const c = await connect();
  await c.send('hello');
  await expectText(c, 'hello');
});

check('text-utf8', async () => {
  const c = await connect();
  // One 3-byte character, then a mix of 2-, 3- and 4-byte sequences.
  const euro = '\u20ac';
  if (Buffer.byteLength(euro) !== 3) throw new Error('test bug: euro sign is not 3 bytes');
  await c.send(euro);
  await expectText(c, euro);
  const mixed = 'h\u00e9llo w\u00f6rld \u2713 \u65e5\u672c \ud834\udd1e';
  await c.send(mixed);
  await expectText(c, mixed);
});

for (const size of [0, 125, 126, 65535, 65536, 1024 * 1024]) {
  check(`binary-${size}`, async () => {
    const c = await connect();
    const payload = randomBytes(size);
    await c.send(payload, { binary: true });
    await expectBinary(c, payload);
  });
}

check('fragmented-text', async () => {
  const c = await connect();
  const parts = ['frag', 'mented ', '\u00fcber ', 'message \u2603'];
  for (const p of parts) await c.send(p, { fin: false });
  await c.send('!', { fin: true });
  await expectText(c, `${parts.join('')}!`);
});

check('burst-100-in-order', async () => {
  const c = await connect();
  const sent = [];
  for (let i = 0; i < 100; i++) {
    // Alternate text and binary so the order and the type are both checked.
    if (i % 2 === 0) {
      const m = `burst message ${i}`;
      sent.push({ binary: false, data: Buffer.from(m) });
      c.ws.send(m);
    } else {
      const m = Buffer.alloc(4 + (i % 7) * 100, i);
      m.writeUInt32BE(i, 0);
      sent.push({ binary: true, data: m });
      c.ws.send(m, { binary: true });
    }
  }
  for (let i = 0; i < sent.length; i++) {
    const ev = await c.message();
    const want = sent[i];
    if (ev.isBinary !== want.binary || !ev.data.equals(want.data)) {
      throw new Error(
        `message ${i}: want ${want.binary ? 'binary' : 'text'} ${want.data.length} bytes, ` +
          `got ${ev.isBinary ? 'binary' : 'text'} ${ev.data.length} bytes ${preview(ev.data, ev.isBinary)}`,
      );
    }
  }
});

check('ping-pong', async () => {
  const c = await connect();
  const payload = Buffer.from('switchboard-ping');
  c.ws.ping(payload);
  const ev = await c.expect('pong');
  if (!ev.data.equals(payload)) {
    throw new Error(`pong payload ${preview(ev.data)} != ping payload ${preview(payload)}`);
  }
});

check('close-4001', async () => {
  const c = await connect();
  c.ws.close(4001, 'bye');
  const ev = await c.expect('close');
  if (ev.code !== 4001) {
    throw new Error(`close event code ${ev.code} (reason ${JSON.stringify(ev.reason)}), want 4001`);
  }
  return `reason ${JSON.stringify(ev.reason)}`;
});

if (deflate) {
  check('deflate-100k', async () => {
    const c = await connect();
    if (!c.ws.extensions.split(',').includes('permessage-deflate')) {
      throw new Error(
        `permessage-deflate not negotiated (ws.extensions=${JSON.stringify(c.ws.extensions)}, ` +
          `Sec-WebSocket-Extensions=${JSON.stringify(c.upgradeHeaders['sec-websocket-extensions'] ?? null)})`,
      );
    }
    const unit = 'The quick brown fox jumps over the lazy dog. 0123456789 ';
    let text = '';
    while (text.length < 100 * 1024) text += unit;
    text = text.slice(0, 100 * 1024);
    const socket = c.ws._socket;
    const before = socket.bytesRead;
    await c.send(text);
    await expectText(c, text);
    const wire = socket.bytesRead - before;
    return (
      `extensions ${JSON.stringify(c.upgradeHeaders['sec-websocket-extensions'])}, ` +
      `echo of ${text.length} B arrived in ${wire} wire bytes`
    );
  });
}

// ---------------------------------------------------------------------------

function withTimeout(promise, ms) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Whatever a check left open is closed (politely, for at most 1 s) before the
// next check starts.
async function closeAll() {
  const pending = [];
  for (const ws of open) {
    if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CLOSING) {
      pending.push(new Promise((resolve) => ws.once('close', resolve)));
      if (ws.readyState === WebSocket.OPEN) ws.close(1000);
    } else {
      ws.terminate();
    }
  }
  if (pending.length) {
    let timer;
    await Promise.race([
      Promise.all(pending),
      new Promise((resolve) => {
        timer = setTimeout(resolve, 1000);
      }),
    ]);
    clearTimeout(timer);
  }
  for (const ws of open) ws.terminate();
  open.clear();
}

let failed = 0;
for (const { name, fn } of checks) {
  try {
    const note = await withTimeout(fn(), CHECK_TIMEOUT_MS);
    process.stdout.write(note ? `ok ${name} (${note})\n` : `ok ${name}\n`);
  } catch (err) {
    failed++;
    process.stdout.write(`FAIL ${name}: ${err.message}\n`);
  }
  await closeAll();
}

process.stdout.write(`${checks.length - failed} passed, ${failed} failed\n`);
process.exit(failed ? 1 : 0);
