// Node socket.io v4 server for `sio-bench` (benches/src/bin/sio-bench.rs):
// the same handlers as the Rust servers in benches/src/sio_bench.rs.
//
//   NODE_PATH=tests/interop/node_modules node benches/scripts/sio-server.js
//
// Prints "LISTENING 127.0.0.1:<port>" once it accepts connections.
// - "echo" with an ack: acknowledges with the arguments it got.
// - "join" (room) with an ack: joins the room, acknowledges.
// - "broadcast-bench" (room, n): emits "bcast" ("x") n times to the room.
"use strict";

const http = require("http");
const { Server } = require("socket.io");

const server = http.createServer();
const io = new Server(server, {
  path: "/socket.io/",
  serveClient: false,
  // No heartbeat falls inside a run (nor during the idle-memory count).
  pingInterval: 600000,
  pingTimeout: 20000,
  maxHttpBufferSize: 1e6,
});

io.on("connection", (socket) => {
  socket.on("echo", (...args) => {
    const ack = typeof args[args.length - 1] === "function" ? args.pop() : null;
    if (ack) ack(...args);
  });
  socket.on("join", (room, ack) => {
    socket.join(room);
    if (typeof ack === "function") ack(room);
  });
  socket.on("broadcast-bench", (room, n) => {
    for (let i = 0; i < n; i++) io.to(room).emit("bcast", "x");
  });
});

server.listen(0, "127.0.0.1", () => {
  const { address, port } = server.address();
  console.log(`LISTENING ${address}:${port}`);
});
