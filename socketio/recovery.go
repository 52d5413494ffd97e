package socketio

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// RecoveryOptions turns on connection state recovery: a client that lost
// its connection and comes back within MaxDisconnectionDuration gets its
// socket back, with its id, rooms and data, and the events broadcast to
// it meanwhile (the JavaScript server's connectionStateRecovery).
//
// Only events without acknowledgement that are not volatile are kept, and
// only for MaxDisconnectionDuration. Each such event carries an offset
// string as its last argument (the official client reads it); handlers of
// clients in Go see it too.
type RecoveryOptions struct {
	// MaxDisconnectionDuration is how long a disconnected session and
	// the events broadcast since are kept. Zero means 2 minutes.
	MaxDisconnectionDuration time.Duration
	// SkipMiddlewares lets a recovered socket in without running the
	// namespace's middleware again.
	SkipMiddlewares bool
	// MaxPackets bounds the events kept for recovery per namespace, the
	// oldest dropped first. Zero means 100,000.
	MaxPackets int
	// MaxBytes bounds the bytes of those events (JSON and attachments),
	// the oldest dropped first. Zero means 64 MiB.
	MaxBytes int
	// MaxSessions bounds the disconnected sessions kept per namespace;
	// past it the oldest are forgotten. Zero means 100,000.
	MaxSessions int
}

func (o *RecoveryOptions) withDefaults() *RecoveryOptions {
	r := *o
	if r.MaxDisconnectionDuration <= 0 {
		r.MaxDisconnectionDuration = 2 * time.Minute
	}
	if r.MaxPackets <= 0 {
		r.MaxPackets = 100_000
	}
	if r.MaxBytes <= 0 {
		r.MaxBytes = 64 << 20
	}
	if r.MaxSessions <= 0 {
		r.MaxSessions = 100_000
	}
	return &r
}

// SessionState is what recovery keeps of a disconnected socket, and what
// it gives back.
type SessionState struct {
	SID    string    // the socket id
	PID    string    // the private session id, known only to the client
	Rooms  []string  // the rooms, the socket's own id among them
	Data   any       // what Socket.SetData kept
	Missed []*Packet // the events broadcast to it since the client's offset (RestoreSession's answer)
}

// SessionAdapter is an Adapter that can keep sessions for connection
// state recovery. Its Broadcast appends an offset to the event packets it
// keeps (RecoveryOptions).
type SessionAdapter interface {
	Adapter
	// PersistSession keeps s until it is restored or expires.
	PersistSession(s *SessionState)
	// RestoreSession returns the session pid with the packets broadcast
	// to it after offset, or nil if the session or the offset is unknown
	// or too old.
	RestoreSession(pid, offset string) (*SessionState, error)
}

// recoverable are the disconnect reasons after which a session is kept.
func recoverable(reason string) bool {
	switch reason {
	case ReasonTransportError, ReasonTransportClose, ReasonForcedClose, ReasonPingTimeout, ReasonServerShuttingDown, ReasonForcedServerClose:
		return true
	}
	return false
}

// sessionStore is the MemoryAdapter's recovery state.
type sessionStore struct {
	opts *RecoveryOptions

	mu        sync.Mutex
	sessions  map[string]storedSession // by pid
	packets   []storedPacket           // packets[head:] are kept
	head      int
	bytes     int // of packets[head:]
	lastSweep time.Time
}

type storedSession struct {
	state *SessionState
	at    time.Time
}

type storedPacket struct {
	offset string
	opts   BroadcastOptions
	p      *Packet
	size   int
	at     time.Time
}

// dropOldestLocked forgets the oldest kept packet.
func (st *sessionStore) dropOldestLocked() {
	st.bytes -= st.packets[st.head].size
	st.packets[st.head] = storedPacket{}
	st.head++
	if st.head > len(st.packets)/2 { // compact, amortized
		n := copy(st.packets, st.packets[st.head:])
		clear(st.packets[n:])
		st.packets, st.head = st.packets[:n], 0
	}
}

var (
	offsetPrefix = func() string {
		var b [6]byte
		_, _ = rand.Read(b[:])
		return base64.RawURLEncoding.EncodeToString(b[:]) + "-"
	}()
	offsetSeq atomic.Uint64
)

// newOffset returns an offset unique to this process and among processes.
func newOffset() string {
	return offsetPrefix + strconv.FormatUint(offsetSeq.Add(1), 36)
}

// withOffset returns data, a JSON array, with offset appended to it.
func withOffset(data json.RawMessage, offset string) json.RawMessage {
	if len(data) < 2 || data[len(data)-1] != ']' {
		return data
	}
	out := make([]byte, 0, len(data)+len(offset)+3)
	out = append(out, data[:len(data)-1]...)
	if len(data) > 2 {
		out = append(out, ',')
	}
	out = appendJSONString(out, offset)
	return append(out, ']')
}

// record gives p an offset and keeps it, if it is an event that recovery
// keeps; it returns the packet to send.
func (st *sessionStore) record(p *Packet, opts *BroadcastOptions) *Packet {
	if (p.Type != PacketEvent && p.Type != PacketBinaryEvent) || p.ID >= 0 || opts.Volatile {
		return p
	}
	off := newOffset()
	q := *p
	q.Data = withOffset(p.Data, off)
	size := len(q.Data)
	if len(p.Attachments) > 0 { // kept: the caller's slices may change
		q.Attachments = make([][]byte, len(p.Attachments))
		for i, a := range p.Attachments {
			q.Attachments[i] = slices.Clone(a)
			size += len(a)
		}
	}
	now := time.Now()
	st.mu.Lock()
	defer st.mu.Unlock()
	st.sweepLocked(now)
	st.packets = append(st.packets, storedPacket{
		offset: off,
		opts:   BroadcastOptions{Rooms: slices.Clone(opts.Rooms), Except: slices.Clone(opts.Except)},
		p:      &q,
		size:   size,
		at:     now,
	})
	st.bytes += size
	for len(st.packets)-st.head > st.opts.MaxPackets || st.bytes > st.opts.MaxBytes && len(st.packets)-st.head > 1 {
		st.dropOldestLocked()
	}
	return &q
}

// sweepLocked drops expired sessions and packets, at most once a second.
func (st *sessionStore) sweepLocked(now time.Time) {
	if now.Sub(st.lastSweep) < time.Second {
		return
	}
	st.lastSweep = now
	threshold := now.Add(-st.opts.MaxDisconnectionDuration)
	for pid, s := range st.sessions {
		if s.at.Before(threshold) {
			delete(st.sessions, pid)
		}
	}
	for st.head < len(st.packets) && st.packets[st.head].at.Before(threshold) {
		st.dropOldestLocked()
	}
}

func (st *sessionStore) persist(s *SessionState) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.sessions == nil {
		st.sessions = make(map[string]storedSession)
	}
	now := time.Now()
	st.sweepLocked(now)
	if len(st.sessions) >= st.opts.MaxSessions {
		// Full of sessions younger than MaxDisconnectionDuration: forget
		// the oldest (a scan; it happens only under a flood).
		var oldest string
		var at time.Time
		for pid, ss := range st.sessions {
			if oldest == "" || ss.at.Before(at) {
				oldest, at = pid, ss.at
			}
		}
		delete(st.sessions, oldest)
	}
	st.sessions[s.PID] = storedSession{state: s, at: now}
}

func (st *sessionStore) restore(pid, offset string) *SessionState {
	now := time.Now()
	st.mu.Lock()
	defer st.mu.Unlock()
	st.sweepLocked(now)
	s, ok := st.sessions[pid]
	if !ok {
		return nil
	}
	if now.Sub(s.at) > st.opts.MaxDisconnectionDuration {
		delete(st.sessions, pid)
		return nil
	}
	idx := slices.IndexFunc(st.packets[st.head:], func(sp storedPacket) bool { return sp.offset == offset })
	if idx < 0 {
		return nil // the offset is unknown or too old
	}
	idx += st.head
	out := *s.state
	out.Rooms = slices.Clone(s.state.Rooms)
	out.Missed = nil
	for _, sp := range st.packets[idx+1:] {
		if includes(out.Rooms, &sp.opts) {
			out.Missed = append(out.Missed, sp.p)
		}
	}
	return &out
}

// includes reports whether a socket in rooms was a target of a broadcast
// with opts.
func includes(rooms []string, opts *BroadcastOptions) bool {
	in := len(opts.Rooms) == 0
	for _, r := range rooms {
		if slices.Contains(opts.Except, r) {
			return false
		}
		if !in && slices.Contains(opts.Rooms, r) {
			in = true
		}
	}
	return in
}

// PersistSession keeps s for recovery. It does nothing unless the server
// has RecoveryOptions.
func (a *MemoryAdapter) PersistSession(s *SessionState) {
	if a.sessions != nil {
		a.sessions.persist(s)
	}
}

// RestoreSession returns the session pid and the packets it missed after
// offset, or nil.
func (a *MemoryAdapter) RestoreSession(pid, offset string) (*SessionState, error) {
	if a.sessions == nil {
		return nil, nil
	}
	return a.sessions.restore(pid, offset), nil
}

// recoveryAuth reads the pid and offset a reconnecting client puts in its
// CONNECT payload.
func recoveryAuth(auth json.RawMessage) (pid, offset string, ok bool) {
	var v struct {
		PID    *string `json:"pid"`
		Offset *string `json:"offset"`
	}
	if json.Unmarshal(auth, &v) != nil || v.PID == nil || v.Offset == nil {
		return "", "", false
	}
	return *v.PID, *v.Offset, true
}
