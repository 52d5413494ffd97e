package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/duplexrt/duplex/internal/brokertest"

	"github.com/duplexrt/duplex/socketio"
	"github.com/duplexrt/duplex/ws"
)

// needService skips the test when nothing listens at addr, or fails it
// under CI=true, where the machine runs Redis and NATS.
func needService(t *testing.T, name, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		msg := fmt.Sprintf("%s is not running at %s (%v): start it to run this test", name, addr, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	_ = c.Close()
}

func wsURL(base, path string) string { return "ws" + strings.TrimPrefix(base, "http") + path }

// TestServeCluster runs two servers on one broker and checks that
// /ws/broadcast, the chat (raw and Socket.IO) and Socket.IO rooms span
// them.
func TestServeCluster(t *testing.T) {
	for _, b := range []struct{ name, addr, flag string }{
		{"redis", "127.0.0.1:6379", "redis://127.0.0.1:6379"},
		{"nats", "127.0.0.1:4222", "nats://127.0.0.1:4222"},
	} {
		t.Run(b.name, func(t *testing.T) {
			needService(t, b.name, b.addr)
			cfg := serveConfig{maxMessage: 16 << 20, clusterKey: fmt.Sprintf("duplex-test-%d-%d", os.Getpid(), time.Now().UnixNano())}
			if b.name == "redis" {
				cfg.redis = b.flag
			} else {
				cfg.nats = b.flag
			}
			a, _ := startApp(t, cfg, nil)
			c, _ := startApp(t, cfg, nil)
			testClusterBroadcast(t, a.URL, c.URL)
			testClusterChat(t, a.URL, c.URL)
			for _, u := range []string{a.URL, c.URL} {
				if h := get(t, u+"/healthz", 200); h != "ok\n" {
					t.Errorf("healthz %q", h)
				}
				m := get(t, u+"/metrics", 200)
				for _, user := range []string{"bus", "socketio"} {
					if want := fmt.Sprintf(`duplex_broker_up{broker=%q,user=%q} 1`, b.name, user); !strings.Contains(m, want) {
						t.Errorf("/metrics has no %s", want)
					}
				}
			}
		})
	}
}

func testClusterBroadcast(t *testing.T, a, b string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var conns []*ws.Conn
	for _, u := range []string{a, a, b} {
		c, _, err := ws.Dial(ctx, wsURL(u, "/ws/broadcast"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		conns = append(conns, c)
	}
	// The handshake's answer can reach a client before its server has
	// run OnOpen: wait until both processes count their subscribers.
	waitGauge(ctx, t, a, `duplex_connections{endpoint="broadcast"} 2`)
	waitGauge(ctx, t, b, `duplex_connections{endpoint="broadcast"} 1`)
	// Every subscriber of both processes gets both messages, in one order.
	_ = conns[0].Write(ctx, ws.MessageText, []byte("from a"))
	_ = conns[2].Write(ctx, ws.MessageBinary, []byte("from b"))
	var first string
	for i, c := range conns {
		var got []string
		for range 2 {
			typ, p, err := c.Read(ctx)
			if err != nil {
				t.Fatalf("subscriber %d: %v", i, err)
			}
			got = append(got, fmt.Sprintf("%v:%s", typ, p))
		}
		order := strings.Join(got, ",")
		if first == "" {
			first = order
		} else if order != first {
			t.Errorf("subscriber %d saw %s, subscriber 0 %s", i, order, first)
		}
		if !strings.Contains(order, "from a") || !strings.Contains(order, "from b") {
			t.Errorf("subscriber %d saw %s", i, order)
		}
	}
}

// waitGauge waits until base's /metrics has the line want.
func waitGauge(ctx context.Context, t *testing.T, base, want string) {
	t.Helper()
	for {
		if strings.Contains(get(t, base+"/metrics", 200), want) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s/metrics never had %s", base, want)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func testClusterChat(t *testing.T, a, b string) {
	t.Helper()
	ann := dialChat(t, a)
	ann.next(t, "welcome")
	ann.send(t, map[string]string{"type": "join", "room": "cluster", "nick": "ann"})
	ann.next(t, "welcome")
	ann.next(t, "join") // her own
	bob := dialChat(t, b)
	bob.next(t, "welcome")
	// Presence crosses the broker: b may hear of ann's join a moment
	// after a does. Joining the room one is in again answers with a fresh
	// welcome and tells nobody, so bob asks until b counts ann.
	deadline := time.Now().Add(10 * time.Second)
	for {
		bob.send(t, map[string]string{"type": "join", "room": "cluster", "nick": "bob"})
		w := bob.next(t, "welcome")
		if w.Online == 2 {
			break
		}
		if w.Online != 1 || time.Now().After(deadline) {
			t.Fatalf("bob's welcome counts %d online, want 2 (ann is on the other process)", w.Online)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if j := ann.next(t, "join"); j.Nick != "bob" || j.Online != 2 {
		t.Errorf("ann saw %+v, want bob joining, 2 online", j)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sio, err := socketio.Dial(ctx, b+"/chat", map[string]string{"nick": "cleo", "room": "cluster"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sio.Manager().Close()
	lines := make(chan chatEvent, 10)
	sio.On("message", func(_ *socketio.ClientSocket, ev chatEvent) { lines <- ev })
	if j := ann.next(t, "join"); j.Nick != "cleo" || j.Online != 3 {
		t.Errorf("ann saw %+v, want cleo joining, 3 online", j)
	}
	ann.send(t, map[string]string{"type": "say", "text": "hi from a"})
	if m := bob.next(t, "message"); m.Text != "hi from a" || m.Nick != "ann" {
		t.Errorf("bob got %+v", m)
	}
	ann.next(t, "message") // her own
	select {
	case m := <-lines:
		if m.Text != "hi from a" {
			t.Errorf("cleo got %+v", m)
		}
	case <-ctx.Done():
		t.Fatal("the Socket.IO client on the other process did not get the line")
	}
	if _, err := sio.EmitWithAck(ctx, "say", "hi from b"); err != nil {
		t.Fatal(err)
	}
	if m := ann.next(t, "message"); m.Text != "hi from b" || m.Nick != "cleo" {
		t.Errorf("ann got %+v", m)
	}
}

// metricValue returns the value of series (name{labels}, as /metrics
// writes it) in the text of /metrics, or -1 when it is absent.
func metricValue(text, series string) float64 {
	for line := range strings.Lines(text) {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return -1
			}
			return f
		}
	}
	return -1
}

// TestServeBrokerOutage kills a private broker (redis-server, then
// nats-server) under two servers: /healthz and /metrics say so (both
// users of the broker down), each process's clients, raw and Socket.IO,
// still get their own process's broadcasts, the Socket.IO adapters count
// what they could not send; once the broker is back the cluster heals,
// and the adapters of both namespaces count the reconnection.
func TestServeBrokerOutage(t *testing.T) {
	for _, name := range []string{"redis", "nats"} {
		t.Run(name, func(t *testing.T) { testServeBrokerOutage(t, name) })
	}
}

func testServeBrokerOutage(t *testing.T, name string) {
	cfg := serveConfig{maxMessage: 16 << 20}
	var br *brokertest.Server
	if name == "redis" {
		br = brokertest.Redis(t)
		cfg.redis = br.URL()
	} else {
		br = brokertest.NATS(t)
		cfg.nats = br.URL()
	}
	began := time.Now()
	a, appA := startApp(t, cfg, nil)
	b, appB := startApp(t, cfg, nil)
	// The whole test's budget: its steps wait up to 10 s each (waitFor),
	// and a loaded CI machine has taken more than 30 s in all.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dial := func(base string) *ws.Conn {
		c, _, err := ws.Dial(ctx, wsURL(base, "/ws/broadcast"), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.CloseNow() })
		return c
	}
	ca, cb := dial(a.URL), dial(b.URL)
	waitGauge(ctx, t, a.URL, `duplex_connections{endpoint="broadcast"} 1`)
	waitGauge(ctx, t, b.URL, `duplex_connections{endpoint="broadcast"} 1`)
	read := func(c *ws.Conn) string {
		_, p, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("%s: %v", time.Since(began).Round(time.Millisecond), err)
		}
		return string(p)
	}
	// A Socket.IO client of a's "/" namespace.
	sio, err := socketio.Dial(ctx, a.URL, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sio.Manager().Close()
	events := make(chan string, 16)
	sio.OnAny(func(_ *socketio.ClientSocket, e *socketio.Event) { events <- e.Name })
	sioWait := func(want string, within time.Duration) bool {
		t.Helper()
		timer := time.NewTimer(within)
		defer timer.Stop()
		for {
			select {
			case e := <-events:
				if e == want {
					return true
				}
			case <-timer.C:
				return false
			}
		}
	}

	_ = ca.Write(ctx, ws.MessageText, []byte("before"))
	if got := read(cb); got != "before" {
		t.Fatalf("b got %q", got)
	}
	read(ca)
	if m := get(t, a.URL+"/metrics", 200); metricValue(m, fmt.Sprintf(`duplex_adapter_reconnects_total{broker=%q,nsp="/chat"}`, name)) != 0 {
		t.Errorf("/metrics has no duplex_adapter_reconnects_total{broker=%q,nsp=\"/chat\"} 0 before the outage", name)
	}

	br.Kill()
	for _, u := range []string{a.URL, b.URL} {
		waitFor(t, u+"/healthz to say degraded", func() bool {
			return strings.HasPrefix(get(t, u+"/healthz", 200), "degraded: "+name)
		})
		waitFor(t, u+"/metrics to show both users of the broker down", func() bool {
			m := get(t, u+"/metrics", 200)
			return strings.Contains(m, fmt.Sprintf(`duplex_broker_up{broker=%q,user="bus"} 0`, name)) &&
				strings.Contains(m, fmt.Sprintf(`duplex_broker_up{broker=%q,user="socketio"} 0`, name))
		})
	}
	_ = ca.Write(ctx, ws.MessageText, []byte("during"))
	if got := read(ca); got != "during" {
		t.Fatalf("a's own subscriber got %q during the outage, want the local delivery", got)
	}
	if m := get(t, a.URL+"/metrics", 200); !strings.Contains(m, fmt.Sprintf(`duplex_broker_publish_failures_total{broker=%q} 1`, name)) {
		t.Error("/metrics does not count the message the broker did not take")
	}
	// A Socket.IO broadcast meanwhile reaches a's own client, and the
	// adapter counts it: Redis refuses it, nats.go buffers it.
	if err := appA.sio.Emit("during-sio"); err != nil {
		t.Logf("Emit during the outage: %v", err)
	}
	if !sioWait("during-sio", 10*time.Second) {
		t.Fatal("a's Socket.IO client did not get a's broadcast during the outage")
	}
	counted := fmt.Sprintf(`duplex_adapter_publish_errors_total{broker=%q,nsp="/"}`, name)
	if name == "nats" {
		counted = fmt.Sprintf(`duplex_adapter_buffered_total{broker=%q,nsp="/"}`, name)
	}
	waitFor(t, "a's /metrics to count the Socket.IO broadcast the broker did not take", func() bool {
		return metricValue(get(t, a.URL+"/metrics", 200), counted) >= 1
	})

	br.Start()
	waitFor(t, "both /healthz to say ok", func() bool {
		return get(t, a.URL+"/healthz", 200) == "ok\n" && get(t, b.URL+"/healthz", 200) == "ok\n"
	})
	for _, u := range []string{a.URL, b.URL} {
		// The adapters notice the reconnection on their own (adapter/nats
		// within 100 ms, adapter/redis at its next check).
		for _, nsp := range socketIONamespaces {
			series := fmt.Sprintf(`duplex_adapter_reconnects_total{broker=%q,nsp=%q}`, name, nsp)
			waitFor(t, u+"/metrics to count a reconnection: "+series, func() bool {
				return metricValue(get(t, u+"/metrics", 200), series) >= 1
			})
		}
		m := get(t, u+"/metrics", 200)
		for _, user := range []string{"bus", "socketio"} {
			if want := fmt.Sprintf(`duplex_broker_up{broker=%q,user=%q} 1`, name, user); !strings.Contains(m, want) {
				t.Errorf("%s/metrics has no %s after the restart", u, want)
			}
		}
	}
	// Healthy again: the next message crosses (after the client has
	// resubscribed, which the health check may not see yet: retry).
	for i := 0; ; i++ {
		msg := fmt.Sprintf("after %d", i)
		_ = ca.Write(ctx, ws.MessageText, []byte(msg))
		if got := read(ca); got != msg {
			t.Fatalf("a got %q, want %q", got, msg)
		}
		rctx, rcancel := context.WithTimeout(ctx, 500*time.Millisecond)
		_, p, err := cb.Read(rctx)
		rcancel()
		if err == nil {
			if string(p) != msg {
				t.Fatalf("b got %q, want %q (and never the message of the outage)", p, msg)
			}
			break
		}
		if ctx.Err() != nil || i == 20 {
			t.Fatalf("the cluster did not heal after %s came back", name)
		}
	}
	// And Socket.IO broadcasts cross again: b's reach a's client.
	for i := 0; ; i++ {
		ev := fmt.Sprintf("after-b-%d", i)
		if err := appB.sio.Emit(ev); err != nil {
			t.Fatal(err)
		}
		if sioWait(ev, 500*time.Millisecond) {
			break
		}
		if ctx.Err() != nil || i == 20 {
			t.Fatalf("Socket.IO broadcasts do not cross after %s came back", name)
		}
	}
	http.DefaultClient.CloseIdleConnections()
}

// TestServeHealthEveryNamespace: /healthz and duplex_broker_up{user=
// "socketio"} follow the adapter of every Socket.IO namespace, not only
// "/": with /chat's adapter closed (down for good), the process is
// degraded and says which namespace.
func TestServeHealthEveryNamespace(t *testing.T) {
	br := brokertest.NATS(t)
	a, app := startApp(t, serveConfig{maxMessage: 16 << 20, nats: br.URL()}, nil)
	if h := get(t, a.URL+"/healthz", 200); h != "ok\n" {
		t.Fatalf("healthz %q before", h)
	}
	if err := app.sio.Of("/chat").Adapter().Close(); err != nil {
		t.Fatal(err)
	}
	h := get(t, a.URL+"/healthz", 200)
	if !strings.HasPrefix(h, "degraded: nats: ") || !strings.Contains(h, "/chat") {
		t.Errorf("healthz with /chat's adapter closed = %q; want degraded, naming /chat", h)
	}
	m := get(t, a.URL+"/metrics", 200)
	for _, want := range []string{`duplex_broker_up{broker="nats",user="socketio"} 0`, `duplex_broker_up{broker="nats",user="bus"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics has no %s", want)
		}
	}
}
