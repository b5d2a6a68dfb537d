// Reference WebSocket echo server built on the `ws` package, used as an
// independent peer by Switchboard's interop tests.
//
// Usage: node ws-server.mjs [--port N]     (default 0: any free port)
//
// Listens on 127.0.0.1 with permessage-deflate enabled (default options) and a
// 64 MiB maxPayload. Every message is echoed back as it was received: text as
// text, binary as binary. Pings are answered by `ws` itself and a close frame is
// echoed with the same code and reason.
//
// Prints exactly `listening <port>` on stdout once ready, and exits when its
// stdin closes (so a test that spawns it with a pipe never leaks it) or on
// SIGINT/SIGTERM.
import { WebSocketServer } from 'ws';

function parseArgs(argv) {
  let port = 0;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--port' && i + 1 < argv.length) {
      port = Number(argv[++i]);
    } else if (a.startsWith('--port=')) {
      port = Number(a.slice('--port='.length));
    } else if (a === '-h' || a === '--help') {
      process.stdout.write('usage: node ws-server.mjs [--port N]\n');
      process.exit(0);
    } else {
      process.stderr.write(`ws-server: unknown argument ${a}\n`);
      process.exit(2);
    }
  }
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    process.stderr.write('ws-server: --port must be an integer in 0..65535\n');
    process.exit(2);
  }
  return port;
}

const port = parseArgs(process.argv.slice(2));

const wss = new WebSocketServer({
  host: '127.0.0.1',
  port,
  perMessageDeflate: true,
  maxPayload: 64 * 1024 * 1024,
});

wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    ws.send(data, { binary: isBinary });
  });
  ws.on('error', (err) => {
    process.stderr.write(`ws-server: connection error: ${err.message}\n`);
  });
});

wss.on('error', (err) => {
  process.stderr.write(`ws-server: ${err.message}\n`);
  process.exit(1);
});

wss.on('listening', () => {
  process.stdout.write(`listening ${wss.address().port}\n`);
});

function shutdown() {
  for (const client of wss.clients) client.terminate();
  wss.close();
  process.exit(0);
}

// Exit when the parent goes away: stdin reaches EOF (or errors) once the
// spawning process closes its end of the pipe or dies.
process.stdin.on('end', shutdown);
process.stdin.on('close', shutdown);
process.stdin.on('error', shutdown);
process.stdin.resume();
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);
