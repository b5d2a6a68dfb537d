// Interop scenarios for the official Socket.IO clients (socket.io-client v4,
// or 2.5.0 with --v2) against a Socket.IO server that has the namespaces and
// handlers of sections 2 and 3 of shared/conformance-contract.md, such as
// sio-server.mjs or conformance-server's /socket.io/.
//
// Usage: node sio-client.mjs URL SCENARIO [options]
//
//   URL                   http://HOST:PORT of the server
//   SCENARIO              v4: echo | binary | acks | rooms | auth | disconnect
//                         | drop | namespaces;  v2: echo | binary | auth
//   --transports LIST     comma-separated, e.g. polling or websocket or
//                         polling,websocket (default polling,websocket)
//   --v2                  use socket.io-client 2.5.0 (Socket.IO protocol v4
//                         over Engine.IO v3); the server must accept EIO=3
//   --expect-upgrade      wait for the upgrade to websocket after the
//                         connection, and fail if it does not happen
//   --expect-transport T  fail unless the transport in use at the end is T
//
// Scenarios:
//   echo        the `auth` event carries the auth sent; message ->
//               message-back; acks of echo / message-with-ack (several
//               arguments, emitWithAck with and without a timeout); info
//               gives the socket's id, namespace and auth; an unhandled
//               event gets no ack (emitWithAck times out)
//   binary      Buffers (every byte value, 64 KiB random, empty, nested in
//               objects and arrays, several per event) come back byte-exact,
//               through acks and message-back
//   acks        acks both ways: emitWithAck with a timeout; the server's
//               `ask` -> `question` with an ack -> the answer comes back as
//               the ack of `ask` (text and binary)
//   rooms       three clients: join, room-size, broadcast reaches the other
//               members only (text and binary), leave, a disconnected client
//               leaves its rooms
//   auth        /admin refuses no token and a wrong one (connect_error "not
//               authorized"; v2: an `error` event with the plain string) and
//               accepts {token: "secret"}
//   disconnect  disconnect-me: reason "io server disconnect", no reconnection
//   drop        drop-me: reason "transport close", then the client
//               reconnects on its own (new id, `auth` again) and works
//   namespaces  / and /custom (with auth) over one Manager and one Engine.IO
//               session; /random refused with "Invalid namespace"
//
// Prints one JSON object per line on stdout ({"event": ...}), the last one
// {"event":"result","ok":true|false,...}; exits 0 on success, 1 on failure,
// 2 on bad usage. The whole run is bounded by a 20 s timeout.
import { randomBytes } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { io, Manager } from 'socket.io-client';
import ioV2 from 'socket.io-client-v2';

const TIMEOUT_MS = 20000;
const ACK_MS = 3000;
const QUIET_MS = 300;

function usage(msg) {
  if (msg) process.stderr.write(`sio-client: ${msg}\n`);
  process.stderr.write('usage: node sio-client.mjs URL SCENARIO [--transports LIST] [--v2] [--expect-upgrade] [--expect-transport T]\n');
  process.exit(2);
}

const opts = {
  transports: ['polling', 'websocket'],
  v2: false,
  expectUpgrade: false,
  expectTransport: null,
};
const positional = [];
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  const value = () => {
    if (i + 1 >= argv.length) usage(`${a} needs a value`);
    return argv[++i];
  };
  if (a === '--transports') opts.transports = value().split(',').filter(Boolean);
  else if (a === '--v2') opts.v2 = true;
  else if (a === '--expect-upgrade') opts.expectUpgrade = true;
  else if (a === '--expect-transport') opts.expectTransport = value();
  else if (a === '-h' || a === '--help') usage();
  else if (a.startsWith('-')) usage(`unknown option ${a}`);
  else positional.push(a);
}
if (positional.length !== 2) usage('need URL and SCENARIO');
const [url, scenario] = positional;

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

// Binary values as {binary: <hex>} so that values compare (and print) the
// same whichever binary type the client decoded them to.
function plain(value) {
  const buf = toBuffer(value);
  if (buf) return { binary: buf.toString('hex') };
  if (Array.isArray(value)) return value.map(plain);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  }
  return value;
}

function short(value) {
  const text = JSON.stringify(plain(value));
  return text && text.length > 200 ? `${text.slice(0, 200)}... (${text.length} chars)` : text;
}

function expectSame(got, want, what) {
  if (!isDeepStrictEqual(plain(got), plain(want))) {
    throw new Error(`${what}: expected ${short(want)}, got ${short(got)}`);
  }
}

// Resolves with the arguments of the next `event` on `emitter`; rejects
// after `ms`, or on `failOn` events.
function next(emitter, event, ms = ACK_MS, failOn = []) {
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      clearTimeout(timer);
      emitter.off(event, onEvent);
      for (const [name, fn] of failHandlers) emitter.off(name, fn);
    };
    const onEvent = (...args) => {
      cleanup();
      resolve(args);
    };
    const failHandlers = failOn.map((name) => [
      name,
      (...args) => {
        cleanup();
        reject(new Error(`waiting for ${event}, got ${name} ${short(args.map((a) => (a instanceof Error ? a.message : a)))}`));
      },
    ]);
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`no ${event} within ${ms} ms`));
    }, ms);
    emitter.on(event, onEvent);
    for (const [name, fn] of failHandlers) emitter.on(name, fn);
  });
}

// An emit with an ack callback (v2 and v4), resolving with the ack's
// arguments.
function ask(socket, event, ...args) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ack for ${event} within ${ACK_MS} ms`)), ACK_MS);
    socket.emit(event, ...args, (...answer) => {
      clearTimeout(timer);
      resolve(answer);
    });
  });
}

// Records every event a socket gets, for the "nothing else came" checks.
function record(socket, event) {
  const got = [];
  socket.on(event, (...args) => got.push(args));
  return got;
}

const clients = [];

function engineOf(socket) {
  return socket.io.engine;
}

function transportOf(socket) {
  const engine = engineOf(socket);
  return engine && engine.transport ? engine.transport.name : null;
}

// A socket on namespace `nsp`, its `auth` events recorded, connected.
async function connect(nsp = '/', { auth, manager, extra = {} } = {}) {
  let socket;
  if (opts.v2) {
    socket = ioV2(`${url}${nsp === '/' ? '' : nsp}`, {
      path: '/socket.io',
      transports: opts.transports,
      forceNew: true,
      reconnection: false,
      ...extra,
    });
  } else if (manager) {
    socket = manager.socket(nsp, auth ? { auth } : {});
  } else {
    socket = io(`${url}${nsp === '/' ? '' : nsp}`, {
      path: '/socket.io/',
      transports: opts.transports,
      forceNew: true,
      reconnectionDelay: 100,
      reconnectionDelayMax: 200,
      ...(auth ? { auth } : {}),
      ...extra,
    });
  }
  clients.push(socket);
  socket.authEvents = record(socket, 'auth');
  // The engine (and its first transport) exist as soon as the manager
  // opens, which it does at once.
  const engine = engineOf(socket);
  socket.firstTransport = engine && engine.transport ? engine.transport.name : null;
  socket.upgraded = false;
  if (engine) engine.once('upgrade', () => (socket.upgraded = true));
  if (!socket.connected) await next(socket, 'connect', 5000, ['connect_error', 'error']);
  return socket;
}

async function settle(socket) {
  emit({ event: 'connected', nsp: socket.nsp, id: socket.id, transport: transportOf(socket), protocol: opts.v2 ? 4 : 5 });
  if (opts.expectUpgrade) {
    if (socket.firstTransport !== 'polling') throw new Error(`the session started on ${socket.firstTransport}, not polling`);
    const start = Date.now();
    while (!socket.upgraded) {
      if (Date.now() - start > 5000) throw new Error(`no upgrade to websocket (transport ${transportOf(socket)})`);
      await sleep(20);
    }
    emit({ event: 'upgrade', from: socket.firstTransport, transport: transportOf(socket) });
  }
}

async function authEvent(socket, want) {
  const start = Date.now();
  while (socket.authEvents.length === 0) {
    if (Date.now() - start > ACK_MS) throw new Error('no auth event');
    await sleep(10);
  }
  expectSame(socket.authEvents[0], [want], 'the auth event');
}

function checkTransport(socket) {
  const t = transportOf(socket);
  if (opts.expectTransport && t !== opts.expectTransport) {
    throw new Error(`transport at the end is ${t}, expected ${opts.expectTransport}`);
  }
  return t;
}

async function messageBack(socket, ...args) {
  const back = next(socket, 'message-back');
  socket.emit('message', ...args);
  expectSame(await back, args, 'message-back');
}

// ---------------------------------------------------------------------------

const scenarios = {
  async echo() {
    const auth = opts.v2 ? undefined : { token: 'abc', nested: { list: [1, 'two', null] } };
    const socket = await connect('/', { auth });
    await settle(socket);
    await authEvent(socket, auth || {});
    await messageBack(socket, 1, '2', { 3: [true] });
    await messageBack(socket, 'h\u00e9llo w\u00f6rld \u2713 \ud83d\ude00');
    expectSame(await ask(socket, 'echo', 'hello', 42, { a: [1, null] }), ['hello', 42, { a: [1, null] }], 'echo ack');
    expectSame(await ask(socket, 'message-with-ack', 'x', 'y'), ['x', 'y'], 'message-with-ack');
    expectSame(await ask(socket, 'echo'), [], 'echo with no arguments');
    if (!opts.v2) {
      expectSame(await socket.timeout(ACK_MS).emitWithAck('echo', { k: 'v' }), { k: 'v' }, 'emitWithAck with a timeout');
      expectSame(await socket.emitWithAck('echo', 7), 7, 'emitWithAck');
      const info = await socket.timeout(ACK_MS).emitWithAck('info');
      expectSame(info, { id: socket.id, nsp: '/', auth }, 'info');
      let acked = false;
      try {
        await socket.timeout(500).emitWithAck('no-such-event', 1);
        acked = true;
      } catch {
        // the expected timeout
      }
      if (acked) throw new Error('an unhandled event was acked');
      emit({ event: 'unhandled-event-not-acked' });
    }
    emit({ event: 'echo', ok: true });
    return { transport: checkTransport(socket) };
  },

  async binary() {
    const socket = await connect('/');
    await settle(socket);
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const big = randomBytes(64 * 1024);
    expectSame(await ask(socket, 'echo', all), [all], 'echo of 256 bytes');
    expectSame(await ask(socket, 'echo', big), [big], 'echo of 64 KiB');
    if (!opts.v2) expectSame(await ask(socket, 'echo', Buffer.alloc(0)), [Buffer.alloc(0)], 'echo of an empty buffer');
    const nested = { name: 'n', data: all.subarray(0, 10), list: [big.subarray(0, 100), 'text', { deep: Buffer.from([0]) }] };
    expectSame(await ask(socket, 'echo', nested, 'after', all.subarray(200)), [nested, 'after', all.subarray(200)], 'nested binary');
    await messageBack(socket, Buffer.from([1, 2, 3]), 'mid', Buffer.from([4, 5, 6]));
    emit({ event: 'binary', ok: true });
    return { transport: checkTransport(socket) };
  },

  async acks() {
    const socket = await connect('/');
    await settle(socket);
    expectSame(await socket.timeout(ACK_MS).emitWithAck('message-with-ack', 'x'), 'x', 'emitWithAck with a timeout');
    socket.on('question', (...args) => {
      const ack = args.pop();
      if (typeof ack !== 'function') throw new Error('the question came without an ack');
      if (args[0] === 'binary?') ack(Buffer.from([9, 8, 7]), 'bin');
      else ack('answer', ...args);
    });
    const answer = await new Promise((resolve, reject) => {
      socket.timeout(ACK_MS).emit('ask', 'what?', { n: 1 }, (err, ...args) => (err ? reject(err) : resolve(args)));
    });
    expectSame(answer, ['answer', 'what?', { n: 1 }], 'the answer to ask');
    expectSame(await ask(socket, 'ask', 'binary?'), [Buffer.from([9, 8, 7]), 'bin'], 'a binary answer');
    let timedOut = false;
    try {
      await socket.timeout(300).emitWithAck('no-such-event');
    } catch (err) {
      timedOut = /timed out/i.test(err.message);
    }
    if (!timedOut) throw new Error('emitWithAck on an unhandled event did not time out');
    emit({ event: 'acks', ok: true });
    return { transport: checkTransport(socket) };
  },

  async rooms() {
    const [a, b, c] = [await connect('/'), await connect('/'), await connect('/')];
    await settle(a);
    const got = new Map([a, b, c].map((s) => [s, record(s, 'broadcast')]));
    expectSame(await ask(a, 'join', 'room1'), ['room1'], 'join');
    expectSame(await ask(b, 'join', 'room1'), ['room1'], 'join');
    expectSame(await ask(c, 'room-size', 'room1'), [2], 'room-size');
    expectSame(await ask(c, 'room-size', 'nobody'), [0], 'room-size of an empty room');

    const waitFor = async (socket, count, what) => {
      const start = Date.now();
      while (got.get(socket).length < count) {
        if (Date.now() - start > ACK_MS) throw new Error(`${what}: only ${got.get(socket).length} broadcasts`);
        await sleep(10);
      }
    };
    expectSame(await ask(c, 'broadcast', 'room1', 'hello', { n: 1 }), [], 'broadcast ack');
    await waitFor(a, 1, 'a');
    await waitFor(b, 1, 'b');
    expectSame(got.get(a)[0], ['room1', 'hello', { n: 1 }], 'broadcast to a');
    expectSame(got.get(b)[0], ['room1', 'hello', { n: 1 }], 'broadcast to b');
    const bin = randomBytes(1000);
    expectSame(await ask(a, 'broadcast', 'room1', 'from a', bin), [], 'broadcast ack');
    await waitFor(b, 2, 'b');
    expectSame(got.get(b)[1], ['room1', 'from a', bin], 'binary broadcast to b');
    await sleep(QUIET_MS);
    if (got.get(a).length !== 1) throw new Error(`the sender got its own broadcast: ${short(got.get(a))}`);
    if (got.get(c).length !== 0) throw new Error(`a non-member got a broadcast: ${short(got.get(c))}`);

    expectSame(await ask(a, 'leave', 'room1'), ['room1'], 'leave');
    expectSame(await ask(c, 'room-size', 'room1'), [1], 'room-size after leave');
    b.disconnect();
    const start = Date.now();
    for (;;) {
      const [size] = await ask(c, 'room-size', 'room1');
      if (size === 0) break;
      if (Date.now() - start > ACK_MS) throw new Error(`a disconnected client is still in its room (size ${size})`);
      await sleep(50);
    }
    emit({ event: 'rooms', ok: true });
    return { transport: checkTransport(a) };
  },

  async auth() {
    const refusals = opts.v2 ? [undefined] : [undefined, { token: 'wrong' }];
    for (const auth of refusals) {
      const socket = opts.v2
        ? ioV2(`${url}/admin`, { path: '/socket.io', transports: opts.transports, forceNew: true, reconnection: false })
        : io(`${url}/admin`, { path: '/socket.io/', transports: opts.transports, forceNew: true, ...(auth ? { auth } : {}) });
      clients.push(socket);
      if (opts.v2) {
        // Protocol v4: the refusal is an `error` event with a plain string.
        const [err] = await next(socket, 'error', 5000, ['connect']);
        if (err !== 'not authorized') throw new Error(`refusal: ${short(err)}`);
      } else {
        const [err] = await next(socket, 'connect_error', 5000, ['connect']);
        if (err.message !== 'not authorized') throw new Error(`refusal: ${err.message}`);
        await sleep(QUIET_MS);
        if (socket.connected || socket.active) throw new Error('a refused socket retries');
      }
      emit({ event: 'refused', auth: auth || null });
      socket.close();
    }
    if (!opts.v2) {
      const auth = { token: 'secret' };
      const socket = await connect('/admin', { auth });
      await settle(socket);
      expectSame(await socket.timeout(ACK_MS).emitWithAck('info'), { id: socket.id, nsp: '/admin', auth }, 'info');
      expectSame(await ask(socket, 'echo', 'admin', { ok: true }), ['admin', { ok: true }], 'echo');
      emit({ event: 'accepted' });
      return { transport: checkTransport(socket) };
    }
    return {};
  },

  async disconnect() {
    const socket = await connect('/');
    await settle(socket);
    const transport = checkTransport(socket);
    const reconnects = record(socket, 'connect');
    const gone = next(socket, 'disconnect');
    socket.emit('disconnect-me');
    const [reason] = await gone;
    if (reason !== 'io server disconnect') throw new Error(`disconnect reason ${reason}`);
    emit({ event: 'disconnect', reason });
    await sleep(1000);
    if (reconnects.length || socket.connected) throw new Error('the client reconnected after a server disconnect');
    return { transport };
  },

  async drop() {
    const socket = await connect('/');
    await settle(socket);
    await authEvent(socket, {});
    const transport = checkTransport(socket);
    const firstId = socket.id;
    const gone = next(socket, 'disconnect');
    const back = next(socket, 'connect', 8000);
    socket.emit('drop-me');
    const [reason] = await gone;
    if (reason !== 'transport close') throw new Error(`disconnect reason ${reason}`);
    emit({ event: 'disconnect', reason });
    await back;
    if (socket.id === firstId) throw new Error('the reconnected socket has the old id');
    emit({ event: 'reconnected', id: socket.id, transport: transportOf(socket) });
    const start = Date.now();
    while (socket.authEvents.length < 2) {
      if (Date.now() - start > ACK_MS) throw new Error('no auth event after the reconnection');
      await sleep(10);
    }
    expectSame(await socket.timeout(ACK_MS).emitWithAck('echo', 'again'), 'again', 'echo after the reconnection');
    return { transport };
  },

  async namespaces() {
    const manager = new Manager(url, {
      path: '/socket.io/',
      transports: opts.transports,
      reconnection: false,
    });
    const main = await connect('/', { manager });
    const customAuth = { token: 'abc' };
    const custom = await connect('/custom', { manager, auth: customAuth });
    await settle(main);
    if (main.io !== custom.io) throw new Error('two managers');
    await authEvent(main, {});
    await authEvent(custom, customAuth);
    expectSame(await custom.timeout(ACK_MS).emitWithAck('info'), { id: custom.id, nsp: '/custom', auth: customAuth }, 'info on /custom');
    expectSame(await main.timeout(ACK_MS).emitWithAck('info'), { id: main.id, nsp: '/', auth: {} }, 'info on /');
    if (main.id === custom.id) throw new Error('one id for two namespaces');
    expectSame(await ask(custom, 'echo', 'c', 1), ['c', 1], 'echo on /custom');
    const random = manager.socket('/random');
    const [err] = await next(random, 'connect_error', 5000, ['connect']);
    if (err.message !== 'Invalid namespace') throw new Error(`/random: ${err.message}`);
    emit({ event: 'invalid-namespace', message: err.message });
    // Still one Engine.IO session, still working.
    expectSame(await ask(main, 'echo', 'm'), ['m'], 'echo on / after the refusal');
    const transport = checkTransport(main);
    main.close();
    custom.close();
    return { transport };
  },
};

const v2Scenarios = new Set(['echo', 'binary', 'auth']);
if (!scenarios[scenario] || (opts.v2 && !v2Scenarios.has(scenario))) usage(`unknown scenario ${scenario}${opts.v2 ? ' for --v2' : ''}`);

const timer = setTimeout(() => finish(false, `timed out after ${TIMEOUT_MS} ms`), TIMEOUT_MS);
try {
  const detail = await scenarios[scenario]();
  clearTimeout(timer);
  for (const c of clients) c.close();
  emit({ event: 'result', ok: true, scenario, protocol: opts.v2 ? 4 : 5, ...detail });
  process.exit(0);
} catch (err) {
  clearTimeout(timer);
  finish(false, err.message);
}
