package redis

import (
	"context"
	"errors"
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
	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

// observed is what the failure tests read of an adapter.
type observed interface {
	Health() error
	Stats() Stats
}

func observe(srv *socketio.Server) observed { return srv.Of("/").Adapter().(observed) }

// stoppableNode starts a server as newNodeWith does, and returns with it
// a stop that closes the server and its listener (the cleanup does too).
func stoppableNode(t *testing.T, newAdapter func(ns *socketio.Namespace) socketio.Adapter) (*node, func()) {
	t.Helper()
	srv, err := socketio.NewServer(&socketio.ServerOptions{
		Engine:     &engineio.ServerOptions{PingInterval: time.Second, PingTimeout: 2 * time.Second},
		NewAdapter: newAdapter,
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
	return &node{srv: srv, url: hs.URL}, stop
}

// TestFailure kills the Redis of a two-server cluster and starts it
// again, for each variant of the adapter: the outage shows in Health
// within a bound; local delivery goes on; a broadcast meanwhile is
// delivered locally and reported failed for the cluster; requests to the
// other server fail with an error within the requests timeout; nothing
// panics; once Redis is back, Health is nil again, the subscriptions
// (the sharded room channels too) are restored and broadcasts cross
// again; and no goroutine is left once everything is closed.
func TestFailure(t *testing.T) {
	const timeout = 500 * time.Millisecond
	variants := []struct {
		name    string
		streams bool // Broadcast waits for the XADD and returns its error
		make    func(rdb goredis.UniversalClient, key string, log *slog.Logger) func(*socketio.Namespace) socketio.Adapter
	}{
		{"classic", false, func(rdb goredis.UniversalClient, key string, log *slog.Logger) func(*socketio.Namespace) socketio.Adapter {
			return New(rdb, &Options{Key: key, RequestsTimeout: timeout, Logger: log})
		}},
		{"sharded", false, func(rdb goredis.UniversalClient, key string, log *slog.Logger) func(*socketio.Namespace) socketio.Adapter {
			return New(rdb, &Options{Key: key, RequestsTimeout: timeout, Logger: log, Sharded: true})
		}},
		{"streams", true, func(rdb goredis.UniversalClient, key string, log *slog.Logger) func(*socketio.Namespace) socketio.Adapter {
			return NewStreams(rdb, &StreamsOptions{StreamName: key, ChannelPrefix: key, RequestsTimeout: timeout, BlockTime: time.Second, Logger: log})
		}},
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			ignore := goleak.IgnoreCurrent()
			br := brokertest.Redis(t)
			rdb := goredis.NewClient(&goredis.Options{Addr: br.Addr(), DialTimeout: 200 * time.Millisecond})
			t.Cleanup(func() { _ = rdb.Close() })
			log := slog.New(slog.DiscardHandler)
			if testing.Verbose() {
				log = slog.New(slog.NewTextHandler(os.Stderr, nil))
			}
			key := testKey(t)
			a, stopA := stoppableNode(t, v.make(rdb, key, log))
			b, stopB := stoppableNode(t, v.make(rdb, key, log))
			aAd, bAd := observe(a.srv), observe(b.srv)
			a1 := dial(t, a)
			b1 := dial(t, b, "red")

			// Baseline: healthy, and broadcasts cross both ways.
			for _, ad := range []observed{aAd, bAd} {
				if err := ad.Health(); err != nil {
					t.Fatalf("Health before the outage: %v", err)
				}
			}
			must(t, a.srv.Emit("before"))
			b1.waitFor(t, "before")
			a1.waitFor(t, "before")
			must(t, b.srv.Emit("before-b"))
			a1.waitFor(t, "before-b")

			// The outage.
			br.Kill()
			killed := time.Now()
			for name, ad := range map[string]observed{"a": aAd, "b": bAd} {
				eventually(t, name+": Health reports the subscription lost", func() bool { return errors.Is(ad.Health(), ErrNotConnected) })
				err := ad.Health()
				if !strings.HasPrefix(err.Error(), "redis: ") || !strings.Contains(err.Error(), "connection refused") {
					t.Errorf("%s: Health = %q; want an error starting with \"redis: \" that gives the cause", name, err)
				}
				t.Logf("%s: Health after %v: %v", name, time.Since(killed).Round(time.Millisecond), err)
			}
			if d := time.Since(killed); d > 3*healthInterval+healthTimeout {
				t.Errorf("the outage showed in Health after %v; want within %v", d, 3*healthInterval+healthTimeout)
			}

			// A broadcast meanwhile: delivered here, reported failed for
			// the cluster.
			failedBefore := aAd.Stats().PublishErrors
			err := a.srv.Emit("during")
			if v.streams && err == nil {
				t.Error("Emit without Redis: no error from the Streams adapter")
			}
			if !v.streams && err != nil {
				t.Errorf("Emit without Redis: %v; want nil (queued, the failure is counted)", err)
			}
			a1.waitFor(t, "during")
			eventually(t, "the failed publish counted", func() bool { return aAd.Stats().PublishErrors > failedBefore })
			must(t, b.srv.Local().Emit("local-b"))
			b1.waitFor(t, "local-b")

			// Requests to the other server: an error at once (this
			// server could not hear the answers), not a hang.
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
					t.Errorf("%s without Redis: %v; want ErrNotConnected", name, err)
				}
				if d > timeout {
					t.Errorf("%s without Redis took %v; want less than the requests timeout (%v)", name, d, timeout)
				}
				t.Logf("%s without Redis: %v after %v", name, err, d.Round(time.Millisecond))
			}

			// Redis is back: healed.
			br.Start()
			restarted := time.Now()
			for name, ad := range map[string]observed{"a": aAd, "b": bAd} {
				eventually(t, name+": Health nil again", func() bool { return ad.Health() == nil })
				if n := ad.Stats().Reconnects; n < 1 {
					t.Errorf("%s: Stats().Reconnects = %d after the restart; want at least 1", name, n)
				}
			}
			t.Logf("healthy %v after the restart", time.Since(restarted).Round(time.Millisecond))
			eventually(t, "both servers counted again", func() bool {
				n, err := a.srv.Of("/").ServerCount(ctxStep(t))
				return err == nil && n == 2
			})
			must(t, a.srv.Emit("after"))
			if got := b1.waitFor(t, "after"); slices.Contains(got, "during") {
				t.Errorf("b1 got %q, whose publish was reported failed", got)
			}
			must(t, a.srv.To("red").Emit("after-red")) // a room channel in the sharded variant
			b1.waitFor(t, "after-red")
			must(t, b.srv.Emit("after-b"))
			a1.waitFor(t, "after-b")
			socks, err := a.srv.FetchSockets(ctxStep(t))
			if err != nil || len(socks) != 2 {
				t.Errorf("FetchSockets after the restart: %d sockets, %v", len(socks), err)
			}
			if s := aAd.Stats(); s.Published == 0 || s.Dropped != 0 {
				t.Errorf("a's Stats = %+v; want some published, none dropped", s)
			}

			// Everything closed: no goroutine left.
			_ = a1.s.Manager().Close()
			_ = b1.s.Manager().Close()
			stopA()
			stopB()
			if err := aAd.Health(); !errors.Is(err, ErrClosed) {
				t.Errorf("Health after Close = %v; want ErrClosed", err)
			}
			_ = rdb.Close()
			br.Kill()
			goleak.VerifyNone(t, ignore)
		})
	}
}
