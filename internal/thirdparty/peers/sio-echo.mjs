// sio-echo.mjs is the official Node Socket.IO server (socket.io 4.8 from
// test/interop/node_modules, through NODE_PATH) set up as cmd/sioecho:
// one namespace, "echo" acknowledged with its arguments, the defaults.
//
//   NODE_PATH=../../test/interop/node_modules node peers/sio-echo.mjs --addr 127.0.0.1:3100
import { createServer } from "node:http";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { Server } = require("socket.io");

const i = process.argv.indexOf("--addr");
const [host, port] = (i > 0 ? process.argv[i + 1] : "127.0.0.1:3100").split(":");
const http = createServer();
const io = new Server(http);
io.on("connection", (socket) => {
  socket.on("echo", (...args) => {
    const ack = args.pop();
    if (typeof ack === "function") ack(...args);
  });
});
http.listen(Number(port), host, () => console.log(`listening on ${host}:${port}`));
