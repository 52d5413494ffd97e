// eio-client.mjs: one npm engine.io-client Socket, driven by the Go test
// (engineio_test.go).
//
//   node eio-client.mjs URL TRANSPORTS   URL: http://127.0.0.1:port (the path is /engine.io/)
//                                        TRANSPORTS: JSON array, e.g. ["polling","websocket"]
//
// Commands on stdin, one JSON object a line:
//   {"op":"send", "text":"..."}            a text message
//   {"op":"send", "data":"<base64>"}       a binary message
//   {"op":"sendFill", "len":n, "binary":bool}
//        a message of n bytes: "x" repeated, or bytes i & 0xff
//   {"op":"close"}                          socket.close()
// Events on stdout, one JSON object a line:
//   open {transport, sid}, upgrade {transport}, message {binary, len, sha256, text if short},
//   close {reason, description}, error {message}
// The process exits when stdin ends.
import { createHash } from 'node:crypto';
import { createInterface } from 'node:readline';
import { Socket } from 'engine.io-client';

const emit = (ev) => process.stdout.write(JSON.stringify(ev) + '\n');
const [url, transports] = process.argv.slice(2);

const socket = new Socket(url, { path: '/engine.io/', transports: JSON.parse(transports) });
socket.binaryType = 'nodebuffer';
socket.on('open', () => emit({ ev: 'open', transport: socket.transport.name, sid: socket.id }));
socket.on('upgrade', (t) => emit({ ev: 'upgrade', transport: t.name }));
socket.on('message', (data) => {
  const binary = typeof data !== 'string';
  const buf = binary ? Buffer.from(data) : Buffer.from(data, 'utf8');
  const ev = { ev: 'message', binary, len: buf.length, sha256: createHash('sha256').update(buf).digest('hex') };
  if (!binary && buf.length <= 1024) ev.text = data;
  emit(ev);
});
socket.on('close', (reason, desc) =>
  emit({ ev: 'close', reason, description: desc && desc.message ? String(desc.message) : '' }));
socket.on('error', (err) => emit({ ev: 'error', message: String(err && err.message) }));

function fill(n, binary) {
  if (!binary) return 'x'.repeat(n);
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = i & 0xff;
  return b;
}

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const cmd = JSON.parse(line);
  switch (cmd.op) {
    case 'send':
      socket.send(cmd.data !== undefined ? Buffer.from(cmd.data, 'base64') : cmd.text);
      break;
    case 'sendFill':
      socket.send(fill(cmd.len, cmd.binary));
      break;
    case 'close':
      socket.close();
      break;
  }
});
rl.on('close', () => {
  socket.close();
  setTimeout(() => process.exit(0), 100);
});
