// ws-server.mjs serves the two WebSocket endpoints of duplex serve on the
// Node ws package, for duplex bench to load beside Duplex and the Go
// libraries of ../cmd/peerserve (../compare.sh):
//
//   /ws/echo       every message comes back unchanged, text as text,
//                  binary as binary
//   /ws/broadcast  every message goes to every connection on
//                  /ws/broadcast, the sender included
//
//   node ws-server.mjs --addr 127.0.0.1:8080
//
// It uses the ws installed for the interop tests (test/interop), so it adds
// no package.json. Both endpoints share one http.Server, routed by path in
// its 'upgrade' event, as the ws README shows for several servers on one
// port. No compression (perMessageDeflate: false), the read limit of
// duplex serve (16 MiB), and ws's own UTF-8 check of text messages. ws
// masks and unmasks with its optional native addon bufferutil when
// NODE_PATH leads to it, in JavaScript otherwise.
//
// Broadcast is the README's loop over wss.clients calling send, which
// frames the message for each client; a client with more than 4 MiB not
// yet written (duplex serve's bound) is terminated.
//
// Once listening it prints "ws VERSION (with|without bufferutil) listening
// on ADDR"; it exits on SIGINT or SIGTERM, dropping its connections.
import http from 'node:http';
import { createRequire } from 'node:module';
import WebSocket, { WebSocketServer } from '../../../test/interop/node_modules/ws/wrapper.mjs';

const readLimit = 16 << 20;
const writeBufferLimit = 4 << 20;

const args = process.argv.slice(2);
const at = args.indexOf('--addr');
const addr = at >= 0 ? args[at + 1] : '127.0.0.1:8080';
const colon = addr.lastIndexOf(':');
const host = addr.slice(0, colon);
const port = Number(addr.slice(colon + 1));
if (!host || !Number.isInteger(port)) {
  console.error(`ws-server: --addr ${addr}: want HOST:PORT`);
  process.exit(2);
}

const options = { noServer: true, perMessageDeflate: false, maxPayload: readLimit };
const echo = new WebSocketServer({ ...options, clientTracking: false });
const broadcast = new WebSocketServer(options);

echo.on('connection', (ws) => {
  ws.on('error', () => {});
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
});

broadcast.on('connection', (ws) => {
  ws.on('error', () => {});
  ws.on('message', (data, isBinary) => {
    for (const client of broadcast.clients) {
      if (client.readyState !== WebSocket.OPEN) continue;
      if (client.bufferedAmount > writeBufferLimit) {
        client.terminate();
        continue;
      }
      client.send(data, { binary: isBinary });
    }
  });
});

const server = http.createServer((req, res) => {
  res.writeHead(404).end();
});
server.on('upgrade', (req, socket, head) => {
  const { pathname } = new URL(req.url, 'http://localhost');
  const wss = pathname === '/ws/echo' ? echo : pathname === '/ws/broadcast' ? broadcast : null;
  if (wss === null) {
    socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
});

// ws loads its optional addon bufferutil, if it can, the way this does.
const wsRequire = createRequire(new URL('../../../test/interop/node_modules/ws/package.json', import.meta.url));
const { version } = wsRequire('./package.json');
let addon = 'without bufferutil';
try {
  wsRequire('bufferutil');
  addon = 'with bufferutil';
} catch {
  // ws masks in JavaScript.
}
server.listen(port, host, () => {
  console.log(`ws ${version} (${addon}) listening on ${addr}`);
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
