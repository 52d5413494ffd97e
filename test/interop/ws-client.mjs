// ws-client.mjs: WebSocket clients made with npm's ws, on command.
//
// Besides the commands of peer.mjs it takes
//   {"op":"connect", "conn":n, "url":"ws://...", "protocols":["a","b"],
//    "deflate":bool, "echo":bool}
// which opens connection n. ws offers permessage-deflate unless deflate
// is false (its default is to offer it); an object is passed as ws's
// perMessageDeflate options ({"serverMaxWindowBits":10, "threshold":0}).
import WebSocket from 'ws';
import { attach, emit, readCommands } from './peer.mjs';

readCommands((cmd) => {
  if (cmd.op !== 'connect') return false;
  const { conn } = cmd;
  const ws = new WebSocket(cmd.url, cmd.protocols || [], {
    perMessageDeflate:
      cmd.deflate !== null && typeof cmd.deflate === 'object' ? cmd.deflate : cmd.deflate !== false,
    handshakeTimeout: 5000,
  });
  ws.on('unexpected-response', (req, res) => {
    emit({ conn, ev: 'error', message: 'unexpected response ' + res.statusCode });
    req.destroy();
  });
  ws.on('open', () => emit({ conn, ev: 'open', protocol: ws.protocol, extensions: ws.extensions }));
  attach(ws, conn, { echo: !!cmd.echo });
  return true;
});
