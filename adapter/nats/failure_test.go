package nats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/duplexrt/duplex/internal/brokertest"

	"github.com/duplexrt/duplex/engineio"
	"github.com/duplexrt/duplex/socketio"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"
)

// failureNode starts a server as newNode does, and returns with it a
// stop that closes the server and its listener (the cleanup does too).
func failureNode(t *testing.T, nc *natsgo.Conn, opts *Options) (*node, *Adapter, func()) {
	t.Helper()
	srv, err := socketio.NewServer(&socketio.ServerOptions{
		Engine:     &engineio.ServerOptions{PingInterval: time.Second, PingTimeout: 2 * time.Second},
		NewAdapter: New(nc, opts),
	})
	must(t, err)
	srv.OnConnection(func(s *socketio.Socket) {
		s.On("join", func(s *socketio.Socket, room string, ack func(...any)) {
			s.Join(room)
			ack(true)
		})
	})
	hs := httptest.NewServer(srv)
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), step)
		defer cancel()
		_ = srv.Shutdown(ctx)
		hs.Close()
	}
	t.Cleanup(stop)
	return &node{srv: srv, url: hs.URL}, srv.Of("/").Adapter().(*Adapter), stop
}

// TestFailure kills the NATS server of a two-server cluster and starts
// it again: the outage shows in Health within a bound; local delivery
// goes on; a broadcast meanwhile is buffered by nats.go on a default
// connection (counted in Stats().Buffered) and refused on a connection
// without reconnect buffer (returned and counted in PublishErrors);
// requests to the other server fail at once with ErrNotConnected;
// nothing panics; once NATS is back, Health is nil again, the
// subscriptions (the room wildcard too) are restored and broadcasts cross
// again; and no goroutine is left once everything is closed.
func TestFailure(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	br := brokertest.NATS(t)
	const timeout = 500 * time.Millisecond
	connect := func(extra ...natsgo.Option) *natsgo.Conn {
		nc, err := Connect(br.URL(), append([]natsgo.Option{natsgo.ReconnectWait(50 * time.Millisecond), natsgo.ReconnectJitter(0, 0)}, extra...)...)
		must(t, err)
		t.Cleanup(nc.Close)
		return nc
	}
	opts := &Options{Prefix: testPrefix(t), RequestsTimeout: timeout, HeartbeatInterval: 200 * time.Millisecond}
	if testing.Verbose() {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	ncA := connect()                            // buffers while reconnecting (nats.go's default)
	ncB := connect(natsgo.ReconnectBufSize(-1)) // refuses to publish while reconnecting
	a, aAd, stopA := failureNode(t, ncA, opts)
	b, bAd, stopB := failureNode(t, ncB, opts)
	for _, n := range []*node{a, b} {
		eventually(t, "each server counts the other", func() bool {
			got, err := n.srv.Of("/").ServerCount(ctxStep(t))
			return err == nil && got == 2
		})
	}
	a1 := dial(t, a, "red")
	b1 := dial(t, b, "red")

	// Baseline: healthy, and broadcasts cross both ways.
	for _, ad := range []*Adapter{aAd, bAd} {
		if err := ad.Health(); err != nil {
			t.Fatalf("Health before the outage: %v", err)
		}
	}
	must(t, a.srv.Emit("before"))
	b1.waitFor(t, "before")
	a1.waitFor(t, "before")
	must(t, b.srv.Emit("before-b"))
	a1.waitFor(t, "before-b")
	b1.waitFor(t, "before-b")

	// The outage.
	br.Kill()
	killed := time.Now()
	for name, ad := range map[string]*Adapter{"a": aAd, "b": bAd} {
		eventually(t, name+": Health reports the outage", func() bool { return errors.Is(ad.Health(), ErrNotConnected) })
		err := ad.Health()
		if !strings.HasPrefix(err.Error(), "nats: ") || !strings.Contains(err.Error(), "RECONNECTING") {
			t.Errorf("%s: Health = %q; want an error starting with \"nats: \" that gives the status", name, err)
		}
		t.Logf("%s: Health after %v: %v", name, time.Since(killed).Round(time.Millisecond), err)
	}
	if d := time.Since(killed); d > 2*time.Second {
		t.Errorf("the outage showed in Health after %v; want within 2s", d)
	}

	// Broadcasts meanwhile: delivered here; buffered on a, refused on b.
	sa, sb := aAd.Stats(), bAd.Stats()
	must(t, a.srv.Emit("during-a"))
	a1.waitFor(t, "during-a")
	if got := aAd.Stats(); got.Buffered != sa.Buffered+1 || got.PublishErrors != sa.PublishErrors {
		t.Errorf("a's Stats after a broadcast while disconnected = %+v; want one more Buffered (was %+v)", got, sa)
	}
	err := b.srv.Emit("during-b")
	if !errors.Is(err, natsgo.ErrReconnectBufExceeded) {
		t.Errorf("Emit on b without NATS nor reconnect buffer: %v; want ErrReconnectBufExceeded", err)
	}
	b1.waitFor(t, "during-b")
	if got := bAd.Stats(); got.PublishErrors != sb.PublishErrors+1 || got.Published != sb.Published {
		t.Errorf("b's Stats after a refused broadcast = %+v; want one more PublishErrors (was %+v)", got, sb)
	}
	must(t, a.srv.Local().Emit("local-a"))
	a1.waitFor(t, "local-a")

	// Requests to the other server: an error at once, not a hang.
	requests := map[string]func(ctx context.Context) error{
		"FetchSockets": func(ctx context.Context) error { _, err := a.srv.FetchSockets(ctx); return err },
		"ServerSideEmitWithAck": func(ctx context.Context) error {
			_, err := a.srv.Of("/").ServerSideEmitWithAck(ctx, "x")
			return err
		},
		"EmitWithAck": func(ctx context.Context) error {
			_, err := a.srv.Timeout(step).EmitWithAck(ctx, "q", 1)
			return err
		},
	}
	for name, req := range requests {
		began := time.Now()
		err := req(ctxStep(t))
		d := time.Since(began)
		if !errors.Is(err, ErrNotConnected) {
			t.Errorf("%s without NATS: %v; want ErrNotConnected", name, err)
		}
		if d > timeout {
			t.Errorf("%s without NATS took %v; want less than the requests timeout (%v)", name, d, timeout)
		}
	}

	// NATS is back: healed.
	br.Start()
	restarted := time.Now()
	for name, ad := range map[string]*Adapter{"a": aAd, "b": bAd} {
		eventually(t, name+": Health nil again", func() bool { return ad.Health() == nil })
		eventually(t, name+": the reconnection counted", func() bool { return ad.Stats().Reconnects >= 1 })
	}
	t.Logf("healthy %v after the restart", time.Since(restarted).Round(time.Millisecond))
	for _, n := range []*node{a, b} {
		eventually(t, "each server counts the other again", func() bool {
			got, err := n.srv.Of("/").ServerCount(ctxStep(t))
			return err == nil && got == 2
		})
	}
	// Both subscriptions are back once a round trip works.
	eventually(t, "requests answered again", func() bool {
		socks, err := a.srv.FetchSockets(ctxStep(t))
		return err == nil && len(socks) == 2
	})
	must(t, b.srv.Emit("after-b"))
	if got := a1.waitFor(t, "after-b"); slices.Contains(got, "during-b") {
		t.Errorf("a1 got %q, but b's broadcast was refused", got)
	}
	must(t, a.srv.To("red").Emit("after-red")) // the room subject's subscription
	if got := b1.waitFor(t, "after-red"); slices.Contains(got, "during-a") {
		t.Log("b1 got the broadcast a made while NATS was down (buffered by nats.go, sent after b resubscribed)")
	}
	a1.waitFor(t, "after-red")

	// Everything closed: no goroutine left.
	_ = a1.s.Manager().Close()
	_ = b1.s.Manager().Close()
	stopA()
	stopB()
	if err := aAd.Health(); !errors.Is(err, ErrClosed) {
		t.Errorf("Health after Close = %v; want ErrClosed", err)
	}
	ncA.Close()
	ncB.Close()
	br.Kill()
	goleak.VerifyNone(t, ignore)
}

// TestHealthClosedConnection: a connection that is closed (nats.go gave
// up reconnecting, or the application closed it) leaves the adapter
// degraded for good, and Health says so.
func TestHealthClosedConnection(t *testing.T) {
	br := brokertest.NATS(t)
	nc, err := Connect(br.URL())
	must(t, err)
	t.Cleanup(nc.Close)
	_, ad, _ := failureNode(t, nc, &Options{Prefix: testPrefix(t)})
	must(t, ad.Health())
	nc.Close()
	err = ad.Health()
	if !errors.Is(err, ErrNotConnected) || !strings.Contains(err.Error(), "will not reconnect") {
		t.Errorf("Health with a closed connection = %v; want ErrNotConnected, saying it will not reconnect", err)
	}
}

// TestJetStreamFailure kills the NATS server (-js, its store directory
// kept) of a two-server JetStream cluster and starts it again: local
// delivery goes on meanwhile, requests fail at once with
// ErrNotConnected; once NATS is back, each server's stream consumer
// resumes (a broadcast of the other server arrives, with its offset), and
// a client that loses one server gets its socket back on the other, with
// the event it missed.
func TestJetStreamFailure(t *testing.T) {
	br := brokertest.NATS(t, "-js", "-sd", t.TempDir())
	const timeout = 500 * time.Millisecond
	connect := func() *natsgo.Conn {
		nc, err := Connect(br.URL(), natsgo.ReconnectWait(50*time.Millisecond), natsgo.ReconnectJitter(0, 0))
		must(t, err)
		t.Cleanup(nc.Close)
		return nc
	}
	rec := &socketio.RecoveryOptions{MaxDisconnectionDuration: 30 * time.Second}
	opts := &JetStreamOptions{Prefix: testPrefix(t), Recovery: rec, RequestsTimeout: timeout, HeartbeatInterval: 200 * time.Millisecond}
	if testing.Verbose() {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	ncA, ncB := connect(), connect()
	a, b := jsNodeConn(t, ncA, opts, nil), jsNodeConn(t, ncB, opts, nil)
	aAd := a.srv.Of("/").Adapter().(*JetStreamAdapter)
	bAd := b.srv.Of("/").Adapter().(*JetStreamAdapter)
	countEachOther(t, a, b)
	c := newRecoveryClient(t, a.srv, 300*time.Millisecond) // on a, in red
	b1 := dial(t, b, "red")
	id := c.s.ID()
	// nextWith returns c's next event that starts with prefix, skipping
	// the others (the broadcasts nats.go buffered during the outage).
	nextWith := func(prefix string, within time.Duration) (string, bool) {
		timer := time.NewTimer(within)
		defer timer.Stop()
		for {
			select {
			case e := <-c.events:
				if strings.HasPrefix(e, prefix) {
					return e, true
				}
				t.Logf("c also got %q", e)
			case <-timer.C:
				return "", false
			}
		}
	}

	must(t, b.srv.To("red").Emit("ev", "before"))
	if e, ok := nextWith(`ev "before"`, step); !ok {
		t.Fatal("no event before the outage")
	} else {
		split(t, e) // it has its offset
	}

	// The outage.
	br.Kill()
	for name, ad := range map[string]*JetStreamAdapter{"a": aAd, "b": bAd} {
		eventually(t, name+": Health reports the outage", func() bool { return errors.Is(ad.Health(), ErrNotConnected) })
	}
	// Local delivery goes on, without offset.
	// (The servers have Recovery: an offset of a server's memory would be
	// one no server could recover from.)
	must(t, a.srv.To("red").Emit("during-a"))
	if e, ok := nextWith("during-a", step); !ok {
		t.Fatal("c did not get its own server's broadcast during the outage")
	} else if e != "during-a" {
		t.Errorf("c got %q during the outage, want \"during-a\" without offset", e)
	}
	must(t, b.srv.To("red").Emit("during-b"))
	for got := false; !got; {
		select {
		case e := <-b1.ch:
			if got = strings.HasPrefix(e, "during-b"); got && e != "during-b" {
				t.Errorf("b1 got %q during the outage, want \"during-b\" without offset", e)
			}
		case <-time.After(step):
			t.Fatal("b1 did not get its own server's broadcast during the outage")
		}
	}
	// Requests fail at once.
	requests := map[string]func(ctx context.Context) error{
		"FetchSockets": func(ctx context.Context) error { _, err := a.srv.FetchSockets(ctx); return err },
		"ServerSideEmitWithAck": func(ctx context.Context) error {
			_, err := a.srv.Of("/").ServerSideEmitWithAck(ctx, "x")
			return err
		},
		"AllRooms": func(ctx context.Context) error { _, err := aAd.AllRooms(ctx); return err },
	}
	for name, req := range requests {
		began := time.Now()
		err := req(ctxStep(t))
		if !errors.Is(err, ErrNotConnected) {
			t.Errorf("%s without NATS: %v; want ErrNotConnected", name, err)
		}
		if d := time.Since(began); d > timeout {
			t.Errorf("%s without NATS took %v; want less than the requests timeout (%v)", name, d, timeout)
		}
	}

	// NATS is back, with its store: the consumers resume.
	br.Start()
	restarted := time.Now()
	for name, ad := range map[string]*JetStreamAdapter{"a": aAd, "b": bAd} {
		eventually(t, name+": Health nil again", func() bool { return ad.Health() == nil })
	}
	countEachOther(t, a, b)
	// A broadcast of b reaches c on a through a's consumer: with its
	// offset once JetStream is ready again (before, b delivers locally
	// and returns the error).
	for i := 0; ; i++ {
		ev := fmt.Sprintf(`ev "after-%d"`, i)
		err := b.srv.To("red").Emit("ev", fmt.Sprintf("after-%d", i))
		if e, ok := nextWith(ev, time.Second); ok {
			if _, off := split(t, e); off == 0 {
				t.Errorf("%q: offset 0", e)
			}
			break
		}
		if i == 20 {
			t.Fatalf("a's consumer did not resume after the restart (last Emit: %v)", err)
		}
	}
	t.Logf("a's consumer resumed %v after the restart", time.Since(restarted).Round(time.Millisecond))
	eventually(t, "requests answered again", func() bool {
		socks, err := a.srv.FetchSockets(ctxStep(t))
		return err == nil && len(socks) == 2
	})

	// Connection state recovery across the servers still works.
	js, err := jetstream.New(ncA)
	must(t, err)
	kv, err := js.KeyValue(ctxStep(t), streamName(opts.Prefix)+"_sessions")
	must(t, err)
	for len(c.events) > 0 {
		<-c.events
	}
	c.target.Store(b.srv)
	c.drop(t, a.srv, kv)
	must(t, a.srv.To("red").Emit("ev", "missed"))
	c.waitReconnected(t)
	if !c.s.Recovered() || c.s.ID() != id {
		t.Fatalf("after the restart: Recovered %v, id %s (was %s)", c.s.Recovered(), c.s.ID(), id)
	}
	if _, ok := nextWith(`ev "missed"`, step); !ok {
		t.Fatal("the recovered client did not get the event it missed")
	}
}
