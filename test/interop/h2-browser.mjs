// h2-browser.mjs drives headless Chromium (playwright-core, the Debian
// package's binary) against duplex serve over https:// with HTTP/2, for
// h2_browser_test.go:
//
//   node h2-browser.mjs '<config JSON>'   // {chromium, chromiumArgs, base, sockets, timeoutMs}
//
// It opens base/healthz (so the page and the WebSockets are same-origin and
// the page's HTTP/2 connection exists), then in the page opens `sockets`
// WebSockets to wss://<host>/ws/echo at once; each sends a short text
// (below the compression threshold), a 64 KiB compressible text and a
// binary message, checks the echoes, and closes with 4000 + its index.
// Then the official Socket.IO client (socket.io-client's browser build,
// dist/socket.io.js from node_modules, added to the page) connects to base
// twice, over the WebSocket transport only and over long-polling with the
// upgrade, and has the server acknowledge "echo" with a text, a number and
// 3 KiB of text. The DevTools protocol records each WebSocket handshake's
// status.
// It prints one JSON line:
// {"ev":"result","protocol":...,"sockets":[...],"socketio":[...],"handshakes":[...]}.
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);

const cfg = JSON.parse(process.argv[2] ?? '{}');
const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

let browser;
const deadline = setTimeout(() => {
  emit({ ev: 'fatal', message: `h2-browser.mjs: not done within ${cfg.timeoutMs} ms` });
  Promise.race([browser?.close(), new Promise((r) => setTimeout(r, 1000))]).finally(() => process.exit(3));
}, cfg.timeoutMs ?? 20000);

async function inPage({ wsURL, sockets, opTimeoutMs }) {
  const one = (i) => new Promise((resolve) => {
    const r = { index: i, ok: false, extensions: '', closeCode: 0, wasClean: false, error: '' };
    const timer = setTimeout(() => { r.error = 'timeout'; resolve(r); }, opTimeoutMs);
    const ws = new WebSocket(wsURL);
    ws.binaryType = 'arraybuffer';
    const bin = new Uint8Array(3000).map((_, k) => (k * 7 + i) & 0xff);
    const sent = [`hello ${i}`, 'compressible '.repeat(5000), bin];
    const got = [];
    ws.onopen = () => { r.extensions = ws.extensions; for (const m of sent) ws.send(m); };
    ws.onmessage = (e) => {
      got.push(e.data);
      if (got.length < sent.length) return;
      r.ok = got[0] === sent[0] && got[1] === sent[1] && got[2] instanceof ArrayBuffer &&
        new Uint8Array(got[2]).every((b, k) => b === bin[k]) && got[2].byteLength === bin.length;
      ws.close(4000 + i, `bye ${i}`);
    };
    ws.onerror = () => { r.error = 'error event'; };
    ws.onclose = (e) => { clearTimeout(timer); r.closeCode = e.code; r.wasClean = e.wasClean; resolve(r); };
  });
  const results = await Promise.all(Array.from({ length: sockets }, (_, i) => one(i)));
  const nav = performance.getEntriesByType('navigation')[0];
  return { protocol: nav ? nav.nextHopProtocol : '', sockets: results };
}

// inPageSocketIO runs in the page, once socket.io-client is loaded: one
// client per transport list, each acknowledging an echo, then closing.
async function inPageSocketIO({ base, opTimeoutMs }) {
  const one = (name, transports) => new Promise((resolve) => {
    const r = { name, ok: false, transport: '', upgraded: false, error: '' };
    const sock = io(base, { transports, forceNew: true, reconnection: false });
    const timer = setTimeout(() => { r.error = 'timeout'; sock.close(); resolve(r); }, opTimeoutMs);
    const done = () => { clearTimeout(timer); r.transport = sock.io.engine?.transport?.name ?? ''; sock.close(); resolve(r); };
    const args = ['over h2', 42, 'é'.repeat(1536)];
    const echo = () => sock.timeout(opTimeoutMs).emit('echo', ...args, (err, ...got) => {
      if (err) r.error = String(err);
      else r.ok = JSON.stringify(got) === JSON.stringify(args);
      done();
    });
    sock.on('connect_error', (e) => { r.error = 'connect_error: ' + e.message; });
    sock.on('connect', () => {
      const engine = sock.io.engine;
      if (transports.length === 1 || engine.transport.name === 'websocket') { r.upgraded = engine.transport.name === 'websocket'; echo(); return; }
      engine.once('upgrade', () => { r.upgraded = true; echo(); });
    });
  });
  return [await one('websocket', ['websocket']), await one('polling+upgrade', ['polling', 'websocket'])];
}

try {
  browser = await chromium.launch({ executablePath: cfg.chromium, args: cfg.chromiumArgs, headless: true });
  emit({ ev: 'launched', version: browser.version() });
  const page = await browser.newPage({ ignoreHTTPSErrors: true });
  page.on('console', (m) => emit({ ev: 'console', type: m.type(), text: m.text() }));
  page.on('pageerror', (e) => emit({ ev: 'pageerror', message: String(e) }));
  // The status of each WebSocket handshake as the browser saw it.
  const handshakes = [];
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  const urls = new Map();
  cdp.on('Network.webSocketCreated', (e) => urls.set(e.requestId, e.url));
  cdp.on('Network.webSocketHandshakeResponseReceived', (e) => {
    handshakes.push({ url: new URL(urls.get(e.requestId) ?? '').pathname, status: e.response.status });
  });
  await page.goto(cfg.base + '/healthz');
  const wsURL = cfg.base.replace(/^https:/, 'wss:') + '/ws/echo';
  const opTimeoutMs = Math.floor((cfg.timeoutMs - 2000) / 3);
  const res = await page.evaluate(inPage, { wsURL, sockets: cfg.sockets, opTimeoutMs });
  await page.addScriptTag({ path: require.resolve('socket.io-client/dist/socket.io.js') });
  const socketio = await page.evaluate(inPageSocketIO, { base: cfg.base, opTimeoutMs });
  emit({ ev: 'result', ...res, socketio, handshakes });
} catch (e) {
  emit({ ev: 'fatal', message: String(e?.stack ?? e) });
} finally {
  clearTimeout(deadline);
  await browser?.close();
}
