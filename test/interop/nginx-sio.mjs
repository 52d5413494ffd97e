// nginx-sio.mjs drives the official socket.io-client through nginx
// (deploy/nginx.conf) to two `duplex serve --redis` processes, and prints
// one JSON line per scenario: {"name", "ok", "error"?, "ms"}. Used by
// TestNginxDeploy in nginx_test.go.
//
//   node nginx-sio.mjs '{"base":"http://127.0.0.1:PORT","ipA":"127.0.0.2","ipB":"127.0.0.3","room":"ngx-…"}'
//
// nginx pins Socket.IO clients to a process by their address: the clients
// of ipA reach one process and those of ipB the other (the test picked the
// two addresses so), each client's requests leaving from its address.
import { io } from "socket.io-client";
import http from "node:http";
import assert from "node:assert/strict";

const cfg = JSON.parse(process.argv[2]);
const STEP = cfg.stepMs || 5000; // ms, bound on every wait
const UPGRADE = ["polling", "websocket"]; // socket.io-client's default
const POLLING = ["polling"];

const agents = new Map();
function agent(ip) {
  // The polling requests (xmlhttprequest-ssl) and the WebSocket (ws) both
  // take an http.Agent, whose options reach net.connect.
  if (!agents.has(ip)) agents.set(ip, new http.Agent({ keepAlive: true, localAddress: ip }));
  return agents.get(ip);
}

const open = [];
function client(ip, nsp, transports, opts = {}) {
  const s = io(cfg.base + nsp, {
    transports, forceNew: true, reconnection: false, timeout: STEP,
    agent: agent(ip), localAddress: ip, ...opts,
  });
  open.push(s);
  return s;
}

function once(s, ev, what = ev) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), STEP);
    s.once(ev, (...args) => { clearTimeout(t); resolve(args); });
  });
}

async function connected(s) {
  if (!s.connected) {
    const err = once(s, "connect_error").then(([e]) => { throw new Error(`connect_error: ${e && e.message}`); });
    await Promise.race([once(s, "connect"), err]);
  }
  return s;
}

// upgraded waits until the client has moved to WebSocket.
async function upgraded(s) {
  const eng = s.io.engine;
  if (eng.transport.name !== "websocket") await once(eng, "upgrade", "the upgrade to websocket");
  assert.equal(eng.transport.name, "websocket");
}

const ack = (s, ...args) => s.timeout(STEP).emitWithAck(...args);

// echoAll emits "echo" with an ack and checks every argument comes back.
async function echoAll(s, ...args) {
  const got = await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("no ack for echo")), STEP);
    s.emit("echo", ...args, (...back) => { clearTimeout(t); resolve(back); });
  });
  assert.deepEqual(got, args);
}

// message resolves with the first chat message whose text is text; other
// messages (other clients of the room, if any) are skipped.
function message(s, text) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => { s.off("message", f); reject(new Error(`no message ${JSON.stringify(text)}`)); }, STEP);
    const f = (m) => {
      if (m && m.text === text) { clearTimeout(t); s.off("message", f); resolve(m); }
    };
    s.on("message", f);
  });
}

async function echoClients(transports, perIP, rounds) {
  const clients = [];
  for (let i = 0; i < perIP; i++) {
    clients.push(client(cfg.ipA, "/", transports), client(cfg.ipB, "/", transports));
  }
  await Promise.all(clients.map(async (s, i) => {
    await connected(s);
    // The first emits go over long-polling, while the upgrade may be
    // under way; the last ones over the final transport.
    await echoAll(s, `first ${i}`, i, { from: i % 2 ? "B" : "A", list: [1, "ü€"] });
    if (transports === UPGRADE) await upgraded(s);
    for (let r = 0; r < rounds; r++) {
      assert.equal(await ack(s, "echo", `c${i} r${r}`), `c${i} r${r}`);
    }
    await echoAll(s, "last", null, true, [i]);
    const name = s.io.engine.transport.name;
    assert.equal(name, transports === UPGRADE ? "websocket" : "polling");
  }));
  for (const s of clients) s.disconnect();
}

// chat has a client of ipA and one of ipB, so one on each process, join
// the same room of /chat and say something each: the other must hear it,
// through Redis.
async function chat(transports, room) {
  const a = client(cfg.ipA, "/chat", transports, { auth: { nick: "ann", room } });
  const b = client(cfg.ipB, "/chat", transports, { auth: { nick: "bob", room } });
  const welcomes = [once(a, "welcome"), once(b, "welcome")];
  await Promise.all([connected(a), connected(b)]);
  for (const [w] of await Promise.all(welcomes)) assert.equal(w.room, room);
  if (transports === UPGRADE) await Promise.all([upgraded(a), upgraded(b)]);
  for (const [from, to, nick] of [[a, b, "ann"], [b, a, "bob"]]) {
    const text = `${nick} via nginx ${Math.random().toString(36).slice(2)} ✓`;
    const heard = message(to, text);
    const echoed = message(from, text); // the sender hears itself too
    assert.equal(await ack(from, "say", text), true);
    const [m] = await Promise.all([heard, echoed]);
    assert.equal(m.nick, nick);
    assert.equal(m.room, room);
  }
  a.disconnect();
  b.disconnect();
}

const scenarios = {
  "upgrade-echo": () => echoClients(UPGRADE, 3, 5),
  "upgrade-chat": () => chat(UPGRADE, cfg.room + "-u"),
  "polling-echo": () => echoClients(POLLING, 2, 10),
  "polling-chat": () => chat(POLLING, cfg.room + "-p"),
};

const only = cfg.only || "";
let failed = 0;
for (const [name, run] of Object.entries(scenarios)) {
  if (only && name !== only) continue;
  const start = Date.now();
  try {
    await Promise.race([
      run(),
      new Promise((_, reject) => setTimeout(() => reject(new Error("scenario timed out")), 4 * STEP)),
    ]);
    console.log(JSON.stringify({ name, ok: true, ms: Date.now() - start }));
  } catch (e) {
    failed++;
    console.log(JSON.stringify({ name, ok: false, error: String(e && e.stack || e), ms: Date.now() - start }));
  }
  for (const s of open.splice(0)) s.close();
}
for (const a of agents.values()) a.destroy();
process.exit(failed ? 1 : 0);
