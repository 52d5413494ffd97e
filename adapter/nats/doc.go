// Package nats is a socketio.Adapter that spreads a namespace's rooms and
// broadcasts over the servers of a cluster through NATS core subjects:
// the semantics of adapter/redis (broadcasts to all, to rooms, except
// rooms; broadcasts with acknowledgements and client counts;
// fetchSockets; remote join, leave and disconnect; server-side events
// with acknowledgements; server count; request timeouts) for clusters of
// Duplex servers. It is not compatible with any Node adapter. NewJetStream
// adds connection state recovery across the servers on a JetStream
// stream (see "Connection state recovery").
//
// The package is named nats, as its directory, like nats.go's: import
// one of them under another name (natsgo for nats.go, here).
//
//	nc, _ := nats.Connect("nats://127.0.0.1:4222") // this package's: reconnects forever
//	srv, _ := socketio.NewServer(&socketio.ServerOptions{
//		NewAdapter: nats.New(nc, nil),
//	})
//	defer srv.Close() // closes the adapters; then nc.Close()
//
// Connect is natsgo.Connect with MaxReconnects(-1), a capped exponential
// reconnection backoff with jitter (Backoff), and RetryOnFailedConnect;
// a connection made otherwise should reconnect by itself too.
//
// # Subjects
//
// For a namespace nsp and the prefix (Options.Prefix, default "duplex"),
// with T the token of nsp:
//
//	<prefix>.T.broadcast       broadcasts to every socket, or to several rooms
//	<prefix>.T.room.<R>        broadcasts to exactly one room, R its token
//	<prefix>.T.request         requests to every other server
//	<prefix>.T.response.<uid>  answers to the server whose adapter is uid
//	<prefix>.T.presence        heartbeats (hello, hello-new, bye)
//
// Each server's adapter of nsp subscribes to the broadcast, request and
// presence subjects, to <prefix>.T.room.* and to its own response
// subject, all into one channel, so that the messages of one server are
// handled in the order it published them (NATS keeps the order between
// two connections) whatever their subject. A room broadcast is decoded
// only where the room has sockets; the room subjects let a monitoring
// tool (or a later version subscribing per room) tell rooms apart.
//
// Namespace and room names may hold any character, subject tokens may
// not hold '.', whitespace, '*' or '>' (and must not be empty), so a
// name becomes its unpadded base64url encoding (alphabet A–Z a–z 0–9 -
// _, all valid in a token), and the empty name "-" (which no base64
// output is): "/" is "Lw", "/admin" "L2FkbWlu". Base64url is reversible,
// unambiguous, case-sensitive like the names, and a third shorter than
// hex. A room whose token would be longer than 256 bytes is broadcast on
// the broadcast subject instead, keeping subjects short.
//
// # Messages
//
// Every message is a JSON object {uid, type, rid?, data?, att?, opts?,
// rooms?, close?, count?, sockets?}. The type numbers of adapter/redis
// (and of @socket.io/redis-adapter) are kept for the operations both
// have (1 allRooms, 2 join, 3 leave, 4 disconnect, 5 fetchSockets, 6
// serverSideEmit, 7 broadcast with acks, 8 client count, 9
// acknowledgement), 10 is a broadcast and 20–22 presence. opts is {rooms, except, flags: {volatile,
// noCompress}}, as the Redis adapter's. Event arguments travel as Duplex
// holds them: data is the JSON array of arguments whose binary parts are
// placeholders {"_placeholder":true,"num":N}, att the attachments
// (base64 in JSON). No MessagePack translation is needed between Go
// servers; binary costs a third more bytes than with MessagePack.
//
// # Server count
//
// NATS has no PUBSUB NUMSUB, so each server publishes a hello on the
// presence subject every Options.HeartbeatInterval (2 s by default), and
// counts the servers heard from (a hello, or an answer to a request)
// within the last 3 intervals. A new adapter (and one whose connection
// came back) says hello-new, which every other server answers at once
// with a hello (20 a second at most): a newcomer is counted by the others
// one NATS round trip after it starts, and counts them a round trip
// later. Close says bye, so a server that stops cleanly is forgotten at
// once. Anyone who may publish on the presence subject can make a server
// count more servers (which then time its requests out): NATS's
// permissions on <prefix>.> are the defence, as for every subject here.
//
// This was preferred to asking the others at each count (a request with
// a collection window), which would add that window to every
// fetchSockets and broadcast with acks. The trade-off: the count is
// eventually consistent. A server that crashed is counted for up to 3
// intervals, during which requests wait for its answer and end with
// ErrTimeout (returning what the others sent); a server a few
// milliseconds old may not be counted yet, and then is not waited for.
// Answers are counted per server, so a duplicate does not end a request
// early.
//
// # Concurrency
//
// Each namespace's adapter holds three goroutines: one handles the
// messages received, in order; one publishes the heartbeats and watches
// the connection; one runs the OnServerSideEmit handlers, in order, so
// that a slow handler does not hold up the broadcasts. Close stops them
// and waits for them. Publishing needs no goroutine: nats.go keeps the
// order of a connection's publishes and does not wait for the server.
//
// # Limits
//
// Up to 4096 received messages wait for the handling goroutine; beyond
// that nats.go drops them (a slow consumer, reported to the connection's
// error handler). A message larger than NATS's max_payload (1 MiB by
// default) cannot be published: Broadcast returns the error, after the
// local delivery. A received message of more than 8 MiB or 1024
// attachments (counted before any is decoded), not JSON, or whose event
// data is not a JSON array starting with the event name (nesting bounded
// as socketio's parser bounds a client's), is logged and dropped. Requests that wait for the other
// servers (FetchSockets, ServerSideEmit with acks, the client counts of
// BroadcastWithAck, AllRooms) wait Options.RequestsTimeout (5 s by default) at
// most and then fail with an error wrapping ErrTimeout.
//
// # Failures
//
// When the NATS server goes away, nats.go reconnects by itself and
// subscribes again. With Connect's connection it waits before each
// attempt (after each round of the server list) a random time between
// half and all of 250 ms·2^(n−1), capped at 4 s: 125–250 ms, 250–500 ms,
// 0.5–1 s, 1–2 s, then 2–4 s until the server is back, and it starts over
// at the next outage (Backoff; set your own with
// natsgo.CustomReconnectDelay(nats.Backoff{Initial: …, Max: …}.Delay)).
// Meanwhile local delivery goes on, broadcasts, remote
// join/leave/disconnect and server-side events without acks wait in
// nats.go's reconnect buffer (8 MiB by default; then they fail with an
// error) and go out once reconnected, and requests and ServerCount fail
// at once with an error wrapping ErrNotConnected; Adapter.Connected
// tells a health check. Messages published by the others while a server
// was disconnected are lost for it, as with any pub/sub adapter.
//
// # Connection state recovery (JetStream)
//
// NewJetStream makes the same adapter on a JetStream stream, so that a
// client that lost its connection to one server gets its socket back,
// with the events it missed, from another (ServerOptions.Recovery):
//
//	rec := &socketio.RecoveryOptions{MaxDisconnectionDuration: 2 * time.Minute}
//	mk, err := nats.NewJetStream(ctx, nc, &nats.JetStreamOptions{Recovery: rec})
//	if err != nil { … } // no JetStream: nats-server -js
//	srv, _ := socketio.NewServer(&socketio.ServerOptions{NewAdapter: mk, Recovery: rec})
//
// The messages and subjects are those above: servers made with New and
// with NewJetStream on one prefix form one cluster, both ways. The stream
// (JetStreamOptions.Stream, by default the prefix with '.' and the other
// characters a name cannot hold as '_': "duplex") records
//
//	<prefix>.*.broadcast   <prefix>.*.room.*   <prefix>.*.request
//
// for every namespace, whoever publishes them. A JetStream server does
// not subscribe to those subjects: each namespace's adapter reads them
// from the stream through an ordered consumer (filtered to its namespace
// on NATS 2.10 and later; on 2.9, which takes one filter subject, it
// reads the whole stream and skips the other namespaces), so every
// server handles a server's broadcasts and requests in the stream's
// order, and after a reconnection gets what was recorded meanwhile. The
// presence and response subjects stay plain NATS. A broadcast that
// recovery keeps (an event without acknowledgement, not volatile) is
// published to the stream, which answers with its sequence: that
// decimal number is the event's offset, its last argument for every
// client, local or remote. Other broadcasts, and all while the
// connection is down, are published without waiting.
//
// A socket that disconnects for a reason that allows recovery is kept as
// JSON {sid, pid, rooms, data} under the key <pid> of the key-value
// bucket JetStreamOptions.SessionBucket (by default Stream + "_sessions";
// stream KV_<bucket>), whose TTL is Recovery.MaxDisconnectionDuration.
// RestoreSession takes it out (one server gets it; a delete with the
// revision read), checks its age, and reads the stream from the client's
// offset with an ephemeral consumer: the offset must still be there (and
// be this namespace's), and the events after it that were broadcast to
// the socket's rooms are its missed packets. The server's live consumer
// then skips the restored socket for the messages that restore covered.
//
// Limits of the stream (DiscardOld: the oldest go first), to set with
// JetStreamOptions, each zero meaning its default and a negative value no
// limit: MaxAge, Recovery.MaxDisconnectionDuration (2 minutes without
// Recovery); MaxMsgs, 100,000; MaxBytes, 64 MiB. Requests count against
// them too. A client whose offset the limits dropped is not recovered; a
// restore reads 100,000 messages at most. The stream and the bucket are
// files by default (MemoryStorage keeps them in memory, lost with a
// restart of the NATS server), with JetStreamOptions.Replicas replicas.
// Each server that starts creates or updates them to its options. Each
// namespace's adapter holds one goroutine more, which reads the stream;
// Close stops it and waits for it.
//
// Each broadcast that recovery keeps waits for the stream's
// acknowledgement (a round trip to NATS), and reaches the server's own
// sockets through its consumer, like the other servers' (the message
// carries the header Duplex-Delivery: stream): every client gets the
// events with offsets in the stream's order, whichever server
// broadcast them, and a recovery from an offset gets exactly the events
// after it. Between the end of a restore and the socket joining its
// rooms (microseconds), an event the live consumer delivers is missed.
//
// # Not supported yet
//
// Per-room subscriptions (interest-based delivery of room broadcasts),
// queue groups.
package nats
