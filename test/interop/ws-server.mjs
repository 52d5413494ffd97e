// ws-server.mjs: two npm ws servers on 127.0.0.1, on ephemeral ports, one
// without permessage-deflate (ws's default) and one with it. It prints
//   {"ev":"listening", "port":n, "deflatePort":n}
// and then serves any number of connections, each configured by its URL's
// query:
//   conn=n        the connection's number in events and commands (required)
//   echo=1        echo received messages
//   select=NAME   answer subprotocol NAME whatever the client offered
//                 (select= answers none); without it ws's default applies:
//                 the client's first.
//   hello=TEXT    send TEXT at once, right behind the handshake response
// The open event carries the request's Sec-WebSocket-Protocol and
// Sec-WebSocket-Extensions as reqProtocol and reqExtensions.
//
// Besides the commands of peer.mjs it takes
//   {"op":"listen", "conn":n, "deflate":{...}}
// which starts one more server, with deflate as ws's perMessageDeflate
// options (true for its defaults), and reports
//   {"conn":n, "ev":"listening", "port":n}
// Connect to it with conn=n in the query, as above. {"op":"unlisten",
// "conn":n} stops it (connections already open stay).
import { WebSocketServer } from 'ws';
import { attach, emit, readCommands } from './peer.mjs';

const query = (req) => new URL(req.url, 'http://localhost').searchParams;

function listen(deflate) {
  const wss = newServer(deflate);
  return new Promise((resolve) => wss.on('listening', () => resolve(wss.address().port)));
}

function newServer(deflate) {
  const wss = new WebSocketServer({
    host: '127.0.0.1',
    port: 0,
    perMessageDeflate: deflate,
    handleProtocols: (protocols, req) => {
      const q = query(req);
      if (!q.has('select')) return protocols.values().next().value;
      return q.get('select') || false;
    },
  });
  wss.on('error', (err) => emit({ ev: 'error', message: String(err.message) }));
  wss.on('connection', (ws, req) => {
    const q = query(req);
    const conn = Number(q.get('conn'));
    emit({
      conn,
      ev: 'open',
      protocol: ws.protocol,
      extensions: ws.extensions,
      reqProtocol: req.headers['sec-websocket-protocol'] || '',
      reqExtensions: req.headers['sec-websocket-extensions'] || '',
    });
    attach(ws, conn, { echo: q.get('echo') === '1' });
    if (q.has('hello')) ws.send(q.get('hello'));
  });
  return wss;
}

const extra = new Map(); // conn number → server started by listen

readCommands((cmd) => {
  switch (cmd.op) {
    case 'listen': {
      const wss = newServer(cmd.deflate === undefined ? true : cmd.deflate);
      extra.set(cmd.conn, wss);
      wss.on('listening', () => emit({ conn: cmd.conn, ev: 'listening', port: wss.address().port }));
      return true;
    }
    case 'unlisten': {
      const wss = extra.get(cmd.conn);
      extra.delete(cmd.conn);
      if (wss) wss.close();
      return true;
    }
  }
  return false;
});
const [port, deflatePort] = await Promise.all([listen(false), listen(true)]);
emit({ ev: 'listening', port, deflatePort });
