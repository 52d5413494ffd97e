package interop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
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

// A cluster of two Duplex conformance servers on the NATS of the machine
// (127.0.0.1:4222), with NATS_URL and a prefix of the test's own, and
// Go clients (socketio.Dial) on both: the scenarios of the Redis mixed
// cluster (socketio-redis.mjs), from each server in turn, with the core
// NATS adapter and with the JetStream one (NATS_JETSTREAM=1), which adds
// connection state recovery across the servers on /recovery/.

const natsURL = "nats://127.0.0.1:4222"

// requireNATS skips the test, or fails it when CI=true, if no NATS
// listens on 127.0.0.1:4222.
func requireNATS(t *testing.T) {
	t.Helper()
	c, err := net.DialTimeout("tcp", "127.0.0.1:4222", time.Second)
	if err != nil {
		msg := fmt.Sprintf("no NATS at 127.0.0.1:4222 (%v); start one with: nats-server -a 127.0.0.1 -p 4222 -js", err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	_ = c.Close()
}

// natsClient is a Go Socket.IO client of one server, which records the
// events it gets as "name arg…" (the arguments' JSON; binary as bin[…]).
type natsClient struct {
	name string
	srv  int // index of its server
	s    *socketio.ClientSocket
	ch   chan string
}

func dialNATSClient(t *testing.T, u, name string, srv int, path string, rec *socketio.Reconnection) *natsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if rec == nil {
		rec = &socketio.Reconnection{Disable: true}
	}
	s, err := socketio.Dial(ctx, u, nil, &socketio.ClientOptions{
		Path:         path,
		Engine:       &engineio.DialOptions{Transports: []string{engineio.TransportWebSocket}},
		Reconnection: rec,
	})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	t.Cleanup(func() { _ = s.Manager().Close() })
	c := &natsClient{name: name, srv: srv, s: s, ch: make(chan string, 256)}
	s.OnAny(func(s *socketio.ClientSocket, e *socketio.Event) {
		parts := []string{e.Name}
		for i := range e.Len() {
			var b []byte
			if raw := e.Raw(i); len(raw) > 0 && raw[0] == '{' && e.Decode(i, &b) == nil {
				parts = append(parts, fmt.Sprintf("bin%v", b))
				continue
			}
			parts = append(parts, string(e.Raw(i)))
		}
		select {
		case c.ch <- strings.Join(parts, " "):
		default:
			t.Errorf("%s: too many events", name)
		}
	})
	s.On("collect", func(s *socketio.ClientSocket, room string, ack func(...any)) { ack(name) })
	return c
}

// ack emits event with args and returns the first argument of the
// acknowledgement, as JSON.
func (c *natsClient) ack(t *testing.T, event string, args ...any) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*opTimeout)
	defer cancel()
	r, err := c.s.EmitWithAck(ctx, event, args...)
	if err != nil {
		t.Fatalf("%s: %s: %v", c.name, event, err)
	}
	if r.Len() == 0 {
		return ""
	}
	return string(r.Raw(0))
}

// expectEvents runs emit, then waits until the clients got the events
// want lists (by client name, in any order), and 300 ms more for
// strays; an event not in want fails.
func expectEvents(t *testing.T, clients []*natsClient, want map[string][]string, emit func()) {
	t.Helper()
	for _, c := range clients { // nothing left from before
		for len(c.ch) > 0 {
			t.Errorf("%s: a stray event %q", c.name, <-c.ch)
		}
	}
	emit()
	got := map[string][]string{}
	n, count := 0, 0
	for _, l := range want {
		n += len(l)
	}
	drain := func() {
		for _, c := range clients {
			for len(c.ch) > 0 {
				got[c.name] = append(got[c.name], <-c.ch)
				count++
			}
		}
	}
	deadline := time.Now().Add(opTimeout)
	for drain(); count < n && time.Now().Before(deadline); drain() {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	drain()
	for _, l := range got {
		slices.Sort(l)
	}
	for _, l := range want {
		slices.Sort(l)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}
}

// eventuallyOK retries check until it returns nil, for opTimeout.
func eventuallyOK(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(opTimeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSocketIONATSCluster starts two conformance servers on one NATS
// prefix, with the core adapter and with the JetStream one, and runs the
// cluster scenarios from Go clients on both.
func TestSocketIONATSCluster(t *testing.T) {
	requireNATS(t)
	bin := buildConformance(t)
	for _, v := range []struct {
		variant string
		env     []string // the conformance servers' settings
	}{
		{"core", nil},
		{"jetstream", []string{"NATS_JETSTREAM=1"}},
	} {
		t.Run(v.variant, func(t *testing.T) {
			prefix := fmt.Sprintf("duplex-interop-%s-%d", v.variant, time.Now().UnixNano())
			jetStream := len(v.env) > 0
			if jetStream {
				deleteJetStream(t, prefix)
			}
			var urls []string
			var servers []*conformanceServer
			for i := 1; i <= 2; i++ {
				env := append([]string{"NATS_URL=" + natsURL, "NATS_PREFIX=" + prefix, fmt.Sprintf("SERVER_NAME=duplex-%d", i)}, v.env...)
				s := runConformance(t, bin, env...)
				servers = append(servers, s)
				urls = append(urls, fmt.Sprintf("http://127.0.0.1:%d", s.app))
			}
			t.Cleanup(func() {
				if t.Failed() {
					for i, s := range servers {
						t.Logf("duplex-%d log:\n%s", i+1, s.stderr)
					}
				}
			})
			runNATSScenarios(t, urls, jetStream)
		})
	}
}

// deleteJetStream deletes, when the test ends (after the servers have
// stopped), the streams and the bucket of the servers with prefix.
func deleteJetStream(t *testing.T, prefix string) {
	t.Cleanup(func() {
		nc, err := natsgo.Connect(natsURL, natsgo.Timeout(time.Second))
		if err != nil {
			t.Errorf("deleting the streams of %s: %v", prefix, err)
			return
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			t.Errorf("deleting the streams of %s: %v", prefix, err)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		for _, s := range []string{prefix, prefix + "-recovery", "KV_" + prefix + "-recovery_sessions"} {
			if err := js.DeleteStream(ctx, s); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
				t.Errorf("deleting stream %s: %v", s, err)
			}
		}
	})
}

func runNATSScenarios(t *testing.T, urls []string, jetStream bool) {
	// Two clients per server, the first of each in "red", all in
	// "everyone".
	var clients, red, origins []*natsClient
	for i, u := range urls {
		for n := 1; n <= 2; n++ {
			c := dialNATSClient(t, u, fmt.Sprintf("go%d-%d", i+1, n), i, "", nil)
			c.ack(t, "join", "everyone")
			if n == 1 {
				c.ack(t, "join", "red")
				red = append(red, c)
				origins = append(origins, c)
			}
			clients = append(clients, c)
		}
	}
	ids := func(cs []*natsClient) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.s.ID())
		}
		slices.Sort(out)
		return out
	}
	others := func(o *natsClient, cs []*natsClient) []*natsClient {
		return slices.DeleteFunc(slices.Clone(cs), func(c *natsClient) bool { return c == o })
	}
	each := func(cs []*natsClient, event string) map[string][]string {
		m := map[string][]string{}
		for _, c := range cs {
			m[c.name] = []string{event}
		}
		return m
	}
	q := strconv.Quote

	for _, sc := range []struct {
		name string
		run  func(t *testing.T)
	}{
		{"server count", func(t *testing.T) {
			for _, o := range origins {
				eventuallyOK(t, "count from "+o.name, func() error {
					if got := o.ack(t, "cluster-count"); got != "2" {
						return fmt.Errorf("%s servers", got)
					}
					return nil
				})
			}
		}},
		{"broadcast to all", func(t *testing.T) {
			for _, o := range origins {
				msg := "hi from " + o.name
				expectEvents(t, clients, each(clients, "shouted "+q(msg)+" "+q(o.s.ID())), func() { o.ack(t, "shout", msg) })
			}
		}},
		{"broadcast to a room", func(t *testing.T) {
			for _, o := range origins {
				msg := "to red from " + o.name
				expectEvents(t, clients, each(others(o, red), `said "red" `+q(msg)+" "+q(o.s.ID())), func() { o.ack(t, "say", "red", msg) })
			}
		}},
		{"broadcast except a room", func(t *testing.T) {
			notRed := slices.DeleteFunc(slices.Clone(clients), func(c *natsClient) bool { return slices.Contains(red, c) })
			for _, o := range origins {
				msg := "not red, from " + o.name
				expectEvents(t, clients, each(notRed, "excepted "+q(msg)+" "+q(o.s.ID())), func() { o.ack(t, "cluster-except", "red", msg) })
			}
		}},
		{"broadcast to others, binary", func(t *testing.T) {
			for i, o := range origins {
				bin := []byte{1, 2, 3, byte(i)}
				expectEvents(t, clients, each(others(o, clients), fmt.Sprintf("others bin%v %s", bin, q(o.s.ID()))), func() { o.ack(t, "others", bin) })
			}
		}},
		{"fetchSockets and room-size", func(t *testing.T) {
			type sock struct {
				ID    string   `json:"id"`
				Rooms []string `json:"rooms"`
			}
			for _, o := range origins {
				var all, inRed []sock
				if err := json.Unmarshal([]byte(o.ack(t, "cluster-fetch", "")), &all); err != nil {
					t.Fatal(err)
				}
				var want []sock
				for _, id := range ids(clients) {
					rooms := []string{"everyone"}
					if slices.ContainsFunc(red, func(c *natsClient) bool { return c.s.ID() == id }) {
						rooms = append(rooms, "red")
					}
					want = append(want, sock{id, rooms})
				}
				if d := cmp.Diff(want, all); d != "" {
					t.Errorf("all, from %s (-want +got):\n%s", o.name, d)
				}
				if err := json.Unmarshal([]byte(o.ack(t, "cluster-fetch", "red")), &inRed); err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, s := range inRed {
					got = append(got, s.ID)
				}
				if d := cmp.Diff(ids(red), got); d != "" {
					t.Errorf("red, from %s (-want +got):\n%s", o.name, d)
				}
				// room-size counts the sockets of the server asked.
				if n := o.ack(t, "room-size", "red"); n != "1" {
					t.Errorf("room-size red on %s: %s", o.name, n)
				}
			}
		}},
		{"socketsJoin and socketsLeave", func(t *testing.T) {
			for _, o := range origins {
				room := "joined-by-" + o.name
				o.ack(t, "cluster-join", "red", room)
				for _, other := range origins {
					eventuallyOK(t, room+" seen from "+other.name, func() error {
						if n := other.ack(t, "room-size", room); n != "1" {
							return fmt.Errorf("room-size %s", n)
						}
						if got := other.ack(t, "cluster-fetch", room); !strings.Contains(got, red[0].s.ID()) || !strings.Contains(got, red[1].s.ID()) {
							return fmt.Errorf("fetch %s", got)
						}
						return nil
					})
				}
				o.ack(t, "cluster-leave", "", room)
				for _, other := range origins {
					eventuallyOK(t, room+" left, seen from "+other.name, func() error {
						if got := other.ack(t, "cluster-fetch", room); got != "[]" {
							return fmt.Errorf("fetch %s", got)
						}
						return nil
					})
				}
			}
		}},
		{"serverSideEmit with acks", func(t *testing.T) {
			for i, o := range origins {
				want := fmt.Sprintf(`{"responses":["duplex-%d:x"]}`, 2-i)
				if got := o.ack(t, "cluster-sse", "x"); got != want {
					t.Errorf("from %s: %s, want %s", o.name, got, want)
				}
			}
		}},
		{"broadcast with acks", func(t *testing.T) {
			names := func(cs []*natsClient) string {
				var n []string
				for _, c := range cs {
					n = append(n, q(c.name))
				}
				slices.Sort(n)
				return "[" + strings.Join(n, ",") + "]"
			}
			for _, o := range origins {
				for room, cs := range map[string][]*natsClient{"everyone": clients, "red": red} {
					want := `{"responses":` + names(cs) + `,"timedOut":false}`
					if got := o.ack(t, "collect", room, opTimeout.Milliseconds()-1000); got != want {
						t.Errorf("%s, from %s: %s, want %s", room, o.name, got, want)
					}
				}
			}
		}},
		{"recovery across servers", func(t *testing.T) {
			if !jetStream {
				t.Skip("recovery across the servers needs NATS_JETSTREAM=1")
			}
			natsRecovery(t, urls)
		}},
	} {
		if !t.Run(sc.name, sc.run) && sc.name == "server count" {
			return
		}
	}
}

// natsRecovery: a client of /recovery/ on one server loses its
// connection (drop), and the next attempt reaches the other one; the
// events said to its room meanwhile, from both servers, arrive once
// recovered, in order, with increasing offsets, then the next ones.
func natsRecovery(t *testing.T, urls []string) {
	var speakers []*natsClient
	for i, u := range urls {
		speakers = append(speakers, dialNATSClient(t, u, fmt.Sprintf("speaker-%d", i+1), i, "/recovery/", nil))
	}
	for _, dir := range [][2]int{{0, 1}, {1, 0}} {
		from, to := dir[0], dir[1]
		t.Run(fmt.Sprintf("%d to %d", from+1, to+1), func(t *testing.T) {
			var target atomic.Pointer[url.URL]
			u, _ := url.Parse(urls[from])
			target.Store(u)
			proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target.Load()) }}
			front := httptest.NewServer(proxy)
			t.Cleanup(front.Close)
			c := dialNATSClient(t, front.URL, "roamer", from, "/recovery/",
				&socketio.Reconnection{MinDelay: 500 * time.Millisecond, MaxDelay: 500 * time.Millisecond, Jitter: -1})
			var mu sync.Mutex
			var reasons []string
			reconnected := make(chan struct{}, 1)
			c.s.OnDisconnect(func(s *socketio.ClientSocket, reason string) {
				mu.Lock()
				reasons = append(reasons, reason)
				mu.Unlock()
			})
			room := fmt.Sprintf("rec-%d-%d", from, to)
			c.ack(t, "join", room)
			c.s.OnConnect(func(s *socketio.ClientSocket) { reconnected <- struct{}{} })
			id := c.s.ID()
			next := func(what string) string {
				t.Helper()
				select {
				case e := <-c.ch:
					return e
				case <-time.After(opTimeout):
					t.Fatalf("no %s within %v", what, opTimeout)
					return ""
				}
			}
			say := func(srv int, msg string) { speakers[srv].ack(t, "say", room, msg) }

			say(to, "m0")
			got := []string{next("m0")}
			to2, _ := url.Parse(urls[to])
			target.Store(to2)
			if err := c.s.Emit("drop"); err != nil {
				t.Fatal(err)
			}
			eventuallyOK(t, "the disconnection", func() error {
				mu.Lock()
				defer mu.Unlock()
				if len(reasons) == 0 {
					return errors.New("still connected")
				}
				return nil
			})
			say(to, "m1")
			say(from, "m2")
			say(to, "m3")
			select {
			case <-reconnected:
			case <-time.After(3 * opTimeout):
				t.Fatal("no reconnection")
			}
			if !c.s.Recovered() || c.s.ID() != id {
				t.Fatalf("Recovered %v, id %s (was %s)", c.s.Recovered(), c.s.ID(), id)
			}
			for range 3 {
				got = append(got, next("a missed event"))
			}
			say(from, "m4")
			say(to, "m5")
			got = append(got, next("m4"), next("m5"))
			say(to, "end")
			if e := next("end"); !strings.Contains(e, `"end"`) {
				t.Errorf("an event more: %q", e)
			}

			var msgs []string
			var offsets []uint64
			for _, e := range got {
				f := strings.Fields(e) // said "room" "msg" "sender" "offset"
				if len(f) != 5 {
					t.Fatalf("event %q", e)
				}
				msgs = append(msgs, f[2])
				off, err := strconv.Unquote(f[4])
				n, err2 := strconv.ParseUint(off, 10, 64)
				if err != nil || err2 != nil {
					t.Fatalf("%q: no stream offset", e)
				}
				offsets = append(offsets, n)
			}
			if d := cmp.Diff([]string{`"m0"`, `"m1"`, `"m2"`, `"m3"`, `"m4"`, `"m5"`}, msgs); d != "" {
				t.Errorf("events (-want +got):\n%s", d)
			}
			if !slices.IsSorted(offsets) || len(slices.Compact(slices.Clone(offsets))) != len(offsets) {
				t.Errorf("offsets %v: not increasing", offsets)
			}
			mu.Lock()
			if len(reasons) != 1 || reasons[0] != socketio.ReasonTransportClose {
				t.Errorf("disconnections %q", reasons)
			}
			mu.Unlock()
			_ = c.s.Manager().Close()
		})
	}
}
