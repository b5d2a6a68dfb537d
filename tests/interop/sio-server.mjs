// Reference Socket.IO server built on the official `socket.io` package (v4),
// configured and with the handlers of sections 2 and 3 of
// shared/conformance-contract.md, so the Socket.IO cases and the interop
// scenarios can be checked against it.
//
// Usage: node sio-server.mjs [--port N] [--eio3]
//
//   --port N   port to listen on, on 127.0.0.1 (default 0: any free port)
//   --eio3     also accept Engine.IO v3 clients (socket.io 2.x: allowEIO3).
//              Node then takes every EIO other than 4 (missing, `abc`, `5`)
//              for v3, where the contract demands a 400.
//
// Configuration: path /socket.io/, transports polling and websocket (with the
// upgrade), pingInterval 300 ms, pingTimeout 200 ms, maxHttpBufferSize 1e6
// (announced as maxPayload), connectTimeout 1000 ms, CORS for any origin.
//
// Namespaces (anything else is refused with "Invalid namespace"):
//
//   /        on connection emits `auth` with the handshake auth; handles
//            message, message-with-ack, echo, info, join, leave, room-size,
//            broadcast, ask, disconnect-me, drop-me (see the contract)
//   /custom  on connection emits `auth`; echo, info
//   /admin   middleware: only auth.token === "secret" gets in, anything else
//            gets CONNECT_ERROR "not authorized"; echo, info
//
// Prints exactly `listening <port>` on stdout once ready, and exits when its
// stdin closes (so a test that spawns it with a pipe never leaks it) or on
// SIGINT/SIGTERM.
import { createServer } from 'node:http';
import { Server } from 'socket.io';

function usage(msg) {
  if (msg) process.stderr.write(`sio-server: ${msg}\n`);
  process.stderr.write('usage: node sio-server.mjs [--port N] [--eio3]\n');
  process.exit(2);
}

let port = 0;
let eio3 = false;
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (a === '--port' && i + 1 < argv.length) port = Number(argv[++i]);
  else if (a.startsWith('--port=')) port = Number(a.slice('--port='.length));
  else if (a === '--eio3') eio3 = true;
  else if (a === '-h' || a === '--help') usage();
  else usage(`unknown argument ${a}`);
}
if (!Number.isInteger(port) || port < 0 || port > 65535) usage('--port must be an integer in 0..65535');

const httpServer = createServer((req, res) => {
  // Only reached for paths the Socket.IO server does not own.
  res.writeHead(404, { 'Content-Type': 'text/plain' });
  res.end('not found');
});

const io = new Server(httpServer, {
  path: '/socket.io/',
  serveClient: false,
  pingInterval: 300,
  pingTimeout: 200,
  maxHttpBufferSize: 1e6,
  connectTimeout: 1000,
  transports: ['polling', 'websocket'],
  allowUpgrades: true,
  allowEIO3: eio3,
  cors: { origin: '*' },
});

// The last argument of a handler is the ack callback when the client asked
// for one.
function splitAck(args) {
  if (args.length && typeof args[args.length - 1] === 'function') {
    return [args.slice(0, -1), args[args.length - 1]];
  }
  return [args, null];
}

// `echo` and `info`, on every namespace.
function common(socket) {
  socket.on('echo', (...all) => {
    const [args, ack] = splitAck(all);
    if (ack) ack(...args);
  });
  socket.on('info', (...all) => {
    const [, ack] = splitAck(all);
    if (ack) ack({ id: socket.id, nsp: socket.nsp.name, auth: socket.handshake.auth });
  });
}

const main = io.of('/');
main.on('connection', (socket) => {
  socket.emit('auth', socket.handshake.auth);
  common(socket);
  socket.on('message', (...args) => {
    socket.emit('message-back', ...args);
  });
  socket.on('message-with-ack', (...all) => {
    const [args, ack] = splitAck(all);
    if (ack) ack(...args);
  });
  socket.on('join', (...all) => {
    const [[room], ack] = splitAck(all);
    socket.join(String(room));
    if (ack) ack(room);
  });
  socket.on('leave', (...all) => {
    const [[room], ack] = splitAck(all);
    socket.leave(String(room));
    if (ack) ack(room);
  });
  socket.on('room-size', (...all) => {
    const [[room], ack] = splitAck(all);
    const members = main.adapter.rooms.get(String(room));
    if (ack) ack(members ? members.size : 0);
  });
  socket.on('broadcast', (...all) => {
    const [[room, ...args], ack] = splitAck(all);
    socket.to(String(room)).emit('broadcast', room, ...args);
    if (ack) ack();
  });
  socket.on('ask', (...all) => {
    const [args, ack] = splitAck(all);
    socket.emit('question', ...args, (...answer) => {
      if (ack) ack(...answer);
    });
  });
  socket.on('disconnect-me', () => {
    socket.disconnect();
  });
  socket.on('drop-me', () => {
    // The Engine.IO connection goes, without a Socket.IO DISCONNECT.
    socket.conn.close();
  });
});

io.of('/custom').on('connection', (socket) => {
  socket.emit('auth', socket.handshake.auth);
  common(socket);
});

const admin = io.of('/admin');
admin.use((socket, next) => {
  const auth = socket.handshake.auth;
  if (auth && auth.token === 'secret') next();
  else next(new Error('not authorized'));
});
admin.on('connection', (socket) => {
  common(socket);
});

io.engine.on('connection_error', (err) => {
  if (process.env.SIO_SERVER_DEBUG) {
    process.stderr.write(`sio-server: connection_error ${err.code} ${err.message}\n`);
  }
});

httpServer.on('error', (err) => {
  process.stderr.write(`sio-server: ${err.message}\n`);
  process.exit(1);
});

httpServer.listen(port, '127.0.0.1', () => {
  process.stdout.write(`listening ${httpServer.address().port}\n`);
});

function shutdown() {
  io.close();
  httpServer.close();
  process.exit(0);
}

process.stdin.on('end', shutdown);
process.stdin.on('close', shutdown);
process.stdin.on('error', shutdown);
process.stdin.resume();
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);
