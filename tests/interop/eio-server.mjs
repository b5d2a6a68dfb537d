// Reference Engine.IO echo server built on the official `engine.io` package
// (v6), configured as section 1 of shared/conformance-contract.md, so the
// Engine.IO cases can be checked against it and our Engine.IO client can be
// tested against it.
//
// Usage: node eio-server.mjs [--port N] [--eio3]
//
//   --port N   port to listen on, on 127.0.0.1 (default 0: any free port)
//   --eio3     also accept Engine.IO v3 clients (allowEIO3)
//
// Configuration: path /engine.io/, transports polling and websocket (with the
// upgrade), pingInterval 300 ms, pingTimeout 200 ms, maxHttpBufferSize 1e6
// (announced as maxPayload), CORS for any origin. Every message a client sends
// comes back unchanged, text as text and binary as binary; nothing else is
// sent on the server's own initiative.
//
// Prints exactly `listening <port>` on stdout once ready, and exits when its
// stdin closes (so a test that spawns it with a pipe never leaks it) or on
// SIGINT/SIGTERM.
import { createServer } from 'node:http';
import { Server } from 'engine.io';

function usage(msg) {
  if (msg) process.stderr.write(`eio-server: ${msg}\n`);
  process.stderr.write('usage: node eio-server.mjs [--port N] [--eio3]\n');
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
  // Only reached for paths the Engine.IO server does not own.
  res.writeHead(404, { 'Content-Type': 'text/plain' });
  res.end('not found');
});

const engine = new Server({
  pingInterval: 300,
  pingTimeout: 200,
  maxHttpBufferSize: 1e6,
  transports: ['polling', 'websocket'],
  allowUpgrades: true,
  allowEIO3: eio3,
  cors: { origin: '*' },
});
engine.attach(httpServer, { path: '/engine.io/' });

engine.on('connection', (socket) => {
  socket.on('message', (data) => {
    // Strings are text packets, Buffers binary ones: `send` keeps the kind.
    socket.send(data);
  });
  socket.on('error', (err) => {
    process.stderr.write(`eio-server: socket ${socket.id}: ${err.message}\n`);
  });
});

engine.on('connection_error', (err) => {
  if (process.env.EIO_SERVER_DEBUG) {
    process.stderr.write(`eio-server: connection_error ${err.code} ${err.message}\n`);
  }
});

httpServer.on('error', (err) => {
  process.stderr.write(`eio-server: ${err.message}\n`);
  process.exit(1);
});

httpServer.listen(port, '127.0.0.1', () => {
  process.stdout.write(`listening ${httpServer.address().port}\n`);
});

function shutdown() {
  engine.close();
  httpServer.close();
  process.exit(0);
}

process.stdin.on('end', shutdown);
process.stdin.on('close', shutdown);
process.stdin.on('error', shutdown);
process.stdin.resume();
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);
