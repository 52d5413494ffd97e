package socketio

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// BroadcastOperator selects sockets of a namespace and acts on them: emit
// an event (encoded once for all), join or leave rooms, disconnect, fetch.
// Its selection methods return a new operator, so a chain can be kept and
// reused:
//
//	ns.To("room1", "room2").Except("muted").Emit("news", item)
type BroadcastOperator struct {
	ns      *Namespace
	opts    BroadcastOptions
	timeout time.Duration
}

func newOperator(ns *Namespace, from *Socket) *BroadcastOperator {
	b := &BroadcastOperator{ns: ns}
	if from != nil {
		b.opts.Except = []string{from.id}
	}
	return b
}

func (b *BroadcastOperator) clone() *BroadcastOperator {
	c := *b
	c.opts.Rooms = append([]string(nil), b.opts.Rooms...)
	c.opts.Except = append([]string(nil), b.opts.Except...)
	return &c
}

// To adds rooms: the sockets in any of them are selected.
func (b *BroadcastOperator) To(rooms ...string) *BroadcastOperator {
	c := b.clone()
	c.opts.Rooms = append(c.opts.Rooms, rooms...)
	return c
}

// In is To.
func (b *BroadcastOperator) In(rooms ...string) *BroadcastOperator { return b.To(rooms...) }

// Except leaves out the sockets in any of rooms.
func (b *BroadcastOperator) Except(rooms ...string) *BroadcastOperator {
	c := b.clone()
	c.opts.Except = append(c.opts.Except, rooms...)
	return c
}

// Local restricts the operation to this process.
func (b *BroadcastOperator) Local() *BroadcastOperator {
	c := b.clone()
	c.opts.Local = true
	return c
}

// Volatile lets the event be dropped for clients that still have data
// queued.
func (b *BroadcastOperator) Volatile() *BroadcastOperator {
	c := b.clone()
	c.opts.Volatile = true
	return c
}

// Compress says whether the event may be compressed (permessage-deflate,
// when the client's WebSocket negotiated it); true by default.
func (b *BroadcastOperator) Compress(compress bool) *BroadcastOperator {
	c := b.clone()
	c.opts.NoCompress = !compress
	return c
}

// Timeout bounds EmitWithAck's wait for acknowledgements.
func (b *BroadcastOperator) Timeout(d time.Duration) *BroadcastOperator {
	c := b.clone()
	c.timeout = d
	return c
}

// Emit sends an event to the selected sockets.
func (b *BroadcastOperator) Emit(event string, args ...any) error {
	p, err := b.packet(event, args)
	if err != nil {
		return err
	}
	return b.ns.adapter.Broadcast(p, &b.opts)
}

func (b *BroadcastOperator) packet(event string, args []any) (*Packet, error) {
	data, att, err := encodeEvent(event, args)
	if err != nil {
		return nil, err
	}
	p := &Packet{Type: PacketEvent, Namespace: b.ns.name, ID: -1, Data: data, Attachments: att}
	if len(att) > 0 {
		p.Type = PacketBinaryEvent
	}
	return p, nil
}

// EmitWithAck sends an event to the selected sockets and collects their
// clients' acknowledgements, until every client has answered (or
// disconnected) or ctx (or the Timeout) ends. It returns the
// acknowledgements that came, with an error wrapping ctx's error on a
// timeout, or ErrDisconnected when some client left without answering.
func (b *BroadcastOperator) EmitWithAck(ctx context.Context, event string, args ...any) ([]*Args, error) {
	p, err := b.packet(event, args)
	if err != nil {
		return nil, err
	}
	if b.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, b.timeout)
		defer cancel()
	}
	c := newCollector()
	if err := b.ns.adapter.BroadcastWithAck(ctx, p, &b.opts, c.expect, c.add); err != nil {
		return c.stop(), err // what came before the adapter gave up
	}
	return c.wait(ctx, event)
}

// collector gathers acknowledgements from several peers: their number
// comes once (expect), the acknowledgements one by one (add).
type collector struct {
	mu       sync.Mutex
	replies  []*Args
	missing  int // peers that will not answer (add(nil))
	expected int
	done     chan struct{}
	closed   bool
}

func newCollector() *collector { return &collector{expected: -1, done: make(chan struct{})} }

func (c *collector) expect(n int) {
	c.mu.Lock()
	c.expected = n
	c.checkLocked()
	c.mu.Unlock()
}

// add records an acknowledgement, or with nil a peer that will not send
// one.
func (c *collector) add(a *Args) {
	c.mu.Lock()
	if !c.closed {
		if a == nil {
			c.missing++
		} else {
			c.replies = append(c.replies, a)
		}
		c.checkLocked()
	}
	c.mu.Unlock()
}

func (c *collector) checkLocked() {
	if !c.closed && c.expected >= 0 && len(c.replies)+c.missing >= c.expected {
		c.closed = true
		close(c.done)
	}
}

// stop ends the collection and returns what came.
func (c *collector) stop() []*Args {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.closed = true
		close(c.done)
	}
	return append([]*Args(nil), c.replies...)
}

// wait returns the acknowledgements once all came, or those that came
// when ctx ends, with an error.
func (c *collector) wait(ctx context.Context, event string) ([]*Args, error) {
	select {
	case <-c.done:
	case <-ctx.Done():
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	out := append([]*Args(nil), c.replies...)
	if !c.closed {
		c.closed = true // late acknowledgements are dropped
		close(c.done)
		return out, fmt.Errorf("socketio: %d of %d acknowledged %q: %w", len(out), max(c.expected, len(out)), event, ctx.Err())
	}
	if c.missing > 0 {
		return out, fmt.Errorf("socketio: %d of %d acknowledged %q, %d disconnected first: %w", len(out), c.expected, event, c.missing, ErrDisconnected)
	}
	return out, nil
}

// SocketsJoin makes the selected sockets join rooms.
func (b *BroadcastOperator) SocketsJoin(rooms ...string) { b.ns.adapter.AddSockets(&b.opts, rooms) }

// SocketsLeave makes the selected sockets leave rooms.
func (b *BroadcastOperator) SocketsLeave(rooms ...string) { b.ns.adapter.DelSockets(&b.opts, rooms) }

// DisconnectSockets disconnects the selected sockets; with closeConn,
// their connections are closed too.
func (b *BroadcastOperator) DisconnectSockets(closeConn bool) {
	b.ns.adapter.DisconnectSockets(&b.opts, closeConn)
}

// FetchSockets describes the selected sockets, of every process of the
// cluster, with the means to act on each.
func (b *BroadcastOperator) FetchSockets(ctx context.Context) ([]*RemoteSocket, error) {
	infos, err := b.ns.adapter.FetchSockets(ctx, &b.opts)
	out := make([]*RemoteSocket, len(infos))
	for i := range infos {
		out[i] = &RemoteSocket{SocketInfo: infos[i], ns: b.ns}
	}
	return out, err
}

// RemoteSocket is a socket FetchSockets found, in this process or another
// of the cluster: its description, and operations that reach it wherever
// it is (through the adapter, by its own room).
type RemoteSocket struct {
	SocketInfo
	ns *Namespace
}

// Emit sends an event to the socket.
func (r *RemoteSocket) Emit(event string, args ...any) error {
	return r.ns.To(r.ID).Emit(event, args...)
}

// Join adds the socket to rooms.
func (r *RemoteSocket) Join(rooms ...string) { r.ns.In(r.ID).SocketsJoin(rooms...) }

// Leave removes the socket from rooms.
func (r *RemoteSocket) Leave(rooms ...string) { r.ns.In(r.ID).SocketsLeave(rooms...) }

// Disconnect disconnects the socket; with closeConn, its connection too.
func (r *RemoteSocket) Disconnect(closeConn bool) { r.ns.In(r.ID).DisconnectSockets(closeConn) }
