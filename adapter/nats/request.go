package nats

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/duplexrt/duplex/socketio"
)

// The requests of this server to the others: it publishes them on the
// request subject and waits for the answers on its response subject,
// which receive.go routes back.

// request is a request of this server waiting for the others' answers.
type request struct {
	typ       msgType
	expected  int                 // answers expected
	answered  map[string]struct{} // servers that answered (by uid)
	done      chan struct{}
	finished  bool
	sockets   []socketio.SocketInfo // typeFetch
	rooms     []string              // typeAllRooms: the others' rooms
	ack       func(*socketio.Args)  // typeServerSideEmit, typeBroadcastAck
	clients   int                   // typeBroadcastAck: clients the others reached
	acks      int                   // typeBroadcastAck: acknowledgements received
	countDone bool                  // typeBroadcastAck: every server gave its count
	counted   chan struct{}         // typeBroadcastAck: closed when countDone
	stop      func() bool           // stops the context.AfterFunc that finishes it
}

// register records a request of this server until finish.
func (a *Adapter) register(r *request) (string, error) {
	id := randomID()
	r.done = make(chan struct{})
	r.answered = make(map[string]struct{})
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
	got, expected := len(r.answered), r.expected
	a.mu.Unlock()
	err := ErrTimeout
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (%w)", ErrTimeout, ctx.Err())
	}
	if !a.nc.IsConnected() {
		err = fmt.Errorf("%w (%w)", err, ErrNotConnected)
	}
	return fmt.Errorf("nats: %s: %d of %d other servers answered within %v: %w", what, got, expected, a.opts.RequestsTimeout, err)
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
		return fmt.Errorf("nats: broadcast with acks: %w", err)
	}
	r := &request{typ: typeBroadcastAck, expected: n - 1, ack: ack, counted: make(chan struct{})}
	if r.expected <= 0 {
		r.countDone = true
		close(r.counted)
	}
	id, err := a.register(r)
	if err != nil {
		return err
	}
	// The packet goes out before the local delivery sets its ID: the
	// others number their own acknowledgements.
	e := &envelope{UID: a.uid, Type: typeBroadcastAck, RequestID: id, Data: p.Data, Att: p.Attachments, Opts: toWireOpts(opts)}
	local := 0
	if err := a.mem.BroadcastWithAck(ctx, p, opts, func(k int) { local = k }, ack); err != nil {
		a.finish(id)
		return err
	}
	if r.expected > 0 {
		if err := a.publish(a.requestSubj, e); err != nil {
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
	if r.acks >= r.clients {
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

// AddSockets makes the selected sockets of every server join rooms.
func (a *Adapter) AddSockets(opts *socketio.BroadcastOptions, rooms []string) {
	a.mem.AddSockets(opts, rooms)
	if !opts.Local {
		a.publishLog(a.requestSubj, &envelope{UID: a.uid, Type: typeRemoteJoin, Opts: toWireOpts(opts), Rooms: rooms})
	}
}

// DelSockets makes the selected sockets of every server leave rooms.
func (a *Adapter) DelSockets(opts *socketio.BroadcastOptions, rooms []string) {
	a.mem.DelSockets(opts, rooms)
	if !opts.Local {
		a.publishLog(a.requestSubj, &envelope{UID: a.uid, Type: typeRemoteLeave, Opts: toWireOpts(opts), Rooms: rooms})
	}
}

// DisconnectSockets disconnects the selected sockets of every server.
func (a *Adapter) DisconnectSockets(opts *socketio.BroadcastOptions, closeConn bool) {
	if !opts.Local {
		a.publishLog(a.requestSubj, &envelope{UID: a.uid, Type: typeRemoteDisconnect, Opts: toWireOpts(opts), Close: closeConn})
	}
	a.mem.DisconnectSockets(opts, closeConn)
}

// FetchSockets describes the selected sockets of every server. When some
// server does not answer in time it returns those it has, and an error
// wrapping ErrTimeout; while NATS is unreachable, this process's sockets
// and an error wrapping ErrNotConnected.
func (a *Adapter) FetchSockets(ctx context.Context, opts *socketio.BroadcastOptions) ([]socketio.SocketInfo, error) {
	local, err := a.mem.FetchSockets(ctx, opts)
	if err != nil || opts.Local {
		return local, err
	}
	n, err := a.ServerCount(ctx)
	if err != nil {
		return local, fmt.Errorf("nats: fetchSockets: %w", err)
	}
	if n <= 1 {
		return local, nil
	}
	r := &request{typ: typeFetch, expected: n - 1}
	id, err := a.register(r)
	if err != nil {
		return local, err
	}
	defer a.finish(id)
	w := toWireOpts(opts)
	w.Flags = wireFlags{}
	if err := a.publish(a.requestSubj, &envelope{UID: a.uid, Type: typeFetch, RequestID: id, Opts: w}); err != nil {
		return local, err
	}
	err = a.await(ctx, r, r.done, "fetchSockets")
	a.mu.Lock()
	defer a.mu.Unlock()
	return append(local, r.sockets...), err
}

// AllRooms returns the rooms of the namespace's sockets on every server,
// the sockets' own ids among them, each once, sorted (as
// adapter/redis's AllRooms, message type 1). It waits for the other
// servers' answers for Options.RequestsTimeout at most; if some did not
// answer (a Duplex server older than this method does not) it returns
// the rooms it has and an error wrapping ErrTimeout. While the
// connection to NATS is down it returns this server's rooms and an error
// wrapping ErrNotConnected.
func (a *Adapter) AllRooms(ctx context.Context) ([]string, error) {
	if a.ctx.Err() != nil {
		return nil, ErrClosed
	}
	local := a.mem.Rooms()
	slices.Sort(local)
	n, err := a.ServerCount(ctx)
	if err != nil {
		return local, fmt.Errorf("nats: allRooms: %w", err)
	}
	if n <= 1 {
		return local, nil
	}
	r := &request{typ: typeAllRooms, expected: n - 1}
	id, err := a.register(r)
	if err != nil {
		return local, err
	}
	defer a.finish(id)
	if err := a.publish(a.requestSubj, &envelope{UID: a.uid, Type: typeAllRooms, RequestID: id}); err != nil {
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
	e := &envelope{UID: a.uid, Type: typeServerSideEmit, Data: p.Data, Att: p.Attachments}
	if ack == nil {
		return a.publish(a.requestSubj, e)
	}
	n, err := a.ServerCount(ctx)
	if err != nil {
		return fmt.Errorf("nats: serverSideEmit: %w", err)
	}
	if n-1 <= 0 {
		serverCount(0)
		return nil
	}
	r := &request{typ: typeServerSideEmit, expected: n - 1, ack: ack}
	id, err := a.register(r)
	if err != nil {
		return err
	}
	defer a.finish(id)
	e.RequestID = id
	serverCount(r.expected)
	if err := a.publish(a.requestSubj, e); err != nil {
		return err
	}
	return a.await(ctx, r, r.done, "serverSideEmit")
}
