// socket-browser.mjs runs socket_browser_test.go's scenario table in
// headless Chromium (playwright-core, the Debian package's binary; it never
// downloads a browser), with the browser's own WebSocket.
//
//   node socket-browser.mjs '<config JSON>'
//
// The config (sbBrowserConfig in socket_browser_test.go) names the Chromium
// binary and the scenarios. For each scenario the script opens the
// scenario's server's /healthz page, so that the page and the WebSocket are
// same-origin, and in the page constructs a WebSocket and records a trace:
// the readyState and url right after construction, each event with the
// readyState inside its handler, and the readyState right after close(). It
// prints one JSON line per scenario ({"ev":"result","name":...,"trace":[...]})
// and, for a scenario whose server the test stops, {"ev":"opened","name":...}
// once the open handler ran. Everything is bounded: each scenario by
// opTimeoutMs, the whole script by totalTimeoutMs.
import { chromium } from 'playwright-core';

const cfg = JSON.parse(process.argv[2] ?? '{}');

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

let browser;

// The whole script's deadline: if it passes, report, close the browser
// (for a second at most: it also exits when its DevTools pipe closes) and
// exit.
const deadline = setTimeout(() => {
  emit({ ev: 'fatal', message: `socket-browser.mjs: not done within ${cfg.totalTimeoutMs} ms` });
  Promise.race([browser?.close(), new Promise((r) => setTimeout(r, 1000))])
    .finally(() => process.exit(3));
}, cfg.totalTimeoutMs ?? 30000);

// inPage runs in the page: one scenario. It returns the trace, in the
// format socket_browser_test.go writes for ws.Socket.
async function inPage({ sc, opTimeoutMs, settleMs }) {
  const names = ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED'];
  const trace = [];
  let ws;
  const state = () => names[ws.readyState] ?? `ReadyState(${ws.readyState})`;
  const q = (s) => JSON.stringify(s);
  const hex = (buf) => Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join('');
  const doClose = () => {
    try {
      if (sc.code) ws.close(sc.code, sc.reason); else ws.close();
    } catch (e) {
      trace.push(`close-threw ${e.name}`);
    }
    trace.push(`after-close ${state()}`);
  };

  try {
    ws = new WebSocket(sc.wsURL);
  } catch (e) {
    trace.push(`construct-threw ${e.name}: ${e.message}`);
    return trace;
  }
  ws.binaryType = 'arraybuffer';
  trace.push(`readyState ${state()}`);
  trace.push(`url ${ws.url}`);

  let finish;
  const finished = new Promise((r) => { finish = r; });
  let received = 0;
  ws.onopen = () => {
    trace.push(`open ${state()} protocol ${q(ws.protocol)} extensions ${q(ws.extensions)}`);
    for (const m of sc.send ?? []) {
      try {
        ws.send(m.type === 'text' ? m.text : new Uint8Array(m.bytes ?? []));
      } catch (e) {
        trace.push(`send-threw ${e.name}`);
      }
    }
    // Not awaited: the test signals the server meanwhile.
    if (sc.kill) window.sbOpened(sc.name);
    if (sc.when === 'open') doClose();
  };
  ws.onmessage = (e) => {
    if (typeof e.data === 'string') trace.push(`message text ${q(e.data)}`);
    else trace.push(`message binary ${e.data.byteLength} bytes ${hex(e.data)}`);
    received++;
    if (sc.when === 'echoes' && received === (sc.send ?? []).length) doClose();
  };
  ws.onerror = () => trace.push(`error ${state()}`);
  ws.onclose = (e) => {
    trace.push(`close ${e.code} ${q(e.reason)} ${e.wasClean ? 'clean' : 'unclean'} ${state()}`);
    // Keep listening a little, for an event that would follow close.
    setTimeout(finish, settleMs);
  };
  if (sc.when === 'construct') doClose();

  const timer = setTimeout(() => { trace.push('timeout'); finish(); }, opTimeoutMs);
  await finished;
  clearTimeout(timer);
  return trace;
}

let exitCode = 0;
try {
  browser = await chromium.launch({
    executablePath: cfg.chromium,
    headless: true,
    args: cfg.chromiumArgs,
    timeout: cfg.launchTimeoutMs,
    handleSIGINT: true,
    handleSIGTERM: true,
    handleSIGHUP: true,
  });
  emit({ ev: 'launched', version: browser.version() });
  // One page for every scenario: each goto gives a fresh document (a new
  // page would cost a renderer process, half a second each).
  const context = await browser.newContext();
  // duplex serve has no favicon: answer for it, so that its 404 does not
  // show in the console next to the WebSocket's messages.
  await context.route('**/favicon.ico', (route) => route.fulfill({ status: 204 }));
  await context.exposeFunction('sbOpened', (name) => emit({ ev: 'opened', name }));
  const page = await context.newPage();
  page.setDefaultTimeout(cfg.opTimeoutMs);
  let current = '';
  page.on('console', (m) => emit({ ev: 'console', name: current, type: m.type(), text: m.text() }));
  page.on('pageerror', (e) => emit({ ev: 'pageerror', name: current, message: String(e) }));
  for (const sc of cfg.scenarios) {
    current = sc.name;
    const result = { ev: 'result', name: sc.name, errors: [] };
    const t0 = Date.now();
    try {
      const resp = await page.goto(sc.page, { timeout: cfg.opTimeoutMs });
      if (!resp || resp.status() !== 200) {
        result.errors.push(`page ${sc.page}: status ${resp ? resp.status() : 'none'}`);
      }
      result.trace = await page.evaluate(inPage, {
        sc,
        opTimeoutMs: cfg.opTimeoutMs,
        settleMs: cfg.settleMs,
      });
    } catch (e) {
      result.errors.push(`socket-browser.mjs: ${e && e.message || e}`);
    }
    result.ms = Date.now() - t0;
    emit(result);
  }
  await context.close().catch(() => {});
} catch (e) {
  emit({ ev: 'fatal', message: `socket-browser.mjs: ${e && e.stack || e}` });
  exitCode = 2;
} finally {
  if (browser) await browser.close().catch(() => {});
  clearTimeout(deadline);
}
process.exitCode = exitCode;
