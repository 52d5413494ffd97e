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
// Options.Sharded selects the sharded variant (Node's createShardedAdapter)
// and NewStreams the Redis Streams adapter (Node's
// @socket.io/redis-streams-adapter) with connection state recovery across
// the servers; both are described below.
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
//   - AllRooms sends the Node adapter's allRooms request ({uid,
//     requestId, type: 1}) and every server, Node or Duplex, answers
//     {requestId, rooms}. The sharded and Streams protocols have no such
//     request.
//
// Each value is translated between Duplex's form (JSON text with
// placeholders for binary attachments) and MessagePack, keeping the order
// of object keys. Integers travel as MessagePack integers, other numbers
// as float64; a JavaScript Date arrives as its ISO string.
//
// # The sharded variant
//
// With Options.Sharded, as createShardedAdapter of the Node adapter
// (Redis 7 or later; a cluster is either classic or sharded, not both):
//
//   - every server SSUBSCRIBEs to <key>#<nsp># and to its own
//     <key>#<nsp>#<uid># (uid: 16 hex digits), where the answers to its
//     requests come; the number of servers is PUBSUB SHARDNUMSUB of
//     <key>#<nsp>#.
//   - messages are socket.io-adapter's ClusterAdapter's: {type, data,
//     uid, nsp}, type 3 (broadcast, with requestId when it wants acks)
//     to 12 (a client's ack); JSON (JSON.stringify's bytes), or the
//     MessagePack of the same object when data holds binary. A broadcast
//     carries {packet: {type: 2, data}, opts: {rooms, except, flags}}.
//   - Options.SubscriptionMode: in SubscriptionDynamic (the default), a
//     broadcast without acks to exactly one room that is not a socket's
//     own (not 20 characters long) goes to <key>#<nsp>#<room>#, and each
//     server SSUBSCRIBEs to the channel of every public room that has
//     sockets here, and SUNSUBSCRIBEs when the room empties; in
//     SubscriptionDynamicPrivate, the same for every room; in
//     SubscriptionStatic, everything goes to <key>#<nsp>#. A join that
//     makes a room new to this server waits (a second at most) for the
//     SSUBSCRIBE to be written, so that a broadcast to the room right
//     after reaches it.
//
// With a goredis.ClusterClient, all of a namespace's subscriptions use
// one connection, of the node of <key>#<nsp>#'s slot: on a Redis Cluster
// the room channels of other slots are refused (untested; the Node
// adapter subscribes per slot).
//
// # The Redis Streams adapter
//
// NewStreams makes adapters that speak @socket.io/redis-streams-adapter
// 0.3's protocol (ClusterAdapter messages as above):
//
//   - broadcasts without acks, socketsJoin/Leave and disconnectSockets
//     are entries {uid, nsp, type, data} of one stream (XADD MAXLEN ~),
//     data being the JSON text, or with binary the base64 of its
//     MessagePack form; each server reads the stream with XREAD BLOCK
//     from its last entry at start. The entry id of a broadcast is the
//     offset of connection state recovery, appended to the event as its
//     last argument.
//   - the rest (broadcasts with acks, fetchSockets, serverSideEmit, the
//     answers) are the MessagePack of the message, PUBLISHed on
//     <prefix>#<nsp># or <prefix>#<nsp>#<uid>#; the number of servers is
//     PUBSUB NUMSUB of <prefix>#<nsp>#.
//   - a disconnected session is SET at <sessionKeyPrefix><pid> to the
//     base64 of the MessagePack {sid, pid, rooms, data}, with PX the
//     MaxDisconnectionDuration; RestoreSession takes it (GET and DEL in
//     MULTI), checks that the offset is still in the stream, and reads
//     the broadcasts after it (XRANGE) that the session's rooms select.
//     Restored Data is a json.RawMessage. The server's own stream reader,
//     which may lag, does not deliver the restored socket again the
//     entries its missed packets covered; an entry added between the
//     XRANGE and the socket's joining its rooms is lost for it, as with
//     the Node adapter.
//
// Its Broadcast waits for the XADD (the offset is in the packet), for
// Options.RequestsTimeout at most; if Redis fails, the local delivery is
// done without offset and the error returned. StreamsOptions.Recovery must
// be the server's ServerOptions.Recovery: an adapter cannot read it. Each
// namespace's adapter reads the stream with its own blocking XREAD (one
// connection of the client's pool per namespace); Close adds an entry
// without nsp, which every reader skips, to end the XREADs at once.
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
// ServerSideEmit with acks, the client counts of BroadcastWithAck,
// AllRooms) wait Options.RequestsTimeout at most and then fail with an error wrapping
// ErrTimeout. A message from another server is decoded with bounded
// nesting (128) and without allocating more than its size; a malformed one
// is logged and dropped.
//
// # Failures
//
// When Redis goes away, go-redis reconnects and subscribes again by
// itself (every channel, pattern and sharded room channel it knows), at a
// fixed pace, without backoff: its pub/sub goroutine dials once per
// attempt (bounded by goredis.Options.DialTimeout) and tries again 100 ms
// after each failure, for as long as Redis is away; the adapter's health
// check (a PING on the subscribed connection every second) dials too.
// Neither pace grows, and go-redis has no option for it; so a server is
// subscribed again within about 100 ms of Redis coming back. NewStreams's
// reader retries its XREAD with a backoff from 100 ms to
// 2 s. Meanwhile local delivery goes on, publishes fail (logged, and
// counted in Stats().PublishErrors; the Streams adapter's Broadcast
// returns the error), and requests to the other servers fail at once
// with an error wrapping ErrNotConnected. Adapter.Health pings
// Redis every second on the subscribed connection and reports the outage
// (nil once subscribed again), for a health endpoint; Adapter.Stats
// counts the publishes, their failures and the reconnections, for
// metrics. Messages published while a server was disconnected are lost
// for it, as with any Redis pub/sub adapter.
//
// # Compatibility
//
// Tested against @socket.io/redis-adapter 8.3 with socket.io 4.8 and the
// redis 4 client, createShardedAdapter of the same in its three
// subscription modes. Not supported yet: a custom parser option, and the
// Streams adapter's streamCount and useShardedPubSub options. Only the first argument of a
// client's (or server's) acknowledgement travels between servers, as with
// the Node adapter.
package redis
