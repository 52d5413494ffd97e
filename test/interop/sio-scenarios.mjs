// sio-scenarios.mjs drives the official socket.io-client against the
// interop app of the conformance server (CONTRACT.md §4.2) and prints one
// JSON line per scenario: {"name", "ok", "error"?}. Used by
// socketio_test.go.
//
//   node sio-scenarios.mjs http://127.0.0.1:APP_PORT [websocket|polling|upgrade] [only-name]
import { io } from "socket.io-client";
import { createHash } from "node:crypto";
import assert from "node:assert/strict";

const base = process.argv[2];
const mode = process.argv[3] || "upgrade";
const only = process.argv[4] || "";
const transports = { websocket: ["websocket"], polling: ["polling"], upgrade: ["polling", "websocket"] }[mode];
const STEP = 5000; // ms, bound on every wait

const open = [];
function client(nsp = "/", opts = {}) {
  const s = io(base + nsp, { transports, forceNew: true, reconnection: false, timeout: STEP, ...opts });
  open.push(s);
  return s;
}

function once(s, ev) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out waiting for ${ev}`)), STEP);
    s.once(ev, (...args) => { clearTimeout(t); resolve(args); });
  });
}

async function connected(s) {
  if (!s.connected) await once(s, "connect");
  if (mode === "upgrade") {
    // wait for the upgrade, so that scenarios see the final transport
    const eng = s.io.engine;
    if (eng.transport.name !== "websocket") await once(eng, "upgrade");
  }
  return s;
}

const ack = (s, ...args) => s.timeout(STEP).emitWithAck(...args);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const notReceived = (s, ev, ms = 300) =>
  new Promise((resolve, reject) => {
    const f = (...a) => reject(new Error(`unexpected ${ev} ${JSON.stringify(a)}`));
    s.on(ev, f);
    setTimeout(() => { s.off(ev, f); resolve(); }, ms);
  });

const scenarios = {
  async whoami() {
    const s = await connected(client("/", { auth: { user: "ann" }, query: { color: "blue" } }));
    const me = await ack(s, "whoami");
    assert.equal(me.id, s.id);
    assert.equal(me.nsp, "/");
    assert.deepEqual(me.rooms, []);
    assert.deepEqual(me.auth, { user: "ann" });
    assert.deepEqual(me.query, { color: "blue" });
    assert.equal(me.transport, mode === "polling" ? "polling" : "websocket");
    assert.equal(me.engineId, s.io.engine.id);
    assert.equal(me.recovered, false);
  },
  async echo() {
    const s = await connected(client());
    const args = ["a", 1, 2.5, true, null, { x: [1, { y: "z" }], "ü": "€" }, [], {}];
    assert.deepEqual(await ack(s, "echo", ...args), args[0]); // emitWithAck resolves with the first argument
    const all = await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error("no ack")), STEP);
      s.emit("echo", ...args, (...got) => { clearTimeout(t); resolve(got); });
    });
    assert.deepEqual(all, args);
    const back = once(s, "echo");
    s.emit("echo", "no ack", 42);
    assert.deepEqual(await back, ["no ack", 42]);
  },
  async binary() {
    const s = await connected(client());
    const buf = Buffer.alloc(100_000);
    for (let i = 0; i < buf.length; i++) buf[i] = (i * 7) & 0xff;
    const d = await ack(s, "binary-digest", buf);
    assert.deepEqual(d, { length: buf.length, sha256: createHash("sha256").update(buf).digest("hex") });
    assert.deepEqual(await ack(s, "binary-digest", "text"), { error: "not binary" });
    const b = await ack(s, "make-binary", 1000);
    assert.ok(Buffer.isBuffer(b), "make-binary gives a Buffer");
    assert.equal(b.length, 1000);
    for (let i = 0; i < 1000; i++) assert.equal(b[i], i & 0xff);
    const mixed = await new Promise((resolve) => s.emit("echo", { a: Buffer.from([1, 2]), b: [Buffer.from([3])] }, "t", (...got) => resolve(got)));
    assert.deepEqual(mixed, [{ a: Buffer.from([1, 2]), b: [Buffer.from([3])] }, "t"]);
  },
  async rooms() {
    const a = await connected(client());
    const b = await connected(client());
    assert.deepEqual(await ack(b, "join", "r1"), ["r1"]);
    assert.deepEqual(await ack(b, "join", "r0"), ["r0", "r1"]);
    assert.equal(await ack(a, "room-size", "r1"), 1);
    const said = once(b, "said");
    const notA = notReceived(a, "said");
    assert.equal(await ack(a, "say", "r1", { hi: 1 }), true);
    assert.deepEqual(await said, ["r1", { hi: 1 }, a.id]);
    await notA;
    assert.deepEqual(await ack(b, "leave", "r1"), ["r0"]);
    assert.equal(await ack(a, "room-size", "r1"), 0);
  },
  async broadcasts() {
    const a = await connected(client());
    const b = await connected(client());
    const sa = once(a, "shouted"), sb = once(b, "shouted");
    assert.equal(await ack(a, "shout", "hey"), true);
    assert.deepEqual(await sa, ["hey", a.id]);
    assert.deepEqual(await sb, ["hey", a.id]);
    const ob = once(b, "others");
    const notA = notReceived(a, "others");
    assert.equal(await ack(a, "others", 7), true);
    assert.deepEqual(await ob, [7, a.id]);
    await notA;
    const wb = once(b, "whisper");
    assert.equal(await ack(a, "whisper", b.id, "psst"), true);
    assert.deepEqual(await wb, ["psst", a.id]);
  },
  async ask() {
    const s = await connected(client());
    s.on("question", (q, cb) => cb(`answer to ${q}`));
    assert.deepEqual(await ack(s, "ask", "life", 2000), { answer: "answer to life" });
    const t = await connected(client());
    t.on("question", () => {}); // never answers
    assert.deepEqual(await ack(t, "ask", "q", 200), { error: "timeout" });
  },
  async collect() {
    const cs = [];
    for (const name of ["c", "a", "b"]) {
      const s = await connected(client());
      s.on("collect", (room, cb) => cb(`${name}@${room}`));
      await ack(s, "join", "grp");
      cs.push(s);
    }
    assert.deepEqual(await ack(cs[0], "collect", "grp", 2000), { timedOut: false, responses: ["a@grp", "b@grp", "c@grp"] });
    const mute = await connected(client());
    mute.on("collect", () => {});
    await ack(mute, "join", "grp");
    const r = await ack(cs[0], "collect", "grp", 300);
    assert.equal(r.timedOut, true);
    assert.deepEqual(r.responses, ["a@grp", "b@grp", "c@grp"]);
  },
  async admin() {
    const bad = client("/admin", { auth: { token: "nope" } });
    const [err] = await once(bad, "connect_error");
    assert.equal(err.message, "unauthorized");
    assert.deepEqual(err.data, { code: 401 });
    const good = await connected(client("/admin", { auth: { token: "secret" } }));
    const me = await ack(good, "whoami");
    assert.equal(me.nsp, "/admin");
    assert.deepEqual(me.auth, { token: "secret" });
  },
  async namespaces() {
    const d = await connected(client("/dyn-abc-1"));
    assert.equal((await ack(d, "whoami")).nsp, "/dyn-abc-1");
    const none = client("/nope");
    const [err] = await once(none, "connect_error");
    assert.equal(err.message, "Invalid namespace");
    const bad = client("/dyn-UPPER");
    assert.equal((await once(bad, "connect_error"))[0].message, "Invalid namespace");
  },
  async multiplex() {
    // two namespaces over one connection
    const m = await connected(client("/", { forceNew: true }));
    const d = m.io.socket("/dyn-mux");
    open.push(d);
    if (!d.connected) await once(d, "connect");
    const [a, b] = await Promise.all([ack(m, "whoami"), ack(d, "whoami")]);
    assert.equal(a.engineId, b.engineId);
    assert.equal(b.nsp, "/dyn-mux");
    d.disconnect();
    assert.equal(await ack(m, "echo", "still"), "still");
  },
  async disconnects() {
    const w = await connected(client());
    const a = await connected(client());
    const aid = a.id; // the client forgets its id once disconnected
    const gone = once(a, "disconnect");
    a.emit("disconnect-me", false);
    assert.deepEqual((await gone)[0], "io server disconnect");
    await sleep(50);
    assert.equal(await ack(w, "disconnect-reason", aid), "server namespace disconnect");
    const b = await connected(client());
    const id = b.id;
    b.disconnect();
    await sleep(100);
    assert.equal(await ack(w, "disconnect-reason", id), "client namespace disconnect");
    const c = await connected(client());
    const cid = c.id;
    const dropped = once(c, "disconnect");
    c.emit("drop");
    assert.equal((await dropped)[0], "transport close");
    await sleep(100);
    assert.equal(await ack(w, "disconnect-reason", cid), "forced close");
    assert.equal(await ack(w, "disconnect-reason", "unknown"), null);
  },
  async reconnect() {
    const s = client("/", { reconnection: true, reconnectionDelay: 50, reconnectionDelayMax: 100 });
    await connected(s);
    const first = s.id;
    const again = once(s.io, "reconnect");
    s.emit("drop");
    await again;
    await connected(s);
    assert.notEqual(s.id, first);
    assert.equal(await ack(s, "echo", "back"), "back");
  },
  async recovery() {
    const opts = { path: "/recovery/", reconnection: true, reconnectionDelay: 50, reconnectionDelayMax: 100 };
    const s = await connected(client("/", opts));
    const other = await connected(client("/", { path: "/recovery/" }));
    await ack(s, "join", "news");
    const got = [];
    s.on("said", (room, msg) => got.push(msg));
    s.on("shouted", (msg) => got.push(msg));
    // one event before the drop, so the client has an offset
    assert.equal(await ack(other, "say", "news", "m0"), true);
    while (got.length < 1) await sleep(10);
    const id = s.id;
    const down = once(s, "disconnect");
    s.emit("drop");
    await down;
    await ack(other, "say", "news", "m1");
    await ack(other, "shout", "m2");
    await ack(other, "say", "elsewhere", "not for s");
    await once(s, "connect");
    assert.equal(s.recovered, true, "the session is recovered");
    assert.equal(s.id, id);
    const me = await ack(s, "whoami");
    assert.equal(me.recovered, true);
    assert.deepEqual(me.rooms, ["news"]);
    while (got.length < 3) await sleep(10);
    await sleep(100);
    assert.deepEqual(got, ["m0", "m1", "m2"]);
  },
};

const names = only ? [only] : Object.keys(scenarios);
let failed = 0;
for (const name of names) {
  const t0 = Date.now();
  try {
    await Promise.race([
      scenarios[name](),
      new Promise((_, reject) => setTimeout(() => reject(new Error("scenario timed out")), 4 * STEP)),
    ]);
    console.log(JSON.stringify({ name, ok: true, ms: Date.now() - t0 }));
  } catch (e) {
    failed++;
    console.log(JSON.stringify({ name, ok: false, error: String(e && e.stack || e), ms: Date.now() - t0 }));
  }
  while (open.length) open.pop().close();
}
process.exit(failed ? 1 : 0);
