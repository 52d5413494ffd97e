package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/duplexrt/duplex/engineio"
	"github.com/duplexrt/duplex/socketio"
	"github.com/duplexrt/duplex/ws"
)

// The clients' reconnection: quick, so that a drop costs little of the
// run, with jitter, so that the clients of a lost server do not come back
// all at once.
const (
	soakReconnectMin = 100 * time.Millisecond
	soakReconnectMax = 2 * time.Second
)

// soakClient is one Socket.IO client of the soak, and what the ledger
// knows of it.
type soakClient struct {
	idx    int32
	server int // the index of its server (URL)
	sock   *socketio.ClientSocket
	up     chan struct{} // a signal for each connection (OnConnect)

	connMu sync.Mutex
	conn   net.Conn // the TCP connection under the current session

	dropping atomic.Bool // the next disconnection is the soak's doing

	mu       sync.Mutex
	rooms    map[int32]soakMember // its memberships, as the ledger knows them
	token    uint32
	askedFor map[int32]bool // rooms it ever asked to join
}

// asked reports whether c ever asked to join room r.
func (c *soakClient) asked(r int32) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.askedFor[r]
}

// ask notes that c asks to join room r.
func (c *soakClient) ask(r int32) {
	c.mu.Lock()
	c.askedFor[r] = true
	c.mu.Unlock()
}

// myRooms returns the rooms c is in.
func (c *soakClient) myRooms() []int32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]int32, 0, len(c.rooms))
	for r := range c.rooms {
		out = append(out, r)
	}
	return out
}

// closeConn cuts c's TCP connection, as a network failure would.
func (c *soakClient) closeConn() bool {
	c.connMu.Lock()
	nc := c.conn
	c.connMu.Unlock()
	if nc == nil {
		return false
	}
	_ = nc.Close()
	return true
}

// soakLoad is what the soak's clients share: the ledger, the pace, the
// counters.
type soakLoad struct {
	cfg     *soakConfig
	targets []string // what socketio.NewManager takes, by server
	nsp     string
	ledger  *soakLedger
	pace    *pacer
	filler  []byte      // the end of every said text
	closing atomic.Bool // the end: disconnections are expected

	handshake   histogram
	dialFailed  reasons
	established atomic.Int64

	joins, leaves atomic.Int64
	drops         atomic.Int64
	reconnects    atomic.Int64
	reconnect     histogram // from the drop to the new connection
	errors        reasons   // failures that fail the run
}

func newSoakLoad(cfg *soakConfig, urls []string, ledger *soakLedger) *soakLoad {
	l := &soakLoad{cfg: cfg, nsp: soakNamespace(urls[0]), ledger: ledger, pace: newPacer(cfg.rate), filler: makePayload(cfg.size - soakMinSize)}
	for _, u := range urls {
		l.targets = append(l.targets, sioURL(u))
	}
	return l
}

// open makes client i and connects it; it returns nil if it could not
// connect within --timeout.
func (l *soakLoad) open(ctx context.Context, i int) *soakClient {
	c := &soakClient{
		idx:      int32(i),
		server:   i % len(l.targets),
		up:       make(chan struct{}, 1),
		rooms:    make(map[int32]soakMember),
		askedFor: make(map[int32]bool),
	}
	dialer := &net.Dialer{KeepAlive: 30 * time.Second}
	wsOpts := &ws.DialOptions{
		HandshakeTimeout: l.cfg.timeout,
		// The process's environment should not send a load test
		// through a proxy.
		Proxy: func(*http.Request) (*url.URL, error) { return nil, nil },
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			nc, err := dialer.DialContext(ctx, network, addr)
			if err == nil {
				c.connMu.Lock()
				c.conn = nc
				c.connMu.Unlock()
			}
			return nc, err
		},
	}
	m, err := socketio.NewManager(l.targets[c.server], &socketio.ClientOptions{
		Path:           l.cfg.sioPath,
		Engine:         &engineio.DialOptions{Transports: []string{engineio.TransportWebSocket}, WebSocket: wsOpts},
		Reconnection:   &socketio.Reconnection{MinDelay: soakReconnectMin, MaxDelay: soakReconnectMax},
		ConnectTimeout: l.cfg.timeout,
		NoAutoConnect:  true,
	})
	if err != nil {
		l.dialFailed.add(err.Error())
		return nil
	}
	s := m.Socket(l.nsp, nil)
	c.sock = s
	var lastErr atomic.Pointer[error]
	s.On("said", func(_ *socketio.ClientSocket, e *socketio.Event) { l.ledger.receipt(c, e.Raw(0), e.Raw(1)) })
	s.OnConnect(func(*socketio.ClientSocket) {
		select {
		case c.up <- struct{}{}:
		default:
		}
	})
	s.OnDisconnect(func(_ *socketio.ClientSocket, reason string) {
		l.ledger.endAll(c)
		if l.closing.Load() || c.dropping.Swap(false) {
			return
		}
		l.errors.add("disconnected without a drop: " + reason)
	})
	s.OnConnectError(func(_ *socketio.ClientSocket, err error) { lastErr.Store(&err) })
	t0 := time.Now()
	s.Connect()
	t := time.NewTimer(l.cfg.timeout)
	defer t.Stop()
	select {
	case <-c.up:
		l.handshake.record(time.Since(t0))
		l.established.Add(1)
		return c
	case <-t.C:
		if p := lastErr.Load(); p != nil {
			l.dialFailed.add(sioFailure(*p))
		} else {
			l.dialFailed.add(fmt.Sprintf("not connected within --timeout %v", l.cfg.timeout))
		}
	case <-ctx.Done():
	}
	c.dropping.Store(true) // should it connect meanwhile
	_ = m.Close()
	return nil
}

// openAll opens the clients, at most --dial-concurrency at a time; the
// slice holds nil for those that could not connect.
func (l *soakLoad) openAll(ctx context.Context) []*soakClient {
	clients := make([]*soakClient, l.cfg.conns)
	sem := make(chan struct{}, l.cfg.dialConcurrency)
	var wg sync.WaitGroup
	for i := range clients {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			clients[i] = l.open(ctx, i)
		})
	}
	wg.Wait()
	return clients
}

// run is client c's life until stop is done: it joins its first rooms,
// then does an operation at each slot the pacer gives it. The operation
// under way when stop ends completes; ctx (an interrupt) aborts it.
func (l *soakLoad) run(ctx, stop context.Context, c *soakClient) {
	rng := rand.New(rand.NewPCG(uint64(c.idx), uint64(time.Now().UnixNano())))
	for range 1 + rng.IntN(2) {
		l.join(ctx, c, rng)
	}
	var seq uint32
	t := newStoppedTimer()
	for {
		if l.pace.wait(stop, t) != nil || !l.waitConnected(stop, c, "") {
			return
		}
		switch p := rng.IntN(100); {
		case p < soakSayPct:
			seq++
			l.say(ctx, c, rng, seq)
		case p < soakSayPct+soakJoinPct:
			l.join(ctx, c, rng)
		case p < soakSayPct+soakJoinPct+soakLeavePct:
			l.leave(ctx, c, rng)
		default:
			l.drop(ctx, stop, c)
		}
	}
}

// waitConnected waits until c is connected, on another session than
// old's if old is not ""; it reports false when ctx ended the wait.
func (l *soakLoad) waitConnected(ctx context.Context, c *soakClient, old string) bool {
	var t *time.Timer
	for !c.sock.Connected() || c.sock.ID() == old {
		if t == nil {
			t = time.NewTimer(l.cfg.timeout)
			defer t.Stop()
		}
		select {
		case <-c.up:
		case <-t.C:
			l.errors.add(fmt.Sprintf("not reconnected within --timeout %v", l.cfg.timeout))
			t.Reset(l.cfg.timeout)
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// emit emits event with an acknowledgement, waiting --timeout at most;
// the reason of a failure is "" when ctx ended it.
func (l *soakLoad) emit(ctx context.Context, c *soakClient, event string, args ...any) (*socketio.Args, string) {
	actx, cancel := context.WithTimeout(ctx, l.cfg.timeout)
	defer cancel()
	a, err := c.sock.EmitWithAck(actx, event, args...)
	if err == nil {
		return a, ""
	}
	if ctx.Err() != nil {
		return nil, ""
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return nil, fmt.Sprintf("%s: no acknowledgement within --timeout %v", event, l.cfg.timeout)
	case errors.Is(err, socketio.ErrDisconnected):
		return nil, event + ": disconnected before the acknowledgement"
	}
	return nil, event + ": " + sioFailure(err)
}

// join joins a room c is not in (or leaves one, when c is in as many as
// it may be).
func (l *soakLoad) join(ctx context.Context, c *soakClient, rng *rand.Rand) {
	mine := c.myRooms()
	if len(mine) >= l.cfg.maxRooms || len(mine) >= len(l.ledger.rooms) {
		l.leave(ctx, c, rng)
		return
	}
	r := int32(rng.IntN(len(l.ledger.rooms)))
	for containsInt32(mine, r) {
		r = (r + 1) % int32(len(l.ledger.rooms))
	}
	l.joinRoom(ctx, c, r)
}

func (l *soakLoad) joinRoom(ctx context.Context, c *soakClient, r int32) {
	sid := c.sock.ID()
	if sid == "" {
		return // disconnected meanwhile; the next operation waits
	}
	c.ask(r)
	if _, why := l.emit(ctx, c, "join", l.ledger.roomName(r)); why != "" {
		l.errors.add(why)
		return
	} else if ctx.Err() != nil {
		return
	}
	if l.ledger.joined(c, r, sid) {
		l.joins.Add(1)
	}
}

// leave leaves one of c's rooms (or joins one, when it is in none).
func (l *soakLoad) leave(ctx context.Context, c *soakClient, rng *rand.Rand) {
	mine := c.myRooms()
	if len(mine) == 0 {
		l.join(ctx, c, rng)
		return
	}
	r := mine[rng.IntN(len(mine))]
	l.ledger.left(c, r)
	if _, why := l.emit(ctx, c, "leave", l.ledger.roomName(r)); why != "" {
		l.errors.add(why)
		return
	}
	if ctx.Err() == nil {
		l.leaves.Add(1)
	}
}

// say says a text to one of c's rooms (any room when it is in none).
func (l *soakLoad) say(ctx context.Context, c *soakClient, rng *rand.Rand, seq uint32) {
	mine := c.myRooms()
	r := int32(rng.IntN(len(l.ledger.rooms)))
	if len(mine) > 0 {
		r = mine[rng.IntN(len(mine))]
	}
	m := l.ledger.newMsg(c, seq, r)
	text := make([]byte, l.cfg.size)
	text[0] = 'm'
	putStamp(text[1:], false, m.id)
	copy(text[soakMinSize:], l.filler)
	a, why := l.emit(ctx, c, "say", l.ledger.roomName(r), string(text))
	switch {
	case why != "":
		l.ledger.failed(m, why)
		l.errors.add(why)
	case a == nil:
		l.ledger.abandon(m) // interrupted: neither acknowledged nor failed
	default:
		l.ledger.acknowledged(m, a.Raw(0))
	}
}

// drop cuts c's connection, waits for the client to reconnect by itself,
// and joins its rooms again.
func (l *soakLoad) drop(ctx, stop context.Context, c *soakClient) {
	for len(c.up) > 0 {
		<-c.up // a signal from an earlier connection
	}
	sid := c.sock.ID()
	rooms := l.ledger.endAll(c)
	c.dropping.Store(true)
	t0 := nanotime()
	if sid == "" || !c.closeConn() {
		c.dropping.Store(false)
		return
	}
	l.drops.Add(1)
	if !l.waitConnected(stop, c, sid) {
		return
	}
	l.reconnects.Add(1)
	l.reconnect.record(time.Duration(nanotime() - t0))
	for _, r := range rooms {
		l.joinRoom(ctx, c, r)
	}
}

// closeAll closes the clients' managers, at most closeConcurrency at a
// time.
func (l *soakLoad) closeAll(clients []*soakClient) {
	l.closing.Store(true)
	var wg sync.WaitGroup
	sem := make(chan struct{}, closeConcurrency)
	for _, c := range clients {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			_ = c.sock.Manager().Close()
		})
	}
	wg.Wait()
}
