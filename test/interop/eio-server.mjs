// eio-server.mjs: an npm engine.io server on 127.0.0.1 (an ephemeral
// port), path /engine.io/, for the Go client tests (engineio_test.go).
// It prints {"ev":"listening","port":n}, then for each session:
//   connection {sid, transport}, upgrade {sid, transport},
//   message {sid, binary, len, sha256}, close {sid, reason}
// It echoes every message, except the text "close-me", on which it closes
// the session (socket.close()). pingInterval 200 ms, pingTimeout 1500 ms (room for a loaded CI machine),
// maxHttpBufferSize 1,000,000. The process exits when stdin ends.
import { createHash } from 'node:crypto';
import http from 'node:http';
import { Server } from 'engine.io';

const emit = (ev) => process.stdout.write(JSON.stringify(ev) + '\n');

const httpServer = http.createServer();
const engine = new Server({ pingInterval: 200, pingTimeout: 1500, maxHttpBufferSize: 1e6 });
engine.attach(httpServer, { path: '/engine.io/' });
engine.on('connection', (socket) => {
  const sid = socket.id;
  emit({ ev: 'connection', sid, transport: socket.transport.name });
  socket.on('upgrade', (t) => emit({ ev: 'upgrade', sid, transport: t.name }));
  socket.on('message', (data) => {
    const binary = typeof data !== 'string';
    const buf = binary ? Buffer.from(data) : Buffer.from(data, 'utf8');
    emit({ ev: 'message', sid, binary, len: buf.length, sha256: createHash('sha256').update(buf).digest('hex') });
    if (data === 'close-me') socket.close();
    else socket.send(data);
  });
  socket.on('close', (reason) => emit({ ev: 'close', sid, reason }));
});
httpServer.listen(0, '127.0.0.1', () => emit({ ev: 'listening', port: httpServer.address().port }));

process.stdin.on('data', () => {});
process.stdin.on('end', () => {
  engine.close();
  httpServer.close();
  setTimeout(() => process.exit(0), 100);
});
