package socketio

import (
	"context"
	"sync"
)

// BroadcastOptions selects the sockets of a broadcast, and how it is
// delivered.
type BroadcastOptions struct {
	// Rooms: the sockets in any of them; none means every socket of the
	// namespace.
	Rooms []string
	// Except: minus the sockets in any of them.
	Except []string
	// Volatile: a client with data still queued for it does not get the
	// packet.
	Volatile bool
	// Local: this process only, not the others of a cluster.
	Local bool
	// NoCompress: the packet goes out without permessage-deflate (the
	// JavaScript compress(false)).
	NoCompress bool
}

// SocketInfo describes a socket, possibly of another process, as
// FetchSockets returns it.
type SocketInfo struct {
	ID        string    // the socket's id
	Handshake Handshake // the request that opened its connection
	Rooms     []string  // its rooms, its own id among them
	Data      any       // what SetData kept (decoded from JSON for another process's socket)
}

// Adapter keeps a namespace's rooms and delivers its broadcasts: in this
// process (NewMemoryAdapter), or across processes (the Redis and NATS
// adapters). A namespace calls it from many goroutines at once.
type Adapter interface {
	// AddAll adds socket id to rooms.
	AddAll(id string, rooms []string)
	// Del removes socket id from room.
	Del(id, room string)
	// DelAll removes socket id from every room.
	DelAll(id string)
	// SocketRooms returns the rooms of socket id, of this process, in no
	// particular order.
	SocketRooms(id string) []string
	// Sockets returns the ids of this process's sockets in any of rooms
	// (every socket, with no rooms).
	Sockets(rooms []string) []string

	// Broadcast sends p, encoded once, to the sockets opts selects.
	Broadcast(p *Packet, opts *BroadcastOptions) error
	// BroadcastWithAck sends p, whose ID it sets, to the sockets opts
	// selects, and calls ack with each client's acknowledgement. It calls
	// clientCount once with the number of clients the packet went to (for
	// a cluster, once all processes answered, or the context ended);
	// ack(nil) stands for a client that will not answer (it disconnected).
	// The adapter forgets what has not come once ctx ends. An error ends
	// the wait; the acknowledgements that came are kept.
	BroadcastWithAck(ctx context.Context, p *Packet, opts *BroadcastOptions, clientCount func(n int), ack func(*Args)) error

	// AddSockets makes the sockets opts selects join rooms.
	AddSockets(opts *BroadcastOptions, rooms []string)
	// DelSockets makes the sockets opts selects leave rooms.
	DelSockets(opts *BroadcastOptions, rooms []string)
	// DisconnectSockets disconnects the sockets opts selects, and their
	// connections with closeConn.
	DisconnectSockets(opts *BroadcastOptions, closeConn bool)
	// FetchSockets describes the sockets opts selects.
	FetchSockets(ctx context.Context, opts *BroadcastOptions) ([]SocketInfo, error)

	// ServerSideEmit sends p, an EVENT, to the other servers of the
	// cluster, whose adapters hand it to Namespace.ServeServerSideEmit.
	// With ack not nil, p asks for their acknowledgements: ack gets each,
	// and serverCount, once, the number of servers that will answer.
	ServerSideEmit(ctx context.Context, p *Packet, serverCount func(n int), ack func(*Args)) error
	// ServerCount returns the number of servers in the cluster, this one
	// included.
	ServerCount(ctx context.Context) (int, error)

	// Close releases the adapter's resources.
	Close() error
}

// MemoryAdapter is the Adapter of a single process: rooms are maps, and
// broadcasts go to this process's sockets.
type MemoryAdapter struct {
	ns *Namespace

	sessions *sessionStore // with recovery on

	mu    sync.RWMutex
	rooms map[string]map[string]struct{} // room → socket ids
	sids  map[string]map[string]struct{} // socket id → rooms
}

// NewMemoryAdapter returns the in-process adapter of ns.
func NewMemoryAdapter(ns *Namespace) *MemoryAdapter {
	a := &MemoryAdapter{
		ns:    ns,
		rooms: make(map[string]map[string]struct{}),
		sids:  make(map[string]map[string]struct{}),
	}
	if ns.srv.recovery != nil {
		a.sessions = &sessionStore{opts: ns.srv.recovery}
	}
	return a
}

// AddAll adds socket id to rooms.
func (a *MemoryAdapter) AddAll(id string, rooms []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	mine := a.sids[id]
	if mine == nil {
		mine = make(map[string]struct{}, len(rooms))
		a.sids[id] = mine
	}
	for _, r := range rooms {
		mine[r] = struct{}{}
		members := a.rooms[r]
		if members == nil {
			members = make(map[string]struct{})
			a.rooms[r] = members
		}
		members[id] = struct{}{}
	}
}

// Del removes socket id from room.
func (a *MemoryAdapter) Del(id, room string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.delLocked(id, room)
}

func (a *MemoryAdapter) delLocked(id, room string) {
	if mine := a.sids[id]; mine != nil {
		delete(mine, room)
	}
	if members := a.rooms[room]; members != nil {
		delete(members, id)
		if len(members) == 0 {
			delete(a.rooms, room)
		}
	}
}

// DelAll removes socket id from every room.
func (a *MemoryAdapter) DelAll(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for r := range a.sids[id] {
		a.delLocked(id, r)
	}
	delete(a.sids, id)
}

// SocketRooms returns the rooms of socket id.
func (a *MemoryAdapter) SocketRooms(id string) []string {
	a.mu.RLock()
	defer a.mu.RUnlock()
	out := make([]string, 0, len(a.sids[id]))
	for r := range a.sids[id] {
		out = append(out, r)
	}
	return out
}

// Sockets returns the ids of the sockets in any of rooms, or of every
// socket.
func (a *MemoryAdapter) Sockets(rooms []string) []string {
	return a.selectIDs(&BroadcastOptions{Rooms: rooms})
}

// Rooms returns every room of this process's sockets, their own ids
// among them, in no particular order.
func (a *MemoryAdapter) Rooms() []string {
	a.mu.RLock()
	defer a.mu.RUnlock()
	out := make([]string, 0, len(a.rooms))
	for r := range a.rooms {
		out = append(out, r)
	}
	return out
}

// RoomSize returns the number of sockets in room.
func (a *MemoryAdapter) RoomSize(room string) int {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return len(a.rooms[room])
}

// selectIDs returns the ids of the sockets opts selects.
func (a *MemoryAdapter) selectIDs(opts *BroadcastOptions) []string {
	a.mu.RLock()
	defer a.mu.RUnlock()
	excluded := func(id string) bool {
		for _, r := range opts.Except {
			if _, ok := a.rooms[r][id]; ok {
				return true
			}
		}
		return false
	}
	var out []string
	if len(opts.Rooms) == 0 {
		out = make([]string, 0, len(a.sids))
		for id := range a.sids {
			if !excluded(id) {
				out = append(out, id)
			}
		}
		return out
	}
	seen := make(map[string]struct{})
	for _, r := range opts.Rooms {
		for id := range a.rooms[r] {
			if _, dup := seen[id]; dup || excluded(id) {
				continue
			}
			seen[id] = struct{}{}
			out = append(out, id)
		}
	}
	return out
}

// apply calls fn for each socket of this process that opts selects.
func (a *MemoryAdapter) apply(opts *BroadcastOptions, fn func(s *Socket)) {
	for _, id := range a.selectIDs(opts) {
		if s := a.ns.Socket(id); s != nil {
			fn(s)
		}
	}
}

// Broadcast encodes p once and queues it for every selected socket.
func (a *MemoryAdapter) Broadcast(p *Packet, opts *BroadcastOptions) error {
	if a.sessions != nil {
		p = a.sessions.record(p, opts)
	}
	text := encodePacket(make([]byte, 0, 64+len(p.Data)), p)
	a.apply(opts, func(s *Socket) { _ = s.client.send(text, p.Attachments, opts) })
	return nil
}

// BroadcastWithAck sends p to every selected socket, with a new
// acknowledgement id it sets in p.ID, and routes their acknowledgements to
// ack.
func (a *MemoryAdapter) BroadcastWithAck(ctx context.Context, p *Packet, opts *BroadcastOptions, clientCount func(n int), ack func(*Args)) error {
	p.ID = a.ns.nextAckID()
	text := encodePacket(make([]byte, 0, 64+len(p.Data)), p)
	n := 0
	var targets []*Socket
	a.apply(opts, func(s *Socket) {
		if !s.expectAck(p.ID, ack) { // ack(nil) if s disconnects first
			return
		}
		n++
		targets = append(targets, s)
		if s.client.send(text, p.Attachments, opts) != nil {
			s.dropAck(p.ID)
			ack(nil)
		}
	})
	clientCount(n)
	// Once the wait is over, forget the acknowledgements that did not
	// come: a client that never answers must not grow its socket's table.
	id := p.ID
	context.AfterFunc(ctx, func() {
		for _, s := range targets {
			s.dropAck(id)
		}
	})
	return nil
}

// AddSockets makes the selected sockets join rooms.
func (a *MemoryAdapter) AddSockets(opts *BroadcastOptions, rooms []string) {
	a.apply(opts, func(s *Socket) { s.Join(rooms...) })
}

// DelSockets makes the selected sockets leave rooms.
func (a *MemoryAdapter) DelSockets(opts *BroadcastOptions, rooms []string) {
	a.apply(opts, func(s *Socket) {
		for _, r := range rooms {
			s.Leave(r)
		}
	})
}

// DisconnectSockets disconnects the selected sockets.
func (a *MemoryAdapter) DisconnectSockets(opts *BroadcastOptions, closeConn bool) {
	a.apply(opts, func(s *Socket) { s.Disconnect(closeConn) })
}

// FetchSockets describes the selected sockets.
func (a *MemoryAdapter) FetchSockets(ctx context.Context, opts *BroadcastOptions) ([]SocketInfo, error) {
	var out []SocketInfo
	a.apply(opts, func(s *Socket) {
		out = append(out, SocketInfo{ID: s.id, Handshake: s.handshake, Rooms: s.Rooms(), Data: s.Data()})
	})
	return out, nil
}

// ServerSideEmit has no other server to reach: it reports 0 servers.
func (a *MemoryAdapter) ServerSideEmit(ctx context.Context, p *Packet, serverCount func(n int), ack func(*Args)) error {
	if serverCount != nil {
		serverCount(0)
	}
	return nil
}

// ServerCount returns 1: this server.
func (a *MemoryAdapter) ServerCount(ctx context.Context) (int, error) { return 1, nil }

// Close does nothing.
func (a *MemoryAdapter) Close() error { return nil }
