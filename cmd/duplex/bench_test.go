package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/duplexrt/duplex/socketio"
)

// startBenchServer serves duplex serve's endpoints (/ws/echo and
// /ws/broadcast) in process and returns the ws:// base URL and the
// server's pid to pass as --server-pid (this process), or "" where /proc
// is missing.
func startBenchServer(t *testing.T) (base, pid string) {
	t.Helper()
	hs, _ := startApp(t, serveConfig{maxMessage: 16 << 20}, nil)
	if runtime.GOOS == "linux" {
		pid = fmt.Sprint(os.Getpid())
	}
	return "ws" + strings.TrimPrefix(hs.URL, "http"), pid
}

// runBenchJSON runs duplex bench with --json and decodes the summary.
func runBenchJSON(t *testing.T, args ...string) benchSummary {
	t.Helper()
	var out, errOut bytes.Buffer
	args = append([]string{"bench"}, args...)
	args = append(args, "--json")
	if code := run(args, strings.NewReader(""), &out, &errOut); code != 0 {
		t.Fatalf("duplex %s: exit %d, stderr %q", strings.Join(args, " "), code, errOut.String())
	}
	var s benchSummary
	if err := json.Unmarshal(out.Bytes(), &s); err != nil {
		t.Fatalf("summary is not JSON: %v\n%s", err, out.String())
	}
	return s
}

// checkLatency fails unless l holds n > 0 samples in order.
func checkLatency(t *testing.T, what string, l *latencySummary) {
	t.Helper()
	if l == nil || l.Count == 0 {
		t.Errorf("%s: no latency recorded", what)
		return
	}
	if !(0 <= l.P50US && l.P50US <= l.P90US && l.P90US <= l.P99US && l.P99US <= l.MaxUS && l.MeanUS <= l.MaxUS) {
		t.Errorf("%s: latencies out of order: %+v", what, *l)
	}
}

func checkDial(t *testing.T, d *dialSummary, want int64) {
	t.Helper()
	if d == nil || d.Established != want || d.Failed != 0 {
		t.Fatalf("dial: %+v, want %d established and none failed", d, want)
	}
	checkLatency(t, "handshake", d.Handshake)
}

func checkServer(t *testing.T, s *serverSummary, pid string) {
	t.Helper()
	if pid == "" {
		return
	}
	if s == nil || s.Error != "" || s.RSSAfterKiB <= 0 || s.Threads <= 0 {
		t.Errorf("server figures missing: %+v", s)
	}
}

func TestBenchEcho(t *testing.T) {
	base, pid := startBenchServer(t)
	url := base + "/ws/echo"
	t.Run("count", func(t *testing.T) {
		args := []string{"echo", "--conns", "4", "--count", "200", url}
		if pid != "" {
			args = append(args, "--server-pid", pid)
		}
		s := runBenchJSON(t, args...)
		checkDial(t, s.Dial, 4)
		if s.StoppedBy != "count" || s.Echo == nil || s.Echo.Messages != 200 || s.Echo.Errors != 0 {
			t.Fatalf("stopped by %q, echo %+v; want 200 messages and no errors", s.StoppedBy, s.Echo)
		}
		if s.Echo.MessagesPerSec <= 0 || s.Echo.BytesPerSec <= 0 {
			t.Errorf("rates missing: %+v", s.Echo)
		}
		checkLatency(t, "echo", s.Echo.Latency)
		checkServer(t, s.Server, pid)
	})
	t.Run("pipelined binary deflate", func(t *testing.T) {
		s := runBenchJSON(t, "echo", "--conns", "3", "--pipeline", "4", "--binary", "--size", "300", "--deflate", "--duration", "300ms", "--warmup", "50ms", url)
		checkDial(t, s.Dial, 3)
		if !strings.Contains(s.Extensions, "permessage-deflate") {
			t.Errorf("extensions %q: deflate not negotiated", s.Extensions)
		}
		if s.StoppedBy != "duration" || s.Echo == nil || s.Echo.Messages == 0 || s.Echo.Errors != 0 {
			t.Fatalf("stopped by %q, echo %+v; want messages and no errors", s.StoppedBy, s.Echo)
		}
		checkLatency(t, "echo", s.Echo.Latency)
	})
	t.Run("rate and tiny messages", func(t *testing.T) {
		s := runBenchJSON(t, "echo", "--conns", "2", "--rate", "500", "--size", "3", "--duration", "200ms", url)
		if s.Echo == nil || s.Echo.Messages == 0 || s.Echo.Errors != 0 {
			t.Fatalf("echo %+v; want messages and no errors", s.Echo)
		}
	})
}

// TestBenchEchoDetectsBadEcho points echo at the broadcast endpoint, where
// every connection gets the others' messages too: replies are counted as
// errors, not as echoes.
func TestBenchSocketIO(t *testing.T) {
	srv, err := socketio.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	srv.OnConnection(func(s *socketio.Socket) {
		s.On("echo", func(s *socketio.Socket, e *socketio.Event) { _ = e.Ack(e.Values()...) })
		s.On("wrong", func(s *socketio.Socket, ack func(...any)) { ack("not it") })
	})
	hs := httptest.NewServer(srv)
	defer hs.Close()
	defer srv.Close()
	for _, transport := range []string{"websocket", "polling", "upgrade"} {
		s := runBenchJSON(t, "socketio", "--conns", "3", "--count", "60", "--size", "40", "--transport", transport, hs.URL+"/")
		checkDial(t, s.Dial, 3)
		if s.StoppedBy != "count" || s.SocketIO == nil || s.SocketIO.Acks != 60 || s.SocketIO.Errors != 0 {
			t.Fatalf("%s: stopped by %q, socketio %+v; want 60 acks and no errors", transport, s.StoppedBy, s.SocketIO)
		}
		checkLatency(t, "socketio", s.SocketIO.Latency)
	}
	s := runBenchJSON(t, "socketio", "--conns", "2", "--duration", "300ms", "--event", "wrong", hs.URL+"/")
	if s.SocketIO == nil || s.SocketIO.Errors == 0 {
		t.Fatalf("socketio %+v: want errors for acks without the payload", s.SocketIO)
	}
}

// TestBenchSocketIOFanout runs socketio --mode fanout against one
// Socket.IO server behind two listeners, so that the subscribers spread
// over two URLs of one namespace, as over the servers of a cluster.
func TestBenchSocketIOFanout(t *testing.T) {
	srv, err := socketio.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	srv.OnConnection(func(s *socketio.Socket) {
		s.On("shout", func(s *socketio.Socket, e *socketio.Event) {
			_ = s.Namespace().Emit("shouted", e.Raw(0), s.ID())
			_ = e.Ack(true)
		})
	})
	hs1, hs2 := httptest.NewServer(srv), httptest.NewServer(srv)
	defer hs1.Close()
	defer hs2.Close()
	defer srv.Close()
	pid := ""
	if runtime.GOOS == "linux" {
		pid = fmt.Sprint(os.Getpid())
	}
	for _, rate := range []string{"200", "0"} {
		args := []string{"socketio", "--mode", "fanout", "--conns", "5", "--publishers", "2", "--rate", rate, "--count", "20"}
		if pid != "" {
			args = append(args, "--server-pid", pid+","+pid)
		}
		s := runBenchJSON(t, append(args, hs1.URL+"/", hs2.URL+"/")...)
		checkDial(t, s.Dial, 7) // subscribers and publishers
		f, e := s.Fanout, s.SocketIO
		if s.StoppedBy != "count" || s.Mode != "fanout" || len(s.URLs) != 2 || f == nil || e == nil ||
			f.Subscribers != 5 || f.Sent != 20 || f.Expected != 100 || f.Received != 100 || f.Lost != 0 || f.Errors != 0 || f.DeliveriesPerSec <= 0 {
			t.Fatalf("rate %s: stopped by %q, fanout %+v, socketio %+v; want 20 messages to 5 subscribers, all delivered", rate, s.StoppedBy, f, e)
		}
		if e.Event != "shout" || e.RecvEvent != "shouted" || e.Publishers != 2 || e.Acks != 20 || e.Errors != 0 {
			t.Errorf("rate %s: socketio %+v; want 2 publishers, 20 shouts acknowledged", rate, e)
		}
		checkLatency(t, "delivery", f.Latency)
		checkLatency(t, "ack", e.Latency)
		if pid != "" {
			checkServer(t, s.Server, pid)
			if len(s.Server.Processes) != 2 || s.Server.Op != "delivery" {
				t.Errorf("server %+v: want 2 processes summed, CPU per delivery", s.Server)
			}
		}
	}

	// The table, and a server that broadcasts something else: errors and
	// losses, not a hang.
	var out, errOut bytes.Buffer
	code := run([]string{"bench", "socketio", "--mode", "fanout", "--conns", "2", "--count", "5", hs1.URL + "/", hs2.URL + "/"}, strings.NewReader(""), &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
	for _, want := range []string{"socketio --mode fanout " + hs1.URL + "/ " + hs2.URL + "/", "2 subscribers over 2 URLs", "5 acknowledged", "10 of 10 expected (0 lost)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
	s := runBenchJSON(t, "socketio", "--mode", "fanout", "--conns", "2", "--duration", "300ms", "--timeout", "1s", "--recv-event", "nothing", hs1.URL+"/")
	if f := s.Fanout; f == nil || f.Subscribers != 0 || f.Errors != 2 {
		t.Errorf("fanout %+v: want 2 subscribers that never got a broadcast", f)
	}
}

func TestBenchEchoDetectsBadEcho(t *testing.T) {
	base, _ := startBenchServer(t)
	s := runBenchJSON(t, "echo", "--conns", "3", "--duration", "300ms", base+"/ws/broadcast")
	if s.Echo == nil || s.Echo.Errors == 0 {
		t.Fatalf("echo %+v: want errors for replies that are not the message sent", s.Echo)
	}
}

func TestBenchIdle(t *testing.T) {
	base, pid := startBenchServer(t)
	args := []string{"idle", "--conns", "20", "--duration", "300ms", "--ping-interval", "100ms", "--rate", "1000", base + "/ws/echo"}
	if pid != "" {
		args = append(args, "--server-pid", pid)
	}
	s := runBenchJSON(t, args...)
	checkDial(t, s.Dial, 20)
	i := s.Idle
	if i == nil || i.Open != 20 || i.Lost != 0 || i.ClosedCleanly != 20 || i.Pings == 0 || i.PingFailures != 0 {
		t.Fatalf("idle %+v: want 20 held, pinged and closed cleanly", i)
	}
	checkLatency(t, "ping", i.PingRTT)
	checkServer(t, s.Server, pid)
	if pid != "" && s.Server.Op != "connection" {
		t.Errorf("server op %q, want connection", s.Server.Op)
	}
}

func TestBenchConnect(t *testing.T) {
	base, _ := startBenchServer(t)
	s := runBenchJSON(t, "connect", "--conns", "3", "--count", "30", base+"/ws/echo")
	c := s.Connect
	if s.StoppedBy != "count" || c == nil || c.Handshakes != 30 || c.Failures != 0 || c.HandshakesPerSec <= 0 {
		t.Fatalf("stopped by %q, connect %+v; want 30 handshakes and no failures", s.StoppedBy, c)
	}
	checkLatency(t, "open", c.Handshake)
	checkLatency(t, "close", c.Close)
}

func TestBenchConnectFailures(t *testing.T) {
	base, _ := startBenchServer(t)
	var out, errOut bytes.Buffer
	code := run([]string{"bench", "connect", "--conns", "2", "--duration", "100ms", base + "/nope"}, strings.NewReader(""), &out, &errOut)
	if code != 1 || !strings.Contains(out.String(), "HTTP 404") || !strings.Contains(errOut.String(), "no handshake succeeded") {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 1 and the 404s counted", code, out.String(), errOut.String())
	}
}

func TestBenchFanout(t *testing.T) {
	base, pid := startBenchServer(t)
	for _, binary := range []bool{false, true} {
		t.Run(fmt.Sprint("binary=", binary), func(t *testing.T) {
			args := []string{"fanout", "--conns", "5", "--rate", "200", "--count", "20", base + "/ws/broadcast"}
			if binary {
				args = append(args, "--binary", "--size", "8")
			}
			if pid != "" {
				args = append(args, "--server-pid", pid)
			}
			s := runBenchJSON(t, args...)
			checkDial(t, s.Dial, 6) // subscribers and the publisher
			f := s.Fanout
			if s.StoppedBy != "count" || f == nil || f.Subscribers != 5 || f.Sent != 20 || f.Expected != 100 ||
				f.Received != 100 || f.Lost != 0 || f.Errors != 0 || f.DeliveriesPerSec <= 0 {
				t.Fatalf("stopped by %q, fanout %+v; want 20 messages to 5 subscribers, all delivered", s.StoppedBy, f)
			}
			checkLatency(t, "delivery", f.Latency)
			checkServer(t, s.Server, pid)
		})
	}
}

// TestBenchTable checks the summary without --json.
func TestBenchTable(t *testing.T) {
	base, _ := startBenchServer(t)
	var out, errOut bytes.Buffer
	code := run([]string{"bench", "echo", "--conns", "2", "--count", "50", base + "/ws/echo"}, strings.NewReader(""), &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
	for _, want := range []string{"scenario", "echo " + base, "50 echoed", "latency", "p99", "errors"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
	if errOut.Len() != 0 {
		t.Errorf("stderr is not a terminal, yet got %q", errOut.String())
	}
}

func TestBenchTarget(t *testing.T) {
	for _, tc := range []struct {
		url    string
		remote bool
		ok     bool
	}{
		{"ws://127.0.0.1:8080/ws/echo", false, true},
		{"ws://127.3.2.1/", false, true},
		{"ws://[::1]:8080/", false, true},
		{"wss://localhost/", false, true},
		{"ws://LOCALHOST:1/", false, true},
		{"http://127.0.0.1/", false, true},
		{"ws://[::ffff:127.0.0.1]/", false, true},
		{"ws://example.com/", false, false},
		{"ws://localhost.example.com/", false, false},
		{"ws://10.0.0.1/", false, false},
		{"ws://0.0.0.0/", false, false},
		{"ws://example.com/", true, true},
		{"ftp://127.0.0.1/", false, false},
		{"ws:///nohost", false, false},
	} {
		if err := checkTarget(tc.url, tc.remote); (err == nil) != tc.ok {
			t.Errorf("checkTarget(%q, allowRemote=%v) = %v, want ok=%v", tc.url, tc.remote, err, tc.ok)
		}
	}

	// The refusal happens before any connection, and says what to do.
	var out, errOut bytes.Buffer
	code := run([]string{"bench", "echo", "--duration", "1s", "ws://192.0.2.1/ws/echo"}, strings.NewReader(""), &out, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), "not a loopback address") || !strings.Contains(errOut.String(), "--allow-remote") {
		t.Errorf("remote target: exit %d, stderr %q", code, errOut.String())
	}
}

func TestBenchUsage(t *testing.T) {
	// A port nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "ws://" + ln.Addr().String() + "/"
	ln.Close()
	for _, tc := range []struct {
		args []string
		code int
		say  string // in stderr
	}{
		{[]string{"help", "bench"}, 0, "duplex bench SCENARIO"},
		{[]string{"bench", "--help"}, 0, "fanout"},
		{[]string{"bench", "echo", "--help"}, 0, "--pipeline"},
		{[]string{"bench"}, 2, "Usage"},
		{[]string{"bench", "nope", closed}, 2, "unknown scenario"},
		{[]string{"bench", "echo"}, 2, "takes one URL"},
		{[]string{"bench", "echo", closed, closed}, 2, "takes one URL"},
		{[]string{"bench", "echo", "--nope", closed}, 2, "not defined"},
		{[]string{"bench", "socketio", "--conns", "2", "--timeout", "1s", closed}, 1, "no client connected"},
		{[]string{"bench", "socketio", "--transport", "carrier-pigeon", closed}, 1, "--transport"},
		{[]string{"bench", "socketio", "--mode", "nope", closed}, 1, "--mode"},
		{[]string{"bench", "socketio", "--publishers", "2", closed}, 1, "only to socketio --mode fanout"},
		{[]string{"bench", "socketio", closed, closed}, 2, "takes one URL"},
		{[]string{"bench", "socketio", "--mode", "fanout", "--size", "8", closed}, 1, "--size 16"},
		{[]string{"bench", "socketio", "--mode", "fanout", closed, "http://192.0.2.1/"}, 1, "not a loopback address"},
		{[]string{"bench", "socketio", "--mode", "fanout", "--conns", "2", "--timeout", "1s", closed}, 1, "no subscriber connected"},
		{[]string{"bench", "echo", "--server-pid", "1,x", closed}, 2, "not a process id"},
		{[]string{"bench", "echo", "--event", "x", closed}, 1, "--event does not apply"},
		{[]string{"bench", "idle", "--pipeline", "2", closed}, 1, "--pipeline does not apply to idle"},
		{[]string{"bench", "connect", "--size", "2", closed}, 1, "--size does not apply"},
		{[]string{"bench", "connect", "--dial-concurrency", "2", closed}, 1, "--dial-concurrency does not apply"},
		{[]string{"bench", "echo", "--duration", "0", closed}, 1, "--duration"},
		{[]string{"bench", "echo", "--conns", "-1", closed}, 1, "--conns"},
		{[]string{"bench", "echo", "--pipeline", "0", closed}, 1, "--pipeline"},
		{[]string{"bench", "echo", "--rate", "-1", closed}, 1, "--rate"},
		{[]string{"bench", "echo", "-H", "nocolon", closed}, 1, "-H"},
		{[]string{"bench", "fanout", "--size", "4", "--binary", closed}, 1, "use --size 8"},
		{[]string{"bench", "fanout", "--rate", "0", closed}, 1, "needs a message rate"},
		{[]string{"bench", "echo", "--conns", "2", closed}, 1, "connection refused"},
		{[]string{"bench", "echo", "--server-pid", "999999999", closed}, 1, "--server-pid"},
	} {
		var out, errOut bytes.Buffer
		code := run(tc.args, strings.NewReader(""), &out, &errOut)
		if code != tc.code || !strings.Contains(errOut.String()+out.String(), tc.say) {
			t.Errorf("duplex %q: exit %d, stderr %q; want %d and %q", tc.args, code, errOut.String(), tc.code, tc.say)
		}
	}
}

func TestHistogram(t *testing.T) {
	// Every value falls in a bucket whose bounds hold it, within 1/32.
	prev := int64(-1)
	for i := range histBuckets {
		up := histUpper(i)
		if up <= prev {
			t.Fatalf("bucket %d ends at %d, not after bucket %d's %d", i, up, i-1, prev)
		}
		if histIndex(up) != i || histIndex(prev+1) != i {
			t.Fatalf("bucket %d: [%d, %d] maps to %d and %d", i, prev+1, up, histIndex(prev+1), histIndex(up))
		}
		if lo := prev + 1; lo > 0 && float64(up-lo) > float64(lo)/histSub {
			t.Fatalf("bucket %d: [%d, %d] is wider than 1/%d", i, lo, up, histSub)
		}
		prev = up
	}
	if histIndex(1<<62) != histBuckets-1 || histIndex(-5) != 0 {
		t.Fatal("out-of-range values are not clamped")
	}

	var h histogram
	if h.summary() != nil {
		t.Fatal("an empty histogram has a summary")
	}
	for v := 1; v <= 1000; v++ {
		h.record(time.Duration(v) * time.Microsecond)
	}
	s := h.summary()
	near := func(got, want float64) bool { return got >= want && got <= want*(1+1.0/histSub) }
	if s.Count != 1000 || !near(s.P50US, 500) || !near(s.P90US, 900) || !near(s.P99US, 990) || s.MaxUS != 1000 || s.MeanUS != 500.5 {
		t.Fatalf("summary %+v", *s)
	}
}

func TestStamp(t *testing.T) {
	for _, bin := range []bool{false, true} {
		for _, v := range []uint64{0, 1, 0xdeadbeef, stampMeasured | 12345, 1<<64 - 1} {
			p := makePayload(20)
			putStamp(p, bin, v)
			got, ok := readStamp(p, bin)
			if !ok || got != v {
				t.Errorf("binary=%v: stamp %#x read back as %#x, %v", bin, v, got, ok)
			}
		}
	}
	if _, ok := readStamp([]byte("not hex at all!!"), false); ok {
		t.Error("a text stamp that is not hex was read")
	}
}
