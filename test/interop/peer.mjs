// Shared by ws-client.mjs and ws-server.mjs. Each runs many WebSockets at
// once, each with a number ("conn") that the Go test chose, and is driven
// by commands the Go test writes to stdin, one JSON object a line; it
// reports what happens on stdout, one JSON object a line, tagged with conn.
//
// Commands on an open connection:
//   {"conn":n, "op":"send", "data":"<base64>" | "text":"<string>", "binary":bool, "fin":bool,
//    "compress":bool}
//       sends one frame; binary:false sends a Buffer as a text frame
//       without checking it; fin:false leaves the message open, and the
//       next sends continue it; compress:false sends it uncompressed even
//       with permessage-deflate (ws's default is to compress; only the
//       first frame of a message decides).
//   {"conn":n, "op":"sendFill", "len":n, "byte":n, "binary":bool}
//       sends one message of len bytes all equal to byte (a compression
//       bomb once deflated), without carrying it through stdin.
//   {"conn":n, "op":"deflate"}
//       reports a deflate event: the permessage-deflate parameters ws
//       settled on, as an extension element in "extensions"
//       ("permessage-deflate; server_max_window_bits=10"), or "" if none.
//   {"conn":n, "op":"ping", "data":"<base64>"}
//   {"conn":n, "op":"close", "code":n, "reason":"..."}   (code 0 or absent: no code)
//   {"conn":n, "op":"terminate"}                         (TCP close, no close frame)
//   {"conn":n, "op":"echo", "on":bool}                   (echo received messages)
//   {"conn":n, "op":"pause"}    stops reading the socket (ws's pause(): no
//       message, ping or close is read, so pings go unanswered and the
//       peer's writes back up), then reports a paused event
//   {"conn":n, "op":"resume"}   reads again (ws's resume()), then reports resumed
// Events:
//   open {protocol, extensions}, deflate {extensions}, message {binary, len, sha256, data if len <= 4096},
//   ping {data}, pong {data}, close {code, reason}, error {message, errCode},
//   paused, resumed.
// The process exits when stdin ends.
import { createHash } from 'node:crypto';
import { createInterface } from 'node:readline';

export function emit(ev) {
  process.stdout.write(JSON.stringify(ev) + '\n');
}

const smallData = 4096;
const conns = new Map(); // conn number → command handler

function describe(buf) {
  const ev = {
    len: buf.length,
    sha256: createHash('sha256').update(buf).digest('hex'),
  };
  if (buf.length <= smallData) ev.data = buf.toString('base64');
  return ev;
}

// deflateParams formats the permessage-deflate parameters ws negotiated
// (ws.extensions only names the extension).
function deflateParams(ws) {
  const pmd = ws._extensions && ws._extensions['permessage-deflate'];
  if (!pmd || !pmd.params) return '';
  let s = 'permessage-deflate';
  for (const [k, v] of Object.entries(pmd.params)) s += v === true ? `; ${k}` : `; ${k}=${v}`;
  return s;
}

// attach reports ws's events as connection conn and takes its commands.
export function attach(ws, conn, { echo = false } = {}) {
  let echoing = echo;
  ws.on('message', (data, isBinary) => {
    emit({ conn, ev: 'message', binary: isBinary, ...describe(data) });
    if (echoing) ws.send(data, { binary: isBinary });
  });
  ws.on('ping', (data) => emit({ conn, ev: 'ping', data: data.toString('base64') }));
  ws.on('pong', (data) => emit({ conn, ev: 'pong', data: data.toString('base64') }));
  ws.on('close', (code, reason) => {
    conns.delete(conn);
    emit({ conn, ev: 'close', code, reason: reason.toString('utf8') });
  });
  ws.on('error', (err) =>
    emit({ conn, ev: 'error', message: String(err && err.message), errCode: (err && err.code) || '' }),
  );
  conns.set(conn, (cmd) => {
    switch (cmd.op) {
      case 'send': {
        const payload = cmd.text !== undefined ? cmd.text : Buffer.from(cmd.data || '', 'base64');
        ws.send(payload, { binary: !!cmd.binary, fin: cmd.fin !== false, compress: cmd.compress !== false });
        break;
      }
      case 'sendFill':
        ws.send(Buffer.alloc(cmd.len, cmd.byte || 0), { binary: !!cmd.binary });
        break;
      case 'deflate':
        emit({ conn, ev: 'deflate', extensions: deflateParams(ws) });
        break;
      case 'ping':
        ws.ping(Buffer.from(cmd.data || '', 'base64'));
        break;
      case 'close':
        if (cmd.code) ws.close(cmd.code, cmd.reason || '');
        else ws.close();
        break;
      case 'terminate':
        ws.terminate();
        break;
      case 'echo':
        echoing = !!cmd.on;
        break;
      case 'pause':
        ws.pause();
        emit({ conn, ev: 'paused' });
        break;
      case 'resume':
        ws.resume();
        emit({ conn, ev: 'resumed' });
        break;
      default:
        throw new Error('unknown op');
    }
  });
}

// readCommands runs the commands on stdin: those with an op of their own
// go to other, the rest to their connection.
export function readCommands(other = () => false) {
  const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
  rl.on('line', (line) => {
    if (!line.trim()) return;
    let cmd;
    try {
      cmd = JSON.parse(line);
      if (other(cmd)) return;
      const h = conns.get(cmd.conn);
      if (!h) throw new Error('no open connection');
      h(cmd);
    } catch (err) {
      emit({ conn: cmd && cmd.conn, ev: 'error', message: `command ${line.slice(0, 80)}: ${err && err.message}` });
    }
  });
  rl.on('close', () => process.exit(0));
}
