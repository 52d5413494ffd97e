//go:build unix

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/duplexrt/duplex/engineio"
	"github.com/duplexrt/duplex/socketio"
	"github.com/duplexrt/duplex/ws"
)

// SIGTERM under load, on the real binary, as systemd stops
// deploy/duplex@.service: `duplex serve` with WebSockets on /ws/echo,
// /ws/broadcast and /ws/chat all sending, and Socket.IO clients (long-polling
// only, and long-polling upgraded to WebSocket) emitting with acks. On
// SIGTERM every WebSocket must end with 1001 Going Away, every Socket.IO
// client must be disconnected, and the process must exit 0 within --drain
// (plus a margin for the signal and the exit), having logged nothing above
// INFO: with the in-memory broker and clients that read what they are sent,
// no warning is expected (a slow broadcast subscriber, closed with 1013,
// would be one, and the load is paced so that none is).

const (
	sigtermDrain     = 5 * time.Second
	sigtermExitSlack = 3 * time.Second
)

// sigtermLog collects the JSON log lines of duplex serve and reports the
// address of its "serving" line.
type sigtermLog struct {
	mu      sync.Mutex
	partial []byte
	raw     bytes.Buffer
	records []map[string]any
	ready   chan string
}

func (l *sigtermLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.raw.Write(p)
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		line := l.partial[:i]
		l.partial = l.partial[i+1:]
		var rec map[string]any
		if err := json.Unmarshal(line, &rec); err != nil {
			rec = map[string]any{"level": "UNPARSABLE", "msg": string(line)}
		}
		l.records = append(l.records, rec)
		if addr, ok := rec["addr"].(string); ok && rec["msg"] == "serving" {
			select {
			case l.ready <- addr:
			default:
			}
		}
	}
	return len(p), nil
}

func (l *sigtermLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.raw.String()
}

func (l *sigtermLog) lines() []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]map[string]any(nil), l.records...)
}

func TestSigterm(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "duplex")
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput()
	cancel()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, mode := range []string{"goroutine", "poller"} {
		t.Run(mode, func(t *testing.T) { testSigterm(t, bin, mode) })
	}
}

// wsLoad is one WebSocket client of the load: it sends every `every` and
// reads everything, until the connection ends.
type wsLoad struct {
	name     string
	c        *ws.Conn
	received atomic.Int64
	readErr  error         // the error that ended the reads
	done     chan struct{} // closed when reads have ended
}

func testSigterm(t *testing.T, bin, mode string) {
	log := &sigtermLog{ready: make(chan string, 1)}
	cmd := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--io", mode,
		"--drain", sigtermDrain.String(), "--log-format", "json", "--log-level", "debug")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("duplex serve log:\n%s", log)
		}
	})
	var addr string
	select {
	case addr = <-log.ready:
	case <-exited:
		t.Fatalf("duplex serve exited before serving: %v", waitErr)
	case <-time.After(10 * time.Second):
		t.Fatal("duplex serve: no serving line within 10 s")
	}

	// The WebSockets: 25 on /ws/echo, 20 on /ws/broadcast, 5 on /ws/chat.
	var loads []*wsLoad
	var writers sync.WaitGroup
	stopWriting := make(chan struct{})
	dialCtx, dialCancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer dialCancel()
	for _, ep := range []struct {
		path  string
		n     int
		every time.Duration
		msg   func(who string, i int) []byte
	}{
		{"/ws/echo", 25, 2 * time.Millisecond, func(who string, i int) []byte { return fmt.Appendf(nil, "%s message %d", who, i) }},
		{"/ws/broadcast", 20, 20 * time.Millisecond, func(who string, i int) []byte { return fmt.Appendf(nil, "%s message %d", who, i) }},
		{"/ws/chat", 5, 100 * time.Millisecond, func(who string, i int) []byte {
			return fmt.Appendf(nil, `{"type":"say","text":"%s line %d"}`, who, i)
		}},
	} {
		for k := range ep.n {
			c, _, err := ws.Dial(dialCtx, "ws://"+addr+ep.path, nil)
			if err != nil {
				t.Fatalf("dial %s: %v", ep.path, err)
			}
			l := &wsLoad{name: fmt.Sprintf("%s #%d", ep.path, k), c: c, done: make(chan struct{})}
			loads = append(loads, l)
			t.Cleanup(func() { _ = c.CloseNow() })
			go func() {
				defer close(l.done)
				for {
					_, _, err := c.Read(context.Background())
					if err != nil {
						l.readErr = err
						return
					}
					l.received.Add(1)
				}
			}()
			writers.Go(func() {
				tick := time.NewTicker(ep.every)
				defer tick.Stop()
				for i := 0; ; i++ {
					select {
					case <-stopWriting:
						return
					case <-l.done:
						return
					case <-tick.C:
					}
					wctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					err := c.Write(wctx, ws.MessageText, ep.msg(l.name, i))
					cancel()
					if err != nil {
						return // the server closed it (or is closing it)
					}
				}
			})
		}
	}
	defer func() {
		close(stopWriting)
		writers.Wait()
	}()

	// Socket.IO: 3 clients on long-polling only and 2 upgraded to
	// WebSocket, each emitting "echo" with an ack in a loop, and one idle
	// on long-polling.
	type sioLoad struct {
		name   string
		s      *socketio.ClientSocket
		acked  atomic.Int64
		reason chan string // the disconnect's
		done   chan error  // the emit loop's last error
	}
	var sios []*sioLoad
	for k, transports := range [][]string{{"polling"}, {"polling"}, {"polling"}, nil, nil, {"polling"}} {
		idle := k == 5 // connected, emitting nothing: its poll is pending
		opts := &socketio.ClientOptions{
			Engine:       &engineio.DialOptions{Transports: transports},
			Reconnection: &socketio.Reconnection{Disable: true},
		}
		name := fmt.Sprintf("socket.io %v #%d", transports, k)
		if idle {
			name = fmt.Sprintf("socket.io idle %v #%d", transports, k)
		}
		if transports == nil {
			name = fmt.Sprintf("socket.io upgraded #%d", k)
			upgraded := make(chan struct{})
			opts.Engine.OnUpgrade = func(*engineio.Client) { close(upgraded) }
			defer func() {
				select {
				case <-upgraded:
				default:
					t.Errorf("%s never upgraded to WebSocket", name)
				}
			}()
		}
		s, err := socketio.Dial(dialCtx, "http://"+addr+"/", nil, opts)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Cleanup(func() { _ = s.Manager().Close() })
		l := &sioLoad{name: name, s: s, reason: make(chan string, 1), done: make(chan error, 1)}
		// A disconnected socket would keep an emit until it reconnects:
		// the disconnect ends the loop.
		loopCtx, endLoop := context.WithCancel(context.Background())
		s.OnDisconnect(func(_ *socketio.ClientSocket, reason string) {
			endLoop()
			select {
			case l.reason <- reason:
			default:
			}
		})
		sios = append(sios, l)
		if idle {
			go func() {
				<-loopCtx.Done()
				l.done <- socketio.ErrDisconnected
			}()
			continue
		}
		go func() {
			defer endLoop()
			for i := 0; ; i++ {
				ctx, cancel := context.WithTimeout(loopCtx, 5*time.Second)
				a, err := s.EmitWithAck(ctx, "echo", l.name, i)
				cancel()
				if err != nil {
					l.done <- err
					return
				}
				var back int
				if err := a.Decode(1, &back); err != nil || back != i {
					l.done <- fmt.Errorf("ack %d: got %v (%v)", i, a.Values(), err)
					return
				}
				l.acked.Add(1)
			}
		}()
	}

	// Under load for a while; everything flows, nothing has ended.
	time.Sleep(time.Second)
	for _, l := range loads {
		select {
		case <-l.done:
			t.Fatalf("%s ended before SIGTERM: %v", l.name, l.readErr)
		default:
		}
		if l.received.Load() == 0 {
			t.Errorf("%s received nothing in a second of load", l.name)
		}
	}
	for _, l := range sios {
		select {
		case err := <-l.done:
			t.Fatalf("%s ended before SIGTERM: %v", l.name, err)
		default:
		}
		if l.acked.Load() == 0 && !strings.Contains(l.name, "idle") {
			t.Errorf("%s: no ack in a second of load", l.name)
		}
	}
	if resp, err := http.Get("http://" + addr + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("/healthz before SIGTERM: %v %v", resp, err)
	} else {
		_ = resp.Body.Close()
	}

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(sigtermDrain + sigtermExitSlack):
		t.Fatalf("duplex serve still running %v after SIGTERM (--drain %v)", sigtermDrain+sigtermExitSlack, sigtermDrain)
	}
	elapsed := time.Since(start)
	t.Logf("exited %v after SIGTERM: %v", elapsed.Round(time.Millisecond), cmd.ProcessState)
	if waitErr != nil {
		t.Errorf("duplex serve on SIGTERM: %v, want exit status 0", waitErr)
	}

	// Every WebSocket: closed by the server with 1001.
	codes := map[string]int{}
	for _, l := range loads {
		select {
		case <-l.done:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: still open 5 s after the server exited", l.name)
		}
		code := ws.CloseStatus(l.readErr)
		codes[fmt.Sprint(code)]++
		if code != ws.StatusGoingAway {
			t.Errorf("%s ended with %v, want close 1001 Going Away", l.name, l.readErr)
		}
	}
	t.Logf("WebSocket ends: %v", codes)

	// Every Socket.IO client: disconnected, its emit loop over.
	for _, l := range sios {
		select {
		case reason := <-l.reason:
			t.Logf("%s: disconnected (%s) after %d acks", l.name, reason, l.acked.Load())
			// A client whose poll is pending gets the close packet in
			// it. A busy one may instead have a POST in flight, or be
			// between two polls, when the session ends: its next
			// request finds the session gone (400) or the listener
			// closed, a "transport error" (socket.io-client then
			// reconnects, as after a close). The WebSocket ones get the
			// WebSocket's close.
			want := []string{"transport close"}
			if !strings.Contains(l.name, "idle") && !strings.Contains(l.name, "upgraded") {
				want = append(want, "transport error")
			}
			if !slices.Contains(want, reason) {
				t.Errorf("%s: disconnected with %q, want one of %q", l.name, reason, want)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("%s: not disconnected 5 s after the server exited", l.name)
			continue
		}
		select {
		case err := <-l.done:
			if !errors.Is(err, socketio.ErrDisconnected) && !errors.Is(err, context.Canceled) {
				t.Errorf("%s: emit loop ended with %v, want a disconnect", l.name, err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("%s: emit loop still running", l.name)
		}
	}

	// The log: the shutdown, and nothing above INFO.
	var shutting, stopped bool
	for _, rec := range log.lines() {
		switch lvl, _ := rec["level"].(string); lvl {
		case "DEBUG", "INFO":
		default:
			t.Errorf("duplex serve logged %v", rec)
		}
		switch rec["msg"] {
		case "shutting down":
			shutting = true
		case "stopped":
			stopped = true
		}
	}
	if !shutting || !stopped {
		t.Errorf("the log has no \"shutting down\" (%v) or no \"stopped\" (%v)", shutting, stopped)
	}
}
