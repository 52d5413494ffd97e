// tls-peer.mjs: npm's ws over TLS, for tls_test.go and h2_fallback_test.go.
//
//   node tls-peer.mjs '{"mode":"client","url":"wss://...","ca":"cert.pem","closeCode":4000}'
//     dials url trusting only the certificate in ca (rejectUnauthorized
//     stays on), offering permessage-deflate; on open it reports
//     {"ev":"open","tls":"TLSv1.3","alpn":...,"extensions":...}, sends a
//     short text, a 64 KiB text and a 3000-byte binary message, checks the
//     echoes in order, closes with closeCode, and reports
//     {"ev":"result","ok":bool,"closeCode":n,"error":"..."}. Exits 0.
//
//   node tls-peer.mjs '{"mode":"server","cert":"cert.pem","key":"key.pem","alpn":["http/1.1"]}'
//     serves an echo WebSocket on https://127.0.0.1:<port> whose ALPN
//     picks from alpn only (none at all when alpn is null), reports
//     {"ev":"listening","port":n}, then
//     {"ev":"request","httpVersion":...,"method":...,"alpn":...,"upgrade":bool}
//     for each HTTP request, and exits when stdin ends.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import WebSocket, { WebSocketServer } from 'ws';

const cfg = JSON.parse(process.argv[2] ?? '{}');
const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

if (cfg.mode === 'client') {
  const ws = new WebSocket(cfg.url, { ca: readFileSync(cfg.ca), perMessageDeflate: true, handshakeTimeout: 5000 });
  const bin = Buffer.alloc(3000, 0).map((_, k) => (k * 7) & 0xff);
  const sent = [['hello over wss', false], ['compressible '.repeat(5000), false], [bin, true]];
  const got = [];
  let error = '';
  const timer = setTimeout(() => { error = 'timeout'; ws.terminate(); }, cfg.timeoutMs ?? 10000);
  ws.on('unexpected-response', (req, res) => { error = 'unexpected response ' + res.statusCode; req.destroy(); });
  ws.on('error', (e) => { error ||= String(e.message ?? e); });
  ws.on('open', () => {
    const s = ws._socket;
    emit({ ev: 'open', tls: s.getProtocol?.() ?? '', alpn: s.alpnProtocol ?? false, extensions: ws.extensions });
    for (const [m, binary] of sent) ws.send(m, { binary });
  });
  ws.on('message', (data, isBinary) => {
    got.push([data, isBinary]);
    if (got.length === sent.length) ws.close(cfg.closeCode ?? 1000, 'bye');
  });
  ws.on('close', (code) => {
    clearTimeout(timer);
    const ok = got.length === sent.length && got.every(([d, b], i) => b === sent[i][1] && Buffer.from(d).equals(Buffer.from(sent[i][0])));
    emit({ ev: 'result', ok: ok && !error, closeCode: code, error });
    process.exit(0);
  });
} else if (cfg.mode === 'server') {
  const opts = { cert: readFileSync(cfg.cert), key: readFileSync(cfg.key) };
  // Node's https answers ALPN with http/1.1 unless told otherwise; an
  // empty list answers none, as servers without ALPN support do.
  opts.ALPNProtocols = cfg.alpn ?? [];
  const server = createServer(opts, (req, res) => {
    emit({ ev: 'request', httpVersion: req.httpVersion, method: req.method, alpn: req.socket.alpnProtocol ?? false, upgrade: false });
    res.writeHead(404).end();
  });
  server.on('upgrade', (req) => {
    emit({ ev: 'request', httpVersion: req.httpVersion, method: req.method, alpn: req.socket.alpnProtocol ?? false, upgrade: true });
  });
  const wss = new WebSocketServer({ server, perMessageDeflate: true });
  wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })));
  server.listen(0, '127.0.0.1', () => emit({ ev: 'listening', port: server.address().port }));
  process.stdin.resume();
  process.stdin.on('end', () => { for (const c of wss.clients) c.terminate(); server.close(); process.exit(0); });
} else {
  emit({ ev: 'fatal', message: `unknown mode ${cfg.mode}` });
  process.exit(2);
}
