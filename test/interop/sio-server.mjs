// sio-server.mjs is the interop app of CONTRACT.md §4.2 written with the
// official socket.io 4.8 server, the reference our Go client is tested
// against (socketio_client_test.go runs the same scenarios against it and
// against internal/cmd/conformance):
//
//   node sio-server.mjs [PORT]
//
// PORT 0 or absent picks a free port. One http server on 127.0.0.1 carries
// two Socket.IO servers: /socket.io/ (connection state recovery off) and
// /recovery/ (recovery on, 2 minutes, middlewares skipped). It prints
// `READY port=<port>` once listening, and exits when stdin ends or on
// SIGTERM.
import { createServer } from "node:http";
import { createHash } from "node:crypto";
import { Server } from "socket.io";

const port = Number(process.argv[2] || 0);
const httpServer = createServer();

const common = {
  pingInterval: 1000,
  pingTimeout: 5000,
  maxHttpBufferSize: 1e6,
  connectTimeout: 5000,
  cors: { origin: "*" },
};

const HIDDEN_QUERY = new Set(["EIO", "transport", "t", "sid", "j", "b64"]);
const MAX_REASONS = 10_000;
const DYNAMIC = /^\/dyn-[a-z0-9-]+$/;

// compareJSON orders JSON values as the Go app does: numbers, then
// strings, then the rest by their JSON text.
function compareJSON(a, b) {
  const rank = (v) => (typeof v === "number" ? 0 : typeof v === "string" ? 1 : 2);
  const ra = rank(a), rb = rank(b);
  if (ra !== rb) return ra - rb;
  if (ra === 0) return a - b;
  const sa = ra === 1 ? a : JSON.stringify(a);
  const sb = ra === 1 ? b : JSON.stringify(b);
  return sa < sb ? -1 : sa > sb ? 1 : 0;
}

function isBinary(v) {
  return Buffer.isBuffer(v) || v instanceof ArrayBuffer || ArrayBuffer.isView(v);
}

function toBuffer(v) {
  if (Buffer.isBuffer(v)) return v;
  if (v instanceof ArrayBuffer) return Buffer.from(v);
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

// popAck removes and returns the acknowledgement callback ending args,
// or a function that does nothing.
function popAck(args) {
  if (args.length > 0 && typeof args[args.length - 1] === "function") return args.pop();
  return () => {};
}

function install(nsp, reasons) {
  nsp.on("connection", (socket) => {
    socket.on("disconnect", (reason) => {
      reasons.delete(socket.id);
      reasons.set(socket.id, reason);
      while (reasons.size > MAX_REASONS) reasons.delete(reasons.keys().next().value);
    });
    const ownRooms = () => [...socket.rooms].filter((r) => r !== socket.id).sort();

    socket.on("whoami", (...args) => {
      const ack = popAck(args);
      const query = {};
      for (const [k, v] of Object.entries(socket.handshake.query)) {
        if (!HIDDEN_QUERY.has(k)) query[k] = v;
      }
      ack({
        id: socket.id,
        nsp: socket.nsp.name,
        rooms: ownRooms(),
        auth: socket.handshake.auth,
        query,
        transport: socket.conn.transport.name,
        engineId: socket.conn.id,
        recovered: socket.recovered,
      });
    });
    socket.on("echo", (...args) => {
      if (args.length > 0 && typeof args[args.length - 1] === "function") {
        const ack = args.pop();
        ack(...args);
      } else {
        socket.emit("echo", ...args);
      }
    });
    socket.on("delayed-echo", (ms, ...args) => {
      const ack = popAck(args);
      const d = Math.min(Math.max(Number(ms) || 0, 0), 10_000);
      setTimeout(() => ack(...args), d);
    });
    socket.on("ignore", () => {});
    socket.on("binary-digest", (...args) => {
      const ack = popAck(args);
      const data = args[0];
      if (!isBinary(data)) return ack({ error: "not binary" });
      const buf = toBuffer(data);
      ack({ length: buf.length, sha256: createHash("sha256").update(buf).digest("hex") });
    });
    socket.on("make-binary", (...args) => {
      const ack = popAck(args);
      const n = Math.floor(Math.min(Math.max(Number(args[0]) || 0, 0), 1 << 20));
      const b = Buffer.alloc(n);
      for (let i = 0; i < n; i++) b[i] = i & 0xff;
      ack(b);
    });
    socket.on("join", async (...args) => {
      const ack = popAck(args);
      await socket.join(String(args[0]));
      ack(ownRooms());
    });
    socket.on("leave", async (...args) => {
      const ack = popAck(args);
      await socket.leave(String(args[0]));
      ack(ownRooms());
    });
    socket.on("room-size", (...args) => {
      const ack = popAck(args);
      const room = socket.nsp.adapter.rooms.get(String(args[0]));
      ack(room ? room.size : 0);
    });
    socket.on("say", (...args) => {
      const ack = popAck(args);
      const [room, msg] = args;
      socket.to(room).emit("said", room, msg, socket.id);
      ack(true);
    });
    socket.on("shout", (...args) => {
      const ack = popAck(args);
      socket.nsp.emit("shouted", args[0], socket.id);
      ack(true);
    });
    socket.on("others", (...args) => {
      const ack = popAck(args);
      socket.broadcast.emit("others", args[0], socket.id);
      ack(true);
    });
    socket.on("whisper", (...args) => {
      const ack = popAck(args);
      const [target, msg] = args;
      socket.nsp.to(target).emit("whisper", msg, socket.id);
      ack(true);
    });
    socket.on("ask", async (...args) => {
      const ack = popAck(args);
      const [question, timeoutMs] = args;
      try {
        const answer = await socket.timeout(Number(timeoutMs) || 0).emitWithAck("question", question);
        ack({ answer });
      } catch {
        ack({ error: "timeout" });
      }
    });
    socket.on("collect", async (...args) => {
      const ack = popAck(args);
      const [room, timeoutMs] = args;
      let timedOut = false;
      let responses;
      try {
        responses = await socket.nsp.to(room).timeout(Number(timeoutMs) || 0).emitWithAck("collect", room);
      } catch (err) {
        timedOut = true;
        responses = (err && err.responses) || [];
      }
      ack({ timedOut, responses: [...responses].sort(compareJSON) });
    });
    socket.on("disconnect-reason", (...args) => {
      const ack = popAck(args);
      const r = reasons.get(args[0]);
      ack(r === undefined ? null : r);
    });
    socket.on("disconnect-me", (close) => {
      socket.disconnect(close === true);
    });
    socket.on("drop", () => {
      socket.conn.close();
    });
  });
}

function app(path, extra) {
  const io = new Server(httpServer, { path, ...common, ...extra });
  const reasons = new Map();
  install(io.of("/"), reasons);
  const admin = io.of("/admin");
  admin.use((socket, next) => {
    const auth = socket.handshake.auth;
    if (auth && auth.token === "secret") return next();
    const err = new Error("unauthorized");
    err.data = { code: 401 };
    next(err);
  });
  install(admin, reasons);
  install(io.of(DYNAMIC), reasons);
  return io;
}

const servers = [
  app("/socket.io/", {}),
  app("/recovery/", {
    connectionStateRecovery: { maxDisconnectionDuration: 120_000, skipMiddlewares: true },
  }),
];

let exiting = false;
function exit() {
  if (exiting) return;
  exiting = true;
  for (const io of servers) io.close();
  httpServer.close();
  setTimeout(() => process.exit(0), 200).unref();
}

httpServer.on("error", (err) => {
  console.error(String(err && err.stack || err));
  process.exit(1);
});
httpServer.listen(port, "127.0.0.1", () => {
  console.log(`READY port=${httpServer.address().port}`);
});
process.on("SIGTERM", exit);
process.stdin.on("end", exit);
process.stdin.on("error", exit);
process.stdin.resume();
