// socketio-redis.mjs is the Node side of the mixed-cluster test
// TestSocketIORedisCluster (socketio_redis_test.go, one subtest per
// VARIANT below): it starts a socket.io 4.8 server with one of the Redis
// adapters on a free port, beside two Duplex conformance servers on the
// same Redis and key, connects official socket.io-clients to all three,
// and prints one JSON line per scenario:
// {"name", "ok", "error"?, "ms"}.
//
//   node socketio-redis.mjs VARIANT REDIS_URL KEY GO1_URL GO2_URL [only-name]
//
// VARIANT: classic (@socket.io/redis-adapter 8.x, createAdapter),
// sharded-static, sharded-dynamic or sharded-dynamic-private
// (createShardedAdapter in that subscription mode), or streams
// (@socket.io/redis-streams-adapter 0.3 with connection state recovery on
// every server: events broadcast carry their stream offset last, which the
// scenarios set aside, and a client that reconnects to another server gets
// its socket and its missed events).
//
// The Node server has the handlers of the conformance app that the
// scenarios use (join, shout, say, others, collect) and its cluster
// events (cluster-fetch, cluster-join, cluster-leave, cluster-sse,
// cluster-count, cluster-except; see internal/cmd/conformance/main.go).

import { createServer } from "node:http";
import assert from "node:assert/strict";
import { Server } from "socket.io";
import { createAdapter, createShardedAdapter } from "@socket.io/redis-adapter";
import { createAdapter as createStreamsAdapter } from "@socket.io/redis-streams-adapter";
import { createClient } from "redis";
import { io as ioc } from "socket.io-client";

const [variant, redisURL, key, go1, go2] = process.argv.slice(2, 7);
const only = process.argv[7] || "";
const STEP = 5000; // ms, bound on every wait
const streams = variant === "streams";

// The Node server.
const pub = createClient({ url: redisURL });
pub.on("error", (e) => console.error("redis pub:", e.message));
const sub = streams ? null : pub.duplicate();
sub?.on("error", (e) => console.error("redis sub:", e.message));
await Promise.all([pub.connect(), sub?.connect()]);
let adapter;
if (variant === "classic") {
  adapter = createAdapter(pub, sub, { key, requestsTimeout: STEP });
} else if (variant.startsWith("sharded-")) {
  adapter = createShardedAdapter(pub, sub, { channelPrefix: key, subscriptionMode: variant.slice("sharded-".length) });
} else if (streams) {
  adapter = createStreamsAdapter(pub, { streamName: key, channelPrefix: key, sessionKeyPrefix: `${key}:session:`, blockTimeInMs: 1000 });
} else {
  throw new Error(`unknown variant ${variant}`);
}
const http = createServer();
const io = new Server(http, {
  adapter,
  ...(streams ? { connectionStateRecovery: { maxDisconnectionDuration: 120000 } } : {}),
  pingInterval: 1000,
});
const NAME = "node";

io.on("ping", (msg, cb) => cb(`${NAME}:${msg}`)); // server-side events
io.on("connection", (socket) => {
  const ownRooms = () => [...socket.rooms].filter((r) => r !== socket.id).sort();
  const sel = (room) => (room ? io.in(room) : io.except([]));
  socket.on("join", (room, ack) => { socket.join(room); ack?.(ownRooms()); });
  socket.on("shout", (msg, ack) => { io.emit("shouted", msg, socket.id); ack?.(true); });
  socket.on("say", (room, msg, ack) => { socket.to(room).emit("said", room, msg, socket.id); ack?.(true); });
  socket.on("others", (msg, ack) => { socket.broadcast.emit("others", msg, socket.id); ack?.(true); });
  socket.on("collect", (room, timeoutMs, ack) => {
    io.to(room).timeout(timeoutMs).emit("collect", room, (err, responses) => {
      ack({ timedOut: !!err, responses: [...responses].sort() });
    });
  });
  socket.on("cluster-except", (room, msg, ack) => { io.except(room).emit("excepted", msg, socket.id); ack(true); });
  socket.on("cluster-fetch", async (room, ack) => {
    try {
      const socks = await sel(room).fetchSockets();
      ack(socks.map((s) => ({ id: s.id, rooms: [...s.rooms].filter((r) => r !== s.id).sort() }))
        .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)));
    } catch (e) {
      ack({ error: e.message });
    }
  });
  socket.on("cluster-join", (room, newRoom, ack) => { sel(room).socketsJoin(newRoom); ack(true); });
  socket.on("cluster-leave", (room, oldRoom, ack) => { sel(room).socketsLeave(oldRoom); ack(true); });
  socket.on("cluster-sse", async (msg, ack) => {
    try {
      const responses = await io.serverSideEmitWithAck("ping", msg);
      ack({ responses: [...responses].sort() });
    } catch (e) {
      ack({ responses: [], error: e.message });
    }
  });
  socket.on("cluster-count", async (ack) => ack(await io.of("/").adapter.serverCount()));
});
await new Promise((r) => http.listen(0, "127.0.0.1", r));
const nodeURL = `http://127.0.0.1:${http.address().port}`;

// The clients: two per server, the first of each in room "red", all in
// "everyone".
const servers = { go1, go2, node: nodeURL };
const clients = [];
for (const [srv, url] of Object.entries(servers)) {
  for (const n of [1, 2]) {
    const s = ioc(url, { transports: ["websocket"], forceNew: true, reconnection: false, timeout: STEP });
    s.name = `${srv}-${n}`;
    s.srv = srv;
    s.on("collect", (room, cb) => cb(s.name));
    clients.push(s);
  }
}
const ack = (s, ...args) => s.timeout(STEP).emitWithAck(...args);
await Promise.all(clients.map((s) => (s.connected ? null : new Promise((r, j) => {
  s.once("connect", r);
  s.once("connect_error", j);
}))));
for (const s of clients) {
  await ack(s, "join", "everyone");
  if (s.name.endsWith("-1")) await ack(s, "join", "red");
}
const byServer = (srv) => clients.filter((s) => s.srv === srv);
const origins = Object.keys(servers).map((srv) => byServer(srv)[0]); // one client per server
const red = clients.filter((s) => s.name.endsWith("-1"));
const isOffset = (s) => /^[0-9]+-[0-9]+$/.test(s);
const offsetLess = (x, y) => {
  const [xm, xs] = x.split("-").map(BigInt);
  const [ym, ys] = y.split("-").map(BigInt);
  return xm < ym || (xm === ym && xs < ys);
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const ids = (list) => list.map((s) => s.id).sort();

// collectEvents records the events ev that clients get; the returned
// function gives them so far, {clientName: [args…]}, and with stop true
// stops recording.
function collectEvents(ev) {
  const got = {};
  const offs = clients.map((s) => {
    // With streams, the stream offset, last, set aside (NO-OFFSET when
    // missing).
    const f = (...a) => {
      if (streams) {
        if (typeof a[a.length - 1] === "string" && isOffset(a[a.length - 1])) a.pop();
        else a.push("NO-OFFSET");
      }
      (got[s.name] ||= []).push(a);
    };
    s.on(ev, f);
    return () => s.off(ev, f);
  });
  return (stop) => {
    if (stop) offs.forEach((f) => f());
    return got;
  };
}

// Wait until every server counts the Node server in (its subscriptions
// are asynchronous).
async function eventually(what, fn) {
  const deadline = Date.now() + STEP;
  for (;;) {
    let err;
    try {
      if (await fn()) return;
    } catch (e) {
      err = e;
    }
    if (Date.now() > deadline) throw err || new Error(`${what}: not within ${STEP} ms`);
    await sleep(50);
  }
}

// expectEvents runs emit, then waits until the events ev match want
// ({clientName: [args…]}), and 300 ms more for strays.
async function expectEvents(ev, want, emit) {
  const sorted = (m) => {
    const out = {};
    for (const k of Object.keys(m).sort()) out[k] = [...m[k]].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
    return out;
  };
  const n = Object.values(want).reduce((a, l) => a + l.length, 0);
  const events = collectEvents(ev);
  try {
    await emit();
    const deadline = Date.now() + STEP;
    while (Object.values(events()).reduce((a, l) => a + l.length, 0) < n && Date.now() < deadline) await sleep(20);
    await sleep(300);
  } finally {
    events(true);
  }
  assert.deepEqual(sorted(events()), sorted(want));
}

const scenarios = {
  async "server count"() {
    for (const s of origins) await eventually(`count from ${s.srv}`, async () => (await ack(s, "cluster-count")) === 3);
  },
  async "broadcast to all"() {
    for (const o of origins) {
      const want = Object.fromEntries(clients.map((s) => [s.name, [[`hi from ${o.srv}`, o.id]]]));
      await expectEvents("shouted", want, () => ack(o, "shout", `hi from ${o.srv}`));
    }
  },
  async "broadcast to a room"() {
    for (const o of origins) {
      const want = Object.fromEntries(red.filter((s) => s !== o).map((s) => [s.name, [["red", `to red from ${o.srv}`, o.id]]]));
      await expectEvents("said", want, () => ack(o, "say", "red", `to red from ${o.srv}`));
    }
  },
  async "broadcast except a room"() {
    for (const o of origins) {
      const want = Object.fromEntries(clients.filter((s) => !red.includes(s)).map((s) => [s.name, [[`not red, from ${o.srv}`, o.id]]]));
      await expectEvents("excepted", want, () => ack(o, "cluster-except", "red", `not red, from ${o.srv}`));
    }
  },
  async "broadcast to others, binary"() {
    for (const o of origins) {
      const bin = Buffer.from([1, 2, 3, o.srv.length]);
      const events = collectEvents("others");
      await ack(o, "others", bin);
      await sleep(400);
      const got = events(true);
      assert.deepEqual(Object.keys(got).sort(), clients.filter((s) => s !== o).map((s) => s.name).sort());
      for (const [name, evs] of Object.entries(got)) {
        assert.equal(evs.length, 1, name);
        assert.ok(Buffer.isBuffer(evs[0][0]) || evs[0][0] instanceof ArrayBuffer, `${name}: ${JSON.stringify(evs[0])}`);
        assert.deepEqual([...new Uint8Array(evs[0][0])], [...bin]);
        assert.equal(evs[0][1], o.id);
        assert.equal(evs[0].length, 2, `${name}: ${evs[0].slice(2)}`);
      }
    }
  },
  async fetchSockets() {
    for (const o of origins) {
      const all = await ack(o, "cluster-fetch", "");
      assert.deepEqual(all.map((s) => s.id), ids(clients), `all, from ${o.srv}`);
      for (const s of all) {
        const c = clients.find((c) => c.id === s.id);
        assert.deepEqual(s.rooms, red.includes(c) ? ["everyone", "red"] : ["everyone"], c.name);
      }
      const inRed = await ack(o, "cluster-fetch", "red");
      assert.deepEqual(inRed.map((s) => s.id), ids(red), `red, from ${o.srv}`);
    }
  },
  async "socketsJoin and socketsLeave"() {
    for (const o of origins) {
      const room = `joined-by-${o.srv}`;
      await ack(o, "cluster-join", "red", room);
      for (const other of origins) {
        await eventually(`${room} seen from ${other.srv}`, async () => {
          const got = await ack(other, "cluster-fetch", room);
          assert.deepEqual(got.map((s) => s.id), ids(red));
          return true;
        });
      }
      await ack(o, "cluster-leave", "", room);
      for (const other of origins) {
        await eventually(`${room} left, seen from ${other.srv}`, async () => {
          const got = await ack(other, "cluster-fetch", room);
          assert.deepEqual(got, []);
          return true;
        });
      }
    }
  },
  async "serverSideEmit with acks"() {
    const names = { go1: "duplex-1", go2: "duplex-2", node: "node" };
    for (const o of origins) {
      const res = await ack(o, "cluster-sse", "x");
      const want = Object.entries(names).filter(([srv]) => srv !== o.srv).map(([, n]) => `${n}:x`).sort();
      assert.deepEqual(res, { responses: want }, `from ${o.srv}`);
    }
  },
  async "broadcast with acks"() {
    for (const o of origins) {
      const all = await ack(o, "collect", "everyone", STEP - 1000);
      assert.deepEqual(all, { timedOut: false, responses: clients.map((s) => s.name).sort() }, `everyone, from ${o.srv}`);
      const r = await ack(o, "collect", "red", STEP - 1000);
      assert.deepEqual(r, { timedOut: false, responses: red.map((s) => s.name).sort() }, `red, from ${o.srv}`);
    }
  },
  async "allRooms, asked by Node"() {
    if (variant !== "classic") return "skip"; // the ClusterAdapter has no allRooms
    // ALL_ROOMS, a request that only the Node adapter sends (8.x no
    // longer sends SOCKETS: allSockets is local); the Duplex servers
    // answer it.
    const rooms = await io.of("/").adapter.allRooms();
    for (const r of ["everyone", "red", ...ids(clients)]) assert.ok(rooms.has(r), `room ${r} in ${[...rooms]}`);
  },
  async "recovery across servers"() {
    if (!streams) return "skip"; // recovery needs the streams adapter
    for (const [from, to] of [["node", "go1"], ["go1", "node"], ["go1", "go2"]]) {
      const c = ioc(servers[from], { transports: ["websocket"], forceNew: true, reconnectionDelay: 1000, reconnectionDelayMax: 1000, randomizationFactor: 0, timeout: STEP });
      await new Promise((r, j) => { c.once("connect", r); c.once("connect_error", j); });
      const room = `rec-${from}-${to}`;
      await ack(c, "join", room);
      const id = c.id;
      const got = [];
      c.on("said", (...a) => got.push(a));
      const say = (srv, msg) => ack(byServer(srv)[0], "say", room, msg);
      const waitFor = async (n, what) => eventually(what, async () => got.length >= n);
      await say(to, "m0");
      await waitFor(1, "m0");
      // The connection drops; the next attempt goes to the other server.
      c.io.uri = servers[to];
      const disconnected = new Promise((r) => c.once("disconnect", r));
      c.io.engine.close();
      await disconnected;
      await eventually(`${from} keeps the session`, async () => (await pub.keys(`${key}:session:*`)).length >= 1);
      const reconnected = new Promise((r) => c.once("connect", r));
      await say(to, "m1");
      await say(from, "m2");
      await say(Object.keys(servers).find((s) => s !== from && s !== to), "m3");
      await Promise.race([reconnected, sleep(3 * STEP).then(() => { throw new Error("no reconnection"); })]);
      assert.ok(c.recovered, `${from} → ${to}: not recovered`);
      assert.equal(c.id, id, `${from} → ${to}: id`);
      await waitFor(4, `${from} → ${to}: the missed events`);
      await say(to, "m4");
      await waitFor(5, `${from} → ${to}: m4`);
      c.disconnect();
      assert.deepEqual(got.map((a) => a[1]), ["m0", "m1", "m2", "m3", "m4"], `${from} → ${to}`);
      const offsets = got.map((a) => a[a.length - 1]);
      for (let i = 0; i < offsets.length; i++) {
        assert.ok(isOffset(offsets[i]) && (i === 0 || offsetLess(offsets[i - 1], offsets[i])), `${from} → ${to}: offsets ${offsets}`);
      }
    }
  },
};

for (const [name, fn] of Object.entries(scenarios)) {
  if (only && name !== only) continue;
  const start = Date.now();
  try {
    if ((await fn()) === "skip") continue; // not for this variant
    console.log(JSON.stringify({ name, ok: true, ms: Date.now() - start }));
  } catch (e) {
    console.log(JSON.stringify({ name, ok: false, error: String(e && e.stack || e), ms: Date.now() - start }));
  }
}
clients.forEach((s) => s.disconnect());
io.close();
await Promise.allSettled([pub.quit(), sub?.quit()]);
process.exit(0);
