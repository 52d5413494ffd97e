package nats

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/duplexrt/duplex/socketio"
	natsgo "github.com/nats-io/nats.go"
)

// DefaultRequestsTimeout is how long a request to the other servers waits
// for their answers when Options.RequestsTimeout is zero.
const DefaultRequestsTimeout = 5 * time.Second

// DefaultHeartbeatInterval is how often a server says it is alive when
// Options.HeartbeatInterval is zero.
const DefaultHeartbeatInterval = 2 * time.Second

// missedHeartbeats is how many heartbeat intervals a peer may stay silent
// before it is no longer counted.
const missedHeartbeats = 3

// Bounds of what the adapter holds.
const (
	channelSize     = 4096    // messages received, not yet handled
	serverSideQueue = 1024    // server-side events waiting for their handlers
	maxMessageSize  = 8 << 20 // bytes; NATS's max_payload (1 MiB by default) is lower
	maxAttachments  = 1024    // binary attachments of one message
	maxPeers        = 4096    // servers of a namespace known at once
	maxHelloAnswers = 20      // hello-new answered per second
)

var (
	// ErrTimeout is wrapped by the errors of requests that other servers
	// did not all answer within Options.RequestsTimeout (or the context).
	ErrTimeout = errors.New("nats: timeout waiting for the other servers")
	// ErrClosed is returned by the operations of a closed adapter.
	ErrClosed = errors.New("nats: adapter closed")
	// ErrNotConnected is wrapped by the errors of requests (and
	// ServerCount) made while the connection to NATS is down.
	ErrNotConnected = errors.New("nats: not connected to the NATS server")
)

// Options configures the adapter. A nil *Options means the defaults.
type Options struct {
	// Prefix starts every subject of the adapter; servers of one cluster
	// must use the same. Empty means "duplex". It must pass CheckPrefix.
	Prefix string
	// RequestsTimeout bounds the wait for the other servers' answers
	// (fetchSockets, serverSideEmit with acks, client counts of a
	// broadcast with acks). Zero means DefaultRequestsTimeout.
	RequestsTimeout time.Duration
	// HeartbeatInterval is how often each server publishes its presence;
	// a server not heard from for 3 intervals is no longer counted. All
	// servers of a cluster should use the same. Zero means
	// DefaultHeartbeatInterval.
	HeartbeatInterval time.Duration
	// Logger receives the adapter's logs: malformed messages and failed
	// publishes at Warn. Nil means no logs.
	Logger *slog.Logger

	// streamed: the broadcast, room and request subjects are read from
	// NewJetStream's stream, not subscribed to (jetstream.go).
	streamed bool
}

// Connect connects to the NATS servers of url (comma-separated) with the
// options the adapter wants, before opts: reconnect forever
// (MaxReconnects(-1)) with a capped exponential backoff (the zero
// Backoff: from 125–250 ms, doubling, up to 2–4 s; it starts over after
// each successful reconnection), and retry a failed first connection in
// the background (the adapter works locally meanwhile). Options in opts
// that set natsgo.ReconnectWait or ReconnectJitter to other values than
// nats.go's defaults, or natsgo.CustomReconnectDelay, replace the
// backoff (opts are applied once more, to a scratch copy, to tell).
func Connect(url string, opts ...natsgo.Option) (*natsgo.Conn, error) {
	o := []natsgo.Option{
		natsgo.MaxReconnects(-1),
		natsgo.RetryOnFailedConnect(true),
	}
	if !setsReconnectDelay(opts) {
		o = append(o, natsgo.CustomReconnectDelay(Backoff{}.Delay))
	}
	return natsgo.Connect(url, append(o, opts...)...)
}

// New returns a function that makes the adapter of each namespace, for
// socketio.ServerOptions.NewAdapter. The adapters share nc, which should
// reconnect forever (see Connect): nats.go's default gives up after 60
// attempts, 2 s apart, and closes the connection, after which the
// adapters stay local for good (Health says so; New logs a warning). They
// are closed by the socketio.Server's Close, which does not close nc. New
// panics if opts.Prefix is not valid (CheckPrefix).
func New(nc *natsgo.Conn, opts *Options) func(ns *socketio.Namespace) socketio.Adapter {
	o := Options{}
	if opts != nil {
		o = *opts
	}
	if o.Prefix == "" {
		o.Prefix = "duplex"
	}
	if err := CheckPrefix(o.Prefix); err != nil {
		panic(err)
	}
	if o.RequestsTimeout <= 0 {
		o.RequestsTimeout = DefaultRequestsTimeout
	}
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if n := nc.Opts.MaxReconnect; n >= 0 {
		o.Logger.Warn("nats: the connection gives up after a few reconnection attempts, and the adapters then stay local; make it with nats.Connect or natsgo.MaxReconnects(-1)", "maxReconnects", n)
	}
	return func(ns *socketio.Namespace) socketio.Adapter { return newAdapter(ns, nc, o) }
}

// Adapter is the socketio.Adapter of one namespace: rooms and local
// delivery in a socketio.MemoryAdapter, and the other servers reached
// through NATS subjects. Its methods are safe for concurrent use.
type Adapter struct {
	ns   *socketio.Namespace
	mem  *socketio.MemoryAdapter
	nc   *natsgo.Conn
	opts Options
	log  *slog.Logger
	uid  string

	// Subjects; see the package documentation.
	base, broadcastSubj, roomPrefix, requestSubj, responseSubj, presenceSubj string

	subs    []*natsgo.Subscription
	unsubd  []string // subjects whose subscription failed; see Health
	msgs    chan *natsgo.Msg
	ctx     context.Context // ends with Close
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	sseq    chan func()
	closing sync.Once

	// Of the receiving goroutine only: hellos answered this second.
	helloWindow  time.Time
	helloAnswers int

	stats struct{ published, buffered, publishErrors, reconnects atomic.Uint64 }

	mu       sync.Mutex
	requests map[string]*request  // by request id
	peers    map[string]time.Time // other servers: when last heard
}

func newAdapter(ns *socketio.Namespace, nc *natsgo.Conn, o Options) *Adapter {
	a := &Adapter{
		ns:       ns,
		mem:      socketio.NewMemoryAdapter(ns),
		nc:       nc,
		opts:     o,
		uid:      randomID(),
		msgs:     make(chan *natsgo.Msg, channelSize),
		sseq:     make(chan func(), serverSideQueue),
		requests: make(map[string]*request),
		peers:    make(map[string]time.Time),
	}
	a.log = o.Logger.With("nsp", ns.Name(), "uid", a.uid)
	a.base = o.Prefix + "." + token(ns.Name())
	a.broadcastSubj = a.base + ".broadcast"
	a.roomPrefix = a.base + ".room."
	a.requestSubj = a.base + ".request"
	a.responseSubj = a.base + ".response." + a.uid
	a.presenceSubj = a.base + ".presence"
	a.ctx, a.cancel = context.WithCancel(context.Background())

	// One channel for every subscription: the messages of one server are
	// handled in the order it sent them, whatever their subject.
	subjects := []string{a.broadcastSubj, a.roomPrefix + "*", a.requestSubj, a.responseSubj, a.presenceSubj}
	if o.streamed {
		subjects = subjects[3:] // from the stream (jetstream.go)
	}
	for _, subj := range subjects {
		s, err := nc.ChanSubscribe(subj, a.msgs)
		if err != nil {
			a.log.Warn("nats: subscribing failed", "subject", subj, "err", err)
			a.unsubd = append(a.unsubd, subj)
			continue
		}
		a.subs = append(a.subs, s)
	}
	// Make sure NATS has the subscriptions before saying hello, so that
	// the answers to the hello are heard. Disconnected, nats.go sends
	// them on reconnection, and the heartbeat says hello-new again.
	if nc.IsConnected() {
		if err := nc.FlushTimeout(min(o.RequestsTimeout, 2*time.Second)); err != nil {
			a.log.Warn("nats: flushing the subscriptions", "err", err)
		}
	}
	a.sendPresence(typeHelloNew)
	a.wg.Add(3)
	go a.receive()
	go a.heartbeat()
	go a.serveServerSide()
	return a
}

func randomID() string {
	var b [9]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Close says goodbye to the other servers, unsubscribes, stops the
// adapter's goroutines and waits for them; pending requests end with
// ErrClosed. It does not close the NATS connection.
func (a *Adapter) Close() error {
	var err error
	a.closing.Do(func() {
		a.sendPresence(typeBye)
		for _, s := range a.subs {
			if uerr := s.Unsubscribe(); uerr != nil && !errors.Is(uerr, natsgo.ErrConnectionClosed) && !errors.Is(uerr, natsgo.ErrBadSubscription) {
				err = errors.Join(err, uerr)
			}
		}
		a.cancel()
		a.wg.Wait()
		a.mu.Lock()
		for id, r := range a.requests {
			a.finishLocked(id, r)
		}
		a.mu.Unlock()
	})
	return err
}

// The local part: rooms of this process.

// AddAll adds socket id to rooms.
func (a *Adapter) AddAll(id string, rooms []string) { a.mem.AddAll(id, rooms) }

// Del removes socket id from room.
func (a *Adapter) Del(id, room string) { a.mem.Del(id, room) }

// DelAll removes socket id from every room.
func (a *Adapter) DelAll(id string) { a.mem.DelAll(id) }

// SocketRooms returns the rooms of socket id, of this process.
func (a *Adapter) SocketRooms(id string) []string { return a.mem.SocketRooms(id) }

// Sockets returns the ids of this process's sockets in any of rooms.
func (a *Adapter) Sockets(rooms []string) []string { return a.mem.Sockets(rooms) }

// RoomSize returns the number of this process's sockets in room.
func (a *Adapter) RoomSize(room string) int { return a.mem.RoomSize(room) }

// UID returns the id of this server's adapter in the cluster.
func (a *Adapter) UID() string { return a.uid }

// publish sends e to subject. nats.go keeps the order of a connection's
// publishes and buffers them while it reconnects (up to its
// ReconnectBufSize).
func (a *Adapter) publish(subject string, e *envelope) error {
	if a.ctx.Err() != nil {
		return ErrClosed
	}
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("nats: encoding a message: %w", err)
	}
	buffered := a.nc.IsReconnecting()
	if err := a.nc.Publish(subject, b); err != nil {
		a.stats.publishErrors.Add(1)
		return fmt.Errorf("nats: publishing to %s: %w", subject, err)
	}
	a.stats.published.Add(1)
	if buffered {
		a.stats.buffered.Add(1)
	}
	return nil
}

// publishLog publishes e, logging a failure.
func (a *Adapter) publishLog(subject string, e *envelope) {
	if err := a.publish(subject, e); err != nil && !errors.Is(err, ErrClosed) {
		a.log.Warn("nats: publish failed", "err", err)
	}
}

// Broadcast delivers p to this process's selected sockets and, unless
// opts.Local, publishes it for the other servers. It does not wait for
// them; while NATS is unreachable the message waits in nats.go's
// reconnect buffer, and an error is returned once that is full (the
// local delivery is done anyway).
func (a *Adapter) Broadcast(p *socketio.Packet, opts *socketio.BroadcastOptions) error {
	var err error
	if !opts.Local {
		err = a.publishBroadcast(p, opts)
	}
	if lerr := a.mem.Broadcast(p, opts); lerr != nil {
		return lerr
	}
	return err
}

func (a *Adapter) publishBroadcast(p *socketio.Packet, opts *socketio.BroadcastOptions) error {
	w := toWireOpts(opts)
	subj := a.broadcastSubj
	if len(w.Rooms) == 1 {
		if tok := token(w.Rooms[0]); len(tok) <= maxRoomToken {
			subj = a.roomPrefix + tok
		}
	}
	return a.publish(subj, &envelope{UID: a.uid, Type: typeBroadcast, Data: p.Data, Att: p.Attachments, Opts: w})
}

// connected returns ErrNotConnected (wrapped, with what) unless the
// connection to NATS is up.
func (a *Adapter) connected(what string) error {
	if a.ctx.Err() != nil {
		return ErrClosed
	}
	if !a.nc.IsConnected() {
		return fmt.Errorf("nats: %s: %w (status %v)", what, ErrNotConnected, a.nc.Status())
	}
	return nil
}

// Connected reports whether the connection to NATS is up: while it is
// not, the cluster is degraded (local delivery only, requests fail).
// Health says the same with the reason.
func (a *Adapter) Connected() bool { return a.ctx.Err() == nil && a.nc.IsConnected() }

// Health returns nil while the connection to NATS is up and the adapter
// holds its subscriptions (nats.go sends them again after each
// reconnection). Otherwise it returns what is wrong, wrapping
// ErrNotConnected when the connection is down, such as "nats: not
// connected to the NATS server (status RECONNECTING); reconnecting":
// the cluster is degraded, broadcasts reach this process's sockets only
// and requests to the other servers fail. A closed connection (nats.go
// gave up reconnecting, or the application closed it) does not heal; the
// error says so. After Close it returns ErrClosed. It does not block.
func (a *Adapter) Health() error {
	if a.ctx.Err() != nil {
		return ErrClosed
	}
	switch st := a.nc.Status(); st {
	case natsgo.CONNECTED:
	case natsgo.CLOSED:
		return fmt.Errorf("%w (connection closed; it will not reconnect: make it with nats.Connect or natsgo.MaxReconnects(-1))", ErrNotConnected)
	default:
		cause := st.String()
		if err := a.nc.LastError(); err != nil {
			cause += ": " + err.Error()
		}
		return fmt.Errorf("%w (status %s); reconnecting", ErrNotConnected, cause)
	}
	if len(a.unsubd) > 0 {
		return fmt.Errorf("nats: not subscribed to %s; the adapter must be made again", strings.Join(a.unsubd, ", "))
	}
	for _, s := range a.subs {
		if !s.IsValid() {
			return fmt.Errorf("nats: the subscription to %s is closed; the adapter must be made again", s.Subject)
		}
	}
	return nil
}

// Stats counts what an adapter published since it was made; the
// heartbeats are not counted. The counters only grow.
type Stats struct {
	// Published counts the messages nats.go took, sent or buffered.
	Published uint64
	// Buffered counts those of Published taken while the connection was
	// down: they wait in nats.go's reconnect buffer and go out once
	// reconnected (to the servers subscribed by then), or are lost if the
	// connection closes first.
	Buffered uint64
	// PublishErrors counts the messages nats.go refused (reconnect buffer
	// full, connection closed, larger than max_payload); each error was
	// returned to the caller, or logged at Warn.
	PublishErrors uint64
	// Reconnects counts the reconnections of the connection that this
	// adapter saw (it checks every 100 ms at most).
	Reconnects uint64
}

// Stats returns the adapter's counters. It is safe to call at any time,
// after Close too.
func (a *Adapter) Stats() Stats {
	return Stats{
		Published:     a.stats.published.Load(),
		Buffered:      a.stats.buffered.Load(),
		PublishErrors: a.stats.publishErrors.Load(),
		Reconnects:    a.stats.reconnects.Load(),
	}
}

// ServerCount returns the number of servers of the namespace heard from
// within the last 3 heartbeat intervals, this one included. It fails
// while the connection to NATS is down.
func (a *Adapter) ServerCount(ctx context.Context) (int, error) {
	if err := a.connected("counting the servers"); err != nil {
		return 0, err
	}
	return 1 + a.livePeers(), nil
}

func (a *Adapter) livePeers() int {
	cutoff := time.Now().Add(-missedHeartbeats * a.opts.HeartbeatInterval)
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for uid, t := range a.peers {
		if t.Before(cutoff) {
			delete(a.peers, uid)
			continue
		}
		n++
	}
	return n
}

// sendPresence publishes a presence message of type t.
func (a *Adapter) sendPresence(t msgType) {
	b, _ := json.Marshal(&envelope{UID: a.uid, Type: t})
	if err := a.nc.Publish(a.presenceSubj, b); err != nil {
		a.log.Debug("nats: presence not published", "err", err)
	}
}

// heartbeat publishes a hello every interval, forgets the silent peers,
// and says hello as new after a reconnection so that the others answer at
// once.
func (a *Adapter) heartbeat() {
	defer a.wg.Done()
	t := time.NewTicker(a.opts.HeartbeatInterval)
	defer t.Stop()
	lastConnected := a.nc.IsConnected()
	lastReconnects := a.nc.Stats().Reconnects
	// Check the connection more often than the heartbeat, to re-announce
	// soon after a reconnection. The reconnection count catches an outage
	// shorter than the poll, which IsConnected alone would miss.
	poll := time.NewTicker(min(a.opts.HeartbeatInterval, 100*time.Millisecond))
	defer poll.Stop()
	for {
		select {
		case <-a.ctx.Done():
			return
		case <-poll.C:
			c := a.nc.IsConnected()
			r := a.nc.Stats().Reconnects
			if c && (!lastConnected || r != lastReconnects) {
				a.stats.reconnects.Add(1)
				a.log.Info("nats: connection back; announcing this server")
				a.sendPresence(typeHelloNew)
			}
			if !c && lastConnected {
				a.log.Warn("nats: connection lost; local delivery only until nats.go reconnects", "status", a.nc.Status().String())
			}
			lastConnected = c
			if c {
				lastReconnects = r
			}
		case <-t.C:
			if a.nc.IsConnected() {
				a.sendPresence(typeHello)
			}
			a.livePeers() // prunes
		}
	}
}
