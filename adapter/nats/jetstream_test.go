package nats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/duplexrt/duplex/engineio"
	"github.com/duplexrt/duplex/socketio"
	"github.com/google/go-cmp/cmp"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// jsOptions returns JetStreamOptions of the test's own: a prefix, and so
// a stream and a bucket, that no other test uses, deleted when the test
// ends.
// The anchor stream, an empty file stream the tests never delete, keeps
// the NATS server's directory of the account's streams: when the
// parallel tests delete the last file stream while another test creates
// one, the server removes that directory under the creation, which
// fails ("could not create storage directory", seen on NATS 2.9.10).
var (
	anchorOnce sync.Once
	anchorErr  error
)

func jsOptions(t *testing.T, nc *natsgo.Conn, rec *socketio.RecoveryOptions) *JetStreamOptions {
	t.Helper()
	o := &JetStreamOptions{Prefix: testPrefix(t), Recovery: rec, HeartbeatInterval: 200 * time.Millisecond}
	if testing.Verbose() {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	js, err := jetstream.New(nc)
	must(t, err)
	anchorOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), step)
		defer cancel()
		_, anchorErr = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name: "duplex-test-anchor", Subjects: []string{"duplex-test-anchor"}, MaxMsgs: 1,
		})
	})
	must(t, anchorErr)
	stream := streamName(o.Prefix)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), step)
		defer cancel()
		if err := js.DeleteStream(ctx, stream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("deleting stream %s: %v", stream, err)
		}
		if err := js.DeleteKeyValue(ctx, stream+"_sessions"); err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) && !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("deleting bucket %s_sessions: %v", stream, err)
		}
	})
	return o
}

// jsNode starts a server with the JetStream adapter of opts, on a NATS
// connection of its own, and rec as its recovery options.
func jsNode(t *testing.T, opts *JetStreamOptions, setup func(srv *socketio.Server)) *node {
	t.Helper()
	return jsNodeConn(t, natsConn(t), opts, setup)
}

// jsNodeConn starts a server as jsNode does, on nc.
func jsNodeConn(t *testing.T, nc *natsgo.Conn, opts *JetStreamOptions, setup func(srv *socketio.Server)) *node {
	t.Helper()
	mk, err := NewJetStream(ctxStep(t), nc, opts)
	must(t, err)
	srv, err := socketio.NewServer(&socketio.ServerOptions{
		Engine:     &engineio.ServerOptions{PingInterval: time.Second, PingTimeout: 2 * time.Second},
		NewAdapter: mk,
		Recovery:   opts.Recovery,
	})
	must(t, err)
	srv.OnConnection(func(s *socketio.Socket) {
		s.On("join", func(s *socketio.Socket, room string, ack func(...any)) {
			s.Join(room)
			ack(true)
		})
	})
	if setup != nil {
		setup(srv)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), step)
		defer cancel()
		_ = srv.Shutdown(ctx)
		hs.Close()
	})
	return &node{srv: srv, url: hs.URL}
}

// countEachOther waits until each server counts them all.
func countEachOther(t *testing.T, nodes ...*node) {
	t.Helper()
	for _, n := range nodes {
		eventually(t, "each server counts the others", func() bool {
			got, err := n.srv.Of("/").ServerCount(ctxStep(t))
			return err == nil && got == len(nodes)
		})
	}
}

// TestJetStreamCluster runs the scenarios of the core adapter through
// the stream: broadcasts to all, to rooms, except rooms, binary;
// fetchSockets, socketsJoin and socketsLeave; serverSideEmit with acks;
// broadcasts with acks. A server of New on the same prefix is part of
// the cluster both ways.
func TestJetStreamCluster(t *testing.T) {
	nc := natsConn(t)
	setup := func(name string) func(srv *socketio.Server) {
		return func(srv *socketio.Server) {
			srv.Of("/").OnServerSideEmit("ping", func(ns *socketio.Namespace, e *socketio.Event) {
				var msg string
				_ = e.Decode(0, &msg)
				_ = e.Ack(name + ":" + msg)
			})
		}
	}
	opts := jsOptions(t, nc, nil)
	a := jsNode(t, opts, setup("a"))
	b := jsNode(t, opts, setup("b"))
	c := newNode(t, natsConn(t), &Options{Prefix: opts.Prefix, HeartbeatInterval: opts.HeartbeatInterval}, setup("c"))
	countEachOther(t, a, b, c)
	if _, ok := a.srv.Of("/").Adapter().(*JetStreamAdapter); !ok {
		t.Fatalf("adapter %T", a.srv.Of("/").Adapter())
	}
	a1 := dial(t, a, "red")
	a2 := dial(t, a)
	b1 := dial(t, b, "red", "blue")
	b2 := dial(t, b)
	c1 := dial(t, c, "red")
	all := []*client{a1, a2, b1, b2, c1}

	t.Run("broadcasts", func(t *testing.T) {
		for i, from := range []*node{a, b, c} {
			tag := fmt.Sprint(i)
			must(t, from.srv.Emit("news", "all"+tag))
			must(t, from.srv.To("red").Emit("news", "red"+tag))
			must(t, from.srv.Except("red").Emit("news", "not-red"+tag))
			must(t, from.srv.To(b1.s.ID()).Emit("news", "to-b1"+tag, []byte{1, 2, 3}))
			must(t, from.srv.Emit("end"))
			for k, want := range map[*client][]string{
				a1: {`news "all` + tag + `"`, `news "red` + tag + `"`},
				a2: {`news "all` + tag + `"`, `news "not-red` + tag + `"`},
				b1: {`news "all` + tag + `"`, `news "red` + tag + `"`, `news "to-b1` + tag + `" bin[1 2 3]`},
				b2: {`news "all` + tag + `"`, `news "not-red` + tag + `"`},
				c1: {`news "all` + tag + `"`, `news "red` + tag + `"`},
			} {
				if d := cmp.Diff(want, k.waitFor(t, "end")); d != "" {
					t.Errorf("from %d, client %d (-want +got):\n%s", i, slices.Index(all, k), d)
				}
			}
		}
	})

	t.Run("fetchSockets and socketsJoin", func(t *testing.T) {
		for _, from := range []*node{a, b, c} {
			socks, err := from.srv.In("red").FetchSockets(ctxStep(t))
			must(t, err)
			var ids []string
			for _, s := range socks {
				ids = append(ids, s.ID)
			}
			if d := cmp.Diff(sorted([]string{a1.s.ID(), b1.s.ID(), c1.s.ID()}), sorted(ids)); d != "" {
				t.Errorf("FetchSockets (-want +got):\n%s", d)
			}
		}
		a.srv.In("red").SocketsJoin("green")
		for _, n := range []*node{a, b, c} {
			eventually(t, "red joins green", func() bool {
				socks, err := n.srv.In("green").FetchSockets(ctxStep(t))
				return err == nil && len(socks) == 3
			})
		}
		c.srv.In("green").SocketsLeave("green")
		for _, n := range []*node{a, b, c} {
			eventually(t, "green left", func() bool {
				socks, err := n.srv.In("green").FetchSockets(ctxStep(t))
				return err == nil && len(socks) == 0
			})
		}
	})

	t.Run("serverSideEmit with acks", func(t *testing.T) {
		for name, from := range map[string]*node{"a": a, "b": b, "c": c} {
			replies, err := from.srv.Of("/").ServerSideEmitWithAck(ctxStep(t), "ping", "x")
			must(t, err)
			var got []string
			for _, r := range replies {
				var v string
				must(t, r.Decode(0, &v))
				got = append(got, v)
			}
			var want []string
			for _, o := range []string{"a", "b", "c"} {
				if o != name {
					want = append(want, o+":x")
				}
			}
			if d := cmp.Diff(want, sorted(got)); d != "" {
				t.Errorf("from %s (-want +got):\n%s", name, d)
			}
		}
	})

	t.Run("broadcast with acks", func(t *testing.T) {
		for _, from := range []*node{a, b, c} {
			replies, err := from.srv.Timeout(step).EmitWithAck(ctxStep(t), "q", 1)
			must(t, err)
			var got, want []string
			for _, r := range replies {
				got = append(got, string(r.Raw(0)))
			}
			for _, k := range all {
				want = append(want, strconv.Quote(k.s.ID()))
			}
			if d := cmp.Diff(sorted(want), sorted(got)); d != "" {
				t.Errorf("acks (-want +got):\n%s", d)
			}
		}
	})
}

// recoveryClient is a Go client behind a front that sends each new
// connection to the server target holds.
type recoveryClient struct {
	s            *socketio.ClientSocket
	target       atomic.Pointer[socketio.Server]
	events       chan string
	reconnected  chan struct{}
	disconnected chan string
}

func newRecoveryClient(t *testing.T, first *socketio.Server, delay time.Duration) *recoveryClient {
	t.Helper()
	c := &recoveryClient{events: make(chan string, 100), reconnected: make(chan struct{}, 1), disconnected: make(chan string, 1)}
	c.target.Store(first)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { c.target.Load().ServeHTTP(w, r) }))
	t.Cleanup(front.Close)
	s, err := socketio.Dial(ctxStep(t), front.URL, nil, &socketio.ClientOptions{
		Engine:       &engineio.DialOptions{Transports: []string{engineio.TransportWebSocket}},
		Reconnection: &socketio.Reconnection{MinDelay: delay, MaxDelay: delay, Jitter: -1},
	})
	must(t, err)
	t.Cleanup(func() { _ = s.Manager().Close() })
	c.s = s
	s.OnAny(func(s *socketio.ClientSocket, e *socketio.Event) {
		parts := []string{e.Name}
		for i := range e.Len() {
			parts = append(parts, string(e.Raw(i)))
		}
		c.events <- strings.Join(parts, " ")
	})
	s.OnDisconnect(func(s *socketio.ClientSocket, reason string) { c.disconnected <- reason })
	if _, err := s.EmitWithAck(ctxStep(t), "join", "red"); err != nil {
		t.Fatal(err)
	}
	s.OnConnect(func(s *socketio.ClientSocket) { c.reconnected <- struct{}{} })
	return c
}

func (c *recoveryClient) next(t *testing.T, what string) string {
	t.Helper()
	select {
	case v := <-c.events:
		return v
	case <-time.After(step):
		t.Fatalf("no %s within %v", what, step)
		return ""
	}
}

// drop closes the client's connection on srv and waits until srv keeps
// its session.
func (c *recoveryClient) drop(t *testing.T, srv *socketio.Server, kv jetstream.KeyValue) {
	t.Helper()
	// The first connection's OnConnect may have run after the handler was
	// added (handlers run when the client's executor gets to them, and it
	// has, since an event came after): its signal is not a reconnection.
	select {
	case <-c.reconnected:
	default:
	}
	id := c.s.ID()
	sa := srv.Of("/").Socket(id)
	if sa == nil {
		t.Fatal("the socket is not on its first server")
	}
	must(t, sa.Engine().Close())
	select {
	case <-c.disconnected:
	case <-time.After(step):
		t.Fatal("no disconnection")
	}
	eventually(t, "the session kept", func() bool {
		keys, err := kv.ListKeys(ctxStep(t))
		if err != nil {
			return false
		}
		n := 0
		for range keys.Keys() {
			n++
		}
		return n == 1
	})
}

func (c *recoveryClient) waitReconnected(t *testing.T) {
	t.Helper()
	select {
	case <-c.reconnected:
	case <-time.After(3 * step):
		t.Fatal("no reconnection")
	}
}

// split returns an event without its last argument, and that argument
// as an offset.
func split(t *testing.T, e string) (string, uint64) {
	t.Helper()
	i := strings.LastIndexByte(e, ' ')
	var off string
	if i < 0 || json.Unmarshal([]byte(e[i+1:]), &off) != nil {
		t.Fatalf("%q: no offset", e)
	}
	n, err := strconv.ParseUint(off, 10, 64)
	if err != nil {
		t.Fatalf("%q: offset %q not a stream sequence", e, off)
	}
	return e[:i], n
}

func sessionBucket(t *testing.T, opts *JetStreamOptions) jetstream.KeyValue {
	t.Helper()
	js, err := jetstream.New(natsConn(t))
	must(t, err)
	kv, err := js.KeyValue(ctxStep(t), streamName(opts.Prefix)+"_sessions")
	must(t, err)
	return kv
}

// TestJetStreamRecoveryAcrossServers: a client of server A, in a room,
// loses its connection; events are broadcast from B and A meanwhile; the
// client reconnects to B and gets its socket back, same id, with the
// events it missed, in order, each once, then the next ones.
func TestJetStreamRecoveryAcrossServers(t *testing.T) {
	rec := &socketio.RecoveryOptions{MaxDisconnectionDuration: 30 * time.Second}
	opts := jsOptions(t, natsConn(t), rec)
	a, b := jsNode(t, opts, nil), jsNode(t, opts, nil)
	countEachOther(t, a, b)
	kv := sessionBucket(t, opts)
	c := newRecoveryClient(t, a.srv, 500*time.Millisecond)
	id := c.s.ID()

	must(t, b.srv.To("red").Emit("ev", 0)) // an offset before the loss
	got := []string{c.next(t, "first event")}
	c.target.Store(b.srv)
	c.drop(t, a.srv, kv)
	must(t, b.srv.To("red").Emit("ev", 1))
	must(t, a.srv.To("red").Emit("ev", 2, []byte{1, 2}))
	must(t, b.srv.Except("red").Emit("ev", "not for red"))
	must(t, b.srv.Emit("ev", 3))
	must(t, a.srv.To("blue").Emit("ev", "not for blue"))
	must(t, a.srv.Volatile().Emit("ev", "volatile"))
	must(t, a.srv.To("red").Emit("ev", 4))
	c.waitReconnected(t)
	if !c.s.Recovered() || c.s.ID() != id {
		t.Fatalf("Recovered %v, id %s (was %s)", c.s.Recovered(), c.s.ID(), id)
	}
	for range 4 {
		got = append(got, c.next(t, "a missed event"))
	}
	must(t, a.srv.To("red").Emit("ev", 5)) // red kept across the servers
	must(t, b.srv.To("red").Emit("ev", 6))
	got = append(got, c.next(t, "an event after recovery"), c.next(t, "an event after recovery"))
	// Not volatile: a volatile event may be dropped while the socket
	// still has data queued, which is what it is for.
	must(t, b.srv.To("red").Emit("end"))
	if e, _ := split(t, c.next(t, "end")); e != "end" {
		t.Errorf("an event more: %q", e)
	}

	var names []string
	var offsets []uint64
	for _, e := range got {
		name, off := split(t, e)
		names = append(names, name)
		offsets = append(offsets, off)
	}
	want := []string{"ev 0", "ev 1", `ev 2 {"_placeholder":true,"num":0}`, "ev 3", "ev 4", "ev 5", "ev 6"}
	if d := cmp.Diff(want, names); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}
	if !slices.IsSorted(offsets) || len(slices.Compact(slices.Clone(offsets))) != len(offsets) {
		t.Errorf("offsets %v: not increasing", offsets)
	}
	if sb := b.srv.Of("/").Socket(id); sb == nil || !sb.Recovered() || fmt.Sprint(sorted(sb.Rooms())) != fmt.Sprint(sorted([]string{id, "red"})) {
		t.Errorf("the socket on B: %v", sb)
	}
}

// TestJetStreamStreamOrder: events with offsets that two servers
// broadcast in turn reach a client in the stream's order, its own
// server's included: each is recorded before the next is sent.
func TestJetStreamStreamOrder(t *testing.T) {
	opts := jsOptions(t, natsConn(t), &socketio.RecoveryOptions{MaxDisconnectionDuration: 30 * time.Second})
	a, b := jsNode(t, opts, nil), jsNode(t, opts, nil)
	countEachOther(t, a, b)
	c := newRecoveryClient(t, a.srv, time.Second)
	const n = 40
	for i := range n {
		from := []*socketio.Server{b.srv, a.srv}[i%2]
		must(t, from.To("red").Emit("ev", i))
	}
	var names []string
	var offsets []uint64
	for range n {
		name, off := split(t, c.next(t, "an event"))
		names, offsets = append(names, name), append(offsets, off)
	}
	for i, name := range names {
		if name != fmt.Sprint("ev ", i) {
			t.Fatalf("events out of order: %q", names)
		}
	}
	if !slices.IsSorted(offsets) {
		t.Errorf("offsets %v: not increasing", offsets)
	}
}

// TestJetStreamLimits: a session past MaxDisconnectionDuration, and one
// whose offset the stream dropped (MaxMsgs), are not recovered: the
// client gets a new socket; within both limits, it is.
func TestJetStreamLimits(t *testing.T) {
	for _, c := range []struct {
		name      string
		rec       socketio.RecoveryOptions
		max       int64
		wait      time.Duration // after the loss
		emits     int
		recovered bool
	}{
		{"within the limits", socketio.RecoveryOptions{MaxDisconnectionDuration: 30 * time.Second}, 20, 0, 10, true},
		{"expired session", socketio.RecoveryOptions{MaxDisconnectionDuration: time.Second}, 0, 1500 * time.Millisecond, 1, false},
		{"offset dropped", socketio.RecoveryOptions{MaxDisconnectionDuration: 30 * time.Second}, 5, 0, 10, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			opts := jsOptions(t, natsConn(t), &c.rec)
			opts.MaxMsgs = c.max
			a, b := jsNode(t, opts, nil), jsNode(t, opts, nil)
			countEachOther(t, a, b)
			kv := sessionBucket(t, opts)
			rc := newRecoveryClient(t, a.srv, 2*time.Second)
			id := rc.s.ID()
			must(t, a.srv.To("red").Emit("ev", 0))
			rc.next(t, "first event")
			rc.target.Store(b.srv)
			rc.drop(t, a.srv, kv)
			for i := range c.emits {
				must(t, a.srv.To("red").Emit("ev", i+1))
			}
			time.Sleep(c.wait)
			if c.max > 0 {
				js, err := jetstream.New(natsConn(t))
				must(t, err)
				s, err := js.Stream(ctxStep(t), streamName(opts.Prefix))
				must(t, err)
				if n := s.CachedInfo().State.Msgs; n > uint64(c.max) {
					t.Errorf("the stream holds %d messages; MaxMsgs %d", n, c.max)
				}
			}
			rc.waitReconnected(t)
			if rc.s.Recovered() != c.recovered || (rc.s.ID() == id) != c.recovered {
				t.Fatalf("Recovered %v, id %s (was %s)", rc.s.Recovered(), rc.s.ID(), id)
			}
			if c.recovered {
				for i := range c.emits {
					if e, _ := split(t, rc.next(t, "a missed event")); e != fmt.Sprint("ev ", i+1) {
						t.Errorf("missed event %d: %q", i, e)
					}
				}
			}
			select {
			case e := <-rc.events:
				t.Errorf("an event %q", e)
			case <-time.After(200 * time.Millisecond):
			}
		})
	}
}

// TestJetStreamSessions: PersistSession and RestoreSession, directly.
func TestJetStreamSessions(t *testing.T) {
	rec := &socketio.RecoveryOptions{}
	opts := jsOptions(t, natsConn(t), rec)
	a, b := jsNode(t, opts, nil), jsNode(t, opts, nil)
	countEachOther(t, a, b)
	ja := a.srv.Of("/").Adapter().(*JetStreamAdapter)
	jb := b.srv.Of("/").Adapter().(*JetStreamAdapter)
	must(t, a.srv.To("r").Emit("first"))
	must(t, a.srv.Of("/other").Emit("elsewhere"))
	js, err := jetstream.New(natsConn(t))
	must(t, err)
	s, err := js.Stream(ctxStep(t), streamName(opts.Prefix))
	must(t, err)
	last := s.CachedInfo().State.LastSeq
	off := strconv.FormatUint(last-1, 10) // "first"
	must(t, b.srv.To("r").Emit("second", []byte{9}))
	must(t, b.srv.Except("r").Emit("not for r"))

	ja.PersistSession(&socketio.SessionState{SID: "s", PID: "p", Rooms: []string{"s", "r"}, Data: map[string]int{"n": 1}})
	for _, bad := range []struct{ pid, off string }{
		{"p", ""}, {"p", "x"}, {"p", "0"}, {"p", "-1"}, {"p.q", off}, {"unknown", off},
	} {
		if st, err := jb.RestoreSession(bad.pid, bad.off); st != nil || err != nil {
			t.Errorf("RestoreSession(%q, %q) = %v, %v", bad.pid, bad.off, st, err)
		}
	}
	st, err := jb.RestoreSession("p", off)
	if err != nil || st == nil {
		t.Fatalf("RestoreSession = %v, %v", st, err)
	}
	if st.SID != "s" || string(st.Data.(json.RawMessage)) != `{"n":1}` || fmt.Sprint(st.Rooms) != "[s r]" || len(st.Missed) != 1 ||
		string(st.Missed[0].Data) != `["second",{"_placeholder":true,"num":0},"`+strconv.FormatUint(last+1, 10)+`"]` || st.Missed[0].Type != socketio.PacketBinaryEvent {
		t.Errorf("RestoreSession = %+v, missed %v", st, st.Missed)
	}
	if st, _ := ja.RestoreSession("p", off); st != nil {
		t.Error("a session restored twice")
	}
	// An offset of another namespace is not one of this.
	ja.PersistSession(&socketio.SessionState{SID: "s", PID: "p", Rooms: []string{"s"}})
	if st, err := jb.RestoreSession("p", strconv.FormatUint(last, 10)); st != nil || err != nil {
		t.Errorf("RestoreSession with an offset of /other = %v, %v", st, err)
	}
}

func TestJetStreamOptions(t *testing.T) {
	for _, c := range []struct{ prefix, stream string }{
		{"duplex", "duplex"}, {"a.b-c_d", "a_b-c_d"}, {"x/y.é", "x_y__"},
	} {
		if got := streamName(c.prefix); got != c.stream {
			t.Errorf("streamName(%q) = %q, want %q", c.prefix, got, c.stream)
		}
	}
	if got := string(appendOffset(json.RawMessage(`["a"]`), 12)); got != `["a","12"]` {
		t.Errorf("appendOffset = %s", got)
	}
	if got := string(appendOffset(json.RawMessage(`[]`), 1)); got != `["1"]` {
		t.Errorf("appendOffset = %s", got)
	}
	if _, err := NewJetStream(context.Background(), nil, &JetStreamOptions{Prefix: "a..b"}); err == nil {
		t.Error("a bad prefix accepted")
	}
	nc := natsConn(t)
	opts := jsOptions(t, nc, nil)
	opts.MaxMsgs, opts.MaxBytes, opts.MaxAge, opts.MemoryStorage = -1, 1<<20, time.Hour, true
	_, err := NewJetStream(ctxStep(t), nc, opts)
	must(t, err)
	js, err := jetstream.New(nc)
	must(t, err)
	s, err := js.Stream(ctxStep(t), streamName(opts.Prefix))
	must(t, err)
	cfg := s.CachedInfo().Config
	if cfg.MaxMsgs != -1 || cfg.MaxBytes != 1<<20 || cfg.MaxAge != time.Hour || cfg.Storage != jetstream.MemoryStorage {
		t.Errorf("stream config %+v", cfg)
	}
	if _, err := js.KeyValue(ctxStep(t), streamName(opts.Prefix)+"_sessions"); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Errorf("a bucket without Recovery: %v", err)
	}
}

// TestJetStreamExceptRestored: the sockets restored up to a sequence do
// not get that message again from the stream.
func TestJetStreamExceptRestored(t *testing.T) {
	j := &JetStreamAdapter{restored: map[string]uint64{"s1": 10, "s2": 20}}
	o := j.exceptRestored(&socketio.BroadcastOptions{Except: []string{"x"}}, 10)
	if d := cmp.Diff([]string{"s1", "s2", "x"}, sorted(o.Except)); d != "" {
		t.Errorf("except at 10 (-want +got):\n%s", d)
	}
	o = j.exceptRestored(&socketio.BroadcastOptions{}, 15)
	if d := cmp.Diff([]string{"s2"}, o.Except); d != "" || len(j.restored) != 1 {
		t.Errorf("except at 15 (-want +got):\n%s", d)
	}
}
