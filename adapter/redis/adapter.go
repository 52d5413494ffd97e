package redis

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/duplexrt/duplex/socketio"
	goredis "github.com/redis/go-redis/v9"
	"github.com/tinylib/msgp/msgp"
)

// DefaultRequestsTimeout is how long a request to the other servers waits
// for their answers when Options.RequestsTimeout is zero (the Node
// adapter's requestsTimeout).
const DefaultRequestsTimeout = 5 * time.Second

// Bounds of the adapter's queues; see the package documentation.
const (
	publishQueueSize = 4096 // messages waiting to be published
	serverSideQueue  = 1024 // server-side events waiting for their handlers
	channelSize      = 1024 // messages received, not yet handled
)

var (
	// ErrTimeout is wrapped by the errors of requests that other servers
	// did not all answer within Options.RequestsTimeout (or the context).
	ErrTimeout = errors.New("redis: timeout waiting for the other servers")
	// ErrClosed is returned by the operations of a closed adapter.
	ErrClosed = errors.New("redis: adapter closed")
	// ErrQueueFull is returned when the publish queue is full: Redis
	// is unreachable or slower than the broadcasts.
	ErrQueueFull = errors.New("redis: publish queue full")
	// ErrNotConnected is wrapped by the errors of requests (and
	// ServerCount) made while Health reports the subscription lost: no
	// answer could reach this server, so they fail at once rather than
	// after Options.RequestsTimeout.
	ErrNotConnected = errors.New("redis: not subscribed: the connection to Redis is lost")
)

// Options configures the adapter. A nil *Options means the defaults.
type Options struct {
	// Key prefixes the Redis channels. Empty means "socket.io", the Node
	// adapter's default; servers of one cluster must use the same.
	Key string
	// RequestsTimeout bounds the wait for the other servers' answers
	// (fetchSockets, serverSideEmit with acks, client counts of a
	// broadcast with acks). Zero means DefaultRequestsTimeout.
	RequestsTimeout time.Duration
	// PublishOnSpecificResponseChannel sends the answers to a request
	// on the requesting server's own channel, <key>-response#<nsp>#<uid>#,
	// rather than on the shared <key>-response#<nsp>#. False (the Node
	// adapter's default) is understood by every version.
	PublishOnSpecificResponseChannel bool
	// Logger receives the adapter's logs: malformed messages and failed
	// publishes at Warn. Nil means no logs.
	Logger *slog.Logger

	// Sharded selects Redis sharded pub/sub (SSUBSCRIBE, SPUBLISH; Redis
	// 7 or later) and the messages of the Node adapter's
	// createShardedAdapter, with which it forms a cluster (and not with
	// the classic form). PublishOnSpecificResponseChannel does not apply:
	// answers always go to the requesting server's channel.
	Sharded bool
	// SubscriptionMode chooses the channels of the sharded variant, as
	// the Node adapter's subscriptionMode. Empty means
	// SubscriptionDynamic, the Node adapter's default.
	SubscriptionMode SubscriptionMode

	streams *StreamsOptions // NewStreams's
}

// New returns a function that makes the adapter of each namespace, for
// socketio.ServerOptions.NewAdapter. Each namespace's adapter subscribes
// with its own connection from client; client publishes and runs the
// other commands. The adapters are closed by the socketio.Server's Close.
func New(client goredis.UniversalClient, opts *Options) func(ns *socketio.Namespace) socketio.Adapter {
	o := Options{}
	if opts != nil {
		o = *opts
	}
	if o.Key == "" {
		o.Key = "socket.io"
	}
	if o.RequestsTimeout <= 0 {
		o.RequestsTimeout = DefaultRequestsTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.SubscriptionMode == "" {
		o.SubscriptionMode = SubscriptionDynamic
	}
	return func(ns *socketio.Namespace) socketio.Adapter { return newAdapter(ns, client, o) }
}

// Adapter is the socketio.Adapter of one namespace: rooms and local
// delivery in a socketio.MemoryAdapter, and the other servers reached
// through Redis pub/sub. Its methods are safe for concurrent use.
type Adapter struct {
	ns     *socketio.Namespace
	mem    *socketio.MemoryAdapter
	client goredis.UniversalClient
	opts   Options
	log    *slog.Logger
	uid    string

	channel, requestChannel, responseChannel, specificResponseChannel string

	ps      *goredis.PubSub
	ctx     context.Context // ends with Close
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	pubq    chan publication
	sseq    chan func()
	closing sync.Once

	subs    roomSubs // the sharded variant's room channels
	cluster bool     // ClusterAdapter messages (sharded or streams)
	streams *StreamsOptions

	streamsRestored restoredState

	health   healthState
	checkNow chan struct{} // asks watchHealth for a check at once
	stats    struct{ published, publishErrors, dropped, reconnects atomic.Uint64 }

	mu       sync.Mutex
	requests map[string]*request // by request id
}

type publication struct {
	channel string
	payload []byte
	done    chan error // nil: nobody waits
	entry   []any      // not nil: XADD this entry to the stream
	id      *string    // with entry: receives the entry's id before done
}

func newAdapter(ns *socketio.Namespace, client goredis.UniversalClient, o Options) *Adapter {
	a := &Adapter{
		ns:       ns,
		mem:      socketio.NewMemoryAdapter(ns),
		client:   client,
		opts:     o,
		uid:      randomID(),
		pubq:     make(chan publication, publishQueueSize),
		sseq:     make(chan func(), serverSideQueue),
		checkNow: make(chan struct{}, 1),
		requests: make(map[string]*request),
	}
	a.streams = o.streams
	a.cluster = o.Sharded || o.streams != nil
	if a.cluster {
		a.uid = randomHexID()
	}
	a.log = o.Logger.With("nsp", ns.Name(), "uid", a.uid)
	a.ctx, a.cancel = context.WithCancel(context.Background())
	ctx, cancel := context.WithTimeout(a.ctx, o.RequestsTimeout)
	defer cancel()
	var err error
	subscriptions := 4
	if o.streams != nil {
		// As the Node streams adapter: the stream, and PUBLISH on
		// <key>#<nsp># and <key>#<nsp>#<uid># for the rest.
		a.channel = o.Key + "#" + ns.Name() + "#"
		a.specificResponseChannel = a.channel + a.uid + "#"
		a.ps = client.Subscribe(ctx, a.channel, a.specificResponseChannel)
		subscriptions = 2
	} else if o.Sharded {
		// As the Node ClusterAdapter: <key>#<nsp># for the messages,
		// <key>#<nsp>#<uid># for the answers to this server.
		a.channel = o.Key + "#" + ns.Name() + "#"
		a.specificResponseChannel = a.channel + a.uid + "#"
		a.subs = roomSubs{dirty: make(map[string]struct{}), signal: make(chan struct{}, 1), subscribed: make(map[string]bool)}
		a.ps = client.SSubscribe(ctx, a.channel, a.specificResponseChannel)
		subscriptions = 2
	} else {
		a.channel = o.Key + "#" + ns.Name() + "#"
		a.requestChannel = o.Key + "-request#" + ns.Name() + "#"
		a.responseChannel = o.Key + "-response#" + ns.Name() + "#"
		a.specificResponseChannel = a.responseChannel + a.uid + "#"
		a.ps = client.PSubscribe(ctx, a.channel+"*")
		err = a.ps.Subscribe(ctx, a.requestChannel, a.responseChannel, a.specificResponseChannel)
	}
	if err == nil {
		// Wait for Redis to confirm the subscriptions, so that
		// ServerCount counts this server as soon as the namespace exists.
		for range subscriptions {
			if _, err = a.ps.ReceiveTimeout(ctx, o.RequestsTimeout); err != nil {
				break
			}
		}
	}
	if err != nil {
		// go-redis subscribes again once Redis is back.
		a.log.Warn("redis: subscribing failed; retrying in the background", "err", err)
		a.health.subErr = err
	} else {
		a.health.checked = time.Now()
	}
	msgs := a.ps.Channel(goredis.WithChannelSize(channelSize))
	a.wg.Add(4)
	go a.receive(msgs)
	go a.publish()
	go a.serveServerSide()
	go a.watchHealth()
	if a.dynamic() {
		a.wg.Add(1)
		go a.syncSubscriptions()
	}
	if a.streams != nil {
		a.wg.Add(1)
		go a.readStream(a.streamStart())
	}
	return a
}

// randomHexID is a Node ClusterAdapter's id: 8 random bytes in hex.
func randomHexID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func randomID() string {
	var b [9]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Close unsubscribes, publishes what is still queued (for a second at
// most), stops the adapter's goroutines and waits for them; pending
// requests end with ErrClosed. It does not close the Redis client.
func (a *Adapter) Close() error {
	var err error
	a.closing.Do(func() {
		a.cancel()
		if a.streams != nil {
			a.wakeReaders()
		}
		err = a.ps.Close()
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
func (a *Adapter) AddAll(id string, rooms []string) {
	a.mem.AddAll(id, rooms)
	a.joined(rooms)
}

// Del removes socket id from room.
func (a *Adapter) Del(id, room string) {
	a.mem.Del(id, room)
	a.roomsChanged(room)
}

// DelAll removes socket id from every room.
func (a *Adapter) DelAll(id string) {
	var rooms []string
	if a.dynamic() {
		rooms = a.mem.SocketRooms(id)
	}
	a.mem.DelAll(id)
	a.roomsChanged(rooms...)
}

// SocketRooms returns the rooms of socket id, of this process.
func (a *Adapter) SocketRooms(id string) []string { return a.mem.SocketRooms(id) }

// Sockets returns the ids of this process's sockets in any of rooms.
func (a *Adapter) Sockets(rooms []string) []string { return a.mem.Sockets(rooms) }

// RoomSize returns the number of this process's sockets in room.
func (a *Adapter) RoomSize(room string) int { return a.mem.RoomSize(room) }

// UID returns the id of this server's adapter in the cluster.
func (a *Adapter) UID() string { return a.uid }

// Broadcast delivers p to this process's selected sockets and, unless
// opts.Local, queues it for the other servers. It does not wait for
// Redis; it fails with ErrQueueFull when the queue is full (the local
// delivery is done anyway).
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
	ch := a.broadcastChannel(dedup(opts.Rooms))
	if a.cluster {
		data := (&jsonObject{}).raw("packet", clusterPacket(p)).value("opts", toWireOpts(opts)).bytes()
		return a.clusterPublish(ch, cmBroadcast, data, p.Attachments)
	}
	b, err := encodeBroadcast(a.uid, p, a.ns.Name(), opts)
	if err != nil {
		return err
	}
	return a.enqueue(ch, b, nil)
}

// encodeBroadcast returns the message [uid, packet, opts] of a broadcast.
func encodeBroadcast(uid string, p *socketio.Packet, nsp string, opts *socketio.BroadcastOptions) ([]byte, error) {
	b := make([]byte, 0, 64+len(p.Data)+16*len(opts.Rooms))
	b = msgp.AppendArrayHeader(b, 3)
	b = msgp.AppendString(b, uid)
	b, err := appendPacketMsgpack(b, p, nsp)
	if err != nil {
		return nil, err
	}
	return appendOptsMsgpack(b, toWireOpts(opts)), nil
}

// enqueue queues a message for Redis; with done not nil, the publish's
// result goes there.
func (a *Adapter) enqueue(channel string, payload []byte, done chan error) error {
	if a.ctx.Err() != nil {
		return ErrClosed
	}
	return a.enqueuePub(publication{channel: channel, payload: payload, done: done})
}

func (a *Adapter) enqueuePub(m publication) error {
	if a.ctx.Err() != nil {
		return ErrClosed
	}
	channel := m.channel
	select {
	case a.pubq <- m:
		return nil
	default:
		a.stats.dropped.Add(1)
		a.log.Warn("redis: publish queue full; message dropped", "channel", channel)
		return ErrQueueFull
	}
}

// publishWait publishes a message after those queued, and waits for
// Redis to take it.
func (a *Adapter) publishWait(ctx context.Context, channel string, payload []byte) error {
	return a.publishWaitPub(ctx, publication{channel: channel, payload: payload})
}

func (a *Adapter) publishWaitPub(ctx context.Context, m publication) error {
	done := make(chan error, 1)
	m.done = done
	if err := a.enqueuePub(m); err != nil {
		return err
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-a.ctx.Done():
		return ErrClosed
	}
}

// closeDrainTime bounds how long Close spends publishing the messages
// still queued (a broadcast just before Close still goes out).
const closeDrainTime = time.Second

// publish drains the queue in order, one message at a time.
func (a *Adapter) publish() {
	defer a.wg.Done()
	for {
		select {
		case <-a.ctx.Done():
			ctx, cancel := context.WithTimeout(context.Background(), closeDrainTime)
			defer cancel()
			for {
				select {
				case m := <-a.pubq:
					if ctx.Err() == nil {
						a.publishOne(ctx, m)
					}
				default:
					return
				}
			}
		case m := <-a.pubq:
			ctx, cancel := context.WithTimeout(a.ctx, a.opts.RequestsTimeout)
			a.publishOne(ctx, m)
			cancel()
		}
	}
}

func (a *Adapter) publishOne(ctx context.Context, m publication) {
	var err error
	if m.entry != nil {
		var id string
		id, err = a.client.XAdd(ctx, &goredis.XAddArgs{Stream: a.streams.StreamName, MaxLen: a.streams.MaxLen, Approx: true, ID: "*", Values: m.entry}).Result()
		if m.id != nil {
			*m.id = id
		}
	} else if a.opts.Sharded {
		err = a.client.SPublish(ctx, m.channel, m.payload).Err()
	} else {
		err = a.client.Publish(ctx, m.channel, m.payload).Err()
	}
	if err != nil {
		a.stats.publishErrors.Add(1)
		what := m.channel
		if m.entry != nil {
			what = "stream " + a.streams.StreamName
		}
		err = fmt.Errorf("redis: publishing to %s: %w", what, err)
		if m.done == nil {
			a.log.Warn("redis: publish failed", "err", err)
		}
		a.checkSoon() // Health shows an outage at once
	} else {
		a.stats.published.Add(1)
	}
	if m.done != nil {
		m.done <- err
	}
}

// ServerCount returns the number of servers subscribed to this
// namespace's request channel (PUBSUB NUMSUB), this one included; with
// Options.Sharded, to its channel (PUBSUB SHARDNUMSUB); for NewStreams's
// adapters, to its channel (PUBSUB NUMSUB). While Health reports the
// subscription lost, it fails with an error wrapping ErrNotConnected.
func (a *Adapter) ServerCount(ctx context.Context) (int, error) {
	if err := a.subscriptionLost(); err != nil {
		return 0, fmt.Errorf("%w (%w)", ErrNotConnected, err)
	}
	ctx, cancel := context.WithTimeout(ctx, a.opts.RequestsTimeout)
	defer cancel()
	numsub := func(ctx context.Context, c goredis.UniversalClient) (int64, error) {
		if a.opts.Sharded {
			m, err := c.PubSubShardNumSub(ctx, a.channel).Result()
			return m[a.channel], err
		}
		ch := a.requestCh()
		m, err := c.PubSubNumSub(ctx, ch).Result()
		return m[ch], err
	}
	if cc, ok := a.client.(*goredis.ClusterClient); ok {
		var mu sync.Mutex
		total := int64(0)
		err := cc.ForEachMaster(ctx, func(ctx context.Context, c *goredis.Client) error {
			n, err := numsub(ctx, c)
			mu.Lock()
			total += n
			mu.Unlock()
			return err
		})
		if err != nil {
			return 0, fmt.Errorf("redis: counting the servers: %w", err)
		}
		return int(total), nil
	}
	n, err := numsub(ctx, a.client)
	if err != nil {
		return 0, fmt.Errorf("redis: counting the servers: %w", err)
	}
	return int(n), nil
}

// Health and counters, for a health endpoint and metrics.

// Health checks: every healthInterval the adapter pings Redis on its
// subscribed connection, which also makes go-redis reconnect and
// subscribe again if the connection was lost. A check that has not
// succeeded for healthStale (a ping stuck behind a dial to an
// unreachable host) counts as a failure.
const (
	healthInterval = time.Second
	healthTimeout  = time.Second
	healthStale    = healthInterval + healthTimeout + 2*time.Second
)

// healthState is what Health reports.
type healthState struct {
	mu        sync.Mutex
	subErr    error     // why the subscription is down; nil: up
	streamErr error     // why the stream cannot be read; nil: it can
	checked   time.Time // when the subscription was last found up
}

// Stats counts what an adapter sent to Redis since it was made. The
// counters only grow.
type Stats struct {
	// Published counts the messages Redis took: PUBLISH, SPUBLISH or
	// XADD that succeeded, answers to the other servers included.
	Published uint64
	// PublishErrors counts the messages whose command failed (Redis
	// unreachable, or slower than Options.RequestsTimeout): each is lost,
	// and logged at Warn unless its error was returned to the caller.
	PublishErrors uint64
	// Dropped counts the messages refused because the publish queue was
	// full (ErrQueueFull); they are not in PublishErrors.
	Dropped uint64
	// Reconnects counts the times the subscription came back after
	// Health had reported it lost.
	Reconnects uint64
}

// Stats returns the adapter's counters. It is safe to call at any time,
// after Close too.
func (a *Adapter) Stats() Stats {
	return Stats{
		Published:     a.stats.published.Load(),
		PublishErrors: a.stats.publishErrors.Load(),
		Dropped:       a.stats.dropped.Load(),
		Reconnects:    a.stats.reconnects.Load(),
	}
}

// Health returns nil while the adapter is subscribed and Redis answers
// on the subscribed connection (and, for NewStreams's adapters, the
// stream can be read). Otherwise it returns what is wrong, such as
// "redis: not subscribed: the connection to Redis is lost: dial tcp
// 127.0.0.1:6379: connect: connection refused; reconnecting" (wrapping
// ErrNotConnected and the cause): the cluster is degraded, broadcasts
// reach this process's sockets only and requests to the other servers
// fail. The
// adapter checks every second, so an outage shows within about two
// seconds, and its end within a second of go-redis subscribing again.
// After Close it returns ErrClosed. It does not block.
func (a *Adapter) Health() error {
	if a.ctx.Err() != nil {
		return ErrClosed
	}
	h := &a.health
	h.mu.Lock()
	defer h.mu.Unlock()
	var errs []error
	if h.subErr != nil {
		errs = append(errs, fmt.Errorf("%w: %w; reconnecting", ErrNotConnected, h.subErr))
	} else if d := time.Since(h.checked); d > healthStale {
		errs = append(errs, fmt.Errorf("redis: no answer on the subscription for %v; reconnecting", d.Round(time.Millisecond)))
	}
	if h.streamErr != nil {
		errs = append(errs, fmt.Errorf("redis: reading the stream %s: %w; retrying", a.streams.StreamName, h.streamErr))
	}
	return errors.Join(errs...)
}

// subscriptionLost returns why the subscription is down, or nil.
func (a *Adapter) subscriptionLost() error {
	a.health.mu.Lock()
	defer a.health.mu.Unlock()
	return a.health.subErr
}

// checkSoon asks watchHealth for a check without waiting for the tick.
func (a *Adapter) checkSoon() {
	select {
	case a.checkNow <- struct{}{}:
	default:
	}
}

// watchHealth pings Redis on the subscribed connection until Close.
// go-redis's own reconnection runs in its receiving goroutine, which
// retries every 100 ms while Redis is away and subscribes again to every
// channel and pattern it knows (including the sharded room channels
// subscribed meanwhile); the ping only observes it, or triggers it.
func (a *Adapter) watchHealth() {
	defer a.wg.Done()
	t := time.NewTicker(healthInterval)
	defer t.Stop()
	for {
		select {
		case <-a.ctx.Done():
			return
		case <-t.C:
		case <-a.checkNow:
		}
		ctx, cancel := context.WithTimeout(a.ctx, healthTimeout)
		err := a.ps.Ping(ctx)
		cancel()
		if a.ctx.Err() != nil {
			return
		}
		a.setSubscription(err)
	}
}

// setSubscription records the result of a check of the subscription.
func (a *Adapter) setSubscription(err error) {
	h := &a.health
	h.mu.Lock()
	was := h.subErr
	h.subErr = err
	if err == nil {
		h.checked = time.Now()
	}
	h.mu.Unlock()
	switch {
	case was == nil && err != nil:
		a.log.Warn("redis: subscription lost; local delivery only until go-redis reconnects", "err", err)
	case was != nil && err == nil:
		a.stats.reconnects.Add(1)
		a.log.Info("redis: subscribed again")
	}
}

// setStream records the result of an XREAD.
func (a *Adapter) setStream(err error) {
	h := &a.health
	h.mu.Lock()
	h.streamErr = err
	h.mu.Unlock()
}
