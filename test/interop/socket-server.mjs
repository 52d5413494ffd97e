// socket-server.mjs: one npm ws server on 127.0.0.1 in a process of its
// own, for the ws.Socket tests (socket_test.go) that kill it with SIGKILL
// and start it again on the same port:
//   node socket-server.mjs [PORT]
// PORT 0 or absent picks a free port. It prints
//   {"ev":"listening", "port":n}
// or, if it cannot listen, {"ev":"error", "message":..., "errCode":...}
// and exits. It serves connections as ws-server.mjs does, without
// permessage-deflate, each configured by its URL's query:
//   conn=n    the connection's number in events and commands (required)
//   echo=1    echo received messages
// and takes the connection commands of peer.mjs. It exits when stdin ends.
import { WebSocketServer } from 'ws';
import { attach, emit, readCommands } from './peer.mjs';

const port = Number(process.argv[2] || 0);
const wss = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: false });
wss.on('error', (err) => {
  emit({ ev: 'error', message: String(err && err.message), errCode: (err && err.code) || '' });
  process.exit(1);
});
wss.on('listening', () => emit({ ev: 'listening', port: wss.address().port }));
wss.on('connection', (ws, req) => {
  const q = new URL(req.url, 'http://localhost').searchParams;
  const conn = Number(q.get('conn'));
  emit({ conn, ev: 'open', protocol: ws.protocol, extensions: ws.extensions });
  attach(ws, conn, { echo: q.get('echo') === '1' });
});
readCommands();
