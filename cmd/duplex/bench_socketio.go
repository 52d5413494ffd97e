package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/duplexrt/duplex/engineio"
	"github.com/duplexrt/duplex/socketio"
)

// sioLoad is the state the socketio scenario's clients share.
type sioLoad struct {
	cfg    *benchConfig
	w      *window
	pace   *pacer
	hist   histogram
	acks   atomic.Int64
	errors reasons
	live   atomic.Int64
}

// sioSummary is the socketio scenario's section. With --mode fanout it
// describes the publishers (their acks, ack latency), and the deliveries
// are in the summary's fanout section, errors included.
type sioSummary struct {
	Event        string           `json:"event"`
	Transport    string           `json:"transport"`
	RecvEvent    string           `json:"recv_event,omitempty"` // --mode fanout
	Publishers   int              `json:"publishers,omitempty"` // --mode fanout
	Acks         int64            `json:"acks"`                 // acknowledged with the payload sent (fanout: acknowledged at all)
	AcksPerSec   float64          `json:"acks_per_sec"`
	Latency      *latencySummary  `json:"latency,omitempty"`
	Errors       int64            `json:"errors"`
	ErrorReasons map[string]int64 `json:"error_reasons,omitempty"`
}

// sioTransports maps --transport to the Engine.IO transports.
var sioTransports = map[string][]string{
	"websocket": {engineio.TransportWebSocket},
	"polling":   {engineio.TransportPolling},
	"upgrade":   {engineio.TransportPolling, engineio.TransportWebSocket},
}

// socketio runs the socketio scenario: --conns Socket.IO clients, each in
// a closed loop of --event with an acknowledgement that must carry the
// payload back (the conformance app's and duplex serve's "echo").
func (r *benchRun) socketio(ctx context.Context) error {
	cfg := r.cfg
	r.server.markUnloaded()
	d := newSIODialer(cfg)
	r.prog.start(func() (string, float64) {
		return fmt.Sprintf("socketio: connecting %s/%s, %s failed", commas(d.established.Load()), commas(int64(cfg.conns)), commas(d.failures.count())),
			countShare(d.established.Load(), int64(cfg.conns))
	})
	live := d.dialAll(ctx, cfg.urls, cfg.conns, nil)
	r.prog.end()
	r.sum.Dial = d.summary()
	defer closeSIO(live)
	if len(live) == 0 {
		r.failed = "no client connected"
		return nil
	}

	l := &sioLoad{cfg: cfg, w: newWindow(cfg.count), pace: newPacer(cfg.rate)}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	l.live.Store(int64(len(live)))
	for i, c := range live {
		wg.Go(func() {
			l.run(runCtx, c, i)
			if l.live.Add(-1) == 0 {
				l.w.abort("every client failed")
			}
		})
	}
	var rm rateMeter
	r.prog.start(func() (string, float64) {
		if !l.w.measuring.Load() {
			return "socketio: warming up", progressOpen
		}
		n := l.acks.Load()
		return fmt.Sprintf("socketio %.1fs/%v: %s acks, %s/s, %s errors", l.w.elapsed().Seconds(), cfg.duration, commas(n), commas(int64(rm.rate(n))), commas(l.errors.count())),
			timeShare(l.w.elapsed(), cfg.duration)
	})
	l.w.run(ctx, cfg.warmup, cfg.duration, func() {
		r.server.begin()
		r.client.begin()
	})
	r.prog.end()
	acks := l.acks.Load()
	r.sum.Server = r.server.finish(acks, "ack", int64(len(live)))
	r.sum.Client = r.client.finish()
	stop()
	wg.Wait()

	secs := l.w.seconds()
	r.sum.Seconds, r.sum.StoppedBy = round3(secs), l.w.stoppedBy
	ss := &sioSummary{
		Event:        cfg.event,
		Transport:    cfg.transport,
		Acks:         acks,
		Latency:      l.hist.summary(),
		Errors:       l.errors.count(),
		ErrorReasons: l.errors.snapshot(),
	}
	if secs > 0 {
		ss.AcksPerSec = round1(float64(acks) / secs)
	}
	r.sum.SocketIO = ss
	return nil
}

// sioDialer opens Socket.IO clients and records how the handshakes went.
type sioDialer struct {
	cfg         *benchConfig
	opts        *socketio.ClientOptions
	handshake   histogram
	failures    reasons
	established atomic.Int64
}

func newSIODialer(cfg *benchConfig) *sioDialer {
	eopts := &engineio.DialOptions{Transports: sioTransports[cfg.transport], Header: make(http.Header)}
	for _, h := range cfg.headers {
		name, value, _ := strings.Cut(h, ":")
		eopts.Header.Add(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	return &sioDialer{cfg: cfg, opts: &socketio.ClientOptions{
		Path:           cfg.sioPath,
		Engine:         eopts,
		Reconnection:   &socketio.Reconnection{Disable: true},
		ConnectTimeout: cfg.timeout,
	}}
}

// sioURL turns a bench URL into what socketio.Dial takes: an http(s)
// URL whose path is the namespace.
func sioURL(raw string) string {
	u, _ := url.Parse(raw) // checked by validate
	nsp := u.Path
	if nsp == "" {
		nsp = "/"
	}
	u.Path = nsp
	switch u.Scheme { // Engine.IO begins over HTTP
	case "ws":
		u.Scheme = "http"
	case "wss":
		u.Scheme = "https"
	}
	return u.String()
}

// dialAll opens n clients, client i on urls[i % len(urls)], at most
// --dial-concurrency at a time, and calls opened, if not nil, on each as
// soon as it is connected. It returns the clients that connected.
func (d *sioDialer) dialAll(ctx context.Context, urls []string, n int, opened func(i int, c *socketio.ClientSocket)) []*socketio.ClientSocket {
	targets := make([]string, len(urls))
	for i, u := range urls {
		targets[i] = sioURL(u)
	}
	clients := make([]*socketio.ClientSocket, n)
	sem := make(chan struct{}, d.cfg.dialConcurrency)
	var wg sync.WaitGroup
	for i := range clients {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			dctx, cancel := context.WithTimeout(ctx, d.cfg.timeout)
			defer cancel()
			t0 := time.Now()
			s, err := socketio.Dial(dctx, targets[i%len(targets)], nil, d.opts)
			if err != nil {
				if ctx.Err() == nil {
					d.failures.add(sioFailure(err))
				}
				return
			}
			d.handshake.record(time.Since(t0))
			d.established.Add(1)
			if opened != nil {
				opened(i, s)
			}
			clients[i] = s
		})
	}
	wg.Wait()
	var live []*socketio.ClientSocket
	for _, c := range clients {
		if c != nil {
			live = append(live, c)
		}
	}
	return live
}

func (d *sioDialer) summary() *dialSummary {
	return &dialSummary{Established: d.established.Load(), Failed: d.failures.count(), Failures: d.failures.snapshot(), Handshake: d.handshake.summary()}
}

// closeSIO closes the clients' connections.
func closeSIO(clients []*socketio.ClientSocket) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, closeConcurrency)
	for _, c := range clients {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			_ = c.Manager().Close()
		})
	}
	wg.Wait()
}

// run is one client's closed loop: emit with an ack, check the payload
// came back.
func (l *sioLoad) run(ctx context.Context, c *socketio.ClientSocket, n int) {
	payload := strings.Repeat("x", l.cfg.size)
	t := newStoppedTimer()
	for seq := 0; ; seq++ {
		if l.pace.wait(ctx, t) != nil {
			return
		}
		measured, ok := l.w.claim()
		if !ok {
			<-ctx.Done()
			return
		}
		msg := payload
		if len(msg) >= 16 {
			stamp := fmt.Sprintf("%08x%08x", n, seq)
			msg = stamp + payload[16:]
		}
		t0 := nanotime()
		reply, err := c.EmitWithAck(ctx, l.cfg.event, msg)
		if err != nil {
			if ctx.Err() == nil {
				l.errors.add(sioFailure(err))
				if measured {
					l.w.done()
				}
			}
			return
		}
		lat := nanotime() - t0
		var got string
		if reply.Decode(0, &got) != nil || got != msg {
			l.errors.add("the acknowledgement does not carry the payload back")
			if measured {
				l.w.done()
			}
			return
		}
		if measured {
			if l.w.inWindow() {
				l.hist.record(time.Duration(lat))
				l.acks.Add(1)
			}
			l.w.done()
		}
	}
}

// sioFailure names a client failure for the summary.
func sioFailure(err error) string {
	var ce *socketio.ConnectError
	if errors.As(err, &ce) {
		return "refused: " + ce.Message
	}
	return failureReason(err)
}
