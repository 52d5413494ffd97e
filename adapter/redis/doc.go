// Package redis is a socketio.Adapter that spreads a namespace's rooms
// and broadcasts over the servers of a cluster through Redis pub/sub,
// wire-compatible with the Node adapter @socket.io/redis-adapter 8.x
// (its classic, non-sharded form): Node socket.io servers and Duplex
// servers on the same Redis, with the same key, form one cluster.
//
// The package is named redis, as its directory; import go-redis under
// another name (goredis below):
//
//	rdb := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:6379"})
//	srv, _ := socketio.NewServer(&socketio.ServerOptions{
//		NewAdapter: redis.New(rdb, nil),
//	})
//	defer srv.Close() // closes the adapters; then rdb.Close()
//
// # Wire format
//
// As the Node adapter, for a namespace nsp and the key (default
// "socket.io"):
//
//   - broadcasts go to <key>#<nsp>#, or <key>#<nsp>#<room># when they
//     name exactly one room; every server PSUBSCRIBEs to <key>#<nsp>#*.
//     A broadcast is the MessagePack (notepack.io) array [uid, packet,
//     opts]: packet {type: 2, data: [event, ...args], nsp} with binary
//     as bin, opts {rooms: [], except: [], flags: {volatile?, compress?}}.
//   - requests go to <key>-request#<nsp>#: JSON objects {uid,
//     requestId?, type, ...}, except the broadcast with acknowledgements
//     (type 7), MessagePack. A request that carries binary
//     (serverSideEmit with []byte arguments) is sent as MessagePack too;
//     the Node adapter decodes a message that does not start with '{' as
//     MessagePack.
//   - answers go to <key>-response#<nsp># (or, with
//     Options.PublishOnSpecificResponseChannel, <key>-response#<nsp>#<uid>#
//     of the requesting server); each server subscribes to both.
//   - the number of servers is PUBSUB NUMSUB of the request channel.
//
// Each value is translated between Duplex's form (JSON text with
// placeholders for binary attachments) and MessagePack, keeping the order
// of object keys. Integers travel as MessagePack integers, other numbers
// as float64; a JavaScript Date arrives as its ISO string.
//
// # Concurrency
//
// Each namespace's adapter holds one subscribed connection and three
// goroutines: one handles the messages received, in order; one publishes,
// in order; one runs the OnServerSideEmit handlers, in order, so that a
// slow handler does not hold up the broadcasts. Close stops them and
// waits for them.
//
// # Limits
//
// Broadcast, AddSockets, DelSockets and DisconnectSockets do not wait for
// Redis: their messages wait in a queue of 4096, and a message that does
// not fit is dropped (Broadcast returns ErrQueueFull; the local delivery
// is done anyway). Requests that wait for the other servers (FetchSockets,
// ServerSideEmit with acks, the client counts of BroadcastWithAck) wait
// Options.RequestsTimeout at most and then fail with an error wrapping
// ErrTimeout. A message from another server is decoded with bounded
// nesting (128) and without allocating more than its size; a malformed one
// is logged and dropped.
//
// # Failures
//
// When Redis goes away, go-redis reconnects and subscribes again by
// itself; meanwhile local delivery goes on, publishes fail (logged),
// and requests fail with an error. Messages published while a server
// was disconnected are lost for it, as with any Redis pub/sub adapter.
//
// # Compatibility
//
// Tested against @socket.io/redis-adapter 8.3 with socket.io 4.8 and the
// redis 4 client. Not supported yet: the sharded adapter
// (createShardedAdapter, SSUBSCRIBE), connection state recovery across
// servers, and a custom parser option. Only the first argument of a
// client's (or server's) acknowledgement travels between servers, as with
// the Node adapter.
package redis
