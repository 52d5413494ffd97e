// chat-browser.mjs drives duplex serve's chat page in headless Chromium
// (playwright-core with the Debian package's binary; it never downloads a
// browser), for chat_browser_test.go.
//
//   node chat-browser.mjs '<config JSON>'
//
// Config: {chromium, chromiumArgs, urlA, urlB, room, screenshot,
// phoneScreenshot, opTimeoutMs, totalTimeoutMs}. Two pages (ann on urlA, bob
// on urlB: the same server, or two servers of one cluster) join the room and
// exchange a line each way. The script then prints {"ev":"restart"} and
// waits for a line on stdin: the test restarts the server(s) meanwhile. Both
// pages must show "closed", then "open" again by themselves, and exchange
// lines again. Then a phone (390×844 at 3×, a mobile viewport) joins on
// urlB and sends a line with its Send button: the page must not scroll
// sideways, and the message input and the button must be visible and
// inside the viewport; it prints {"ev":"phone",layout}. It prints
// {"ev":"done"} and exits 0, or {"ev":"fatal",message} and exits 1. Every
// wait is bounded.
import { chromium } from 'playwright-core';
import { createInterface } from 'node:readline';

const cfg = JSON.parse(process.argv[2] ?? '{}');
const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
let browser;

const deadline = setTimeout(() => {
  emit({ ev: 'fatal', message: `chat-browser.mjs: not done within ${cfg.totalTimeoutMs} ms` });
  Promise.race([browser?.close(), new Promise((r) => setTimeout(r, 1000))]).finally(() => process.exit(3));
}, cfg.totalTimeoutMs ?? 60000);

const stdinLines = createInterface({ input: process.stdin });
const nextLine = () => new Promise((resolve) => stdinLines.once('line', resolve));

// Each page has a browser context of its own: two people, each with their
// own localStorage (where the page keeps its nickname and room).
async function openChat(url, nick, contextOptions = { viewport: { width: 760, height: 520 } }) {
  const context = await browser.newContext(contextOptions);
  await context.route('**/favicon.ico', (route) => route.fulfill({ status: 204 }));
  const page = await context.newPage();
  page.setDefaultTimeout(cfg.opTimeoutMs);
  page.on('pageerror', (e) => emit({ ev: 'log', page: nick, error: String(e) }));
  // Record every state the page shows, to see it go closed and open again.
  await page.addInitScript(() => {
    window.__states = [];
    new MutationObserver(() => {
      const s = document.getElementById('status');
      if (s && window.__states[window.__states.length - 1] !== s.textContent) window.__states.push(s.textContent);
    }).observe(document, { subtree: true, childList: true, characterData: true, attributes: true });
  });
  await page.goto(url);
  await page.waitForSelector('#status[data-state="open"]');
  await page.fill('#nick', nick);
  await page.fill('#room', cfg.room);
  await page.click('#settings button[type="submit"]');
  await page.waitForFunction((room) => document.getElementById('room-label').textContent === '#' + room, cfg.room);
  return page;
}

async function say(page, text) {
  await page.fill('#message', text);
  await page.press('#message', 'Enter');
}

async function sees(page, text) {
  await page.waitForFunction(
    (t) => [...document.querySelectorAll('#messages li')].some((li) => li.textContent.includes(t)),
    text,
  );
}

// The phone: an iPhone-sized viewport (390×844 CSS pixels, 3 device pixels
// each) with isMobile, so that Chromium honours the page's meta viewport as
// a phone's browser does. cy sends a line with the Send button, ann sees it,
// and the layout must fit the screen's width with the input and the button
// on screen.
async function phone(ann) {
  const cy = await openChat(cfg.urlB, 'cy', {
    viewport: { width: 390, height: 844 }, deviceScaleFactor: 3, isMobile: true, hasTouch: true,
  });
  await cy.fill('#message', 'from a phone');
  await cy.tap('#send');
  await sees(cy, 'cy:from a phone');
  await sees(ann, 'cy:from a phone');
  const layout = await cy.evaluate(() => {
    const box = (id) => {
      const r = document.getElementById(id).getBoundingClientRect();
      return { left: r.left, top: r.top, right: r.right, bottom: r.bottom };
    };
    const de = document.documentElement;
    return {
      innerWidth: window.innerWidth, innerHeight: window.innerHeight,
      scrollWidth: de.scrollWidth, bodyScrollWidth: document.body.scrollWidth,
      message: box('message'), send: box('send'),
    };
  });
  const problems = [];
  if (layout.innerWidth !== 390) problems.push(`innerWidth ${layout.innerWidth}, want 390 (is the meta viewport there?)`);
  if (layout.scrollWidth > layout.innerWidth || layout.bodyScrollWidth > layout.innerWidth) {
    problems.push(`scrolls sideways: scrollWidth ${layout.scrollWidth} (body ${layout.bodyScrollWidth}) > innerWidth ${layout.innerWidth}`);
  }
  for (const id of ['message', 'send']) {
    const b = layout[id];
    if (!(await cy.isVisible('#' + id))) problems.push(`#${id} is not visible`);
    if (b.left < 0 || b.top < 0 || b.right > layout.innerWidth || b.bottom > layout.innerHeight || b.right - b.left < 1) {
      problems.push(`#${id} at ${JSON.stringify(b)} is not inside the ${layout.innerWidth}×${layout.innerHeight} viewport`);
    }
  }
  if (cfg.phoneScreenshot) await cy.screenshot({ path: cfg.phoneScreenshot });
  if (problems.length) throw new Error('on a phone: ' + problems.join('; '));
  emit({ ev: 'phone', layout });
  await cy.context().close();
}

async function exchange(ann, bob, tag) {
  await say(ann, `hello bob ${tag}`);
  await sees(bob, `ann:hello bob ${tag}`);
  await say(bob, `hi ann ${tag}`);
  await sees(ann, `bob:hi ann ${tag}`);
  await sees(ann, `ann:hello bob ${tag}`); // her own line, once it went round
}

try {
  browser = await chromium.launch({ executablePath: cfg.chromium, headless: true, args: cfg.chromiumArgs, timeout: cfg.opTimeoutMs });
  const ann = await openChat(cfg.urlA, 'ann');
  const bob = await openChat(cfg.urlB, 'bob');
  // bob's arrival shows on ann's page with the count of the room.
  await sees(ann, 'bob joined #' + cfg.room);
  const online = await ann.textContent('#online');
  if (online !== '2 online') throw new Error(`ann's page shows "${online}", want "2 online"`);
  await exchange(ann, bob, 'before');
  emit({ ev: 'exchanged', phase: 'before' });

  emit({ ev: 'restart' });
  await nextLine();
  for (const [name, page] of [['ann', ann], ['bob', bob]]) {
    await page.waitForSelector('#status[data-state="open"]', { timeout: cfg.opTimeoutMs * 3 });
    const states = await page.evaluate(() => window.__states);
    if (!states.includes('closed')) throw new Error(`${name}'s page never showed closed: ${states.join(' → ')}`);
    await page.waitForFunction((room) => document.getElementById('room-label').textContent === '#' + room, cfg.room);
  }
  await exchange(ann, bob, 'after');
  emit({ ev: 'exchanged', phase: 'after' });
  if (cfg.screenshot) {
    await ann.screenshot({ path: cfg.screenshot });
    emit({ ev: 'screenshot', path: cfg.screenshot });
  }
  await phone(ann);
  emit({ ev: 'done' });
  clearTimeout(deadline);
  await browser.close();
  process.exit(0);
} catch (e) {
  emit({ ev: 'fatal', message: String(e?.stack ?? e) });
  clearTimeout(deadline);
  await Promise.race([browser?.close(), new Promise((r) => setTimeout(r, 1000))]);
  process.exit(1);
}
