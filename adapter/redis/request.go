package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/duplexrt/duplex/socketio"
	"github.com/tinylib/msgp/msgp"
)

// The requests of this server to the others: it publishes them and waits
// for the answers, which receive.go routes back.

// request is a request of this server waiting for the others' answers.
type request struct {
	typ      requestType
	expected int // answers expected
	got      int
	done     chan struct{}
	finished bool

	sockets   []socketio.SocketInfo // reqRemoteFetch
	rooms     []string              // reqAllRooms: the others' rooms
	ack       func(*socketio.Args)  // reqServerSideEmit, reqBroadcast
	clients   int                   // reqBroadcast: clients the others reached
	acks      int                   // reqBroadcast: acknowledgements received
	countDone bool                  // reqBroadcast: every server gave its count
	counted   chan struct{}         // reqBroadcast: closed when countDone
	stop      func() bool           // stops the context.AfterFunc that finishes it
}

// register records a request of this server until finish.
func (a *Adapter) register(r *request) (string, error) {
	id := randomID()
	r.done = make(chan struct{})
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ctx.Err() != nil {
		return "", ErrClosed
	}
	a.requests[id] = r
	return id, nil
}

func (a *Adapter) finish(id string) {
	a.mu.Lock()
	if r := a.requests[id]; r != nil {
		a.finishLocked(id, r)
	}
	a.mu.Unlock()
}

func (a *Adapter) finishLocked(id string, r *request) {
	delete(a.requests, id)
	if !r.finished {
		r.finished = true
		close(r.done)
	}
	if r.stop != nil {
		r.stop()
	}
}

// await waits for r's answers, for the request timeout at most.
func (a *Adapter) await(ctx context.Context, r *request, done <-chan struct{}, what string) error {
	t := time.NewTimer(a.opts.RequestsTimeout)
	defer t.Stop()
	select {
	case <-done:
		if a.ctx.Err() != nil {
			return ErrClosed
		}
		return nil
	case <-t.C:
	case <-ctx.Done():
	case <-a.ctx.Done():
		return ErrClosed
	}
	a.mu.Lock()
	got, expected := r.got, r.expected
	a.mu.Unlock()
	err := ErrTimeout
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (%w)", ErrTimeout, ctx.Err())
	}
	return fmt.Errorf("redis: %s: %d of %d other servers answered within %v: %w", what, got, expected, a.opts.RequestsTimeout, err)
}

// marshal encodes a message of strings and numbers only (no Data or
// Packet), which cannot fail.
func (a *Adapter) marshal(m *message) []byte {
	b, _ := json.Marshal(m)
	return b
}

// BroadcastWithAck sends p to the selected sockets of every server and
// routes their clients' acknowledgements to ack. It waits (for the
// request timeout at most) for each server to say how many clients it
// reached, then calls clientCount with the sum; if some server did not
// answer, it returns an error wrapping ErrTimeout instead.
func (a *Adapter) BroadcastWithAck(ctx context.Context, p *socketio.Packet, opts *socketio.BroadcastOptions, clientCount func(n int), ack func(*socketio.Args)) error {
	if opts.Local {
		return a.mem.BroadcastWithAck(ctx, p, opts, clientCount, ack)
	}
	n, err := a.ServerCount(ctx)
	if err != nil {
		return err
	}
	r := &request{typ: reqBroadcast, expected: n - 1, ack: ack, counted: make(chan struct{})}
	if r.expected <= 0 {
		r.countDone = true
		close(r.counted)
	}
	id, err := a.register(r)
	if err != nil {
		return err
	}
	var body []byte
	if r.expected > 0 && a.cluster {
		data := (&jsonObject{}).raw("packet", clusterPacket(p)).str("requestId", id).value("opts", toWireOpts(opts)).bytes()
		if body, err = a.clusterEncode(cmBroadcast, data, p.Attachments); err != nil {
			a.finish(id)
			return fmt.Errorf("redis: encoding a broadcast: %w", err)
		}
	} else if r.expected > 0 {
		body = msgp.AppendMapHeader(make([]byte, 0, 128+len(p.Data)), 5)
		body = msgp.AppendString(body, "uid")
		body = msgp.AppendString(body, a.uid)
		body = msgp.AppendString(body, "requestId")
		body = msgp.AppendString(body, id)
		body = msgp.AppendString(body, "type")
		body = msgp.AppendInt(body, int(reqBroadcast))
		body = msgp.AppendString(body, "packet")
		if body, err = appendPacketMsgpack(body, p, a.ns.Name()); err != nil {
			a.finish(id)
			return err
		}
		body = msgp.AppendString(body, "opts")
		body = appendOptsMsgpack(body, toWireOpts(opts))
	}
	local := 0
	if err := a.mem.BroadcastWithAck(ctx, p, opts, func(k int) { local = k }, ack); err != nil {
		a.finish(id)
		return err
	}
	if r.expected > 0 {
		if err := a.publishWait(ctx, a.requestCh(), body); err != nil {
			a.finish(id)
			return err
		}
		if err := a.await(ctx, r, r.counted, "broadcast with acks: client counts"); err != nil {
			a.finish(id)
			return err
		}
	}
	a.mu.Lock()
	total := local + r.clients
	remote := r.clients
	if r.acks >= remote {
		a.finishLocked(id, r)
	} else if !r.finished {
		// Keep routing the remote acknowledgements until they all came
		// or the caller stops waiting (Close ends it too).
		r.stop = context.AfterFunc(ctx, func() { a.finish(id) })
	}
	a.mu.Unlock()
	clientCount(total)
	return nil
}

// requestCh is the channel of the requests to the other servers.
func (a *Adapter) requestCh() string {
	if a.cluster {
		return a.channel
	}
	return a.requestChannel
}

// AddSockets makes the selected sockets of every server join rooms.
func (a *Adapter) AddSockets(opts *socketio.BroadcastOptions, rooms []string) {
	a.mem.AddSockets(opts, rooms)
	if !opts.Local && a.cluster {
		data := (&jsonObject{}).value("opts", toWireOpts(opts)).value("rooms", jsRooms(rooms)).bytes()
		_ = a.clusterPublish(a.channel, cmSocketsJoin, data, nil)
	} else if !opts.Local {
		_ = a.enqueue(a.requestChannel, a.marshal(&message{UID: a.uid, Type: reqRemoteJoin, Opts: toWireOpts(opts), Rooms: jsRooms(rooms)}), nil)
	}
}

// DelSockets makes the selected sockets of every server leave rooms.
func (a *Adapter) DelSockets(opts *socketio.BroadcastOptions, rooms []string) {
	a.mem.DelSockets(opts, rooms)
	if !opts.Local && a.cluster {
		data := (&jsonObject{}).value("opts", toWireOpts(opts)).value("rooms", jsRooms(rooms)).bytes()
		_ = a.clusterPublish(a.channel, cmSocketsLeave, data, nil)
	} else if !opts.Local {
		_ = a.enqueue(a.requestChannel, a.marshal(&message{UID: a.uid, Type: reqRemoteLeave, Opts: toWireOpts(opts), Rooms: jsRooms(rooms)}), nil)
	}
}

// DisconnectSockets disconnects the selected sockets of every server.
func (a *Adapter) DisconnectSockets(opts *socketio.BroadcastOptions, closeConn bool) {
	if !opts.Local && a.cluster {
		data := (&jsonObject{}).value("opts", toWireOpts(opts)).value("close", closeConn).bytes()
		_ = a.clusterPublish(a.channel, cmDisconnectSockets, data, nil)
	} else if !opts.Local {
		_ = a.enqueue(a.requestChannel, a.marshal(&message{UID: a.uid, Type: reqRemoteDisconnect, Opts: toWireOpts(opts), Close: closeConn}), nil)
	}
	a.mem.DisconnectSockets(opts, closeConn)
}

// FetchSockets describes the selected sockets of every server. When some
// server does not answer in time it returns those it has, and an error
// wrapping ErrTimeout.
func (a *Adapter) FetchSockets(ctx context.Context, opts *socketio.BroadcastOptions) ([]socketio.SocketInfo, error) {
	local, err := a.mem.FetchSockets(ctx, opts)
	if err != nil || opts.Local {
		return local, err
	}
	n, err := a.ServerCount(ctx)
	if err != nil {
		return local, err
	}
	if n <= 1 {
		return local, nil
	}
	r := &request{typ: reqRemoteFetch, expected: n - 1}
	id, err := a.register(r)
	if err != nil {
		return local, err
	}
	defer a.finish(id)
	w := toWireOpts(opts)
	w.Flags = wireFlags{}
	b := a.marshal(&message{UID: a.uid, RequestID: &id, Type: reqRemoteFetch, Opts: w})
	if a.cluster {
		b, _ = a.clusterEncode(cmFetchSockets, (&jsonObject{}).value("opts", w).str("requestId", id).bytes(), nil)
	}
	if err := a.publishWait(ctx, a.requestCh(), b); err != nil {
		return local, err
	}
	err = a.await(ctx, r, r.done, "fetchSockets")
	a.mu.Lock()
	defer a.mu.Unlock()
	return append(local, r.sockets...), err
}

// AllRooms returns the rooms of the namespace's sockets on every server,
// the sockets' own ids among them, each once, sorted:
// the Node adapter's allRooms() (request type 1, which Node servers of
// the cluster answer too). It waits for the other servers'
// answers for Options.RequestsTimeout at most; if some did not answer it
// returns the rooms it has and an error wrapping ErrTimeout. While Health
// reports the subscription lost it returns this server's rooms and an
// error wrapping ErrNotConnected. The sharded variant and NewStreams's
// adapters speak socket.io-adapter's ClusterAdapter protocol, which has
// no such request: they return this server's rooms and an error wrapping
// errors.ErrUnsupported.
func (a *Adapter) AllRooms(ctx context.Context) ([]string, error) {
	if a.ctx.Err() != nil {
		return nil, ErrClosed
	}
	local := a.mem.Rooms()
	slices.Sort(local)
	if a.cluster {
		return local, fmt.Errorf("redis: allRooms: the sharded and Streams adapters' protocol (socket.io-adapter's ClusterAdapter) has no such request: %w", errors.ErrUnsupported)
	}
	n, err := a.ServerCount(ctx)
	if err != nil {
		return local, err
	}
	if n <= 1 {
		return local, nil
	}
	r := &request{typ: reqAllRooms, expected: n - 1}
	id, err := a.register(r)
	if err != nil {
		return local, err
	}
	defer a.finish(id)
	if err := a.publishWait(ctx, a.requestChannel, a.marshal(&message{UID: a.uid, RequestID: &id, Type: reqAllRooms})); err != nil {
		return local, err
	}
	err = a.await(ctx, r, r.done, "allRooms")
	a.mu.Lock()
	all := slices.Concat(local, r.rooms)
	a.mu.Unlock()
	slices.Sort(all)
	return slices.Compact(all), err
}

// ServerSideEmit sends p to the other servers. With ack, it waits (for
// the request timeout at most) for each to answer; if some did not, it
// returns an error wrapping ErrTimeout.
func (a *Adapter) ServerSideEmit(ctx context.Context, p *socketio.Packet, serverCount func(n int), ack func(*socketio.Args)) error {
	m := &message{UID: a.uid, Type: reqServerSideEmit, Data: p.Data}
	if ack == nil {
		b, err := a.encodeServerSide(m, p)
		if err != nil {
			return fmt.Errorf("redis: encoding a server-side event: %w", err)
		}
		return a.publishWait(ctx, a.requestCh(), b)
	}
	n, err := a.ServerCount(ctx)
	if err != nil {
		return err
	}
	if n-1 <= 0 {
		serverCount(0)
		return nil
	}
	r := &request{typ: reqServerSideEmit, expected: n - 1, ack: ack}
	id, err := a.register(r)
	if err != nil {
		return err
	}
	defer a.finish(id)
	m.RequestID = &id
	b, err := a.encodeServerSide(m, p)
	if err != nil {
		return fmt.Errorf("redis: encoding a server-side event: %w", err)
	}
	serverCount(r.expected)
	if err := a.publishWait(ctx, a.requestCh(), b); err != nil {
		return err
	}
	return a.await(ctx, r, r.done, "serverSideEmit")
}

// encodeServerSide encodes the server-side event m of packet p.
func (a *Adapter) encodeServerSide(m *message, p *socketio.Packet) ([]byte, error) {
	if !a.cluster {
		return encodeRequest(m, p.Attachments)
	}
	o := &jsonObject{}
	if m.RequestID != nil {
		o.str("requestId", *m.RequestID)
	}
	return a.clusterEncode(cmServerSideEmit, o.raw("packet", p.Data).bytes(), p.Attachments)
}

// encodeRequest encodes m as JSON, or as MessagePack when attachments
// has binary for m.Data or m.Packet (the Node adapter reads both: a
// message starting with '{' is JSON).
func encodeRequest(m *message, attachments [][]byte) ([]byte, error) {
	text, err := json.Marshal(m)
	if err != nil || len(attachments) == 0 {
		return text, err
	}
	// The JSON with placeholders translated whole: they become bin.
	return appendMsgpackFromJSON(nil, text, attachments)
}
