// browser-ws.mjs drives headless Chromium (playwright-core, the Debian
// package's binary; it never downloads a browser) against duplex serve for
// browser_test.go.
//
//   node browser-ws.mjs '<config JSON>'
//
// The config (see browserConfig in browser_test.go) names the Chromium
// binary, the servers to visit ("runs": name and base URL), the message
// sizes, the runes of the text messages and the close reason. For each run
// the script opens the server's /healthz page, so that the page and the
// WebSocket are same-origin, and in the page: opens ws://<server>/ws/echo,
// sends a text and a binary message of each size one at a time and then all
// at once, compares each echo with what it sent, and closes with 4000. It
// prints one JSON line per run ({"ev":"result",...}); the Go test checks
// them. Everything is bounded by the config's timeouts.
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
  emit({ ev: 'fatal', message: `browser-ws.mjs: not done within ${cfg.totalTimeoutMs} ms` });
  Promise.race([browser?.close(), new Promise((r) => setTimeout(r, 1000))])
    .finally(() => process.exit(3));
}, cfg.totalTimeoutMs ?? 20000);

// inPage runs in the page: the whole WebSocket exchange. It returns a
// plain object (Playwright serializes it).
async function inPage({ wsURL, sizes, textRunes, reason, opTimeoutMs }) {
  const enc = new TextEncoder();
  const hex = (buf) => Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join('');
  const sha256 = async (bytes) => hex(await crypto.subtle.digest('SHA-256', bytes));
  const withTimeout = (p, what) => {
    let timer;
    return Promise.race([
      p,
      new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: not within ${opTimeoutMs} ms`)), opTimeoutMs); }),
    ]).finally(() => clearTimeout(timer));
  };

  // textOf returns a string whose UTF-8 encoding is exactly n bytes,
  // cycling through textRunes (1- to 4-byte) and padding with 'z' (as
  // textPayload in harness_test.go does).
  const runes = Array.from(textRunes).map((r) => [r, enc.encode(r).length]);
  const textOf = (n) => {
    const parts = [];
    let len = 0;
    for (let i = 0; ; i++) {
      const [r, l] = runes[i % runes.length];
      if (len + l > n) break;
      parts.push(r);
      len += l;
    }
    while (len < n) { parts.push('z'); len++; }
    return parts.join('');
  };
  // binaryOf returns n random bytes (getRandomValues takes 64 KiB at most).
  const binaryOf = (n) => {
    const b = new Uint8Array(n);
    for (let off = 0; off < n; off += 65536) crypto.getRandomValues(b.subarray(off, Math.min(n, off + 65536)));
    return b;
  };

  const messages = [];
  for (const n of sizes) {
    messages.push({ name: `text-${n}`, kind: 'text', size: n, data: textOf(n) });
    messages.push({ name: `binary-${n}`, kind: 'binary', size: n, data: binaryOf(n) });
  }
  for (const m of messages) {
    m.bytes = m.kind === 'text' ? enc.encode(m.data) : m.data;
    m.sentLen = m.bytes.length;
    m.sentSha = await sha256(m.bytes);
  }

  const out = { url: wsURL, messages: [], errors: [] };
  const ws = new WebSocket(wsURL);
  ws.binaryType = 'arraybuffer';
  const inbox = [];
  let wake = null;
  ws.onmessage = (e) => { inbox.push(e.data); if (wake) { wake(); wake = null; } };
  ws.onerror = () => out.errors.push(`error event (readyState ${ws.readyState})`);
  const closed = new Promise((resolve) => {
    ws.onclose = (e) => { resolve({ code: e.code, reason: e.reason, wasClean: e.wasClean }); if (wake) { wake(); wake = null; } };
  });
  let closeEv = null;
  closed.then((c) => { closeEv = c; });

  const next = async (what) => {
    const p = (async () => {
      while (inbox.length === 0) {
        if (closeEv) throw new Error(`${what}: closed first (${JSON.stringify(closeEv)})`);
        await new Promise((r) => { wake = r; });
      }
      return inbox.shift();
    })();
    return withTimeout(p, what);
  };

  // check compares an echo with the message sent, byte for byte.
  const check = async (m, data, phase) => {
    const r = { name: m.name, phase, kind: m.kind, size: m.size, sentLen: m.sentLen, sentSha: m.sentSha };
    let got;
    if (typeof data === 'string') {
      r.recvKind = 'text';
      got = enc.encode(data);
    } else if (data instanceof ArrayBuffer) {
      r.recvKind = 'binary';
      got = new Uint8Array(data);
    } else {
      r.recvKind = `unexpected ${Object.prototype.toString.call(data)}`;
      got = new Uint8Array(0);
    }
    r.recvLen = got.length;
    r.recvSha = await sha256(got);
    let i = 0;
    while (i < got.length && i < m.bytes.length && got[i] === m.bytes[i]) i++;
    r.equal = r.recvKind === m.kind && got.length === m.bytes.length && i === got.length &&
      (m.kind !== 'text' || data === m.data);
    if (!r.equal) r.firstDiff = i;
    return r;
  };

  try {
    await withTimeout(new Promise((resolve, reject) => {
      ws.onopen = resolve;
      closed.then((c) => reject(new Error(`closed before open: ${JSON.stringify(c)}`)));
    }), 'open');
    out.extensions = ws.extensions;
    out.protocol = ws.protocol;

    // One at a time.
    for (const m of messages) {
      ws.send(m.data);
      out.messages.push(await check(m, await next(`echo of ${m.name}`), 'sequential'));
    }
    // All at once: the echoes come back in order.
    for (const m of messages) ws.send(m.data);
    for (const m of messages) out.messages.push(await check(m, await next(`pipelined echo of ${m.name}`), 'pipelined'));

    ws.close(4000, reason);
    out.close = await withTimeout(closed, 'close event');
  } catch (e) {
    out.errors.push(String(e && e.message || e));
    try { ws.close(); } catch {}
  }
  out.readyState = ws.readyState;
  out.bufferedAmount = ws.bufferedAmount;

  // For the screenshot.
  document.body.style.cssText = 'font: 13px monospace; white-space: pre; margin: 1em';
  document.body.textContent = [
    `${wsURL}`,
    `extensions: ${JSON.stringify(out.extensions)}`,
    ...out.messages.map((r) => `${r.phase.padEnd(10)} ${r.name.padEnd(16)} ${r.equal ? 'ok ' : 'BAD'} ${r.recvLen} bytes sha256 ${r.recvSha.slice(0, 16)}…`),
    `close: ${JSON.stringify(out.close)}`,
    `errors: ${JSON.stringify(out.errors)}`,
  ].join('\n');
  return out;
}

function header(headers, name) {
  for (const [k, v] of Object.entries(headers ?? {})) {
    if (k.toLowerCase() === name.toLowerCase()) return v;
  }
  return undefined;
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
  for (const run of cfg.runs) {
    const result = { ev: 'result', name: run.name };
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      page.setDefaultTimeout(cfg.opTimeoutMs);
      page.on('console', (m) => emit({ ev: 'console', name: run.name, type: m.type(), text: m.text() }));
      page.on('pageerror', (e) => emit({ ev: 'pageerror', name: run.name, message: String(e) }));
      // The handshake's headers, from the DevTools protocol.
      const cdp = await context.newCDPSession(page);
      await cdp.send('Network.enable');
      cdp.on('Network.webSocketWillSendHandshakeRequest', (e) => {
        result.reqExtensions = header(e.request.headers, 'Sec-WebSocket-Extensions');
        result.origin = header(e.request.headers, 'Origin');
      });
      cdp.on('Network.webSocketHandshakeResponseReceived', (e) => {
        result.status = e.response.status;
        result.respExtensions = header(e.response.headers, 'Sec-WebSocket-Extensions') ?? '';
      });
      const resp = await page.goto(run.base + '/healthz', { timeout: cfg.opTimeoutMs });
      result.pageStatus = resp ? resp.status() : 0;
      result.pageURL = page.url();
      Object.assign(result, await page.evaluate(inPage, {
        wsURL: run.base.replace(/^http/, 'ws') + '/ws/echo',
        sizes: cfg.sizes,
        textRunes: cfg.textRunes,
        reason: cfg.reason,
        opTimeoutMs: cfg.opTimeoutMs,
      }));
      if (cfg.screenshot && run.screenshot) {
        await page.screenshot({ path: cfg.screenshot, fullPage: true });
        result.screenshot = cfg.screenshot;
      }
      await cdp.detach().catch(() => {});
    } catch (e) {
      result.errors = [...(result.errors ?? []), `browser-ws.mjs: ${e && e.message || e}`];
    } finally {
      await context.close().catch(() => {});
    }
    emit(result);
  }
} catch (e) {
  emit({ ev: 'fatal', message: `browser-ws.mjs: ${e && e.stack || e}` });
  exitCode = 2;
} finally {
  if (browser) await browser.close().catch(() => {});
  clearTimeout(deadline);
}
process.exitCode = exitCode;
